/* Tokenizers (internal interface; the public API is in <opentrn/model.h>).
**
** GPT-2 byte-level BPE, as OpenAI's encoder.py does it:
**   1. pre-tokenise the text with the GPT-2 pattern (PCRE2, UTF + UCP, JIT)
**        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
**   2. in each piece, start from one token per byte and repeatedly merge the adjacent pair with
**      the lowest rank in merges.txt (every occurrence of that pair, left to right) until no
**      ranked pair is left.
** vocab.json / encoder.json keys spell each token's bytes through GPT-2's bytes_to_unicode()
** alphabet (printable bytes as themselves, the others as U+0100 + n); they are turned back into
** raw bytes at load, so the tokenizer works on bytes throughout.  Bytes that are not valid UTF-8
** (the pattern cannot match them) are encoded as their own piece, so any input round-trips.
*/
#ifndef OT_MODEL_TOKENIZER_H
#define OT_MODEL_TOKENIZER_H

#include <opentrn/model.h>

#define TOK_GPT2_PATTERN \
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

#define TOK_EOT_TEXT "<|endoftext|>"

#endif
