#!/usr/bin/env python3
"""Recompute `octet compare` figures independently with numpy, and check them.

    PY="$(Tools/setup-python.sh | tail -1)"
    octet compare BASE QUANT --text TEXT --ctx 256 --kv-type f32 --json cmp.json
    "$PY" Tools/compare_check.py BASE QUANT TEXT --json cmp.json [--ctx 256] [--octet .build/release/octet]

Only octet's tokenizer and forward pass are shared with the command under test: the text is
tokenized with `octet tokenize --json`, every window is run through `octet logits` (one process
per window and model, --kv-type as in the JSON, f32 by default) and everything after that —
the windows, BOS, the scored positions, log-softmax, perplexity, KL divergence and its statistics,
top-1 agreement, RMS Δp and routing agreement — is recomputed here in float64 numpy. A JSON made
with --base-logits ("method": "top-K+rest") is checked against the same top-K + rest estimate.

Prints a table and exits 1 if any figure differs by more than --rtol (relative; values within
--atol of each other also pass, for figures that are ~0).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np


FLOAT_ACTIVATIONS = False  # set from the JSON: octet logits --float-activations


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"error: {' '.join(cmd[:3])} … failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    return r.stdout


def bos_id(model):
    """BOS id of a checkpoint folder (sentencepiece) or a GGUF (tokenizer.ggml.bos_token_id)."""
    if os.path.isdir(model):
        import sentencepiece as spm
        return int(spm.SentencePieceProcessor(model_file=os.path.join(model, "tokenizer.model")).bos_id())
    try:
        import gguf
        f = gguf.GGUFReader(model)
        field = f.fields["tokenizer.ggml.bos_token_id"]
        return int(field.parts[field.data[0]][0])
    except Exception:
        return 1  # Mistral / Mixtral / Llama


def log_softmax(z):
    z = z.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    return z - (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))


def run_window(octet, model, ids, kv, threads, tmp, tag):
    npy, ej = os.path.join(tmp, f"{tag}.npy"), os.path.join(tmp, f"{tag}.json")
    cmd = [octet, "logits", model, "--ids", ",".join(map(str, ids)), "-o", npy, "--experts", ej, "--kv-type", kv]
    if FLOAT_ACTIVATIONS:
        cmd.append("--float-activations")
    if threads:
        cmd += ["--threads", str(threads)]
    run(cmd)
    z = np.load(npy)
    with open(ej) as f:
        experts = json.load(f)["experts"]
    os.remove(npy)
    os.remove(ej)
    return z, experts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base")
    ap.add_argument("quant")
    ap.add_argument("text")
    ap.add_argument("--json", required=True, help="the output of octet compare --json")
    ap.add_argument("--ctx", type=int, help="window length (default: the JSON's)")
    ap.add_argument("--kv-type", help="KV cache type (default: the JSON's)")
    ap.add_argument("--octet", default=".build/release/octet")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--atol", type=float, default=1e-9)
    a = ap.parse_args()

    with open(a.json) as f:
        rep = json.load(f)
    ctx = a.ctx or rep["ctx"]
    kv = a.kv_type or rep.get("kv_type", "f32")
    if rep["ctx"] != ctx:
        sys.exit(f"error: the JSON was made with ctx {rep['ctx']}, not {ctx}")
    method = rep["kl"].get("method", "exact")
    topk = int(method.split("-")[1].split("+")[0]) if method.startswith("top-") else None

    with open(a.text, encoding="utf-8", newline="") as f:
        text = f.read()
    if len(text.encode()) > 120_000:
        sys.exit("error: the text is too long to pass to octet tokenize as one argument (120 kB)")
    ids = json.loads(run([a.octet, "tokenize", "--json", a.base, "--", text]))["ids"]
    bos = bos_id(a.base)
    n_chunks = min(len(ids) // ctx, rep.get("chunks", len(ids) // ctx))
    global FLOAT_ACTIVATIONS
    FLOAT_ACTIVATIONS = rep.get("activations") == "f32"
    first, last = ctx // 2, ctx - 1  # positions first..last-1 are scored; position i predicts i+1
    print(f"{len(ids)} tokens, {n_chunks} windows of {ctx}, scoring positions {first}..{last - 1}, BOS {bos}, {kv} KV cache, KL {method}",
          file=sys.stderr)

    nll_b, nll_q, kl, top1, dp = [], [], [], [], []
    same_layer = None
    with tempfile.TemporaryDirectory(prefix="octet-compare-check-") as tmp:
        for c in range(n_chunks):
            w = list(ids[c * ctx:(c + 1) * ctx])
            w[0] = bos
            zb, eb = run_window(a.octet, a.base, w, kv, a.threads, tmp, "b")
            zq, eq = run_window(a.octet, a.quant, w, kv, a.threads, tmp, "q")
            tgt = np.array(ids[c * ctx + first + 1:c * ctx + last + 1])
            zb, zq = zb[first:last], zq[first:last]
            lb, lq = log_softmax(zb), log_softmax(zq)
            r = np.arange(len(tgt))
            nll_b.append(-lb[r, tgt])
            nll_q.append(-lq[r, tgt])
            if topk is None:
                k = (np.exp(lb) * (lb - lq)).sum(axis=1)
            else:
                order = np.argsort(-zb, axis=1, kind="stable")[:, :topk]
                mask = np.zeros_like(lb, dtype=bool)
                np.put_along_axis(mask, order, True, axis=1)
                pb, pq = np.exp(lb), np.exp(lq)
                k = np.where(mask, pb * (lb - lq), 0).sum(axis=1)
                rest_p, rest_q = np.where(mask, 0, pb).sum(axis=1), np.where(mask, 0, pq).sum(axis=1)
                k = k + np.where(rest_p > 0, rest_p * (np.log(np.maximum(rest_p, 1e-300)) - np.log(np.maximum(rest_q, 1e-300))), 0)
            kl.append(np.maximum(k, 0))
            tb, tq = zb.argmax(axis=1), zq.argmax(axis=1)
            top1.append(tb == tq)
            dp.append(np.exp(lq[r, tb]) - np.exp(lb[r, tb]))
            if eb and eq and len(eb[0]) == len(eq[0]):
                s = np.array([[sorted(eb[i][l]) == sorted(eq[i][l]) for l in range(len(eb[i]))] for i in range(first, last)])
                same_layer = s if same_layer is None else np.concatenate([same_layer, s])
            print(f"window {c + 1}/{n_chunks}", end="\r", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    nll_b, nll_q, kl = np.concatenate(nll_b), np.concatenate(nll_q), np.concatenate(kl)
    top1, dp = np.concatenate(top1), np.concatenate(dp)
    n = len(kl)
    ppl_b, ppl_q = math.exp(nll_b.mean()), math.exp(nll_q.mean())
    mine = {
        "tokens_scored": n,
        "chunks": n_chunks,
        "base.perplexity": ppl_b,
        "quant.perplexity": ppl_q,
        "base.nll_stderr": nll_b.std(ddof=1) / math.sqrt(n),
        "delta_ppl_percent": (ppl_q / ppl_b - 1) * 100,
        "kl.mean": kl.mean(),
        "kl.mean_stderr": kl.std(ddof=1) / math.sqrt(n),
        "kl.median": float(np.median(kl)),
        "kl.p99": float(np.percentile(kl, 99)),
        "kl.max": kl.max(),
        "top1_agreement": top1.mean(),
        "rms_delta_p": math.sqrt((dp ** 2).mean()),
    }
    if same_layer is not None:
        mine["routing_agreement.overall"] = same_layer.mean()
        for l, v in enumerate(same_layer.mean(axis=0)):
            mine[f"routing_agreement.per_layer[{l}]"] = v

    def get(path):
        v = rep
        for part in path.replace("[", ".").replace("]", "").split("."):
            v = v[int(part)] if isinstance(v, list) else v.get(part) if isinstance(v, dict) else None
            if v is None:
                return None
        return v

    bad = 0
    print(f"{'figure':34} {'octet compare':>16} {'numpy':>16} {'rel. diff':>10}")
    for key, want in mine.items():
        got = get(key)
        if got is None:
            ok, rel = False, float("nan")
        else:
            diff = abs(got - want)
            rel = diff / max(abs(want), 1e-300)
            ok = diff <= a.atol or rel <= a.rtol
        bad += not ok
        print(f"{key:34} {got:>16.8g} {want:>16.8g} {rel:>10.2e}  {'ok' if ok else 'MISMATCH'}"
              if got is not None else f"{key:34} {'missing':>16} {want:>16.8g}  MISMATCH")
    if rep.get("routing_agreement") and same_layer is None:
        print("routing_agreement is in the JSON but no expert choices came from octet logits: MISMATCH")
        bad += 1
    print(f"{len(mine) - bad} of {len(mine)} figures agree to {a.rtol:g} relative" + ("" if bad == 0 else f"; {bad} do not"))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
