#!/usr/bin/env python3
"""Self-test for the Tools/ scripts (no network, a few seconds).

  * make_bench_model.py at a small shape: the safetensors file loads with the
    `safetensors` package (numpy API, bf16 via ml_dtypes), names/shapes match
    transformers' Mixtral, values are the generator's rounded to bf16, and the
    bf16 rounding matches ml_dtypes bit for bit;
  * check_gguf.py on tiny fake Mixtral GGUFs written with gguf-py's GGUFWriter
    (real Mixtral tokenizer from Fixtures/tiny-mixtral): a valid file passes,
    and files with a missing tensor, a wrong shape, a non-F32 norm, a
    wrongly-typed key, a bad vocab array, an unknown (FP8-like) tensor type and
    a misplaced tensor offset fail with the right message.

Run:  "$(Tools/setup-python.sh | tail -1)" Tools/selftest.py
Ends with the line "N passed, N failed"; exit status 1 if anything failed.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np

TOOLS = Path(__file__).resolve().parent
FIXTURE = TOOLS.parent / "Fixtures" / "tiny-mixtral"
sys.path.insert(0, str(TOOLS))

import check_gguf  # noqa: E402
import make_bench_model  # noqa: E402

RESULTS: list[tuple[str, bool]] = []


def case(fn):
    try:
        fn()
        RESULTS.append((fn.__name__, True))
        print(f"PASS {fn.__name__}")
    except Exception:
        RESULTS.append((fn.__name__, False))
        print(f"FAIL {fn.__name__}")
        traceback.print_exc()
    return fn


TMP = Path(tempfile.mkdtemp(prefix="octet-tools-test-"))

# ---------------------------------------------------------------------------
# make_bench_model


SMALL = ["--hidden", "64", "--ffn", "96", "--layers", "2", "--vocab", "300", "--seed", "7"]


def test_bf16_rounding_matches_ml_dtypes():
    import ml_dtypes
    rng = np.random.default_rng(0)
    u = rng.integers(0, 2**32, size=1_000_000, dtype=np.uint64).astype(np.uint32)
    ties = np.array([0x3F808000, 0x3F818000, 0x7F7F8000, 0x7F7FFFFF, 0x00008000, 0x00018000,
                     0x7F800000, 0xFF800000, 0, 0x80000000], dtype=np.uint32)
    x = np.concatenate([u, ties]).view(np.float32)
    keep = ~np.isnan(x)
    mine = make_bench_model.f32_to_bf16_bits(x[keep])
    ref = x[keep].astype(ml_dtypes.bfloat16).view(np.uint16)
    assert np.array_equal(mine, ref), int((mine != ref).sum())
    nan = make_bench_model.f32_to_bf16_bits(np.array([np.nan, -np.nan], dtype=np.float32))
    assert np.isnan(make_bench_model.bf16_bits_to_f32(nan)).all()


def test_bench_model_small():
    import ml_dtypes  # noqa: F401  (registers the bfloat16 dtype for safetensors.numpy)
    from safetensors import safe_open
    from safetensors.numpy import load_file

    out = TMP / "bench-small"
    r = subprocess.run([sys.executable, str(TOOLS / "make_bench_model.py"), str(out), *SMALL],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for f in ("config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json"):
        assert (out / f).is_file(), f
    assert (out / "tokenizer.model").read_bytes() == (FIXTURE / "tokenizer.model").read_bytes()

    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["MixtralForCausalLM"] and cfg["model_type"] == "mixtral"
    assert (cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]) == (64, 96, 2, 300)
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]) == (8, 2, 8)
    assert (cfg["num_local_experts"], cfg["num_experts_per_tok"]) == (8, 2)
    assert cfg["torch_dtype"] == "bfloat16" and cfg["tie_word_embeddings"] is False
    assert (cfg["bos_token_id"], cfg["eos_token_id"]) == (1, 2)

    with safe_open(str(out / "model.safetensors"), framework="np") as f:
        assert f.metadata() == {"format": "pt"}
    t = load_file(str(out / "model.safetensors"))
    args = make_bench_model.parse_args([str(out), *SMALL])
    s = make_bench_model.Shape(args)
    specs = list(make_bench_model.tensor_specs(s))
    assert set(t) == {n for n, _, _ in specs}
    assert t["model.layers.1.block_sparse_moe.experts.7.w2.weight"].shape == (64, 96)
    assert t["model.layers.0.self_attn.k_proj.weight"].shape == (16, 64)
    assert t["model.layers.0.block_sparse_moe.gate.weight"].shape == (8, 64)
    assert t["lm_head.weight"].shape == (300, 64)
    seeds = np.random.SeedSequence(7).spawn(len(specs))
    for i, (name, shape, kind) in enumerate(specs):
        a = t[name]
        assert str(a.dtype) == "bfloat16" and a.shape == shape, (name, a.dtype, a.shape)
        ref = make_bench_model.generate(kind, shape, np.random.default_rng(seeds[i]), s.hidden)
        want = make_bench_model.f32_to_bf16_bits(ref)
        assert np.array_equal(a.view(np.uint16), want), name
        got = a.astype(np.float32)
        if kind == "norm":
            assert abs(got.mean() - 1) < 0.01 and got.std() < 0.05, name
        elif kind == "router":
            assert abs(got.std() * 8 - 1) < 0.25, (name, got.std())
        elif got.size >= 4096:
            assert abs(got.std() - 0.02) < 0.003, (name, got.std())


def test_bench_model_chunking_is_invisible():
    # Generating in many small row blocks must give the same file as the
    # default chunk size (which writes these small tensors in one piece).
    out = TMP / "bench-small-chunked"
    saved = make_bench_model.CHUNK_ELEMENTS
    make_bench_model.CHUNK_ELEMENTS = 100
    try:
        assert make_bench_model.main([str(out), "--quiet", *SMALL]) == 0
    finally:
        make_bench_model.CHUNK_ELEMENTS = saved
    a = (out / "model.safetensors").read_bytes()
    b = (TMP / "bench-small" / "model.safetensors").read_bytes()
    assert a == b


def test_bench_model_router_varies():
    # With the bench model's router scale, RMS-normalised random inputs do not
    # all pick the same top-2 experts.
    from safetensors.numpy import load_file
    t = load_file(str(TMP / "bench-small" / "model.safetensors"))
    g = t["model.layers.0.block_sparse_moe.gate.weight"].astype(np.float32)
    x = np.random.default_rng(1).standard_normal((200, 64)).astype(np.float32)
    top2 = np.argsort(-(x @ g.T), axis=1)[:, :2]
    pairs = {tuple(sorted(p)) for p in top2.tolist()}
    assert len(pairs) >= 10, pairs


# ---------------------------------------------------------------------------
# fake Mixtral GGUFs


def llama_vocab():
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=str(FIXTURE / "tokenizer.model"))
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(2)
        elif sp.is_control(i):
            types.append(3)
        elif sp.is_byte(i):
            types.append(6)
        elif sp.is_unused(i):
            types.append(5)
        else:
            types.append(1)
    return tokens, scores, types


VOCAB = None
E, FF, L, H, HKV, HD, X, XU = 64, 96, 2, 8, 2, 8, 8, 2


def write_fake(path: Path, *, drop=(), override=None, kv_override=None, vocab_trim=0,
               fp8_id=None, alignment=4096):
    """Write a tiny Mixtral GGUF with gguf-py. override: name -> (np array, raw_dtype)."""
    import gguf
    global VOCAB
    if VOCAB is None:
        VOCAB = llama_vocab()
    tokens, scores, types = VOCAB
    V = len(tokens)
    w = gguf.GGUFWriter(str(path), "llama")
    kv = {
        "block_count": L, "context_length": 4096, "embedding_length": E, "feed_forward_length": FF,
        "head_count": H, "head_count_kv": HKV, "rope_dimension_count": HD, "expert_count": X,
        "expert_used_count": XU,
    }
    kv.update(kv_override or {})
    if kv["block_count"] is not None:
        w.add_block_count(kv["block_count"])
    w.add_context_length(kv["context_length"])
    w.add_embedding_length(E)
    w.add_feed_forward_length(FF)
    w.add_head_count(H)
    w.add_head_count_kv(HKV)
    w.add_rope_dimension_count(kv["rope_dimension_count"])
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_expert_count(X)
    w.add_expert_used_count(XU)
    w.add_quantization_version(2)
    w.add_custom_alignment(alignment)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores[: V - vocab_trim])
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    rng = np.random.default_rng(0)

    def rnd(*shape):  # numpy order (reverse of ggml ne)
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    def bf16(a):
        return make_bench_model.f32_to_bf16_bits(a)

    # name -> (numpy-order array, raw type or None)
    ts = {"token_embd.weight": (bf16(rnd(V, E)), gguf.GGMLQuantizationType.BF16)}
    for i in range(L):
        b = f"blk.{i}."
        ts[b + "attn_norm.weight"] = (np.ones(E, np.float32), None)
        ts[b + "attn_q.weight"] = (rnd(H * HD, E).astype(np.float16), None)
        ts[b + "attn_k.weight"] = (rnd(HKV * HD, E).astype(np.float16), None)
        ts[b + "attn_v.weight"] = (gguf.quants.quantize(rnd(HKV * HD, E), gguf.GGMLQuantizationType.Q8_0),
                                   gguf.GGMLQuantizationType.Q8_0)
        ts[b + "attn_output.weight"] = (rnd(E, H * HD), None)
        ts[b + "ffn_norm.weight"] = (np.ones(E, np.float32), None)
        ts[b + "ffn_gate_inp.weight"] = (rnd(X, E), None)
        for n, shp in (("ffn_gate_exps", (X, FF, E)), ("ffn_up_exps", (X, FF, E)), ("ffn_down_exps", (X, E, FF))):
            if fp8_id is not None:
                ts[b + n + ".weight"] = (rng.integers(-100, 100, size=shp).astype(np.int8), fp8_id)
            else:
                ts[b + n + ".weight"] = (bf16(rnd(*shp)), gguf.GGMLQuantizationType.BF16)
    ts["output_norm.weight"] = (np.ones(E, np.float32), None)
    ts["output.weight"] = (bf16(rnd(V, E)), gguf.GGMLQuantizationType.BF16)
    for name, val in (override or {}).items():
        ts[name] = val
    for name, (arr, raw) in ts.items():
        if name in drop:
            continue
        if raw is None:
            w.add_tensor(name, arr)
        elif arr.dtype == np.uint8:
            w.add_tensor(name, arr, raw_dtype=raw)   # byte shape -> element shape handled by gguf-py
        else:
            w.add_tensor(name, arr, raw_shape=arr.shape, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def run_check(path: Path, *extra: str):
    r = subprocess.run([sys.executable, str(TOOLS / "check_gguf.py"), str(path), *extra],
                       capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def expect_fail(path: Path, *needles: str, extra=()):
    rc, out = run_check(path, *extra)
    assert rc == 1, (rc, out)
    for n in needles:
        assert n in out, f"{n!r} not in output:\n{out}"
    return out


def test_gguf_valid():
    p = write_fake(TMP / "valid.gguf")
    rc, out = run_check(p)
    assert rc == 0, out
    assert out.startswith("OK: 23 tensors"), out
    assert "alignment 4096" in out and "read with gguf-py" in out and "vocab 32000" in out, out
    rc, out = run_check(p, "--json")
    j = json.loads(out)
    assert j["ok"] and j["summary"]["types"] == {"F32": 9, "F16": 4, "Q8_0": 2, "BF16": 8}, j
    # the manual parser must see exactly what gguf-py sees
    a = check_gguf.parse_with_gguf_py(str(p))
    b = check_gguf.parse_manual(str(p))
    assert (a.version, a.alignment, a.data_offset) == (b.version, b.alignment, b.data_offset)
    assert a.tensors == b.tensors
    assert a.fields.keys() == b.fields.keys()
    for k in a.fields:
        fa, fb = a.fields[k], b.fields[k]
        assert (fa.vtype, fa.elem_type) == (fb.vtype, fb.elem_type), k
        va, vb = np.asarray(fa.value), np.asarray(fb.value)
        assert va.shape == vb.shape and (va == vb).all(), k
    rc, out = run_check(p, "--manual")
    assert rc == 0 and "read with manual parser" in out, out


def test_gguf_missing_tensor():
    p = write_fake(TMP / "missing.gguf", drop={"blk.1.ffn_up_exps.weight", "output.weight"})
    out = expect_fail(p, "missing tensor blk.1.ffn_up_exps.weight", "missing tensor output.weight")
    assert "FAIL: 2 problem(s)" in out, out


def test_gguf_wrong_shape_and_extra():
    import gguf
    rng = np.random.default_rng(0)
    # down_exps written like gate_exps ([n_embd, n_ff, n_expert] instead of [n_ff, n_embd, n_expert])
    bad = make_bench_model.f32_to_bf16_bits(rng.standard_normal((X, FF, E)).astype(np.float32))
    p = write_fake(TMP / "shape.gguf", override={
        "blk.0.ffn_down_exps.weight": (bad, gguf.GGMLQuantizationType.BF16),
        "blk.0.ffn_gate.0.weight": (np.zeros((FF, E), np.float32), None),
    })
    expect_fail(p, "tensor blk.0.ffn_down_exps.weight has shape (ggml ne order) [64, 96, 8], expected [96, 64, 8]",
                "unexpected tensor blk.0.ffn_gate.0.weight")


def test_gguf_norm_not_f32():
    p = write_fake(TMP / "norm.gguf", override={"output_norm.weight": (np.ones(E, np.float16), None)})
    expect_fail(p, "tensor output_norm.weight is F16, norms must be F32")


def test_gguf_missing_key_and_bad_rope():
    p = TMP / "keys.gguf"
    write_fake(p, kv_override={"block_count": None, "rope_dimension_count": 4})
    # block_count missing: reported once, without a flood of per-layer complaints
    out = expect_fail(p, "missing key llama.block_count (UINT32)", "rope.dimension_count 4 != head dim 8")
    assert "FAIL: 3 problem(s)" in out, out


def test_gguf_key_wrong_type():
    import gguf
    orig = gguf.GGUFWriter.add_block_count

    def as_u64(self, n):
        self.add_uint64("llama.block_count", n)
    gguf.GGUFWriter.add_block_count = as_u64
    try:
        p = write_fake(TMP / "keytype.gguf")
    finally:
        gguf.GGUFWriter.add_block_count = orig
    expect_fail(p, "key llama.block_count has type UINT64, llama.cpp expects UINT32")


def test_gguf_vocab_mismatch():
    p = write_fake(TMP / "vocab.gguf", vocab_trim=5)
    expect_fail(p, "tokenizer.ggml.scores has 31995 entries, vocabulary (token_embd.weight ne1) is 32000")


def test_gguf_unknown_type_fp8():
    p = write_fake(TMP / "fp8.gguf", fp8_id=200)
    out = expect_fail(p, "gguf-py refused the file", "unknown to gguf-py",
                      "tensor blk.0.ffn_gate_exps.weight has type id 200, not allowed")
    rc, out = run_check(p, "--allow-type", "200")
    assert rc == 0, out
    assert "read with manual parser" in out and "type200 x6" in out, out


def _patch_tensor_offset(path: Path, name: str, delta: int) -> Path:
    data = bytearray(path.read_bytes())
    key = struct.pack("<Q", len(name)) + name.encode()
    i = data.index(key) + len(key)
    n_dims = struct.unpack_from("<I", data, i)[0]
    off_pos = i + 4 + 8 * n_dims + 4
    off = struct.unpack_from("<Q", data, off_pos)[0]
    struct.pack_into("<Q", data, off_pos, off + delta)
    out = path.with_name(path.stem + "-patched.gguf")
    out.write_bytes(bytes(data))
    return out


def test_gguf_bad_offset():
    p = _patch_tensor_offset(TMP / "valid.gguf", "output.weight", 32)
    expect_fail(p, "tensor output.weight offset", "is not a multiple of general.alignment 4096",
                "llama.cpp expects")


def test_gguf_not_gguf():
    p = TMP / "junk.gguf"
    p.write_bytes(b"NOPE" + bytes(100))
    expect_fail(p, "not a GGUF file")
    rc, out = run_check(TMP / "does-not-exist.gguf")
    assert rc == 1 and "no such file" in out, out


def main() -> int:
    for fn in (test_bf16_rounding_matches_ml_dtypes, test_bench_model_small, test_bench_model_chunking_is_invisible,
               test_bench_model_router_varies,
               test_gguf_valid, test_gguf_missing_tensor, test_gguf_wrong_shape_and_extra,
               test_gguf_norm_not_f32, test_gguf_missing_key_and_bad_rope, test_gguf_key_wrong_type,
               test_gguf_vocab_mismatch, test_gguf_unknown_type_fp8, test_gguf_bad_offset, test_gguf_not_gguf):
        case(fn)
    if os.environ.get("OCTET_KEEP_TMP"):
        print(f"kept {TMP}")
    else:
        shutil.rmtree(TMP, ignore_errors=True)
    passed = sum(ok for _, ok in RESULTS)
    failed = len(RESULTS) - passed
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
