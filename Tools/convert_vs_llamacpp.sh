#!/usr/bin/env bash
# Conversion speed: `octet convert` (checkpoint → Q8_0 in one pass) against llama.cpp's own route
# (its Python converter to an F16 GGUF, then its quantizer to Q8_0), alternately on the same
# checkpoint, with wall time and peak RSS of every step (/usr/bin/time -v).
#
#   Tools/convert_vs_llamacpp.sh CHECKPOINT_DIR [ROUNDS]      (e.g. the folder make_bench_model.py wrote)
#
# Nothing of llama.cpp is committed or kept in this repository: its converter is run from the
# llama-cpp-python source distribution downloaded from PyPI into ~/.cache/octet/llamacpp-src, with
# the Tools venv (Tools/setup-python.sh; torch and transformers are added to it if missing); the
# quantizer is llama-cpp-python's llama_model_quantize, from the venv Tools/compare_llamacpp.py
# builds (${OCTET_LLAMA_VENV:-~/.cache/octet/llama-venv}). Outputs go to a temporary folder.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SRC="${1:?usage: $0 CHECKPOINT_DIR [ROUNDS]}"
ROUNDS="${2:-2}"
OCTET="${OCTET:-$ROOT/.build/release/octet}"
LLAMA_VENV="${OCTET_LLAMA_VENV:-$HOME/.cache/octet/llama-venv}"
CACHE="$HOME/.cache/octet/llamacpp-src"
VERSION="$("$LLAMA_VENV/bin/python" -c 'import llama_cpp; print(llama_cpp.__version__)')" ||
    { echo "$0: no llama-cpp-python in $LLAMA_VENV (run Tools/compare_llamacpp.py once)" >&2; exit 1; }
[ -x "$OCTET" ] || { echo "$0: no $OCTET (swift build -c release)" >&2; exit 1; }

PY="$("$ROOT/Tools/setup-python.sh" 2>/dev/null | tail -1)"
"$PY" -c 'import torch, transformers' 2>/dev/null || "$PY" -m pip install -q torch transformers >&2

# llama.cpp's converter, from the same version's source distribution (PyPI's simple index).
LCPP="$CACHE/llama_cpp_python-$VERSION/vendor/llama.cpp"
if [ ! -f "$LCPP/convert_hf_to_gguf.py" ]; then
    mkdir -p "$CACHE"
    url="$(curl -fsS https://pypi.org/simple/llama-cpp-python/ | grep -o "href=\"[^\"]*llama_cpp_python-$VERSION.tar.gz[^\"]*\"" | head -1 | sed 's/^href="//; s/"$//; s/#.*//')"
    [ -n "$url" ] || { echo "$0: no source distribution of llama-cpp-python $VERSION on PyPI" >&2; exit 1; }
    curl -fsSL "$url" | tar xz -C "$CACHE"
fi

TMP="$(mktemp -d /tmp/octet-convert-cmp-XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
cat > "$TMP/quantize.py" <<'EOF'
import ctypes, sys, llama_cpp
p = llama_cpp.llama_model_quantize_default_params()
p.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
p.nthread = 2
sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(p)))
EOF

timed() {  # label, command…; prints "seconds peak_MB"
    local label="$1"; shift
    /usr/bin/time -v "$@" > "$TMP/$label.log" 2>&1 || { tail -5 "$TMP/$label.log" >&2; exit 1; }
    local wall rss
    wall="$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$TMP/$label.log" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')"
    rss="$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$TMP/$label.log")"
    echo "$wall $((rss / 1024))"
}

echo "checkpoint: $SRC ($(du -sh "$SRC" | cut -f1)); llama.cpp from llama-cpp-python $VERSION"
printf '%-6s %-28s %9s %9s\n' round step seconds peak_MB
for r in $(seq 1 "$ROUNDS"); do
    read -r o_s o_m <<<"$(timed octet "$OCTET" convert "$SRC" -o "$TMP/octet.gguf" --type q8_0)"
    read -r c_s c_m <<<"$(timed convert env PYTHONPATH="$LCPP/gguf-py" "$PY" "$LCPP/convert_hf_to_gguf.py" "$SRC" --outfile "$TMP/f16.gguf" --outtype f16)"
    read -r q_s q_m <<<"$(timed quantize "$LLAMA_VENV/bin/python" "$TMP/quantize.py" "$TMP/f16.gguf" "$TMP/llama.gguf")"
    printf '%-6s %-28s %9s %9s\n' "$r" "octet convert → Q8_0" "$o_s" "$o_m"
    printf '%-6s %-28s %9s %9s\n' "$r" "llama.cpp convert → F16" "$c_s" "$c_m"
    printf '%-6s %-28s %9s %9s\n' "$r" "llama.cpp quantize → Q8_0" "$q_s" "$q_m"
    awk -v o="$o_s" -v c="$c_s" -v q="$q_s" 'BEGIN { printf "%-6s llama.cpp route %.2f s ÷ octet %.2f s = %.1f× faster\n", "", c + q, o, (c + q) / o }'
    rm -f "$TMP"/*.gguf
done
