#!/usr/bin/env python3
"""Check that a GGUF file is a Mixtral laid out the way llama.cpp expects.

The file is opened with gguf-py (``gguf.GGUFReader``, the reader maintained
with llama.cpp). If gguf-py refuses it (typically: a tensor type id it does
not know, such as Octet's own FP8 type) the header is parsed by a small
reader in this file instead and the same checks run on that.

Checked:
  * metadata: general.architecture, the <arch>.* hyper-parameters a Mixtral
    needs, general.quantization_version, the llama (SentencePiece) tokenizer
    arrays and special ids -- present, with the GGUF value type llama.cpp
    reads them as (it rejects a key of the wrong type), and consistent;
  * tensors: every tensor of a Mixtral (merged *_exps experts), no others,
    shapes in ggml order (ne0 = row length first), allowed types, F32 norms;
  * layout: offsets multiples of general.alignment, tensors packed in info
    order as llama.cpp's loader requires, data inside the file.

Exit status 0 and "OK: ..." on success; 1 and one line per problem otherwise.

Usage:
    check_gguf.py FILE.gguf [--expect-arch llama] [--allow-type N[:BLOCK:BYTES]] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys
from dataclasses import dataclass, field
from typing import Any

# --------------------------------------------------------------------------
# GGUF constants (from the GGUF specification)

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
GGML_MAX_DIMS = 4

# metadata value types
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
VALUE_TYPE_NAMES = {
    T_U8: "UINT8", T_I8: "INT8", T_U16: "UINT16", T_I16: "INT16", T_U32: "UINT32",
    T_I32: "INT32", T_F32: "FLOAT32", T_BOOL: "BOOL", T_STR: "STRING", T_ARR: "ARRAY",
    T_U64: "UINT64", T_I64: "INT64", T_F64: "FLOAT64",
}
SCALAR_FORMATS = {
    T_U8: "B", T_I8: "b", T_U16: "H", T_I16: "h", T_U32: "I", T_I32: "i",
    T_F32: "f", T_BOOL: "?", T_U64: "Q", T_I64: "q", T_F64: "d",
}

# tensor types accepted by default: id -> (name, block elements, block bytes)
BASE_TENSOR_TYPES = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    8: ("Q8_0", 32, 34),
    30: ("BF16", 1, 2),
}

# SentencePiece token types as llama.cpp numbers them
TOKEN_TYPE_MIN, TOKEN_TYPE_MAX, TOKEN_TYPE_BYTE = 0, 6, 6
BYTE_TOKEN_RE = re.compile(r"^<0x[0-9A-F]{2}>$")


def vtype_name(t: int | None) -> str:
    return VALUE_TYPE_NAMES.get(t, f"type {t}") if t is not None else "?"


# --------------------------------------------------------------------------
# parsed file model (what both readers produce)


@dataclass
class KV:
    vtype: int                 # GGUF value type of the value (ARRAY for arrays)
    value: Any                 # python scalar / str / list
    elem_type: int | None = None   # for arrays


@dataclass
class TensorInfo:
    name: str
    ne: list[int]              # ggml order: ne[0] is the row length
    type_id: int
    offset: int                # relative to the start of the data section


@dataclass
class Parsed:
    reader: str
    version: int
    fields: dict[str, KV]
    tensors: list[TensorInfo]
    alignment: int
    data_offset: int           # absolute file offset of the data section
    file_size: int
    notes: list[str] = field(default_factory=list)


class ParseError(Exception):
    pass


# --------------------------------------------------------------------------
# reader 1: gguf-py


def parse_with_gguf_py(path: str) -> Parsed:
    from gguf import GGUFReader  # ImportError is handled by the caller

    r = GGUFReader(path, "r")
    fields: dict[str, KV] = {}
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue          # pseudo fields for the file header
        main = int(f.types[0]) if f.types else None
        if main == T_ARR:
            # parts: key len, key, value type, element type, count, elements...
            elem = int(f.parts[3][0])
            value = f.contents()
            fields[name] = KV(T_ARR, value, elem)
        else:
            fields[name] = KV(main, f.contents())
    tensors = []
    for t in r.tensors:
        # ReaderTensor.shape is the dims exactly as stored: ggml order, ne0
        # first. (ReaderTensor.data is reshaped to the reversed, numpy order.)
        rel = int(t.field.parts[5][0])
        tensors.append(TensorInfo(t.name, [int(d) for d in t.shape], int(t.tensor_type), rel))
    version = int(r.fields["GGUF.version"].parts[0][0])
    try:
        from importlib.metadata import version as pkg_version
        label = f"gguf-py {pkg_version('gguf')}"
    except Exception:
        label = "gguf-py"
    return Parsed(label, version, fields, tensors, int(r.alignment), int(r.data_offset),
                  os.path.getsize(path))


# --------------------------------------------------------------------------
# reader 2: minimal manual header parser (used when gguf-py refuses a file)


class _Buf:
    def __init__(self, f, size: int):
        self.f = f
        self.size = size
        self.pos = 0

    def read(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.size:
            raise ParseError(f"truncated header: need {n} bytes at offset {self.pos}, file is {self.size}")
        b = self.f.read(n)
        if len(b) != n:
            raise ParseError(f"short read at offset {self.pos}")
        self.pos += n
        return b

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.read(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        n = self.unpack("Q")
        raw = self.read(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ParseError(f"invalid UTF-8 string at offset {self.pos - n}: {e}")


def _read_value(b: _Buf, vtype: int, depth: int = 0):
    if vtype == T_STR:
        return b.string()
    fmt = SCALAR_FORMATS.get(vtype)
    if fmt is not None:
        return b.unpack(fmt)
    if vtype == T_ARR:
        if depth > 0:
            raise ParseError("nested arrays are not supported")
        elem = b.unpack("I")
        count = b.unpack("Q")
        efmt = SCALAR_FORMATS.get(elem)
        if efmt is not None:
            nbytes = count * struct.calcsize("<" + efmt)
            raw = b.read(nbytes)
            return elem, list(struct.unpack(f"<{count}{efmt}", raw))
        if elem == T_STR:
            return elem, [b.string() for _ in range(count)]
        raise ParseError(f"unknown array element type {elem}")
    raise ParseError(f"unknown metadata value type {vtype} at offset {b.pos}")


def parse_manual(path: str) -> Parsed:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        b = _Buf(f, size)
        magic = b.read(4)
        if magic != GGUF_MAGIC:
            raise ParseError(f"not a GGUF file (magic {magic!r})")
        version = b.unpack("I")
        if version & 0xFFFF == 0:
            raise ParseError("file is big-endian (or corrupt): llama.cpp on this host needs little-endian")
        if version not in (2, 3):
            raise ParseError(f"unsupported GGUF version {version}")
        n_tensors = b.unpack("Q")
        n_kv = b.unpack("Q")
        if n_tensors > 10_000_000 or n_kv > 10_000_000:
            raise ParseError(f"implausible counts: {n_tensors} tensors, {n_kv} keys")
        fields: dict[str, KV] = {}
        for _ in range(n_kv):
            key = b.string()
            vtype = b.unpack("I")
            v = _read_value(b, vtype)
            if key in fields:
                raise ParseError(f"duplicate key {key}")
            if vtype == T_ARR:
                fields[key] = KV(T_ARR, v[1], v[0])
            else:
                fields[key] = KV(vtype, v)
        tensors = []
        seen = set()
        for _ in range(n_tensors):
            name = b.string()
            n_dims = b.unpack("I")
            if n_dims > 16:
                raise ParseError(f"tensor {name}: implausible n_dims {n_dims}")
            ne = [b.unpack("Q") for _ in range(n_dims)]
            type_id = b.unpack("I")
            off = b.unpack("Q")
            if name in seen:
                raise ParseError(f"duplicate tensor {name}")
            seen.add(name)
            tensors.append(TensorInfo(name, ne, type_id, off))
        alignment = DEFAULT_ALIGNMENT
        al = fields.get("general.alignment")
        if al is not None and al.vtype == T_U32 and al.value > 0 and (al.value & (al.value - 1)) == 0:
            alignment = al.value
        data_offset = b.pos + (-b.pos) % alignment
    return Parsed("manual parser", version, fields, tensors, alignment, data_offset, size)


def ggml_type_table() -> dict[int, tuple[str, int, int]]:
    """id -> (name, block elements, block bytes) for the types gguf-py knows."""
    try:
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
        return {int(t): (t.name, *GGML_QUANT_SIZES[t]) for t in GGMLQuantizationType if t in GGML_QUANT_SIZES}
    except Exception:
        return {}


def known_to_gguf_py() -> set[int] | None:
    try:
        from gguf import GGMLQuantizationType
        return {int(t) for t in GGMLQuantizationType}
    except Exception:
        return None


def load(path: str, force_manual: bool) -> tuple[Parsed | None, list[str], list[str]]:
    """Return (parsed, problems, notes)."""
    problems: list[str] = []
    notes: list[str] = []
    if not os.path.isfile(path):
        return None, [f"{path}: no such file"], notes
    py_error = None
    if not force_manual:
        try:
            return parse_with_gguf_py(path), problems, notes
        except ImportError as e:
            notes.append(f"gguf-py is not installed ({e}); run Tools/setup-python.sh. Using the manual parser")
        except Exception as e:      # gguf-py raises ValueError/KeyError/IndexError...
            py_error = f"{type(e).__name__}: {e}"
    try:
        parsed = parse_manual(path)
    except ParseError as e:
        if py_error:
            problems.append(f"gguf-py could not read the file: {py_error}")
        problems.append(f"header parse failed: {e}")
        return None, problems, notes
    if py_error:
        known = known_to_gguf_py() or set()
        unknown = sorted({t.type_id for t in parsed.tensors} - known)
        if unknown:
            notes.append(f"gguf-py refused the file ({py_error}): tensor type id(s) "
                         f"{', '.join(map(str, unknown))} unknown to gguf-py; "
                         "checked with the manual header parser instead")
        else:
            problems.append(f"gguf-py could not read the file: {py_error}")
            notes.append("checked with the manual header parser instead")
    return parsed, problems, notes


# --------------------------------------------------------------------------
# checks


def parse_allow_type(s: str) -> tuple[int, int, int, bool]:
    """'N' or 'N:BLOCK:BYTES' -> (id, block elements, block bytes, sizes given).

    A bare id of a type unknown to gguf-py is taken as 1 byte per element (FP8)."""
    parts = s.split(":")
    try:
        if len(parts) == 1:
            return int(parts[0]), 1, 1, False
        if len(parts) == 3:
            tid, blk, nb = (int(p) for p in parts)
            if blk > 0 and nb > 0:
                return tid, blk, nb, True
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected N or N:BLOCK:BYTES, got {s!r}")


class Checker:
    def __init__(self, p: Parsed, arch: str, type_table: dict[int, tuple[str, int, int]]):
        self.p = p
        self.arch = arch
        self.types = type_table
        self.ggml_ids = set(ggml_type_table())
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.summary: dict[str, Any] = {}

    def bad(self, msg: str) -> None:
        self.problems.append(msg)

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)

    # -- metadata helpers
    def get(self, key: str, vtype: int, required: bool = True):
        kv = self.p.fields.get(key)
        if kv is None:
            if required:
                self.bad(f"missing key {key} ({vtype_name(vtype)})")
            return None
        if kv.vtype != vtype:
            self.bad(f"key {key} has type {vtype_name(kv.vtype)}, llama.cpp expects {vtype_name(vtype)}")
            return None
        return kv.value

    def get_array(self, key: str, elem: int):
        kv = self.p.fields.get(key)
        if kv is None:
            self.bad(f"missing key {key} (ARRAY of {vtype_name(elem)})")
            return None
        if kv.vtype != T_ARR or kv.elem_type != elem:
            got = vtype_name(kv.vtype) if kv.vtype != T_ARR else f"ARRAY of {vtype_name(kv.elem_type)}"
            self.bad(f"key {key} is {got}, llama.cpp expects ARRAY of {vtype_name(elem)}")
            return None
        return kv.value

    # -- main
    def run(self) -> None:
        p = self.p
        a = self.arch
        if p.version != 3:
            self.warn(f"GGUF version {p.version} (current is 3)")

        arch = self.get("general.architecture", T_STR)
        if arch is not None and arch != a:
            self.bad(f"general.architecture is {arch!r}, expected {a!r}")

        U = T_U32
        n_layer = self.get(f"{a}.block_count", U)
        n_ctx = self.get(f"{a}.context_length", U)
        n_embd = self.get(f"{a}.embedding_length", U)
        n_ff = self.get(f"{a}.feed_forward_length", U)
        n_head = self.get(f"{a}.attention.head_count", U)
        n_head_kv = self.get(f"{a}.attention.head_count_kv", U)
        freq_base = self.get(f"{a}.rope.freq_base", T_F32)
        n_rot = self.get(f"{a}.rope.dimension_count", U)
        eps = self.get(f"{a}.attention.layer_norm_rms_epsilon", T_F32)
        n_expert = self.get(f"{a}.expert_count", U)
        n_expert_used = self.get(f"{a}.expert_used_count", U)
        qv = self.get("general.quantization_version", U)
        key_len = self.get(f"{a}.attention.key_length", U, required=False)
        val_len = self.get(f"{a}.attention.value_length", U, required=False)
        vocab_size_kv = self.get(f"{a}.vocab_size", U, required=False)

        al = self.p.fields.get("general.alignment")
        if al is not None:
            if al.vtype != T_U32:
                self.bad(f"key general.alignment has type {vtype_name(al.vtype)}, expected UINT32")
            elif al.value == 0 or al.value & (al.value - 1):
                self.bad(f"general.alignment {al.value} is not a power of two")

        for key, v in ((f"{a}.block_count", n_layer), (f"{a}.context_length", n_ctx),
                       (f"{a}.embedding_length", n_embd), (f"{a}.feed_forward_length", n_ff),
                       (f"{a}.attention.head_count", n_head), (f"{a}.attention.head_count_kv", n_head_kv),
                       (f"{a}.rope.dimension_count", n_rot), (f"{a}.expert_count", n_expert),
                       (f"{a}.expert_used_count", n_expert_used)):
            if v is not None and v <= 0:
                self.bad(f"{key} is {v}, must be > 0")
        if freq_base is not None and not freq_base > 0:
            self.bad(f"{a}.rope.freq_base is {freq_base}, must be > 0")
        if eps is not None and not (0 < eps < 1):
            self.bad(f"{a}.attention.layer_norm_rms_epsilon is {eps}, expected a small positive number")
        if qv is not None and qv != 2:
            self.warn(f"general.quantization_version is {qv} (llama.cpp writes 2)")
        if n_head and n_head_kv and n_head % n_head_kv:
            self.bad(f"head_count {n_head} is not a multiple of head_count_kv {n_head_kv}")
        if n_expert and n_expert_used and n_expert_used > n_expert:
            self.bad(f"expert_used_count {n_expert_used} > expert_count {n_expert}")

        head_dim = key_len
        if head_dim is None and n_embd and n_head:
            if n_embd % n_head:
                self.bad(f"embedding_length {n_embd} is not a multiple of head_count {n_head} "
                         f"and {a}.attention.key_length is not set")
            else:
                head_dim = n_embd // n_head
        head_dim_v = val_len if val_len is not None else head_dim
        if n_rot is not None and head_dim is not None and n_rot != head_dim:
            self.bad(f"{a}.rope.dimension_count {n_rot} != head dim {head_dim} (llama rotates the whole head)")

        tensors = {t.name: t for t in p.tensors}
        emb = tensors.get("token_embd.weight")
        n_vocab = emb.ne[1] if emb is not None and len(emb.ne) >= 2 else None

        # -- tokenizer
        tok_model = self.get("tokenizer.ggml.model", T_STR)
        if tok_model is not None and tok_model != "llama":
            self.bad(f"tokenizer.ggml.model is {tok_model!r}, expected 'llama' (SentencePiece)")
        tokens = self.get_array("tokenizer.ggml.tokens", T_STR)
        scores = self.get_array("tokenizer.ggml.scores", T_F32)
        ttypes = self.get_array("tokenizer.ggml.token_type", T_I32)
        if n_vocab is None and tokens is not None:
            n_vocab = len(tokens)
        for key, arr in (("tokenizer.ggml.tokens", tokens), ("tokenizer.ggml.scores", scores),
                         ("tokenizer.ggml.token_type", ttypes)):
            if arr is not None and n_vocab is not None and len(arr) != n_vocab:
                self.bad(f"{key} has {len(arr)} entries, vocabulary (token_embd.weight ne1) is {n_vocab}")
        if vocab_size_kv is not None and n_vocab is not None and vocab_size_kv != n_vocab:
            self.bad(f"{a}.vocab_size {vocab_size_kv} != vocabulary {n_vocab}")
        if ttypes is not None:
            out = [i for i, t in enumerate(ttypes) if not TOKEN_TYPE_MIN <= t <= TOKEN_TYPE_MAX]
            if out:
                self.bad(f"tokenizer.ggml.token_type: {len(out)} value(s) outside 0..6 (first at id {out[0]})")
            if tokens is not None and len(tokens) == len(ttypes):
                badbytes = [i for i, (s, t) in enumerate(zip(tokens, ttypes))
                            if t == TOKEN_TYPE_BYTE and not BYTE_TOKEN_RE.match(s)]
                if badbytes:
                    i = badbytes[0]
                    self.bad(f"{len(badbytes)} BYTE token(s) not spelled <0xXX> (first: id {i} {tokens[i]!r})")
        for key in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"):
            v = self.get(key, U)
            if v is not None and n_vocab is not None and v >= n_vocab:
                self.bad(f"{key} {v} is outside the vocabulary ({n_vocab})")
        for key in ("tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"):
            v = self.get(key, U, required=False)
            if v is not None and n_vocab is not None and v >= n_vocab:
                self.bad(f"{key} {v} is outside the vocabulary ({n_vocab})")

        # -- tensors: names and shapes
        expected: dict[str, list[int | None]] = {
            "token_embd.weight": [n_embd, n_vocab],
            "output_norm.weight": [n_embd],
            "output.weight": [n_embd, n_vocab],
        }
        q_out = n_head * head_dim if n_head and head_dim else None
        kv_out = n_head_kv * head_dim if n_head_kv and head_dim else None
        v_out = n_head_kv * head_dim_v if n_head_kv and head_dim_v else None
        o_in = n_head * head_dim_v if n_head and head_dim_v else None
        for i in range(n_layer or 0):
            b = f"blk.{i}."
            expected.update({
                b + "attn_norm.weight": [n_embd],
                b + "attn_q.weight": [n_embd, q_out],
                b + "attn_k.weight": [n_embd, kv_out],
                b + "attn_v.weight": [n_embd, v_out],
                b + "attn_output.weight": [o_in, n_embd],
                b + "ffn_norm.weight": [n_embd],
                b + "ffn_gate_inp.weight": [n_embd, n_expert],
                b + "ffn_gate_exps.weight": [n_embd, n_ff, n_expert],
                b + "ffn_up_exps.weight": [n_embd, n_ff, n_expert],
                b + "ffn_down_exps.weight": [n_ff, n_embd, n_expert],
            })
        optional = {"rope_freqs.weight": [head_dim // 2 if head_dim else None]}

        missing = [n for n in expected if n not in tensors]
        if n_layer is None:
            self.bad("cannot list the per-layer tensors without a valid block_count")
        if len(missing) > 20:
            self.bad(f"{len(missing)} expected tensors missing, e.g. {', '.join(missing[:10])}, ...")
        else:
            for n in missing:
                self.bad(f"missing tensor {n}")
        for t in p.tensors:
            want = expected.get(t.name, optional.get(t.name))
            if want is None and n_layer is None and t.name.startswith("blk."):
                continue      # cannot judge per-layer names without block_count
            if want is None:
                self.bad(f"unexpected tensor {t.name} {t.ne} (llama.cpp refuses files with tensors it does not load)")
                continue
            if len(t.ne) > GGML_MAX_DIMS:
                self.bad(f"tensor {t.name} has {len(t.ne)} dims (ggml max {GGML_MAX_DIMS})")
                continue
            # llama.cpp compares all GGML_MAX_DIMS dims, missing ones being 1
            got4 = list(t.ne) + [1] * (GGML_MAX_DIMS - len(t.ne))
            want4 = list(want) + [1] * (GGML_MAX_DIMS - len(want))
            if any(w is not None and g != w for g, w in zip(got4, want4)):
                shown = [w if w is not None else "?" for w in want]
                self.bad(f"tensor {t.name} has shape (ggml ne order) {t.ne}, expected {shown}")

        # -- tensor types
        type_counts: dict[str, int] = {}
        non_ggml_seen: set[int] = set()
        for t in p.tensors:
            info = self.types.get(t.type_id)
            if info is None:
                self.bad(f"tensor {t.name} has type id {t.type_id}, not allowed "
                         f"(allowed: {', '.join(f'{n}({i})' for i, (n, _, _) in sorted(self.types.items()))})")
                continue
            tname, blk, _ = info
            type_counts[tname] = type_counts.get(tname, 0) + 1
            if self.ggml_ids and t.type_id not in self.ggml_ids and t.type_id not in non_ggml_seen:
                non_ggml_seen.add(t.type_id)
                self.warn(f"type id {t.type_id} is not a ggml type: llama.cpp will not load this file "
                          "(Octet-only)")
            is_norm = t.name.endswith("_norm.weight") or t.name == "rope_freqs.weight"
            if is_norm and t.type_id != 0:
                self.bad(f"tensor {t.name} is {tname}, norms must be F32")
            if t.name.endswith("ffn_gate_inp.weight") and t.type_id != 0:
                self.warn(f"tensor {t.name} is {tname} (llama.cpp's converter keeps the router F32)")
            if t.ne and t.ne[0] % blk:
                self.bad(f"tensor {t.name}: row length {t.ne[0]} is not a multiple of the {tname} block ({blk})")

        # -- layout
        align = p.alignment
        if p.data_offset % align:
            self.bad(f"data section starts at {p.data_offset}, not a multiple of alignment {align}")
        expect_off = 0
        for t in p.tensors:
            if t.offset % align:
                self.bad(f"tensor {t.name} offset {t.offset} is not a multiple of general.alignment {align}")
            info = self.types.get(t.type_id)
            if info is None:
                expect_off = None
                continue
            n_el = 1
            for d in t.ne:
                n_el *= d
            nbytes = n_el // info[1] * info[2]
            if expect_off is not None and t.offset != expect_off:
                self.bad(f"tensor {t.name} at data offset {t.offset}, llama.cpp expects {expect_off} "
                         "(tensors must follow each other in info order, each padded to the alignment)")
            end = p.data_offset + t.offset + nbytes
            if end > p.file_size:
                self.bad(f"tensor {t.name} data ends at byte {end}, past the end of the file ({p.file_size})")
            if expect_off is not None:
                expect_off = t.offset + nbytes + (-nbytes) % align

        self.summary = {
            "tensors": len(p.tensors),
            "architecture": arch,
            "block_count": n_layer,
            "embedding_length": n_embd,
            "feed_forward_length": n_ff,
            "head_count": n_head,
            "head_count_kv": n_head_kv,
            "head_dim": head_dim,
            "expert_count": n_expert,
            "expert_used_count": n_expert_used,
            "context_length": n_ctx,
            "rope_freq_base": freq_base,
            "vocab": n_vocab,
            "types": type_counts,
            "alignment": align,
            "gguf_version": p.version,
            "reader": p.reader,
        }


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item"):
        return x.item()
    return x


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Check a Mixtral GGUF file against what llama.cpp expects.")
    ap.add_argument("file", help="the .gguf file")
    ap.add_argument("--expect-arch", default="llama", help="expected general.architecture (default llama)")
    ap.add_argument("--allow-type", action="append", default=[], type=parse_allow_type, metavar="N[:BLOCK:BYTES]",
                    help="also accept tensor type id N (e.g. our FP8_E4M3 id). A bare N is taken as "
                         "1 byte per element; give BLOCK:BYTES for block formats. Repeatable.")
    ap.add_argument("--manual", action="store_true", help="skip gguf-py and use the built-in header parser")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)

    type_table = dict(BASE_TENSOR_TYPES)
    ggml_types = ggml_type_table()
    for tid, blk, nb, explicit in args.allow_type:
        if tid in type_table:
            continue
        if not explicit and tid in ggml_types:
            type_table[tid] = ggml_types[tid]        # a real ggml type: use its real size
        else:
            type_table[tid] = (f"type{tid}", blk, nb)

    parsed, problems, notes = load(args.file, args.manual)
    warnings: list[str] = []
    summary: dict[str, Any] = {}
    if parsed is not None:
        c = Checker(parsed, args.expect_arch, type_table)
        c.run()
        problems += c.problems
        warnings += c.warnings
        summary = c.summary
    ok = not problems

    if args.json:
        print(json.dumps(_jsonable({
            "ok": ok, "file": args.file, "problems": problems, "warnings": warnings,
            "notes": notes, "summary": summary,
        }), indent=2))
    else:
        for n in notes:
            print(f"note: {n}")
        for w in warnings:
            print(f"warning: {w}")
        if ok:
            s = summary
            types = ", ".join(f"{k} x{v}" for k, v in sorted(s["types"].items()))
            print(f"OK: {s['tensors']} tensors, arch {s['architecture']}, {s['block_count']} layers, "
                  f"n_embd {s['embedding_length']}, n_ff {s['feed_forward_length']}, "
                  f"heads {s['head_count']}/{s['head_count_kv']} x {s['head_dim']}, "
                  f"experts {s['expert_used_count']} of {s['expert_count']}, vocab {s['vocab']}, "
                  f"ctx {s['context_length']}, types [{types}], alignment {s['alignment']}, "
                  f"read with {s['reader']}")
        else:
            print(f"FAIL: {len(problems)} problem(s) in {args.file}")
            for m in problems:
                print(f"  - {m}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
