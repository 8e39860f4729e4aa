#!/usr/bin/env python3
"""Octet vs llama.cpp on the same GGUF file, same machine, same threads, measured alternately.

llama.cpp comes from PyPI's llama-cpp-python (which compiles llama.cpp from source; the build is
cached in a venv outside the repository, ${OCTET_LLAMA_VENV:-~/.cache/octet/llama-venv}). Nothing of
llama.cpp is committed here. Each round runs `octet bench --json` and then the same prompt/decode
work through llama.cpp; the report gives medians and the ratio octet / llama.cpp per metric.

Usage:
  Tools/compare_llamacpp.py MODEL.gguf [MODEL2.gguf …] [--threads 1 2] [--prompt 512] [--gen 64] [--rounds 3]
"""
import argparse, json, os, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("OCTET_LLAMA_VENV", Path.home() / ".cache/octet/llama-venv"))


# How llama.cpp is compiled: -march=native by default. OCTET_LLAMA_CMAKE_ARGS replaces it; a
# change rebuilds (the arguments of the last build are kept in the venv).
CMAKE_ARGS = os.environ.get("OCTET_LLAMA_CMAKE_ARGS", "-DGGML_NATIVE=ON")
# For CPUs whose AMX the ggml build uses but cannot run (SIGILL; seen on a Xeon VM, 2026-12-08).
NO_AMX = "-DGGML_NATIVE=ON -DCMAKE_C_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16' " \
         "-DCMAKE_CXX_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16'"


def llama_python():
    py = VENV / "bin/python"
    stamp = VENV / "octet-cmake-args"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run([str(py), "-c", "import llama_cpp"], capture_output=True)
    built_with = stamp.read_text() if stamp.exists() else "-DGGML_NATIVE=ON"
    if probe.returncode != 0 or built_with != CMAKE_ARGS:
        print(f"installing llama-cpp-python into {VENV} with CMAKE_ARGS={CMAKE_ARGS} "
              "(compiles llama.cpp; several minutes, once)", file=sys.stderr)
        env = dict(os.environ, CMAKE_ARGS=CMAKE_ARGS, CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2))
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--force-reinstall", "--no-cache-dir",
                        "numpy", "llama-cpp-python"], check=True, env=env)
        stamp.write_text(CMAKE_ARGS)
    return str(py)


# Runs inside the llama venv: prompt processing and decode timing through llama.cpp's API.
LLAMA_BENCH = r"""
import json, sys, time, random
import llama_cpp
model, threads, n_prompt, n_gen = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
llm = llama_cpp.Llama(model_path=model, n_threads=threads, n_threads_batch=threads, n_ctx=n_prompt + n_gen + 8,
                      n_batch=min(512, n_prompt), n_ubatch=min(512, n_prompt), verbose=False, logits_all=False)
rng = random.Random(42)
prompt = [rng.randrange(3, llm.n_vocab()) for _ in range(n_prompt)]
llm.reset()
t0 = time.perf_counter(); llm.eval(prompt); t_prompt = time.perf_counter() - t0
tok = 28705
t1 = time.perf_counter()
for _ in range(n_gen):
    llm.eval([tok])
t_gen = time.perf_counter() - t1
print(json.dumps({"prompt_tokens_per_s": n_prompt / t_prompt, "decode_tokens_per_s": n_gen / t_gen}))
"""


def octet_bench(octet, model, threads, n_prompt, n_gen):
    out = subprocess.run([octet, "bench", model, "--prompt", str(n_prompt), "--gen", str(n_gen),
                          "--threads", str(threads), "--repeat", "1", "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def llama_bench(py, model, threads, n_prompt, n_gen):
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    out = subprocess.run([py, "-c", LLAMA_BENCH, model, str(threads), str(n_prompt), str(n_gen)],
                         capture_output=True, text=True, env=env)
    if out.returncode == -4:
        sys.exit(f"llama.cpp died with SIGILL on {model}: its build uses an instruction this machine cannot "
                 f"run (ggml's AMX kernels do on some VMs). Rebuild without AMX:\n"
                 f"  OCTET_LLAMA_CMAKE_ARGS=\"{NO_AMX}\" {' '.join(sys.argv)}")
    if out.returncode != 0:
        sys.exit(f"llama.cpp failed on {model} (exit {out.returncode}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--octet", default=str(ROOT / ".build/release/octet"))
    args = ap.parse_args()
    py = llama_python()
    rows = []
    for model in args.models:
        for t in args.threads:
            o_pp, o_tg, l_pp, l_tg = [], [], [], []
            for r in range(args.rounds):
                o = octet_bench(args.octet, model, t, args.prompt, args.gen)
                l = llama_bench(py, model, t, args.prompt, args.gen)
                o_pp.append(o["prompt_tokens_per_s"]); o_tg.append(o["decode_tokens_per_s"])
                l_pp.append(l["prompt_tokens_per_s"]); l_tg.append(l["decode_tokens_per_s"])
                print(f"  round {r + 1}: {Path(model).name} t={t}: octet pp {o_pp[-1]:.1f} tg {o_tg[-1]:.2f} | "
                      f"llama.cpp pp {l_pp[-1]:.1f} tg {l_tg[-1]:.2f}", file=sys.stderr)
            m = statistics.median
            rows.append((Path(model).name, t, m(o_pp), m(l_pp), m(o_tg), m(l_tg)))
    print(f"{'model':28} {'thr':>3} {'pp octet':>9} {'pp llama':>9} {'ratio':>6} {'tg octet':>9} {'tg llama':>9} {'ratio':>6}")
    for name, t, opp, lpp, otg, ltg in rows:
        print(f"{name:28} {t:>3} {opp:>9.1f} {lpp:>9.1f} {opp / lpp:>6.2f} {otg:>9.2f} {ltg:>9.2f} {otg / ltg:>6.2f}")


if __name__ == "__main__":
    main()
