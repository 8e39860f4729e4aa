#!/usr/bin/env bash
# Decode speed with the process's memory (page cache included) capped below the model file size:
# the laptop-with-less-RAM-than-the-model case. Uses a cgroup-v1 memory limit (root needed), set up
# and torn down here. Runs `octet bench` at each cap (fractions of the file size), and llama.cpp
# under the same cap when Tools/compare_llamacpp.py has installed it.
#
# For octet it also prints the disk-bound limit of each cap: the bytes read from disk per decoded
# token (bench's disk_bytes_per_token) at the disk's own sequential read speed (dd, O_DIRECT, once),
# plus the in-memory time per token (1 / the uncapped speed), and the fraction of it reached.
# Both engines run three rounds (16 prompt + 32 decoded tokens) from a dropped page cache; the
# median round is reported, so the first, cold round does not decide it.
#
# Usage: Tools/memcap_bench.sh MODEL.gguf [fractions…]     (default fractions: 1.0 0.75 0.5; 1.0 first)
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

echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
disk=$(dd if="$model" of=/dev/null bs=8M iflag=direct 2>&1 | python3 -c "
import re, sys
m = re.search(r'(\d+) bytes.*copied, ([0-9.]+) s', sys.stdin.read())
print(int(m.group(1)) / float(m.group(2)))")
python3 -c "print('disk: %.2f GB/s sequential read (dd, O_DIRECT)' % ($disk / 1e9))"
printf '%-8s %-10s %-10s %-12s %-14s %-12s %s\n' fraction cap_MB engine decode_tok_s disk_MB_per_tok limit_tok_s of_limit
uncapped=""
for f in $fractions; do
  cap=$(python3 -c "print(int($size * $f))")
  # When the cap is above the file size, add headroom for the process itself.
  [ "$f" = "1.0" ] && cap=$((size + 512 * 1024 * 1024))
  out=$(run_capped "$cap" "$octet" bench "$model" --prompt 16 --gen 32 --repeat 3 --threads 2 --probe-mb 0 --json || echo '{"decode_tokens_per_s": 0}')
  read -r tg diskpt <<<"$(python3 -c "import json,sys; r = json.loads(sys.argv[1]); print('%.2f %.0f' % (r['decode_tokens_per_s'], r.get('disk_bytes_per_token', 0)))" "$out")"
  [ -z "$uncapped" ] && uncapped=$tg
  read -r limit frac <<<"$(python3 -c "
tg, dpt, disk, free = $tg, $diskpt, $disk, $uncapped
limit = 1 / (dpt / disk + 1 / free) if free > 0 else 0
print('%.2f %.0f%%' % (limit, 100 * tg / limit if limit > 0 else 0))")"
  printf '%-8s %-10s %-10s %-12s %-14s %-12s %s\n' "$f" $((cap / 1000000)) octet "$tg" $((diskpt / 1000000)) "$limit" "$frac"
  if [ -x "$llama_py" ] && "$llama_py" -c 'import llama_cpp' 2>/dev/null; then
    lt=$(run_capped "$cap" "$llama_py" -c '
import random, sys, time, llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_threads=2, n_ctx=64, verbose=False)
rng = random.Random(42)
speeds = []
for r in range(3):  # as octet bench --repeat 3: three rounds of 16 + 32 tokens, the median
    # Varied token ids, so the router picks varied experts as in octet bench (one repeated
    # token would keep choosing the same experts and never leave memory).
    llm.reset(); llm.eval([rng.randrange(3, 32000) for _ in range(16)]); t = time.perf_counter()
    for _ in range(32): llm.eval([rng.randrange(3, 32000)])
    speeds.append(32 / (time.perf_counter() - t))
print("%.2f" % sorted(speeds)[1])' "$model" 2>/dev/null | tail -1 || echo failed)
    printf '%-8s %-10s %-10s %s\n' "$f" $((cap / 1000000)) llama.cpp "$lt"
  fi
done
