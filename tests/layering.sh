#!/bin/sh
# Lower layers never include higher ones: util < num < arch < isa < sim < runtime < compiler
# < model < cost < cli.  Fails naming the file and the include that breaks the order.
cd "$(dirname "$0")/../src" || exit 1
rank() {
  case "$1" in
    util) echo 0;; num) echo 1;; arch) echo 2;; isa) echo 3;; sim) echo 4;; runtime) echo 5;;
    compiler) echo 6;; model) echo 7;; cost) echo 8;; cli) echo 9;; *) echo 99;;
  esac
}
bad=0
for f in */*.c */*.h; do
  layer=${f%%/*}
  mine=$(rank "$layer")
  for inc in $(sed -n 's/^#include "\([a-z_]*\)\/.*"/\1/p' "$f" | sort -u); do
    theirs=$(rank "$inc")
    if [ "$theirs" -gt "$mine" ]; then echo "src/$f: layer '$layer' includes higher layer '$inc'"; bad=1; fi
  done
done
[ $bad -eq 0 ] && echo "layering ok"
exit $bad
