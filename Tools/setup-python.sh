#!/usr/bin/env bash
# Create (or reuse) the Python venv used by Octet's Tools/ scripts and print
# the path of its python interpreter on the last line of output.
#
#   PY="$(Tools/setup-python.sh | tail -1)"
#   "$PY" Tools/check_gguf.py model.gguf
#
# The venv lives outside the repository: ${OCTET_VENV:-$HOME/.cache/octet/venv}.
# Only PyPI is needed. Re-running is cheap: packages are installed only when
# an import check fails (or when OCTET_VENV_REINSTALL=1).
set -euo pipefail

VENV="${OCTET_VENV:-$HOME/.cache/octet/venv}"
BASE_PY="${OCTET_BASE_PYTHON:-python3}"

# Packages the tools import. torch is deliberately not needed.
PACKAGES=(numpy safetensors gguf sentencepiece ml_dtypes openai)
IMPORTS="import numpy, safetensors, safetensors.numpy, gguf, sentencepiece, ml_dtypes"

log() { echo "setup-python: $*" >&2; }

if ! command -v "$BASE_PY" >/dev/null 2>&1; then
    log "no '$BASE_PY' on PATH (set OCTET_BASE_PYTHON)"
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv at $VENV"
    mkdir -p "$(dirname "$VENV")"
    if ! "$BASE_PY" -m venv "$VENV" >&2; then
        log "python3 -m venv failed (on Debian: apt-get install python3-venv)"
        exit 1
    fi
fi

PY="$VENV/bin/python"

if [ "${OCTET_VENV_REINSTALL:-0}" = "1" ] || ! "$PY" -c "$IMPORTS" >/dev/null 2>&1; then
    log "installing ${PACKAGES[*]}"
    "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2 || true
    "$PY" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}" >&2
    "$PY" -c "$IMPORTS" >&2
else
    log "venv ready at $VENV"
fi

echo "$PY"
