#!/bin/sh
# The main job: install what is missing, build, and run `opentrn demo`.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
exec ./build/opentrn demo "$@"
