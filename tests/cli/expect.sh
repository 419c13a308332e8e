#!/bin/sh
# expect.sh STATUS PATTERN CMD ARGS...  -- run CMD, require its exit status to be STATUS and
# its combined output to match the extended regex PATTERN ('' matches anything).
want=$1; pattern=$2; shift 2
out=$("$@" 2>&1); got=$?
if [ "$got" -ne "$want" ]; then
  printf 'exit status %s, expected %s: %s\n%s\n' "$got" "$want" "$*" "$out"; exit 1
fi
if [ -n "$pattern" ] && ! printf '%s\n' "$out" | grep -Eq -- "$pattern"; then
  printf 'output does not match /%s/: %s\n%s\n' "$pattern" "$*" "$out"; exit 1
fi
exit 0
