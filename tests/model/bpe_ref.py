"""Independent GPT-2 byte-level BPE (the algorithm of OpenAI's encoder.py, written here with
Python's `regex` module, Debian python3-regex), the oracle for tests/model/test_tokenizer.c.

usage: bpe_ref.py ENCODER_JSON VOCAB_BPE TEXT_FILE OUT_FILE
Reads TEXT_FILE as UTF-8 and writes its token ids to OUT_FILE, one per line."""
import json
import sys

import regex

PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def bpe(word, ranks, pair_of_rank):
    parts = list(word)
    while len(parts) > 1:
        pairs = [(ranks.get((parts[i], parts[i + 1]), None), i) for i in range(len(parts) - 1)]
        pairs = [p for p in pairs if p[0] is not None]
        if not pairs:
            break
        best = min(pairs)[0]
        first, second = pair_of_rank[best]
        out, i = [], 0
        while i < len(parts):
            if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                out.append(first + second)
                i += 2
            else:
                out.append(parts[i])
                i += 1
        parts = out
    return parts


def main():
    enc_path, bpe_path, text_path, out_path = sys.argv[1:5]
    with open(enc_path, encoding="utf-8") as f:
        encoder = json.load(f)
    with open(bpe_path, encoding="utf-8") as f:
        lines = f.read().split("\n")[1:]
    merges = [tuple(l.split()) for l in lines if l.strip()]
    ranks, pair_of_rank = {}, {}
    for r, m in enumerate(merges):
        if m not in ranks:
            ranks[m] = r
            pair_of_rank[r] = m
    b2u = bytes_to_unicode()
    with open(text_path, encoding="utf-8", newline="") as f:
        text = f.read()
    ids = []
    for piece in regex.findall(PATTERN, text):
        word = "".join(b2u[b] for b in piece.encode("utf-8"))
        ids.extend(encoder[t] for t in bpe(word, ranks, pair_of_rank))
    with open(out_path, "w") as f:
        f.write("\n".join(map(str, ids)) + "\n")


if __name__ == "__main__":
    main()
