/* Tokenizers: GPT-2 BPE byte-exact against an independent implementation (tests/model/bpe_ref.py,
** Python `regex` + the encoder.py algorithm) on a varied text and on part of the KJV; known ids;
** decode(encode(x)) == x for any bytes; <|endoftext|>; both file namings; the byte tokenizer;
** and bad files rejected with a message naming the file and the problem. */
#include "model_test.h"

static ot_tokenizer *gpt2(void) {
  mt_need_file(MT_GPT2_DIR "/encoder.json");
  ot_tokenizer *t = NULL;
  ot_error err;
  ot_error_clear(&err);
  ot_status s = ot_tokenizer_load_dir(MT_GPT2_DIR, &t, &err);
  if (s != OT_OK) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(s, OT_OK);
  return t;
}

static const char varied[] =
  "Hello world! It's 2024.\n\n\n   Spaces   and\ttabs\t\there.\r\nWindows line\r\n"
  "Contractions: I'm, you're, we've, they'll, she'd, it's, don't, CAN'T, I'M, y'all 'tis.\n"
  "Digits: 1234567890 3.14159 1,000,000 42nd 0x1F 007 \xd9\xa3\xd9\xa4 \xe2\x85\xa7\n"
  "Unicode: na\xc3\xafve caf\xc3\xa9 r\xc3\xa9sum\xc3\xa9 \xce\x95\xce\xbb\xce\xbb\xce\xb7\xce\xbd\xce\xb9\xce\xba\xce\xac "
  "\xd0\xa0\xd1\x83\xd1\x81\xd1\x81\xd0\xba\xd0\xb8\xd0\xb9 \xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97 "
  "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88 "
  "\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4 \xd8\xa7\xd9\x84\xd8\xb9\xd8\xb1\xd8\xa8\xd9\x8a\xd8\xa9 "
  "\xe0\xa4\xb9\xe0\xa4\xbf\xe0\xa4\xa8\xe0\xa5\x8d\xe0\xa4\xa6\xe0\xa5\x80\n"
  "Emoji: \xf0\x9f\x98\x80\xf0\x9f\x8e\x89\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd "
  "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7 \xf0\x9f\x87\xba\xf0\x9f\x87\xb8 "
  "\xe2\x9d\xa4\xef\xb8\x8f!!\n"
  "Symbols: \xc2\xa9\xc2\xae\xe2\x84\xa2 \xc2\xa7\xc2\xb6 \xe2\x80\xa2\xe2\x80\xa6 \xe2\x80\x94 "
  "\xc2\xab" "quotes\xc2\xbb \xe2\x80\x9csmart\xe2\x80\x9d \xe2\x82\xac\xc2\xa3\xc2\xa5 \xc2\xbd \xe2\x88\x91\xe2\x88\x9e\n"
  "Code: for (int i = 0; i < n; i++) { x += a[i] * b[i]; } // done?!... ''quoted'' \"dq\"\n"
  "    indented\n\n\n\n  trailing spaces   \n"
  "<|endoftext|> special text\n"
  "No-break:\xc2\xa0x ideographic:\xe3\x80\x80y zero-width:a\xe2\x80\x8b" "b combining: e\xcc\x81 n\xcc\x83\n"
  "The LORD said unto Moses, Go in unto Pharaoh.      \n   \n \t \n"
  "end with spaces     ";

static void compare_with_reference(ot_tokenizer *t, const char *text, size_t n, const char *name) {
  const char *dir = mt_dir("tokenizer");
  mt_write(mt_path(dir, name), text, n);
  char args[4096];
  snprintf(args, sizeof args, "%s/encoder.json %s/vocab.bpe %s %s.ids", MT_GPT2_DIR, MT_GPT2_DIR,
           mt_path(dir, name), mt_path(dir, name));
  mt_python("bpe_ref.py", args);
  char idpath[1100];
  snprintf(idpath, sizeof idpath, "%s.ids", mt_path(dir, name));
  size_t rn = 0;
  char *ref = mt_read(idpath, &rn);
  uint32_t *ids = NULL;
  size_t count = 0;
  assert_int_equal(ot_tokenizer_encode(t, text, n, 0, &ids, &count, NULL), OT_OK);
  size_t k = 0;
  char *p = ref;
  for (; *p; k++) {
    char *end;
    unsigned long want = strtoul(p, &end, 10);
    if (end == p) break;
    if (k >= count || ids[k] != want) {
      fprintf(stderr, "%s: token %zu: got %u, reference %lu\n", name, k, k < count ? ids[k] : 0u, want);
      fail();
    }
    p = end;
    while (*p == '\n') p++;
  }
  assert_int_equal(k, count);
  char *back = NULL;
  size_t bn = 0;
  assert_int_equal(ot_tokenizer_decode(t, ids, count, &back, &bn, NULL), OT_OK);
  assert_int_equal(bn, n);
  assert_memory_equal(back, text, n);
  free(back);
  free(ids);
  free(ref);
}

static void test_known_ids(void **state) {
  (void)state;
  ot_tokenizer *t = gpt2();
  assert_int_equal(ot_tokenizer_vocab_size(t), 50257);
  assert_int_equal(ot_tokenizer_eot(t), OT_GPT2_EOT);
  const char *text = "Hello world! It's 2024.";
  const uint32_t want[] = {15496, 995, 0, 632, 338, 48609, 13};
  uint32_t *ids = NULL;
  size_t n = 0;
  assert_int_equal(ot_tokenizer_encode(t, text, strlen(text), 0, &ids, &n, NULL), OT_OK);
  assert_int_equal(n, 7);
  assert_memory_equal(ids, want, sizeof want);
  free(ids);
  size_t len = 0;
  const char *tok = ot_tokenizer_token(t, 995, &len);
  assert_int_equal(len, 6);
  assert_memory_equal(tok, " world", 6);
  assert_null(ot_tokenizer_token(t, 50257, &len));
  /* The empty text is no tokens. */
  assert_int_equal(ot_tokenizer_encode(t, "", 0, 0, &ids, &n, NULL), OT_OK);
  assert_int_equal(n, 0);
  free(ids);
  ot_tokenizer_free(t);
}

static void test_varied_text_matches_reference(void **state) {
  (void)state;
  ot_tokenizer *t = gpt2();
  compare_with_reference(t, varied, sizeof varied - 1, "varied.txt");
  ot_tokenizer_free(t);
}

/* Long pieces (the BPE's heap path does real work): random letters, digits, punctuation. */
static void test_long_pieces_match_reference(void **state) {
  (void)state;
  ot_tokenizer *t = gpt2();
  static char text[3200];
  uint64_t x = 0x9E3779B97F4A7C15u;
  size_t n = 0;
  const char *sets[] = {"abcdefghijklmnopqrstuvwxyz", "0123456789", "!?.,;:-_=+*/()[]{}<>#@&%$"};
  const size_t lens[] = {1500, 800, 600};
  for (int k = 0; k < 3; k++) {
    size_t m = strlen(sets[k]);
    for (size_t i = 0; i < lens[k]; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      text[n++] = sets[k][x % m];
    }
    text[n++] = ' ';
  }
  compare_with_reference(t, text, n, "long_pieces.txt");
  ot_tokenizer_free(t);
}

static void test_kjv_matches_reference(void **state) {
  (void)state;
  mt_need_file(MT_KJV);
  ot_tokenizer *t = gpt2();
  size_t n = 0;
  char *kjv = mt_read(MT_KJV, &n);
  compare_with_reference(t, kjv, n < 200000 ? n : 200000, "kjv_head.txt");
  free(kjv);
  ot_tokenizer_free(t);
}

static void test_special_token(void **state) {
  (void)state;
  ot_tokenizer *t = gpt2();
  const char *text = "a<|endoftext|>b<|endoftext|>";
  uint32_t *ids = NULL;
  size_t n = 0;
  assert_int_equal(ot_tokenizer_encode(t, text, strlen(text), OT_TOKENIZE_SPECIAL, &ids, &n, NULL), OT_OK);
  assert_int_equal(n, 4);
  assert_int_equal(ids[1], OT_GPT2_EOT);
  assert_int_equal(ids[3], OT_GPT2_EOT);
  char *back = NULL;
  size_t bn = 0;
  assert_int_equal(ot_tokenizer_decode(t, ids, n, &back, &bn, NULL), OT_OK);
  assert_string_equal(back, text);
  free(back);
  free(ids);
  /* Without the flag it is ordinary text, as GPT-2's own encoder treats it. */
  assert_int_equal(ot_tokenizer_encode(t, text, strlen(text), 0, &ids, &n, NULL), OT_OK);
  for (size_t i = 0; i < n; i++) assert_int_not_equal(ids[i], OT_GPT2_EOT);
  free(ids);
  ot_tokenizer_free(t);
}

/* Any bytes, valid UTF-8 or not, come back exactly. */
static void test_any_bytes_round_trip(void **state) {
  (void)state;
  ot_tokenizer *t = gpt2(), *b = NULL;
  assert_int_equal(ot_tokenizer_bytes_new(true, &b, NULL), OT_OK);
  char buf[4096];
  uint64_t x = 88172645463325252u;
  for (int round = 0; round < 40; round++) {
    size_t n = (size_t)(round * 97 % 4000);
    for (size_t i = 0; i < n; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      buf[i] = round % 2 ? (char)(x & 0xFF) : " aZ\n\xc3\xa9\xff\x80'9"[x % 10];
    }
    ot_tokenizer *ts[2] = {t, b};
    for (int k = 0; k < 2; k++) {
      uint32_t *ids = NULL;
      size_t c = 0;
      char *back = NULL;
      size_t bn = 0;
      assert_int_equal(ot_tokenizer_encode(ts[k], buf, n, 0, &ids, &c, NULL), OT_OK);
      assert_int_equal(ot_tokenizer_decode(ts[k], ids, c, &back, &bn, NULL), OT_OK);
      assert_int_equal(bn, n);
      assert_memory_equal(back, buf, n);
      free(ids);
      free(back);
    }
  }
  ot_tokenizer_free(t);
  ot_tokenizer_free(b);
}

static void test_byte_tokenizer(void **state) {
  (void)state;
  ot_tokenizer *t = NULL;
  assert_int_equal(ot_tokenizer_bytes_new(false, &t, NULL), OT_OK);
  assert_int_equal(ot_tokenizer_vocab_size(t), 256);
  assert_int_equal(ot_tokenizer_eot(t), UINT32_MAX);
  uint32_t *ids = NULL;
  size_t n = 0;
  assert_int_equal(ot_tokenizer_encode(t, "Ab\xff", 3, OT_TOKENIZE_SPECIAL, &ids, &n, NULL), OT_OK);
  assert_int_equal(n, 3);
  assert_int_equal(ids[0], 'A');
  assert_int_equal(ids[2], 255);
  free(ids);
  ot_error err;
  ot_error_clear(&err);
  uint32_t bad = 256;
  char *text = NULL;
  size_t len = 0;
  mt_expect(ot_tokenizer_decode(t, &bad, 1, &text, &len, &err), &err, "id 256", "0..255", NULL);
  ot_tokenizer_free(t);
  assert_int_equal(ot_tokenizer_bytes_new(true, &t, NULL), OT_OK);
  assert_int_equal(ot_tokenizer_vocab_size(t), 257);
  const char *s = "x<|endoftext|>";
  assert_int_equal(ot_tokenizer_encode(t, s, strlen(s), OT_TOKENIZE_SPECIAL, &ids, &n, NULL), OT_OK);
  assert_int_equal(n, 2);
  assert_int_equal(ids[1], 256);
  free(ids);
  assert_int_not_equal(ot_tokenizer_fingerprint(t), 0);
  ot_tokenizer_free(t);
}

/* Hugging Face names (vocab.json + merges.txt) load the same vocabulary. */
static void test_hf_file_names(void **state) {
  (void)state;
  const char *dir = mt_dir("tokenizer_hf");
  size_t vn = 0, mn = 0;
  char *v = mt_read(MT_GPT2_DIR "/encoder.json", &vn), *m = mt_read(MT_GPT2_DIR "/vocab.bpe", &mn);
  mt_write(mt_path(dir, "vocab.json"), v, vn);
  mt_write(mt_path(dir, "merges.txt"), m, mn);
  free(v);
  free(m);
  ot_tokenizer *t = NULL, *g = gpt2();
  assert_int_equal(ot_tokenizer_load_dir(dir, &t, NULL), OT_OK);
  assert_int_equal(ot_tokenizer_fingerprint(t), ot_tokenizer_fingerprint(g));
  uint32_t *a = NULL, *b = NULL;
  size_t an = 0, bn = 0;
  assert_int_equal(ot_tokenizer_encode(t, varied, sizeof varied - 1, 0, &a, &an, NULL), OT_OK);
  assert_int_equal(ot_tokenizer_encode(g, varied, sizeof varied - 1, 0, &b, &bn, NULL), OT_OK);
  assert_int_equal(an, bn);
  assert_memory_equal(a, b, an * sizeof *a);
  free(a);
  free(b);
  ot_tokenizer_free(t);
  ot_tokenizer_free(g);
}

static ot_status load_pair(const char *vocab, const char *merges, ot_error *err) {
  const char *dir = mt_dir("tokenizer_bad");
  mt_write(mt_path(dir, "v.json"), vocab, strlen(vocab));
  mt_write(mt_path(dir, "m.txt"), merges, strlen(merges));
  ot_tokenizer *t = NULL;
  ot_error_clear(err);
  ot_status s = ot_tokenizer_load_bpe(mt_path(dir, "v.json"), mt_path(dir, "m.txt"), &t, err);
  ot_tokenizer_free(t);
  return s;
}

/* A byte-level vocabulary: all 256 byte tokens ("\u0100"-style escapes for the unprintable). */
static char *small_vocab(const char *extra) {
  static char buf[8192];
  size_t n = (size_t)snprintf(buf, sizeof buf, "{");
  for (int b = 0; b < 256; b++) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    static int next;
    if (b == 0) next = 256;
    int cp = printable ? b : next++;
    if (b == '"' || b == '\\') n += (size_t)snprintf(buf + n, sizeof buf - n, "\"\\%c\": %d, ", b, b);
    else n += (size_t)snprintf(buf + n, sizeof buf - n, "\"\\u%04x\": %d, ", cp, b);
  }
  snprintf(buf + n, sizeof buf - n, "%s}", extra);
  return buf;
}

static void test_bad_files(void **state) {
  (void)state;
  ot_error err;
  ot_tokenizer *t = NULL;
  ot_error_clear(&err);
  mt_expect(ot_tokenizer_load_bpe("/no/such/vocab.json", "/no/such/merges.txt", &t, &err), &err,
            "/no/such/vocab.json", "cannot open", NULL);
  assert_null(t);
  ot_error_clear(&err);
  mt_expect(ot_tokenizer_load_dir("/no/such/dir", &t, &err), &err, "vocab.json + merges.txt", "fetch_gpt2_bpe", NULL);
  mt_expect(load_pair("[1, 2]", "", &err), &err, "v.json", "not a JSON object", NULL);
  mt_expect(load_pair("{\"a\": 0", "", &err), &err, "not a JSON object", NULL);
  mt_expect(load_pair("{\"a\": -1}", "", &err), &err, "'a'", "expected an integer", NULL);
  mt_expect(load_pair("{\"a\": \"x\"}", "", &err), &err, "not a number", NULL);
  mt_expect(load_pair("{\"a\": 0, \"b\": 0}", "", &err), &err, "id 0 is given to two tokens", NULL);
  mt_expect(load_pair("{\"a\": 0}", "", &err), &err, "no token for byte 0x00", NULL);
  assert_int_equal(load_pair(small_vocab("\"ab\": 256"), "#version: 0.2\na b\n", &err), OT_OK);
  mt_expect(load_pair(small_vocab("\"ab\": 256"), "#version: 0.2\na b\nb a\n", &err), &err, "m.txt:3",
            "the merged token is not in the vocabulary", NULL);
  mt_expect(load_pair(small_vocab("\"ab\": 256"), "#version: 0.2\nab\n", &err), &err, "m.txt:2",
            "two tokens separated by one space", NULL);
  mt_expect(load_pair(small_vocab("\"ab\": 256"), "a b c\n", &err), &err, "m.txt:1", NULL);
  mt_expect(load_pair(small_vocab("\"ab\": 256"), "\xc4\xa2x b\n", &err), &err, "the left token", NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_known_ids),
    cmocka_unit_test(test_varied_text_matches_reference),
    cmocka_unit_test(test_long_pieces_match_reference),
    cmocka_unit_test(test_kjv_matches_reference),
    cmocka_unit_test(test_special_token),
    cmocka_unit_test(test_any_bytes_round_trip),
    cmocka_unit_test(test_byte_tokenizer),
    cmocka_unit_test(test_hf_file_names),
    cmocka_unit_test(test_bad_files),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
