#!/usr/bin/env python3
"""Generate a random, Mixtral-shaped checkpoint in the Hugging Face layout.

This is the model Octet's speed benchmarks run on. Its weights are random, so
its output is meaningless, but every shape, name, dtype and config key is that
of a transformers ``MixtralForCausalLM`` checkpoint.

Default shape (the benchmark shape):
    hidden 1024, intermediate 3584, 8 layers, 8 heads x head_dim 128,
    2 KV heads, 8 experts (top-2), vocab 32000, rope_theta 1e6,
    rms_norm_eps 1e-5, max_position_embeddings 32768, bf16 weights.

Output directory:
    config.json, model.safetensors (one file, bf16),
    tokenizer.model, tokenizer_config.json (+ special_tokens_map.json,
    generation_config.json) copied from Fixtures/tiny-mixtral.

Only numpy is needed: bf16 conversion and the safetensors container are done
here. Tensors are generated and written one at a time, so peak memory is
about one tensor (the embedding: vocab x hidden float32).

Usage:
    python Tools/make_bench_model.py OUT_DIR [--seed 0]
    python Tools/make_bench_model.py /tmp/small --hidden 64 --ffn 128 --layers 2 --vocab 32000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import struct
import sys
import time
from pathlib import Path

import numpy as np

FIXTURE_DIR = Path(__file__).resolve().parent.parent / "Fixtures" / "tiny-mixtral"
TOKENIZER_FILES_REQUIRED = ["tokenizer.model", "tokenizer_config.json"]
TOKENIZER_FILES_OPTIONAL = ["special_tokens_map.json", "generation_config.json"]
TOKENIZER_VOCAB = 32000

WEIGHT_STD = 0.02
CHUNK_ELEMENTS = 1 << 22   # values generated per step (16 MB of float32)
NORM_NOISE_STD = 0.01


# --------------------------------------------------------------------------
# bf16 helpers


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round float32 values to bfloat16 (round to nearest, ties to even).

    Returns the 16-bit patterns as uint16 (same shape as ``x``). NaNs map to
    a quiet NaN with the sign kept.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32)
    # Add 0x7FFF plus the lowest kept bit, then truncate: this is RNE.
    lsb = (u >> np.uint32(16)) & np.uint32(1)
    rounded = (u + (np.uint32(0x7FFF) + lsb)) >> np.uint32(16)
    out = rounded.astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        out[nan] = ((u[nan] >> np.uint32(16)) | np.uint32(0x0040)).astype(np.uint16)
    return out


def bf16_bits_to_f32(b: np.ndarray) -> np.ndarray:
    """Exact widening of bf16 bit patterns (uint16) to float32."""
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


# --------------------------------------------------------------------------
# model description


class Shape:
    def __init__(self, args: argparse.Namespace):
        self.hidden = args.hidden
        self.ffn = args.ffn
        self.layers = args.layers
        self.vocab = args.vocab
        self.heads = args.heads
        self.kv_heads = args.kv_heads
        self.head_dim = args.head_dim
        self.experts = args.experts
        self.experts_per_tok = args.experts_per_tok
        self.rope_theta = args.rope_theta
        self.rms_norm_eps = args.rms_norm_eps
        self.max_pos = args.max_position_embeddings

    def validate(self) -> None:
        pos = dict(hidden=self.hidden, ffn=self.ffn, layers=self.layers, vocab=self.vocab,
                   heads=self.heads, kv_heads=self.kv_heads, head_dim=self.head_dim,
                   experts=self.experts, experts_per_tok=self.experts_per_tok)
        for k, v in pos.items():
            if v <= 0:
                raise SystemExit(f"error: --{k.replace('_', '-')} must be positive (got {v})")
        if self.heads % self.kv_heads:
            raise SystemExit("error: --heads must be a multiple of --kv-heads")
        if self.experts_per_tok > self.experts:
            raise SystemExit("error: --experts-per-tok must be <= --experts")


def tensor_specs(s: Shape):
    """Yield (name, shape, kind) in file order.

    kind: "w" (dense weight), "norm" (RMSNorm scale), "router" (MoE gate).
    """
    q_out = s.heads * s.head_dim
    kv_out = s.kv_heads * s.head_dim
    yield "model.embed_tokens.weight", (s.vocab, s.hidden), "w"
    for n in range(s.layers):
        p = f"model.layers.{n}"
        yield f"{p}.input_layernorm.weight", (s.hidden,), "norm"
        yield f"{p}.self_attn.q_proj.weight", (q_out, s.hidden), "w"
        yield f"{p}.self_attn.k_proj.weight", (kv_out, s.hidden), "w"
        yield f"{p}.self_attn.v_proj.weight", (kv_out, s.hidden), "w"
        yield f"{p}.self_attn.o_proj.weight", (s.hidden, q_out), "w"
        yield f"{p}.post_attention_layernorm.weight", (s.hidden,), "norm"
        yield f"{p}.block_sparse_moe.gate.weight", (s.experts, s.hidden), "router"
        for e in range(s.experts):
            q = f"{p}.block_sparse_moe.experts.{e}"
            yield f"{q}.w1.weight", (s.ffn, s.hidden), "w"   # gate_proj
            yield f"{q}.w2.weight", (s.hidden, s.ffn), "w"   # down_proj
            yield f"{q}.w3.weight", (s.ffn, s.hidden), "w"   # up_proj
    yield "model.norm.weight", (s.hidden,), "norm"
    yield "lm_head.weight", (s.vocab, s.hidden), "w"


def router_std(hidden: int) -> float:
    # The router sees RMS-normalised hidden states (RMS ~ 1). With entries of
    # std 1/sqrt(hidden) its logits have std ~ 1, so the top-2 experts change
    # from token to token instead of being dominated by a tiny bias.
    return 1.0 / math.sqrt(hidden)


def generate(kind: str, shape, rng: np.random.Generator, hidden: int) -> np.ndarray:
    """Values of one tensor, or of the next rows of it (successive calls on
    the same ``rng`` continue the same stream)."""
    if kind == "norm":
        x = rng.standard_normal(shape, dtype=np.float32)
        x *= np.float32(NORM_NOISE_STD)
        x += np.float32(1.0)
        return x
    std = router_std(hidden) if kind == "router" else WEIGHT_STD
    x = rng.standard_normal(shape, dtype=np.float32)
    x *= np.float32(std)
    return x


def config_json(s: Shape) -> dict:
    return {
        "architectures": ["MixtralForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "dtype": "bfloat16",
        "eos_token_id": 2,
        "head_dim": s.head_dim,
        "hidden_act": "silu",
        "hidden_size": s.hidden,
        "initializer_range": WEIGHT_STD,
        "intermediate_size": s.ffn,
        "max_position_embeddings": s.max_pos,
        "model_type": "mixtral",
        "num_attention_heads": s.heads,
        "num_experts_per_tok": s.experts_per_tok,
        "num_hidden_layers": s.layers,
        "num_key_value_heads": s.kv_heads,
        "num_local_experts": s.experts,
        "output_router_logits": False,
        "pad_token_id": None,
        "rms_norm_eps": s.rms_norm_eps,
        "rope_parameters": {"rope_theta": s.rope_theta, "rope_type": "default"},
        "rope_theta": s.rope_theta,
        "router_aux_loss_coef": 0.02,
        "router_jitter_noise": 0.0,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": s.vocab,
    }


# --------------------------------------------------------------------------
# safetensors writer (streaming)


def build_header(specs) -> tuple[bytes, int]:
    """Return (header bytes incl. the 8-byte length prefix, data size)."""
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape, _kind in specs:
        nbytes = 2 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": list(shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    # Pad with spaces so the data section starts 8-byte aligned.
    raw += b" " * ((-(8 + len(raw))) % 8)
    return struct.pack("<Q", len(raw)) + raw, offset


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GB"


def write_model(out_dir: Path, s: Shape, seed: int, quiet: bool) -> None:
    specs = list(tensor_specs(s))
    n_params = sum(int(np.prod(shape)) for _, shape, _ in specs)
    header, data_size = build_header(specs)
    total = len(header) + data_size

    def log(msg: str) -> None:
        if not quiet:
            print(msg, flush=True)

    log(f"make_bench_model: {len(specs)} tensors, {n_params:,} parameters, "
        f"model.safetensors = {human(total)} (bf16)")

    # One independent stream per tensor: a tensor's values depend only on the
    # seed and its index, not on how the generator was used before.
    seeds = np.random.SeedSequence(seed).spawn(len(specs))

    final = out_dir / "model.safetensors"
    tmp = out_dir / "model.safetensors.partial"
    t0 = time.monotonic()
    written = 0
    current_layer = None
    with open(tmp, "wb") as f:
        f.write(header)
        for i, (name, shape, kind) in enumerate(specs):
            rng = np.random.default_rng(seeds[i])
            # Generate and convert a block of rows at a time to bound memory.
            row = int(np.prod(shape[1:]))
            rows_per_chunk = max(1, CHUNK_ELEMENTS // max(row, 1))
            for r0 in range(0, shape[0], rows_per_chunk):
                rows = min(rows_per_chunk, shape[0] - r0)
                values = generate(kind, (rows,) + tuple(shape[1:]), rng, s.hidden)
                bits = f32_to_bf16_bits(values)
                del values
                if sys.byteorder != "little":
                    bits = bits.byteswap()
                f.write(bits.tobytes(order="C"))
                written += bits.nbytes
                del bits
            layer = name.split(".")[2] if name.startswith("model.layers.") else name
            if layer != current_layer:
                current_layer = layer
                pct = 100.0 * written / data_size
                label = f"layer {layer}" if layer.isdigit() else layer
                log(f"  [{pct:5.1f}%] {label}  ({time.monotonic() - t0:.1f}s)")
        assert written == data_size, (written, data_size)
    os.replace(tmp, final)
    log(f"  [100.0%] wrote {final} in {time.monotonic() - t0:.1f}s")


def copy_tokenizer(out_dir: Path, s: Shape, quiet: bool) -> None:
    for fname in TOKENIZER_FILES_REQUIRED:
        src = FIXTURE_DIR / fname
        if not src.is_file():
            raise SystemExit(f"error: missing {src} (needed for the tokenizer)")
        shutil.copyfile(src, out_dir / fname)
    for fname in TOKENIZER_FILES_OPTIONAL:
        src = FIXTURE_DIR / fname
        if src.is_file():
            shutil.copyfile(src, out_dir / fname)
    if s.vocab != TOKENIZER_VOCAB and not quiet:
        print(f"  note: --vocab {s.vocab} differs from the tokenizer's {TOKENIZER_VOCAB} pieces; "
              "the copied tokenizer.model does not match this model", flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Write a random Mixtral-shaped HF checkpoint (bf16 safetensors) for benchmarks.")
    p.add_argument("out_dir", type=Path, help="output directory (created if missing)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--hidden", type=int, default=1024, help="hidden_size (default 1024)")
    p.add_argument("--ffn", type=int, default=3584, help="intermediate_size (default 3584)")
    p.add_argument("--layers", type=int, default=8, help="num_hidden_layers (default 8)")
    p.add_argument("--vocab", type=int, default=32000, help="vocab_size (default 32000)")
    p.add_argument("--heads", type=int, default=8, help="num_attention_heads (default 8)")
    p.add_argument("--kv-heads", type=int, default=2, help="num_key_value_heads (default 2)")
    p.add_argument("--head-dim", type=int, default=None,
                   help="head_dim (default 128 for the bench shape, else hidden // heads)")
    p.add_argument("--experts", type=int, default=8, help="num_local_experts (default 8)")
    p.add_argument("--experts-per-tok", type=int, default=2, help="num_experts_per_tok (default 2)")
    p.add_argument("--rope-theta", type=float, default=1e6)
    p.add_argument("--rms-norm-eps", type=float, default=1e-5)
    p.add_argument("--max-position-embeddings", type=int, default=32768)
    p.add_argument("--quiet", action="store_true", help="no progress output")
    args = p.parse_args(argv)
    if args.head_dim is None:
        if args.hidden % args.heads:
            p.error("--hidden is not a multiple of --heads: pass --head-dim")
        args.head_dim = args.hidden // args.heads
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    s = Shape(args)
    s.validate()
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "config.json", "w") as f:
        json.dump(config_json(s), f, indent=2)
        f.write("\n")
    copy_tokenizer(out_dir, s, args.quiet)
    write_model(out_dir, s, args.seed, args.quiet)
    if not args.quiet:
        print(f"done: {out_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
