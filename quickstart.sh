#!/usr/bin/env bash
# Converts the embedded tiny Mixtral in Fixtures/ to int8 (once) and opens a chat with it.
# Usage: ./quickstart.sh [extra chat flags, e.g. --temp 0.9]
set -euo pipefail
cd "$(dirname "$0")"
if ! ldconfig -p 2>/dev/null | grep -q libzstd.so.1; then
  echo "installing libzstd1 (used by /save and /load in the chat)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq libzstd1 >&2; else sudo apt-get update -qq && sudo apt-get install -y -qq libzstd1 >&2; fi
fi
swift build -c release --product octet >&2
model=out/tiny-mixtral-q8_0.gguf
mkdir -p out
if [ ! -f "$model" ]; then
  .build/release/octet convert Fixtures/tiny-mixtral -o "$model" --type q8_0
fi
exec .build/release/octet chat "$model" "$@"
