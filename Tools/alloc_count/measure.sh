#!/usr/bin/env bash
# Counts heap allocation calls of `octet generate` per decoded token, with the LD_PRELOAD
# counter in this folder: a 20-token run and a 220-token run (greedy, the same prompt), and the
# difference divided by the 200 extra tokens. 0 means decoding allocates nothing per token.
#
#   Tools/alloc_count/measure.sh [OCTET_BINARY] [MODEL] [-- extra generate flags]
#
# Defaults: .build-gen/release/octet (else .build/release/octet), and Fixtures/tiny-mixtral
# converted to Q8_0 in a temporary folder. ALLOC_TRACE=N also prints where N allocations of
# the 220-token run's decoding happen (symbolised with addr2line + swift-demangle).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OCTET="${1:-}"
MODEL="${2:-}"
shift $(( $# > 2 ? 2 : $# ))
[ "${1:-}" = "--" ] && shift
EXTRA=("$@")

if [ -z "$OCTET" ]; then
    for c in "$ROOT/.build-gen/release/octet" "$ROOT/.build/release/octet"; do
        [ -x "$c" ] && OCTET="$c" && break
    done
fi
[ -x "${OCTET:-}" ] || { echo "measure.sh: no octet binary (build: swift build -c release --product octet)" >&2; exit 1; }

TMP="$(mktemp -d /tmp/octet-alloc-XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
SHIM="$TMP/liballoc_count.so"
cc -O2 -shared -fPIC -o "$SHIM" "$ROOT/Tools/alloc_count/alloc_count.c"

if [ -z "$MODEL" ]; then
    MODEL="$TMP/tiny-q8_0.gguf"
    "$OCTET" convert "$ROOT/Fixtures/tiny-mixtral" -o "$MODEL" --type q8_0 >/dev/null 2>&1
fi

# The French reference prompt: its greedy continuation does not reach EOS within 220 tokens.
PROMPT="Le vieux pêcheur racontait des histoires aux enfants du village."

run() {  # $1 = tokens; prints "allocations generated"
    local err
    err="$(ALLOC_COUNT_REPORT=1 LD_PRELOAD="$SHIM" "$OCTET" generate "$MODEL" -p "$PROMPT" -n "$1" --greedy --ctx 512 "${EXTRA[@]}" 2>&1 >/dev/null)"
    local a g
    a="$(sed -n 's/^alloc_count: allocations=\([0-9]*\).*/\1/p' <<<"$err")"
    g="$(sed -n 's/^\[[0-9]* prompt tokens.*, \([0-9]*\) generated.*/\1/p' <<<"$err")"
    [ -n "$a" ] && [ -n "$g" ] || { echo "measure.sh: could not read the counts from: $err" >&2; exit 1; }
    echo "$a $g"
}

read -r A NA <<<"$(run 20)"
read -r B NB <<<"$(run 220)"
echo "model: $MODEL"
echo "flags: --greedy --ctx 512 ${EXTRA[*]:-}"
echo "20-token run:  $A allocation calls ($NA tokens generated)"
echo "220-token run: $B allocation calls ($NB tokens generated)"
awk -v a="$A" -v b="$B" -v na="$NA" -v nb="$NB" 'BEGIN {
    if (nb == na) { print "no extra tokens were generated (EOS?)"; exit 1 }
    printf "per extra decoded token: %.2f allocation calls\n", (b - a) / (nb - na) }'

if [ -n "${ALLOC_TRACE:-}" ]; then
    # Trace from the middle of the decoding of the long run.
    AFTER=$(( A + (B - A) / 2 ))
    echo "innermost octet frame of $ALLOC_TRACE allocations after allocation #$AFTER:"
    ALLOC_COUNT_TRACE="$ALLOC_TRACE" ALLOC_COUNT_TRACE_AFTER="$AFTER" LD_PRELOAD="$SHIM" \
        "$OCTET" generate "$MODEL" -p "$PROMPT" -n 220 --greedy --ctx 512 "${EXTRA[@]}" 2>&1 >/dev/null |
        awk '/^alloc_count: allocation/ { first = 1; next }
             first && match($0, /octet\(\+0x[0-9a-f]+\)/) { print substr($0, RSTART + 7, RLENGTH - 8); first = 0 }' |
        sort | uniq -c | sort -rn | head -20 |
        while read -r n addr; do
            where="$(addr2line -f -e "$OCTET" "$addr" | paste -sd' ' | { command -v swift-demangle >/dev/null && swift-demangle --simplified || cat; })"
            printf '%6d  %s\n' "$n" "$where"
        done
fi
