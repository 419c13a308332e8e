#!/bin/sh
# Write the King James Bible as plain text to data/kjv.txt (or $1): one verse per line, the
# verse reference removed.  The text is in the public domain; it comes from Debian's bible-kjv
# and bible-kjv-text packages (packaging GPL-2+), read with their `bible` program.  Idempotent:
# does nothing when the file is there with the expected sha256.  Written to a temporary file
# and renamed, so an interrupted run never leaves a partial file.
set -eu
cd "$(dirname "$0")/.."
dest=${1:-data/kjv.txt}
# bible-kjv 4.38: 31,102 verses, 4,137,850 bytes.
KJV_SHA=b5c4940bcfeee072c0935b5200d0f9d88a00a0199cb0961d16133458fcdfae5d

if [ -f "$dest" ] && [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$KJV_SHA" ]; then exit 0; fi
command -v bible >/dev/null 2>&1 || { echo "fetch_kjv: the bible program is needed (Debian packages bible-kjv bible-kjv-text)" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
tmp="$dest.tmp.$$"
trap 'rm -f "$tmp"' EXIT INT TERM
bible -f gen1:1-rev22:21 | sed 's/^[^ ]* //' >"$tmp"
[ -s "$tmp" ] || { echo "fetch_kjv: bible produced no text" >&2; exit 1; }
got=$(sha256sum "$tmp" | cut -d' ' -f1)
if [ "$got" != "$KJV_SHA" ]; then
  echo "fetch_kjv: note: sha256 $got differs from the bible-kjv 4.38 text ($KJV_SHA); another package version?" >&2
fi
mv -f "$tmp" "$dest"
echo "fetch_kjv: wrote $dest ($(wc -c <"$dest") bytes)"
