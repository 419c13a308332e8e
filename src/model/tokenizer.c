/* GPT-2 byte-level BPE and the byte tokenizer.  tokenizer.h describes the algorithm. */
#include "model/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/fileio.h"

#define TOK_MAX_VOCAB (1u << 24)
#define TOK_NONE UINT32_MAX

typedef struct {
  uint64_t key; /* (left id + 1) << 32 | (right id + 1); 0 marks an empty slot */
  uint32_t left, right;
  uint32_t rank;
  uint32_t merged;
} tok_merge;

static uint64_t merge_key(uint32_t a, uint32_t b) { return ((uint64_t)a + 1) << 32 | ((uint64_t)b + 1); }
static size_t merge_hash(uint64_t key) { return (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> 20); }

struct ot_tokenizer {
  bool bpe;
  uint32_t vocab_size;
  uint32_t eot;
  uint64_t fingerprint;
  uint32_t *off, *len; /* token id -> its bytes in pool */
  char *pool;
  uint32_t *slots;     /* bytes -> id hash table (TOK_NONE = empty), size mask + 1 */
  size_t mask;
  tok_merge *merges;   /* pair -> rank, merged id */
  size_t merge_mask;
  uint32_t byte_id[256];
  pcre2_code *re;
};

/* ---- small helpers ---------------------------------------------------------------------- */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * UINT64_C(0x100000001b3);
  return h;
}
#define FNV_SEED UINT64_C(0xcbf29ce484222325)

static size_t pow2_above(size_t n) {
  size_t c = 16;
  while (c < 2 * n) c *= 2;
  return c;
}

/* GPT-2's bytes_to_unicode(): byte -> code point, and back (code points below 324). */
static void byte_alphabet(uint32_t cp_of_byte[256], int byte_of_cp[512]) {
  int n = 0;
  for (int i = 0; i < 512; i++) byte_of_cp[i] = -1;
  for (int b = 0; b < 256; b++) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    cp_of_byte[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
    byte_of_cp[cp_of_byte[b]] = b;
  }
}

/* One UTF-8 code point (input from cJSON is valid UTF-8); returns bytes used, 0 at a bad byte. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
  if (s[0] < 0x80) { *cp = s[0]; return 1; }
  size_t len = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC0 ? 2 : 0;
  if (!len || len > n) return 0;
  uint32_t c = s[0] & (0x3Fu >> (len - 1));
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    c = (c << 6) | (s[i] & 0x3F);
  }
  *cp = c;
  return len;
}

/* A vocabulary key spelled in the byte alphabet back to raw bytes (in place: never longer).
** Keys with characters outside the alphabet (added special tokens) keep their own UTF-8. */
static size_t key_to_bytes(const char *key, char *out, const int byte_of_cp[512]) {
  size_t n = strlen(key), o = 0;
  const unsigned char *s = (const unsigned char *)key;
  for (size_t i = 0; i < n;) {
    uint32_t cp = 0;
    size_t k = utf8_next(s + i, n - i, &cp);
    if (!k || cp >= 512 || byte_of_cp[cp] < 0) { memcpy(out, key, n); return n; }
    out[o++] = (char)byte_of_cp[cp];
    i += k;
  }
  return o;
}

/* ---- the bytes -> id table -------------------------------------------------------------- */

static uint32_t tok_lookup(const ot_tokenizer *t, const char *b, size_t n) {
  for (size_t h = fnv1a(FNV_SEED, b, n) & t->mask;; h = (h + 1) & t->mask) {
    uint32_t id = t->slots[h];
    if (id == TOK_NONE) return TOK_NONE;
    if (t->len[id] == n && !memcmp(t->pool + t->off[id], b, n)) return id;
  }
}

static void tok_insert(ot_tokenizer *t, uint32_t id) {
  const char *b = t->pool + t->off[id];
  size_t h = fnv1a(FNV_SEED, b, t->len[id]) & t->mask;
  while (t->slots[h] != TOK_NONE) h = (h + 1) & t->mask;
  t->slots[h] = id;
}

static const tok_merge *merge_find(const ot_tokenizer *t, uint32_t a, uint32_t b) {
  uint64_t key = merge_key(a, b);
  for (size_t h = merge_hash(key) & t->merge_mask;; h = (h + 1) & t->merge_mask) {
    if (t->merges[h].key == key) return &t->merges[h];
    if (t->merges[h].key == 0) return NULL;
  }
}

static void merge_insert(ot_tokenizer *t, uint32_t a, uint32_t b, uint32_t rank, uint32_t merged) {
  uint64_t key = merge_key(a, b);
  size_t h = merge_hash(key) & t->merge_mask;
  for (; t->merges[h].key; h = (h + 1) & t->merge_mask)
    if (t->merges[h].key == key) return; /* a repeated pair keeps its first (lowest) rank */
  t->merges[h] = (tok_merge){key, a, b, rank, merged};
}

/* ---- loading ---------------------------------------------------------------------------- */

static ot_status vocab_alloc(ot_tokenizer *t, uint32_t n, size_t pool, const char *origin, ot_error *err) {
  t->vocab_size = n;
  t->off = calloc(n ? n : 1, sizeof *t->off);
  t->len = calloc(n ? n : 1, sizeof *t->len);
  t->pool = malloc(pool ? pool : 1);
  t->mask = pow2_above(n) - 1;
  t->slots = malloc((t->mask + 1) * sizeof *t->slots);
  if (!t->off || !t->len || !t->pool || !t->slots)
    return ot_error_set(err, OT_ENOMEM, "%s: out of memory for %u tokens", origin, n);
  memset(t->slots, 0xFF, (t->mask + 1) * sizeof *t->slots);
  return OT_OK;
}

/* First pass over the JSON: ids in range and the largest; sizes. */
static ot_status vocab_scan(const cJSON *root, const char *origin, uint32_t *n, size_t *pool, ot_error *err) {
  const cJSON *e;
  *n = 0;
  *pool = 0;
  cJSON_ArrayForEach(e, root) {
    double d = cJSON_IsNumber(e) ? e->valuedouble : -1.0;
    if (!(d >= 0 && d < TOK_MAX_VOCAB) || d != (double)(uint32_t)d)
      return ot_error_set(err, OT_EPARSE, "%s: token '%.40s' has id %s, expected an integer in 0..%u", origin,
                          e->string, cJSON_IsNumber(e) ? "out of range" : "that is not a number", TOK_MAX_VOCAB - 1);
    if ((uint32_t)d + 1 > *n) *n = (uint32_t)d + 1;
    *pool += strlen(e->string);
  }
  if (*n == 0) return ot_error_set(err, OT_EPARSE, "%s: empty vocabulary", origin);
  return OT_OK;
}

static ot_status vocab_parse(ot_tokenizer *t, const char *text, size_t size, const char *origin, ot_error *err) {
  cJSON *root = cJSON_ParseWithLength(text, size);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return ot_error_set(err, OT_EPARSE, "%s: not a JSON object of token -> id (expected GPT-2's vocab.json or "
                        "encoder.json)", origin);
  }
  uint32_t n = 0;
  size_t pool = 0;
  ot_status s = vocab_scan(root, origin, &n, &pool, err);
  if (s == OT_OK) s = vocab_alloc(t, n, pool, origin, err);
  uint32_t cp_of_byte[256];
  int byte_of_cp[512];
  byte_alphabet(cp_of_byte, byte_of_cp);
  unsigned char *seen = s == OT_OK ? calloc(n, 1) : NULL;
  if (s == OT_OK && !seen) s = ot_error_set(err, OT_ENOMEM, "%s: out of memory", origin);
  size_t used = 0;
  const cJSON *e;
  for (e = root->child; s == OT_OK && e; e = e->next) {
    uint32_t id = (uint32_t)e->valuedouble;
    if (seen[id]++) { s = ot_error_set(err, OT_EPARSE, "%s: id %u is given to two tokens (one is '%.40s')", origin, id, e->string); break; }
    t->off[id] = (uint32_t)used;
    t->len[id] = (uint32_t)key_to_bytes(e->string, t->pool + used, byte_of_cp);
    used += t->len[id];
    if (tok_lookup(t, t->pool + t->off[id], t->len[id]) == TOK_NONE) tok_insert(t, id);
  }
  for (int b = 0; s == OT_OK && b < 256; b++) {
    char c = (char)b;
    t->byte_id[b] = tok_lookup(t, &c, 1);
    if (t->byte_id[b] == TOK_NONE)
      s = ot_error_set(err, OT_EPARSE, "%s: no token for byte 0x%02X (a byte-level BPE vocabulary has all 256)",
                       origin, b);
  }
  t->eot = s == OT_OK ? tok_lookup(t, TOK_EOT_TEXT, strlen(TOK_EOT_TEXT)) : TOK_NONE;
  free(seen);
  cJSON_Delete(root);
  return s;
}

/* One merges.txt line "left right" -> ids; 0 when the line is not a merge (comment, blank). */
static ot_status merge_line(ot_tokenizer *t, char *line, size_t lineno, uint32_t rank, const char *origin,
                            const int byte_of_cp[512], ot_error *err) {
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\r' || line[n - 1] == '\n')) line[--n] = '\0';
  char *sp = strchr(line, ' ');
  if (!sp || sp == line || !sp[1] || strchr(sp + 1, ' '))
    return ot_error_set(err, OT_EPARSE, "%s:%zu: expected two tokens separated by one space, found '%.60s'", origin,
                        lineno, line);
  *sp = '\0';
  char a[512], b[512], ab[1024];
  if (strlen(line) >= sizeof a || strlen(sp + 1) >= sizeof b)
    return ot_error_set(err, OT_EPARSE, "%s:%zu: token longer than %zu bytes", origin, lineno, sizeof a - 1);
  size_t la = key_to_bytes(line, a, byte_of_cp), lb = key_to_bytes(sp + 1, b, byte_of_cp);
  uint32_t ia = tok_lookup(t, a, la), ib = tok_lookup(t, b, lb);
  memcpy(ab, a, la);
  memcpy(ab + la, b, lb);
  uint32_t im = tok_lookup(t, ab, la + lb);
  if (ia == TOK_NONE || ib == TOK_NONE || im == TOK_NONE)
    return ot_error_set(err, OT_EPARSE, "%s:%zu: '%.40s' + '%.40s': %s is not in the vocabulary", origin, lineno,
                        line, sp + 1, ia == TOK_NONE ? "the left token" : ib == TOK_NONE ? "the right token"
                        : "the merged token");
  merge_insert(t, ia, ib, rank, im);
  return OT_OK;
}

static ot_status merges_parse(ot_tokenizer *t, char *text, const char *origin, ot_error *err) {
  size_t lines = 1;
  for (const char *p = text; *p; p++) lines += *p == '\n';
  t->merge_mask = pow2_above(lines) - 1;
  t->merges = calloc(t->merge_mask + 1, sizeof *t->merges);
  if (!t->merges) return ot_error_set(err, OT_ENOMEM, "%s: out of memory", origin);
  uint32_t cp_of_byte[256];
  int byte_of_cp[512];
  byte_alphabet(cp_of_byte, byte_of_cp);
  uint32_t rank = 0;
  size_t lineno = 0;
  for (char *line = text; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    lineno++;
    bool skip = line[0] == '\0' || line[0] == '\r' || (lineno == 1 && !strncmp(line, "#version", 8));
    if (!skip) {
      ot_status s = merge_line(t, line, lineno, rank++, origin, byte_of_cp, err);
      if (s != OT_OK) return s;
    }
    line = nl ? nl + 1 : NULL;
  }
  return OT_OK;
}

static ot_status tok_compile(ot_tokenizer *t, ot_error *err) {
  int code = 0;
  PCRE2_SIZE at = 0;
  t->re = pcre2_compile((PCRE2_SPTR)TOK_GPT2_PATTERN, PCRE2_ZERO_TERMINATED,
                        PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &at, NULL);
  if (!t->re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(code, msg, sizeof msg);
    return ot_error_set(err, OT_EUNSUPPORTED, "GPT-2 pre-tokenizer pattern: PCRE2 refused it at %zu: %s",
                        (size_t)at, (const char *)msg);
  }
  pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE); /* optional: the interpreter gives the same splits */
  return OT_OK;
}

ot_status ot_tokenizer_load_bpe(const char *vocab_path, const char *merges_path, ot_tokenizer **out,
                                ot_error *err) {
  *out = NULL;
  char *vocab = NULL, *merges = NULL;
  size_t vn = 0, mn = 0;
  ot_status s = ot_file_read(vocab_path, &vocab, &vn, err);
  if (s == OT_OK) s = ot_file_read(merges_path, &merges, &mn, err);
  ot_tokenizer *t = s == OT_OK ? calloc(1, sizeof *t) : NULL;
  if (s == OT_OK && !t) s = ot_error_set(err, OT_ENOMEM, "tokenizer: out of memory");
  if (s == OT_OK) {
    t->bpe = true;
    t->fingerprint = fnv1a(fnv1a(FNV_SEED, vocab, vn), merges, mn);
    s = vocab_parse(t, vocab, vn, vocab_path, err);
  }
  if (s == OT_OK) s = merges_parse(t, merges, merges_path, err);
  if (s == OT_OK) s = tok_compile(t, err);
  free(vocab);
  free(merges);
  if (s != OT_OK) { ot_tokenizer_free(t); return s; }
  *out = t;
  return OT_OK;
}

static bool file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

ot_status ot_tokenizer_load_dir(const char *dir, ot_tokenizer **out, ot_error *err) {
  static const char *const pairs[][2] = {{"vocab.json", "merges.txt"}, {"encoder.json", "vocab.bpe"}};
  char v[4096], m[4096];
  for (size_t i = 0; i < 2; i++) {
    snprintf(v, sizeof v, "%s/%s", dir, pairs[i][0]);
    snprintf(m, sizeof m, "%s/%s", dir, pairs[i][1]);
    if (file_exists(v) && file_exists(m)) return ot_tokenizer_load_bpe(v, m, out, err);
  }
  *out = NULL;
  return ot_error_set(err, OT_ENOTFOUND, "%s: no GPT-2 BPE files (expected vocab.json + merges.txt, or "
                      "encoder.json + vocab.bpe; scripts/fetch_gpt2_bpe.sh installs them in data/gpt2)", dir);
}

ot_status ot_tokenizer_bytes_new(bool with_eot, ot_tokenizer **out, ot_error *err) {
  *out = NULL;
  ot_tokenizer *t = calloc(1, sizeof *t);
  uint32_t n = with_eot ? 257 : 256;
  if (!t || vocab_alloc(t, n, 256 + strlen(TOK_EOT_TEXT), "byte tokenizer", err) != OT_OK) {
    ot_tokenizer_free(t);
    return ot_error_set(err, OT_ENOMEM, "byte tokenizer: out of memory");
  }
  for (uint32_t b = 0; b < 256; b++) {
    t->pool[b] = (char)b;
    t->off[b] = b;
    t->len[b] = 1;
    t->byte_id[b] = b;
  }
  t->eot = TOK_NONE;
  if (with_eot) {
    memcpy(t->pool + 256, TOK_EOT_TEXT, strlen(TOK_EOT_TEXT));
    t->off[256] = 256;
    t->len[256] = (uint32_t)strlen(TOK_EOT_TEXT);
    t->eot = 256;
  }
  t->fingerprint = fnv1a(FNV_SEED, with_eot ? "bytes+eot" : "bytes", with_eot ? 9 : 5);
  *out = t;
  return OT_OK;
}

void ot_tokenizer_free(ot_tokenizer *t) {
  if (!t) return;
  pcre2_code_free(t->re);
  free(t->off);
  free(t->len);
  free(t->pool);
  free(t->slots);
  free(t->merges);
  free(t);
}

uint32_t ot_tokenizer_vocab_size(const ot_tokenizer *t) { return t ? t->vocab_size : 0; }
uint32_t ot_tokenizer_eot(const ot_tokenizer *t) { return t ? t->eot : TOK_NONE; }
uint64_t ot_tokenizer_fingerprint(const ot_tokenizer *t) { return t ? t->fingerprint : 0; }

const char *ot_tokenizer_token(const ot_tokenizer *t, uint32_t id, size_t *len) {
  if (!t || id >= t->vocab_size) { *len = 0; return NULL; }
  *len = t->len[id];
  return t->pool + t->off[id];
}

/* ---- encoding --------------------------------------------------------------------------- */

/* A candidate merge: the pair starting at symbol pos, (left, right) when it was queued. */
typedef struct {
  uint32_t rank, pos, left, right;
} bpe_cand;

typedef struct {
  uint32_t *ids;
  size_t n, cap;
  /* BPE scratch for the longest piece so far: symbols as a linked list, candidates as a heap */
  uint32_t *sym, *next, *prev;
  bpe_cand *heap;
  size_t heap_n, scratch_cap;
  bool oom;
} tok_out;

static bool out_reserve(uint32_t **p, size_t *cap, size_t need) {
  if (need <= *cap) return true;
  size_t c = *cap ? *cap : 256;
  while (c < need) c *= 2;
  uint32_t *q = realloc(*p, c * sizeof *q);
  if (!q) return false;
  *p = q;
  *cap = c;
  return true;
}

static bool scratch_reserve(tok_out *o, size_t n) {
  if (n <= o->scratch_cap) return true;
  if (n >= TOK_NONE) return false; /* positions are 32-bit */
  size_t c = n < 256 ? 256 : n;
  free(o->sym), free(o->next), free(o->prev), free(o->heap);
  o->sym = malloc(c * sizeof *o->sym);
  o->next = malloc(c * sizeof *o->next);
  o->prev = malloc(c * sizeof *o->prev);
  o->heap = malloc(3 * c * sizeof *o->heap); /* n - 1 initial pairs, at most 2 per merge after */
  o->scratch_cap = o->sym && o->next && o->prev && o->heap ? c : 0;
  return o->scratch_cap != 0;
}

/* Lowest rank first; equal ranks leftmost first, which is the order encoder.py merges them. */
static bool cand_less(const bpe_cand *a, const bpe_cand *b) {
  return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(tok_out *o, bpe_cand c) {
  size_t i = o->heap_n++;
  for (; i > 0 && cand_less(&c, &o->heap[(i - 1) / 2]); i = (i - 1) / 2) o->heap[i] = o->heap[(i - 1) / 2];
  o->heap[i] = c;
}

static bpe_cand heap_pop(tok_out *o) {
  bpe_cand top = o->heap[0], last = o->heap[--o->heap_n];
  size_t i = 0, n = o->heap_n;
  for (size_t k; (k = 2 * i + 1) < n; i = k) {
    if (k + 1 < n && cand_less(&o->heap[k + 1], &o->heap[k])) k++;
    if (!cand_less(&o->heap[k], &last)) break;
    o->heap[i] = o->heap[k];
  }
  if (n) o->heap[i] = last;
  return top;
}

static void queue_pair(const ot_tokenizer *t, tok_out *o, uint32_t pos) {
  uint32_t right = pos == TOK_NONE ? TOK_NONE : o->next[pos];
  if (right == TOK_NONE) return;
  const tok_merge *m = merge_find(t, o->sym[pos], o->sym[right]);
  if (m) heap_push(o, (bpe_cand){m->rank, pos, o->sym[pos], o->sym[right]});
}

/* Byte-level BPE of one piece with the result of encoder.py's loop (merge the lowest-ranked pair
** everywhere, left to right, until none is left) in O(n log n) rather than O(n^2): candidates
** wait in a heap ordered by (rank, position), and one that no longer matches its symbols is
** dropped.  The orders agree because a merge's result only forms pairs ranked after it. */
static void bpe_piece(const ot_tokenizer *t, const unsigned char *s, size_t n, tok_out *o) {
  if (!scratch_reserve(o, n) || !out_reserve(&o->ids, &o->cap, o->n + n)) { o->oom = true; return; }
  for (size_t i = 0; i < n; i++) {
    o->sym[i] = t->byte_id[s[i]];
    o->prev[i] = i ? (uint32_t)i - 1 : TOK_NONE;
    o->next[i] = i + 1 < n ? (uint32_t)i + 1 : TOK_NONE;
  }
  o->heap_n = 0;
  for (size_t i = 0; t->bpe && i + 1 < n; i++) queue_pair(t, o, (uint32_t)i);
  while (o->heap_n) {
    bpe_cand c = heap_pop(o);
    uint32_t right = o->next[c.pos];
    if (o->sym[c.pos] != c.left || right == TOK_NONE || o->sym[right] != c.right) continue; /* stale */
    o->sym[c.pos] = merge_find(t, c.left, c.right)->merged;
    o->sym[right] = TOK_NONE;
    o->next[c.pos] = o->next[right];
    if (o->next[right] != TOK_NONE) o->prev[o->next[right]] = c.pos;
    queue_pair(t, o, o->prev[c.pos]);
    queue_pair(t, o, c.pos);
  }
  for (uint32_t i = 0; n && i != TOK_NONE; i = o->next[i]) o->ids[o->n++] = o->sym[i];
}

/* Pre-tokenise a span with the GPT-2 pattern, BPE each piece; bytes the pattern cannot match
** (invalid UTF-8) go through BPE as pieces of their own. */
static ot_status encode_span(const ot_tokenizer *t, const unsigned char *s, size_t n, pcre2_match_data *md,
                             tok_out *o, ot_error *err) {
  if (!t->bpe) { bpe_piece(t, s, n, o); return OT_OK; }
  size_t at = 0;
  while (at < n && !o->oom) {
    int rc = pcre2_match(t->re, s, n, at, 0, md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) { bpe_piece(t, s + at, n - at, o); break; }
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      return ot_error_set(err, OT_ERUNTIME, "tokenizer: PCRE2 match failed at byte %zu: %s", at, (const char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t b = ov[0], e = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
    if (b > at) bpe_piece(t, s + at, b - at, o);
    bpe_piece(t, s + b, e - b, o);
    at = e;
  }
  return OT_OK;
}

static const char *find_eot(const char *s, size_t n) {
  size_t m = strlen(TOK_EOT_TEXT);
  for (size_t i = 0; i + m <= n; i++)
    if (s[i] == '<' && !memcmp(s + i, TOK_EOT_TEXT, m)) return s + i;
  return NULL;
}

ot_status ot_tokenizer_encode(const ot_tokenizer *t, const char *text, size_t len, unsigned flags,
                              uint32_t **ids, size_t *count, ot_error *err) {
  *ids = NULL;
  *count = 0;
  if (!t || (!text && len)) return ot_error_set(err, OT_EINVAL, "tokenizer encode: NULL argument");
  tok_out o = {0};
  pcre2_match_data *md = t->bpe ? pcre2_match_data_create_from_pattern(t->re, NULL) : NULL;
  ot_status s = t->bpe && !md ? ot_error_set(err, OT_ENOMEM, "tokenizer: out of memory") : OT_OK;
  bool special = (flags & OT_TOKENIZE_SPECIAL) && t->eot != TOK_NONE;
  const char *p = text, *end = text + len;
  while (s == OT_OK && p < end && !o.oom) {
    const char *q = special ? find_eot(p, (size_t)(end - p)) : NULL;
    s = encode_span(t, (const unsigned char *)p, (size_t)((q ? q : end) - p), md, &o, err);
    if (!q) break;
    if (!out_reserve(&o.ids, &o.cap, o.n + 1)) { o.oom = true; break; }
    o.ids[o.n++] = t->eot;
    p = q + strlen(TOK_EOT_TEXT);
  }
  pcre2_match_data_free(md);
  free(o.sym), free(o.next), free(o.prev), free(o.heap);
  if (s == OT_OK && o.oom) s = ot_error_set(err, OT_ENOMEM, "tokenizer: out of memory encoding %zu bytes", len);
  if (s != OT_OK) { free(o.ids); return s; }
  *ids = o.ids ? o.ids : malloc(sizeof(uint32_t));
  *count = o.n;
  return *ids ? OT_OK : ot_error_set(err, OT_ENOMEM, "tokenizer: out of memory");
}

ot_status ot_tokenizer_decode(const ot_tokenizer *t, const uint32_t *ids, size_t count, char **text, size_t *len,
                              ot_error *err) {
  *text = NULL;
  *len = 0;
  size_t n = 0;
  for (size_t i = 0; i < count; i++) {
    if (ids[i] >= t->vocab_size)
      return ot_error_set(err, OT_ERANGE, "tokenizer decode: token %zu is id %u, expected 0..%u", i, ids[i],
                          t->vocab_size - 1);
    n += t->len[ids[i]];
  }
  char *buf = malloc(n + 1);
  if (!buf) return ot_error_set(err, OT_ENOMEM, "tokenizer decode: out of memory (%zu bytes)", n);
  size_t k = 0;
  for (size_t i = 0; i < count; i++) {
    memcpy(buf + k, t->pool + t->off[ids[i]], t->len[ids[i]]);
    k += t->len[ids[i]];
  }
  buf[n] = '\0';
  *text = buf;
  *len = n;
  return OT_OK;
}
