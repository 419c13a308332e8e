#!/bin/sh
# Build and run every test: install what is missing; gcc build with -Werror and ctest; clang
# build with AddressSanitizer + UndefinedBehaviorSanitizer and -Werror and ctest; libFuzzer
# targets (assembler, program reader, assemble-and-run, graph reader, safetensors reader) run for FUZZ_SECONDS each (default 30).  Exits non-zero on any failure.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
jobs=$(nproc 2>/dev/null || echo 2)
fuzz_seconds=${FUZZ_SECONDS:-30}

echo "== gcc, -Werror"
CC=gcc cmake -S . -B build-test -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOT_WERROR=ON >/dev/null
cmake --build build-test
ctest --test-dir build-test --output-on-failure -j "$jobs"

echo "== clang, AddressSanitizer + UndefinedBehaviorSanitizer, -Werror, libFuzzer targets"
CC=clang cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DOT_WERROR=ON -DOT_SANITIZE=ON -DOT_FUZZ=ON >/dev/null
cmake --build build-asan
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs"

echo "== fuzzing, ${fuzz_seconds}s per target"
for t in asm program run graph safetensors; do
  corpus=build-asan/fuzz_corpus_$t
  mkdir -p "$corpus"
  case "$t" in
    program) cp build-asan/fuzz_seeds/*.prog "$corpus"/ ;;
    graph) cp tests/compiler/graph_data/*.json "$corpus"/ ;;
    safetensors) cp tests/model/data/*.safetensors "$corpus"/ ;;
    *) cp examples/kernels/*.s "$corpus"/ ;;
  esac
  ./build-asan/fuzz_$t -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix=build-asan/ "$corpus" >build-asan/fuzz_$t.log 2>&1 ||
    { tail -40 build-asan/fuzz_$t.log; echo "fuzz_$t found a failure (see build-asan/fuzz_$t.log)"; exit 1; }
  grep -E "^#[0-9]+.*DONE|Done [0-9]+ runs" build-asan/fuzz_$t.log | tail -1
done

# One closing line for whoever reads the log (both ctest runs, the fuzz targets counted once each).
n=$(ctest --test-dir build-test -N | sed -n 's/^Total Tests: //p')
echo "tests: $((2 * n + 3)) passed, 0 failed"
