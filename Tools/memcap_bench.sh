#!/usr/bin/env bash
# Decode speed with the process's memory (page cache included) capped below the model file size:
# the laptop-with-less-RAM-than-the-model case. Uses a cgroup-v1 memory limit (root needed), set up
# and torn down here. Runs `octet bench` at each cap (fractions of the file size), and llama.cpp
# under the same cap when Tools/compare_llamacpp.py has installed it.
#
# Usage: Tools/memcap_bench.sh MODEL.gguf [fractions…]     (default fractions: 1.0 0.75 0.5)
set -euo pipefail
model=${1:?usage: memcap_bench.sh MODEL.gguf [fractions…]}; shift
fractions=${*:-1.0 0.75 0.5}
root=$(cd "$(dirname "$0")/.." && pwd)
octet=${OCTET:-$root/.build/release/octet}
cg=/sys/fs/cgroup/memory/octet-memcap-$$
size=$(stat -c %s "$model")
llama_py=${OCTET_LLAMA_VENV:-$HOME/.cache/octet/llama-venv}/bin/python
[ -w /sys/fs/cgroup/memory ] || { echo "error: needs root and cgroup-v1 memory controller at /sys/fs/cgroup/memory" >&2; exit 1; }
mkdir "$cg"
cleanup() { [ -d "$cg" ] && { cat "$cg/cgroup.procs" 2>/dev/null | xargs -r kill 2>/dev/null || true; rmdir "$cg" 2>/dev/null || true; }; }
trap cleanup EXIT INT TERM

run_capped() {  # cap_bytes, command…
  local cap=$1; shift
  echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  echo "$cap" > "$cg/memory.limit_in_bytes"
  bash -c 'echo $$ > '"$cg"'/cgroup.procs; exec "$@"' _ "$@"
}

printf '%-8s %-10s %-10s %s\n' fraction cap_MB engine decode_tok_s
for f in $fractions; do
  cap=$(python3 -c "print(int($size * $f))")
  # When the cap is above the file size, add headroom for the process itself.
  [ "$f" = "1.0" ] && cap=$((size + 512 * 1024 * 1024))
  out=$(run_capped "$cap" "$octet" bench "$model" --prompt 16 --gen 32 --repeat 1 --threads 2 --probe-mb 0 --json || echo '{"decode_tokens_per_s": 0}')
  tg=$(python3 -c "import json,sys; print('%.2f' % json.loads(sys.argv[1])['decode_tokens_per_s'])" "$out")
  printf '%-8s %-10s %-10s %s\n' "$f" $((cap / 1000000)) octet "$tg"
  if [ -x "$llama_py" ] && "$llama_py" -c 'import llama_cpp' 2>/dev/null; then
    lt=$(run_capped "$cap" "$llama_py" -c '
import sys, time, llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_threads=2, n_ctx=64, verbose=False)
llm.eval([1] * 16); t = time.perf_counter()
for _ in range(32): llm.eval([28705])
print("%.2f" % (32 / (time.perf_counter() - t)))' "$model" 2>/dev/null | tail -1 || echo failed)
    printf '%-8s %-10s %-10s %s\n' "$f" $((cap / 1000000)) llama.cpp "$lt"
  fi
done
