#!/usr/bin/env python3
"""Compare two octet builds on one model in a single alternating run.

The machine is shared and noisy, so a speed change is only believable as a
ratio against a baseline measured in the same run: this script runs
`octet bench --json` from build A and build B alternately, --rounds times
each, and prints the median prompt and decode speeds and the ratio B / A.

Usage:
    python3 Tools/ab_bench.py OLD_OCTET NEW_OCTET MODEL.gguf [--threads 2]
        [--rounds 3] [--prompt 512] [--gen 64] [--extra "--kv-type f32"]
        [--new-model OTHER.gguf] [--old-env K=V] [--new-env K=V]

With --new-model, NEW_OCTET runs OTHER.gguf: one build on two files (e.g. FP8 against Q8_0:
`ab_bench.py .build/release/octet .build/release/octet bench-q8_0.gguf --new-model bench-fp8.gguf`).

With --old-env / --new-env, one build against itself with an environment variable set on one
side (e.g. the AVX-VNNI route against the AVX-512 one on a CPU that has both:
`ab_bench.py .build/release/octet .build/release/octet bench-q8_0.gguf --old-env OCTET_KERNELS=avx-vnni`;
the routes are avx2, avx-vnni and avx512).

Example (baseline from a git worktree of the previous commit):
    git worktree add /tmp/old HEAD~1 && (cd /tmp/old && swift build -c release)
    python3 Tools/ab_bench.py /tmp/old/.build/release/octet .build/release/octet /tmp/bench-q8_0.gguf
"""

import argparse
import json
import os
import statistics
import subprocess
import sys


def run(octet, model, a, env_vars):
    """One `octet bench --json` run (no bandwidth probe) of `model`, with `env_vars` (K=V) set."""
    cmd = [octet, "bench", model, "--json", "--repeat", "1", "--probe-mb", "0",
           "--threads", str(a.threads), "--prompt", str(a.prompt), "--gen", str(a.gen)] + a.extra.split()
    env = dict(os.environ)
    for kv in env_vars:
        k, _, v = kv.partition("=")
        env[k] = v
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--prompt", type=int, default=512)
    p.add_argument("--gen", type=int, default=64)
    p.add_argument("--extra", default="", help="more `octet bench` flags for both builds")
    p.add_argument("--new-model", help="model for NEW_OCTET (default: MODEL)")
    p.add_argument("--old-env", action="append", default=[], metavar="K=V", help="environment for OLD_OCTET's runs")
    p.add_argument("--new-env", action="append", default=[], metavar="K=V", help="environment for NEW_OCTET's runs")
    a = p.parse_args()
    res = {"old": [], "new": []}
    for r in range(a.rounds):
        for name in ("old", "new") if r % 2 == 0 else ("new", "old"):
            model = a.new_model if name == "new" and a.new_model else a.model
            j = run(getattr(a, name), model, a, getattr(a, name + "_env"))
            res[name].append(j)
            print(f"round {r + 1} {name}: prompt {j['prompt_tokens_per_s']:.1f} tok/s, "
                  f"decode {j['decode_tokens_per_s']:.2f} tok/s", file=sys.stderr)
    models = f"{a.model} (old) / {a.new_model} (new)" if a.new_model else a.model
    envs = "".join(f", {n} env {' '.join(e)}" for n, e in (("old", a.old_env), ("new", a.new_env)) if e)
    print(f"model {models}, threads {a.threads}, {a.rounds} alternating rounds{envs}")
    for key, label in (("prompt_tokens_per_s", f"prompt {a.prompt}"), ("decode_tokens_per_s", f"decode {a.gen}")):
        old = statistics.median(j[key] for j in res["old"])
        new = statistics.median(j[key] for j in res["new"])
        print(f"{label:>12}: old {old:8.2f} tok/s   new {new:8.2f} tok/s   new/old {new / old:.3f}")
    bpt = res["new"][0].get("bytes_per_token")
    if bpt:
        new_dec = statistics.median(j["decode_tokens_per_s"] for j in res["new"])
        print(f"bytes per token {bpt / 1e6:.1f} MB; new decode moves {bpt * new_dec / 1e9:.1f} GB/s of weights")


if __name__ == "__main__":
    main()
