#!/usr/bin/env python3
"""What must Q8_0 / FP8 weight quantization cost? An independent check in transformers.

Runs the 16-bit Hugging Face Mixtral (MixtralForCausalLM, float32) against copies
whose matrices have been quantized and dequantized, and scores them the way
`octet compare` does (llama-perplexity style). No Octet code runs: the model is
transformers', the tokenizer is sentencepiece's, the GGUF files are read with
gguf-py (or, for Octet's FP8 type id 1000 that gguf-py does not know, with the
header parser in Tools/check_gguf.py plus a numpy block decoder here).

Variants
  sim-Q8_0        every 2-D weight (embed_tokens, q/k/v/o, expert w1/w2/w3,
                  lm_head; not the router gate, not the norms) cut into blocks of
                  32 along the input (last) dimension, ggml's reference Q8_0:
                  d = amax/127, id = 1/d (float32, unrounded d),
                  q = round-half-away(x*id), stored d = f16(d); value f16(d)*q.
  sim-FP8-search  Octet's FP8 (type 1000): per block, candidates
                  d = f16(amax/448 * 2^(k/8)), k = 0..7 (bumped one f16 ulp if
                  d*448 < amax), q = e4m3 round-nearest-even of x*(1/d), no
                  subnormals (below 2^-6: 0 or 2^-6, the nearer; 0 at 2^-7); the
                  candidate with the smallest squared error wins (first on ties).
  sim-FP8-plain   the same with k = 0 only.
  gguf-Q8_0       the exact dequantized weights of Octet's GGUF files, loaded
  gguf-FP8        back into transformers (attn_q / attn_k rows un-permuted from
                  llama.cpp's interleaved RoPE order to HF's rotate-half order).
  The BF16 GGUF (--gguf-bf16) loaded the same way must reproduce the base
  logits; that checks the loader (names, layouts, un-permutation).

Scoring: the whole text tokenized with sentencepiece, no BOS; the first
--chunks windows (remainder dropped), each run from scratch; position i
predicts token i+1. --scoring picks the windows and scored positions:
  llama            (default; as `octet compare` / llama-perplexity) consecutive
                   windows of --ctx tokens, the first token replaced by BOS
                   (id 1); positions ctx/2 .. ctx-2 scored.
  all              the same windows; every position 0 .. ctx-2 scored.
  all-nobos        windows of the raw tokens (no BOS); positions 0 .. ctx-2.
  bos-prepend      BOS followed by the next ctx-1 text tokens (windows step
                   ctx-1 tokens); positions 0 .. ctx-2 (all ctx-1 text tokens).
  bos-prepend-256  BOS followed by the next ctx text tokens (ctx+1 in all);
                   positions 0 .. ctx-1 (all ctx text tokens).
Per position: NLL for both models, KL(base||quant) over the vocab (float64
log-softmax), top-1 agreement, and per layer whether the router's top-2 expert
set matches the base's. The table also gives the mean KL without the single
largest-KL position.

Usage (from the package root; takes a minute or two on a 2-core machine):
    /root/.cache/octet/venv/bin/python Tools/quant_sim.py \\
        --text ../shared/reference/text/eval-fr.txt \\
        --gguf-q8_0 /tmp/q/tiny-q8_0.gguf --gguf-fp8 /tmp/q/tiny-fp8.gguf \\
        --gguf-bf16 /tmp/q/tiny-bf16.gguf \\
        --octet-json-q8_0 /tmp/q/t3-q8_0-float.json --octet-json-fp8 /tmp/q/t3-fp8-float.json

Options: --model (Fixtures/tiny-mixtral), --ctx (256), --chunks (8),
--scoring (llama), --sims (sim-Q8_0,sim-FP8-search,sim-FP8-plain: which
simulated variants to run; 'none' for none), --threads (1), --top (5
largest-KL positions listed per variant).
Needs numpy, torch, transformers, sentencepiece, gguf.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

BOS_ID = 1
BLOCK = 32

# --------------------------------------------------------------------------
# block quantizers (numpy, float32 like the C/Swift references)


def _blocks(w: np.ndarray) -> np.ndarray:
    """View a float32 array [..., in] as [n_blocks, 32] along the last dim."""
    if w.shape[-1] % BLOCK:
        raise ValueError(f"row length {w.shape[-1]} is not a multiple of {BLOCK}")
    return np.ascontiguousarray(w, dtype=np.float32).reshape(-1, BLOCK)


def quant_q8_0(w: np.ndarray) -> np.ndarray:
    x = _blocks(w)
    amax = np.abs(x).max(axis=1, keepdims=True)
    d = amax / np.float32(127)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    v = (x * inv).astype(np.float64)          # the float32 product, widened exactly
    q = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), -128, 127)   # half away from zero
    d16 = d.astype(np.float16).astype(np.float32)
    return (d16 * q.astype(np.float32)).reshape(w.shape)


def _e4m3_table() -> np.ndarray:
    """Value of each of the 256 E4M3 (OCP, 'fn') codes; S.1111.111 is NaN."""
    t = np.empty(256, dtype=np.float64)
    for b in range(256):
        s = -1.0 if b & 0x80 else 1.0
        e, m = (b >> 3) & 15, b & 7
        if e == 15 and m == 7:
            t[b] = np.nan
        elif e == 0:
            t[b] = s * m / 8 * 2.0 ** -6
        else:
            t[b] = s * (1 + m / 8) * 2.0 ** (e - 7)
    return t.astype(np.float32)


E4M3 = _e4m3_table()


def e4m3_round(v: np.ndarray) -> np.ndarray:
    """Round float32 values (|v| <= 448, a hair above is clamped) to the nearest E4M3 value, ties to even,
    without subnormals as Octet's converter writes them: below 2**-6 the nearer of 0 and 2**-6 (0 at 2**-7).

    Uses torch's float8_e4m3fn conversion (round-to-nearest-even) from 2**-6 up."""
    v = np.clip(v, -448, 448).astype(np.float32)
    r = torch.from_numpy(v).to(torch.float8_e4m3fn).to(torch.float32).numpy()
    a = np.abs(v)
    small = np.where(a > np.float32(2.0 ** -7), np.copysign(np.float32(2.0 ** -6), v), np.float32(0))
    return np.where(a < np.float32(2.0 ** -6), small, r).astype(np.float32)


def _f16_up(d: np.ndarray, amax: np.ndarray) -> np.ndarray:
    """f16(d), bumped one ulp where f16(d)*448 < amax (d > 0)."""
    h = d.astype(np.float16)
    low = h.astype(np.float32) * np.float32(448) < amax
    bits = h.view(np.uint16).copy()
    bits[low] += 1
    return bits.view(np.float16).astype(np.float32)


def quant_fp8(w: np.ndarray, search: bool = True) -> np.ndarray:
    x = _blocks(w)
    amax = np.abs(x).max(axis=1, keepdims=True)
    zero = amax[:, 0] == 0
    amax_safe = np.where(amax == 0, np.float32(1), amax)
    best_err = np.full(x.shape[0], np.inf)
    best_d = np.zeros((x.shape[0], 1), dtype=np.float32)
    for k in range(8 if search else 1):
        step = np.float32(2.0 ** (k / 8))
        d = _f16_up(amax_safe / np.float32(448) * step, amax_safe)
        inv = np.float32(1) / d
        err = ((e4m3_round(x * inv) * d - x).astype(np.float64) ** 2).sum(axis=1)
        better = err < best_err
        best_err[better] = err[better]
        best_d[better] = d[better]
    inv = np.float32(1) / best_d
    y = e4m3_round(x * inv) * best_d
    y[zero] = 0
    return y.reshape(w.shape)


# --------------------------------------------------------------------------
# GGUF reading


def _decode(raw: np.ndarray, type_id: int, n: int) -> np.ndarray:
    """Dequantize n values of a tensor from its raw bytes (numpy uint8)."""
    if type_id == 0:
        return raw[: 4 * n].view(np.float32).copy()
    if type_id == 1:
        return raw[: 2 * n].view(np.float16).astype(np.float32)
    if type_id == 30:
        u = raw[: 2 * n].view(np.uint16).astype(np.uint32) << 16
        return u.view(np.float32)
    if type_id in (8, 1000):
        blk = raw[: 34 * (n // 32)].reshape(-1, 34)
        d = blk[:, :2].copy().view(np.float16).astype(np.float32)
        if type_id == 8:
            q = blk[:, 2:].view(np.int8).astype(np.float32)
        else:
            q = E4M3[blk[:, 2:]]
        return (d * q).reshape(-1)
    raise ValueError(f"tensor type {type_id} not supported")


def read_gguf(path: str) -> dict[str, np.ndarray]:
    """All tensors of a GGUF file, dequantized to float32, numpy order (reversed ne)."""
    out: dict[str, np.ndarray] = {}
    try:
        from gguf import GGUFReader
        from gguf.quants import dequantize
        r = GGUFReader(path, "r")
    except Exception:
        r = None
    if r is not None:
        for t in r.tensors:
            shape = tuple(int(s) for s in reversed(t.shape))
            a = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
            out[t.name] = a.reshape(shape)
        return out
    # gguf-py refused the file (Octet's FP8 type 1000): header by check_gguf, data by us.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from check_gguf import parse_manual
    p = parse_manual(path)
    data = np.memmap(path, dtype=np.uint8, mode="r")
    for t in p.tensors:
        n = int(np.prod(t.ne))
        start = p.data_offset + t.offset
        size = {0: 4 * n, 1: 2 * n, 30: 2 * n, 8: 34 * n // 32, 1000: 34 * n // 32}[t.type_id]
        a = _decode(np.asarray(data[start:start + size]), t.type_id, n)
        out[t.name] = a.reshape(tuple(reversed(t.ne)))
    return out


def unpermute_rope(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of llama.cpp's HF->GGUF Q/K row permutation
    (w.reshape(n_head, 2, hd/2, in).swapaxes(1, 2).reshape(out, in))."""
    out, inp = w.shape
    hd = out // n_head
    return w.reshape(n_head, hd // 2, 2, inp).swapaxes(1, 2).reshape(out, inp)


def gguf_state(path: str, model) -> dict[str, torch.Tensor]:
    """HF state-dict entries (matching `model`'s parameter layout) from a GGUF file."""
    g = read_gguf(path)
    cfg = model.config
    sd = model.state_dict()
    new: dict[str, np.ndarray] = {
        "model.embed_tokens.weight": g["token_embd.weight"],
        "model.norm.weight": g["output_norm.weight"],
        "lm_head.weight": g["output.weight"],
    }
    for L in range(cfg.num_hidden_layers):
        b, p = f"blk.{L}.", f"model.layers.{L}."
        new[p + "self_attn.q_proj.weight"] = unpermute_rope(g[b + "attn_q.weight"], cfg.num_attention_heads)
        new[p + "self_attn.k_proj.weight"] = unpermute_rope(g[b + "attn_k.weight"], cfg.num_key_value_heads)
        new[p + "self_attn.v_proj.weight"] = g[b + "attn_v.weight"]
        new[p + "self_attn.o_proj.weight"] = g[b + "attn_output.weight"]
        new[p + "input_layernorm.weight"] = g[b + "attn_norm.weight"]
        new[p + "post_attention_layernorm.weight"] = g[b + "ffn_norm.weight"]
        gate, up, down = g[b + "ffn_gate_exps.weight"], g[b + "ffn_up_exps.weight"], g[b + "ffn_down_exps.weight"]
        if p + "mlp.experts.gate_up_proj" in sd:          # transformers >= 5: merged experts
            new[p + "mlp.gate.weight"] = g[b + "ffn_gate_inp.weight"]
            new[p + "mlp.experts.gate_up_proj"] = np.concatenate([gate, up], axis=1)
            new[p + "mlp.experts.down_proj"] = down
        else:                                             # transformers 4: one module per expert
            m = p + "block_sparse_moe."
            new[m + "gate.weight"] = g[b + "ffn_gate_inp.weight"]
            for e in range(cfg.num_local_experts):
                new[m + f"experts.{e}.w1.weight"] = gate[e]
                new[m + f"experts.{e}.w3.weight"] = up[e]
                new[m + f"experts.{e}.w2.weight"] = down[e]
    missing = set(sd) - set(new)
    if missing:
        raise KeyError(f"{path}: no GGUF source for {sorted(missing)[:5]}")
    result = {}
    for k, v in new.items():
        if tuple(v.shape) != tuple(sd[k].shape):
            raise ValueError(f"{k}: GGUF gives {v.shape}, model has {tuple(sd[k].shape)}")
        result[k] = torch.from_numpy(np.array(v, dtype=np.float32))   # a writable copy
    return result


# --------------------------------------------------------------------------
# model


def is_quantized_param(name: str, t: torch.Tensor) -> bool:
    """2-D (or merged 3-D expert) matrices; not norms, not the router."""
    if t.dim() < 2:
        return False
    return not (name.endswith("mlp.gate.weight") or name.endswith("block_sparse_moe.gate.weight"))


def sim_state(base_sd: dict[str, torch.Tensor], fn) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in base_sd.items():
        out[k] = torch.from_numpy(fn(v.numpy())) if is_quantized_param(k, v) else v
    return out


def router_modules(model) -> list:
    mods = []
    for name, m in model.named_modules():
        if name.endswith("mlp.gate") or name.endswith("block_sparse_moe.gate"):
            mods.append(m)
    if len(mods) != model.config.num_hidden_layers:
        raise RuntimeError(f"found {len(mods)} router modules, expected {model.config.num_hidden_layers}")
    return mods


@torch.no_grad()
def run_windows(model, windows: list[list[int]], first: int, last: int, k: int):
    """Logits (float32 [n_win, last-first+1, vocab]) at the scored positions, each
    layer's top-k expert sets there (bool [n_win, n_pos, n_layer, n_expert]) and the
    router's margin there (k-th minus (k+1)-th largest router logit, [n_win, n_pos, n_layer])."""
    captured: list[torch.Tensor] = []

    def hook(_m, _inp, out):
        captured.append((out[0] if isinstance(out, tuple) else out).detach())

    handles = [m.register_forward_hook(hook) for m in router_modules(model)]
    logits_all, sets_all, margins_all = [], [], []
    try:
        for w in windows:
            captured.clear()
            ids = torch.tensor([w], dtype=torch.long)
            out = model(input_ids=ids, use_cache=False)
            logits_all.append(out.logits[0, first:last + 1].float().clone())
            layers, margins = [], []
            for rl in captured:
                rl = rl.reshape(len(w), -1)[first:last + 1].float()
                top = torch.topk(rl, k + 1, dim=-1)
                s = torch.zeros_like(rl, dtype=torch.bool).scatter_(1, top.indices[:, :k], True)
                layers.append(s)
                margins.append(top.values[:, k - 1] - top.values[:, k])
            sets_all.append(torch.stack(layers, dim=1))
            margins_all.append(torch.stack(margins, dim=1))
    finally:
        for h in handles:
            h.remove()
    return torch.stack(logits_all), torch.stack(sets_all), torch.stack(margins_all)


# --------------------------------------------------------------------------
# scoring

SCORINGS = ("llama", "all", "all-nobos", "bos-prepend", "bos-prepend-256")


def make_windows(tokens: list[int], ctx: int, chunks: int, scoring: str):
    """(windows, first, last) for a --scoring convention (see the module docstring):
    up to `chunks` token windows, positions first..last of each scored."""
    step = ctx - 1 if scoring == "bos-prepend" else ctx         # text tokens per window
    windows = []
    for c in range(min(chunks, len(tokens) // step)):
        w = tokens[c * step:(c + 1) * step]
        if scoring in ("llama", "all"):
            w = [BOS_ID] + w[1:]
        elif scoring in ("bos-prepend", "bos-prepend-256"):
            w = [BOS_ID] + w
        windows.append(w)
    first = ctx // 2 if scoring == "llama" else 0
    last = (len(windows[0]) if windows else ctx) - 2
    return windows, first, last


def stats(base_logits, base_sets, q_logits, q_sets, targets) -> dict:
    nw, npos, V = base_logits.shape
    lb = torch.log_softmax(base_logits.double(), dim=-1)
    lq = torch.log_softmax(q_logits.double(), dim=-1)
    kl = (lb.exp() * (lb - lq)).sum(-1)                                   # [nw, npos]
    nll_b = -lb.gather(-1, targets[..., None])[..., 0]
    nll_q = -lq.gather(-1, targets[..., None])[..., 0]
    top1 = (base_logits.argmax(-1) == q_logits.argmax(-1))
    route_same = (base_sets == q_sets).all(-1)                            # [nw, npos, layer]
    klf = kl.reshape(-1).numpy()
    n = klf.size
    ppl_b = math.exp(nll_b.mean().item())
    ppl_q = math.exp(nll_q.mean().item())
    return {
        "n": n, "ppl_base": ppl_b, "ppl_quant": ppl_q, "dppl": 100 * (ppl_q / ppl_b - 1),
        "kl_mean": float(klf.mean()), "kl_stderr": float(klf.std(ddof=1) / math.sqrt(n)),
        "kl_mean_nomax": float((klf.sum() - klf.max()) / (n - 1)) if n > 1 else float("nan"),
        "kl_median": float(np.percentile(klf, 50)), "kl_p99": float(np.percentile(klf, 99)),
        "kl_max": float(klf.max()), "top1": float(top1.double().mean()),
        "routing": float(route_same.double().mean()),
        "routing_per_layer": route_same.double().mean(dim=(0, 1)).tolist(),
        "kl": kl.numpy(), "route_same": route_same.numpy(),
    }


def fmt_row(name: str, s: dict) -> str:
    return (f"{name:15s} {s['n']:5d} {s['ppl_base']:9.4f} {s['ppl_quant']:9.4f} {s['dppl']:+8.4f}% "
            f"{s['kl_mean']:.4e} ± {s['kl_stderr']:.2e} {s['kl_median']:.3e} {s['kl_p99']:.3e} "
            f"{s['kl_max']:.3e} {s['kl_mean_nomax']:.4e} {100 * s['top1']:7.3f} {100 * s['routing']:7.3f}")


HEADER = (f"{'variant':15s} {'n':>5s} {'ppl base':>9s} {'ppl quant':>9s} {'Δppl':>9s} "
          f"{'KL mean ± stderr':>21s} {'KL median':>9s} {'KL p99':>9s} {'KL max':>9s} {'KL w/o max':>10s} {'top1 %':>7s} {'route %':>7s}")


def compare_octet(name: str, s: dict, path: str) -> None:
    with open(path) as f:
        j = json.load(f)
    pairs = [
        ("tokens_scored", s["n"], j["tokens_scored"]),
        ("base.perplexity", s["ppl_base"], j["base"]["perplexity"]),
        ("quant.perplexity", s["ppl_quant"], j["quant"]["perplexity"]),
        ("kl.mean", s["kl_mean"], j["kl"]["mean"]),
        ("kl.mean_stderr", s["kl_stderr"], j["kl"]["mean_stderr"]),
        ("kl.median", s["kl_median"], j["kl"]["median"]),
        ("kl.p99", s["kl_p99"], j["kl"]["p99"]),
        ("kl.max", s["kl_max"], j["kl"]["max"]),
        ("top1_agreement", s["top1"], j["top1_agreement"]),
        ("routing_agreement", s["routing"], j["routing_agreement"]["overall"]),
    ]
    print(f"\n{name} vs Octet ({path}):")
    print(f"  {'figure':20s} {'here':>14s} {'octet':>14s} {'rel diff':>10s}")
    for label, here, octet in pairs:
        rel = (here - octet) / abs(octet) if octet else float("nan")
        print(f"  {label:20s} {here:14.7g} {octet:14.7g} {rel:+10.2e}")
    if "per_layer" in j["routing_agreement"]:
        print(f"  routing per layer here  {[round(x, 5) for x in s['routing_per_layer']]}")
        print(f"  routing per layer octet {[round(x, 5) for x in j['routing_agreement']['per_layer']]}")


def top_positions(name: str, s: dict, first: int, top: int, base_margin: np.ndarray) -> None:
    """The largest-KL positions: where the router's choice flipped, the base router's margin
    there (k-th minus (k+1)-th router logit: small = near tie), flips earlier in the window."""
    kl, rs = s["kl"], s["route_same"]
    order = np.argsort(kl.reshape(-1))[::-1][:top]
    total, n = kl.sum(), kl.size
    print(f"\n{name}: {top} largest-KL positions (KL total {total:.4e}; top-1 share {kl.max() / total:.1%}, "
          f"top-{top} share {kl.reshape(-1)[order].sum() / total:.1%}; "
          f"mean KL without the top-1 {s['kl_mean_nomax']:.4e})")
    print(f"  {'window':>6s} {'pos':>4s} {'KL':>10s}  routing flipped at layer (base margin)   "
          f"flips earlier in window (scored part)")
    for flat in order:
        wi, pi = divmod(int(flat), kl.shape[1])
        layers = [L for L in range(rs.shape[2]) if not rs[wi, pi, L]]
        earlier = int((~rs[wi, :pi]).sum())
        here = " ".join(f"L{L}({base_margin[wi, pi, L]:.1e})" for L in layers) if layers else "no"
        print(f"  {wi:6d} {first + pi:4d} {kl[wi, pi]:10.4e}  {here:38s} {earlier}")
    flipped = ~rs
    if flipped.any():
        print(f"  base router margin where flipped: median {np.median(base_margin[flipped]):.2e}, "
              f"max {base_margin[flipped].max():.2e}; over all (position, layer): "
              f"median {np.median(base_margin):.2e}")


def weight_diff(label: str, a: dict, b: dict) -> None:
    """Largest |Δ| and count of differing values between two state dicts (quantized params)."""
    worst, ndiff, ntot = 0.0, 0, 0
    for k, v in a.items():
        if not is_quantized_param(k, v):
            continue
        d = (v - b[k]).abs()
        worst = max(worst, float(d.max()))
        ndiff += int((d != 0).sum())
        ntot += d.numel()
    print(f"weights {label}: {ndiff} of {ntot} values differ, max |Δ| {worst:.3e}")


# --------------------------------------------------------------------------


def main(argv=None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(here, "..", "Fixtures", "tiny-mixtral"))
    ap.add_argument("--text", required=True)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--scoring", choices=SCORINGS, default="llama")
    ap.add_argument("--sims", default="sim-Q8_0,sim-FP8-search,sim-FP8-plain")
    ap.add_argument("--gguf-q8_0")
    ap.add_argument("--gguf-fp8")
    ap.add_argument("--gguf-bf16")
    ap.add_argument("--octet-json-q8_0")
    ap.add_argument("--octet-json-fp8")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--top", type=int, default=5)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    import sentencepiece as spm
    from transformers import AutoModelForCausalLM

    sp = spm.SentencePieceProcessor(model_file=os.path.join(args.model, "tokenizer.model"))
    with open(args.text, encoding="utf-8") as f:
        tokens = sp.encode(f.read())
    windows, first, last = make_windows(tokens, args.ctx, args.chunks, args.scoring)
    if not windows:
        print("text shorter than one window", file=sys.stderr)
        return 1
    targets = torch.tensor([w[first + 1:last + 2] for w in windows], dtype=torch.long)
    print(f"text {args.text}: {len(tokens)} tokens; scoring {args.scoring}: {len(windows)} windows "
          f"of {len(windows[0])}, positions {first}..{last} scored ({len(windows) * (last - first + 1)} tokens)")

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    k = model.config.num_experts_per_tok
    base_sd = {n: t.detach().clone() for n, t in model.state_dict().items()}
    base_logits, base_sets, base_margin = run_windows(model, windows, first, last, k)
    base_margin = base_margin.numpy()

    def evaluate(sd):
        model.load_state_dict(sd, strict=True)
        return run_windows(model, windows, first, last, k)[:2]

    if args.gguf_bf16:
        lg, st = evaluate(gguf_state(args.gguf_bf16, model))
        print(f"loader check, {os.path.basename(args.gguf_bf16)} vs base: max |Δlogit| "
              f"{float((lg - base_logits).abs().max()):.3e}, routing sets identical: {bool((st == base_sets).all())}")

    variants: list[tuple[str, dict]] = []
    all_sims = {
        "sim-Q8_0": quant_q8_0,
        "sim-FP8-search": lambda w: quant_fp8(w, search=True),
        "sim-FP8-plain": lambda w: quant_fp8(w, search=False),
    }
    wanted = [] if args.sims == "none" else args.sims.split(",")
    unknown = set(wanted) - set(all_sims)
    if unknown:
        print(f"unknown --sims {sorted(unknown)}; choose from {list(all_sims)}", file=sys.stderr)
        return 1
    sims = {n: fn for n, fn in all_sims.items() if n in wanted}
    sim_sds = {}
    for name, fn in sims.items():
        sim_sds[name] = sim_state(base_sd, fn)
        lg, st = evaluate(sim_sds[name])
        variants.append((name, stats(base_logits, base_sets, lg, st, targets)))
    for name, path, sim in (("gguf-Q8_0", args.gguf_q8_0, "sim-Q8_0"), ("gguf-FP8", args.gguf_fp8, "sim-FP8-search")):
        if not path:
            continue
        sd = gguf_state(path, model)
        if sim in sim_sds:
            weight_diff(f"{name} vs {sim}", sd, sim_sds[sim])
        lg, st = evaluate(sd)
        variants.append((name, stats(base_logits, base_sets, lg, st, targets)))
    model.load_state_dict(base_sd)

    print()
    print(HEADER)
    for name, s in variants:
        print(fmt_row(name, s))

    res = dict(variants)
    for name, path in (("gguf-Q8_0", args.octet_json_q8_0), ("gguf-FP8", args.octet_json_fp8)):
        if path and name in res:
            compare_octet(name, res[name], path)

    for name, s in variants:
        top_positions(name, s, first, args.top, base_margin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
