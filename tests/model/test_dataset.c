/* The data loader: windows are exact slices of the token stream, each training window is seen
** exactly once per epoch in a seeded order (the same seed gives the same batches, another seed
** another order), epochs roll over, a saved state resumes the same sequence, evaluation batches
** are the tail in file order; the KJV through the GPT-2 tokenizer with the token cache (reused,
** rebuilt when stale or corrupt); and bad options and short texts rejected with clear messages. */
#include "model_test.h"

static uint32_t *iota(size_t n) {
  uint32_t *t = malloc(n * sizeof *t);
  for (size_t i = 0; i < n; i++) t[i] = (uint32_t)i;
  return t;
}

static ot_dataset *from_iota(size_t n, uint32_t b, uint32_t s, double eval, uint64_t seed) {
  uint32_t *t = iota(n);
  ot_dataset_opts o = {.batch_size = b, .seq_len = s, .eval_fraction = eval, .seed = seed};
  ot_dataset *d = NULL;
  ot_error err;
  ot_error_clear(&err);
  ot_status st = ot_dataset_from_tokens(t, n, &o, &d, &err);
  if (st) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(st, OT_OK);
  free(t);
  return d;
}

static void test_epochs_cover_every_window(void **state) {
  (void)state;
  const uint32_t B = 3, S = 8;
  ot_dataset *d = from_iota(1001, B, S, 0.0, 5);
  size_t w = ot_dataset_train_windows(d);
  assert_int_equal(w, 1000 / 8);
  uint32_t batch[3 * 9];
  unsigned char *seen = calloc(w, 1);
  size_t taken = 0;
  uint32_t first_epoch_order[3];
  for (int step = 0; taken < 2 * w; step++) {
    ot_dataset_next_batch(d, batch);
    for (uint32_t b = 0; b < B; b++, taken++) {
      uint32_t *row = batch + b * (S + 1);
      assert_int_equal(row[0] % S, 0); /* windows start every seq_len tokens */
      for (uint32_t k = 1; k <= S; k++) assert_int_equal(row[k], row[0] + k);
      if (taken < w) assert_int_equal(seen[row[0] / S]++, 0); /* w distinct windows: all of them */
      if (step == 0) first_epoch_order[b] = row[0];
    }
  }
  assert_int_equal(ot_dataset_get_state(d).epoch, 2); /* 252 windows taken, 125 per epoch */
  /* Shuffled: the first batch is not windows 0, 1, 2. */
  assert_false(first_epoch_order[0] == 0 && first_epoch_order[1] == 8 && first_epoch_order[2] == 16);
  free(seen);
  ot_dataset_free(d);
}

static void test_seeded_and_resumable(void **state) {
  (void)state;
  ot_dataset *a = from_iota(5000, 4, 16, 0.1, 9), *b = from_iota(5000, 4, 16, 0.1, 9), *c = from_iota(5000, 4, 16, 0.1, 10);
  uint32_t x[4 * 17], y[4 * 17], z[4 * 17];
  bool differs = false;
  ot_dataset_state saved = {0};
  uint32_t after_save[20][4 * 17];
  for (int i = 0; i < 200; i++) {
    if (i == 150) saved = ot_dataset_get_state(a);
    ot_dataset_next_batch(a, x);
    ot_dataset_next_batch(b, y);
    ot_dataset_next_batch(c, z);
    assert_memory_equal(x, y, sizeof x);
    differs |= memcmp(x, z, sizeof x) != 0;
    if (i >= 150 && i < 170) memcpy(after_save[i - 150], x, sizeof x);
  }
  assert_true(differs);
  assert_true(saved.epoch >= 1); /* 281 windows per epoch, 4 per batch: the save is in epoch 2 */
  ot_dataset *r = from_iota(5000, 4, 16, 0.1, 9);
  assert_int_equal(ot_dataset_set_state(r, saved, NULL), OT_OK);
  for (int i = 0; i < 20; i++) {
    ot_dataset_next_batch(r, x);
    assert_memory_equal(x, after_save[i], sizeof x);
  }
  ot_error err;
  ot_error_clear(&err);
  mt_expect(ot_dataset_set_state(r, (ot_dataset_state){0, 100000}, &err), &err, "cursor 100000", NULL);
  ot_dataset_free(a);
  ot_dataset_free(b);
  ot_dataset_free(c);
  ot_dataset_free(r);
}

static void test_eval_split(void **state) {
  (void)state;
  ot_dataset *d = from_iota(10000, 2, 10, 0.1, 1);
  /* 1000 eval tokens from 9000: 99 windows, 49 batches of 2, in order. */
  assert_int_equal(ot_dataset_eval_batches(d), 49);
  uint32_t e[2 * 11];
  assert_int_equal(ot_dataset_eval_batch(d, 0, e, NULL), OT_OK);
  assert_int_equal(e[0], 9000);
  assert_int_equal(e[11], 9010);
  assert_int_equal(ot_dataset_eval_batch(d, 48, e, NULL), OT_OK);
  assert_int_equal(e[11 + 10], 9000 + 97 * 10 + 10);
  ot_error err;
  ot_error_clear(&err);
  mt_expect(ot_dataset_eval_batch(d, 49, e, &err), &err, "evaluation batch 49, expected 0..48", NULL);
  /* Training never reaches the tail. */
  uint32_t t[2 * 11];
  for (int i = 0; i < 2000; i++) {
    ot_dataset_next_batch(d, t);
    assert_true(t[10] < 9000 && t[21] < 9000);
  }
  ot_dataset_free(d);
}

static void test_bad_options(void **state) {
  (void)state;
  uint32_t *t = iota(100);
  ot_dataset *d = NULL;
  ot_error err;
  ot_dataset_opts o = {.batch_size = 2, .seq_len = 0};
  ot_error_clear(&err);
  mt_expect(ot_dataset_from_tokens(t, 100, &o, &d, &err), &err, "seq_len 0", NULL);
  o.seq_len = 100;
  ot_error_clear(&err);
  mt_expect(ot_dataset_from_tokens(t, 100, &o, &d, &err), &err, "100 training tokens, need at least seq_len + 1 = 101",
            NULL);
  o.seq_len = 10;
  o.eval_fraction = 0.7;
  ot_error_clear(&err);
  mt_expect(ot_dataset_from_tokens(t, 100, &o, &d, &err), &err, "eval_fraction 0.7, expected 0..0.5", NULL);
  o.eval_fraction = 0.1;
  ot_error_clear(&err);
  mt_expect(ot_dataset_from_tokens(t, 100, &o, &d, &err), &err, "evaluation tail (10 tokens) holds 0 windows",
            "fewer than one batch of 2", NULL);
  assert_null(d);
  ot_tokenizer *tok = NULL;
  assert_int_equal(ot_tokenizer_bytes_new(true, &tok, NULL), OT_OK);
  ot_error_clear(&err);
  mt_expect(ot_dataset_open("/no/such/text.txt", tok, &o, &d, &err), &err, "/no/such/text.txt", "cannot open", NULL);
  ot_tokenizer_free(tok);
  free(t);
}

/* The KJV through GPT-2 BPE: tokenised once, then from the cache; a stale or corrupt cache is
** rebuilt, never trusted. */
static void test_kjv_with_cache(void **state) {
  (void)state;
  mt_need_file(MT_KJV);
  mt_need_file(MT_GPT2_DIR "/encoder.json");
  ot_tokenizer *tok = NULL;
  assert_int_equal(ot_tokenizer_load_dir(MT_GPT2_DIR, &tok, NULL), OT_OK);
  const char *cache = mt_dir("dataset_cache");
  char cpath[1024];
  snprintf(cpath, sizeof cpath, "%s/kjv.txt.%016llx.tok", cache, (unsigned long long)ot_tokenizer_fingerprint(tok));
  remove(cpath);
  ot_dataset_opts o = {.batch_size = 4, .seq_len = 64, .eval_fraction = 0.05, .seed = 1, .cache_dir = cache};
  ot_dataset *d = NULL, *e = NULL;
  assert_int_equal(ot_dataset_open(MT_KJV, tok, &o, &d, NULL), OT_OK);
  assert_false(ot_dataset_from_cache(d));
  size_t n = ot_dataset_token_count(d);
  assert_true(n > 1000000 && n < 1100000); /* 1,024,544 GPT-2 tokens for bible-kjv 4.38 */
  assert_int_equal(ot_dataset_open(MT_KJV, tok, &o, &e, NULL), OT_OK);
  assert_true(ot_dataset_from_cache(e));
  assert_int_equal(ot_dataset_token_count(e), n);
  uint32_t a[4 * 65], b[4 * 65];
  for (int i = 0; i < 10; i++) {
    ot_dataset_next_batch(d, a);
    ot_dataset_next_batch(e, b);
    assert_memory_equal(a, b, sizeof a);
  }
  /* The last evaluation batch decodes back to text. */
  char *text = NULL;
  size_t len = 0;
  assert_int_equal(ot_dataset_eval_batch(e, ot_dataset_eval_batches(e) - 1, a, NULL), OT_OK);
  assert_int_equal(ot_tokenizer_decode(tok, a, 65, &text, &len, NULL), OT_OK);
  assert_true(len > 100);
  free(text);
  ot_dataset_free(e);
  /* Corrupt the cache: cut it short.  It is rebuilt, and the tokens are the same. */
  size_t cn = 0;
  char *raw = mt_read(cpath, &cn);
  mt_write(cpath, raw, cn / 2);
  assert_int_equal(ot_dataset_open(MT_KJV, tok, &o, &e, NULL), OT_OK);
  assert_false(ot_dataset_from_cache(e));
  assert_int_equal(ot_dataset_token_count(e), n);
  ot_dataset_free(e);
  /* Another tokenizer never reads this cache (its file name has the fingerprint). */
  ot_tokenizer *bytes = NULL;
  assert_int_equal(ot_tokenizer_bytes_new(true, &bytes, NULL), OT_OK);
  char bpath[1024];
  snprintf(bpath, sizeof bpath, "%s/kjv.txt.%016llx.tok", cache, (unsigned long long)ot_tokenizer_fingerprint(bytes));
  remove(bpath);
  assert_int_equal(ot_dataset_open(MT_KJV, bytes, &o, &e, NULL), OT_OK);
  assert_false(ot_dataset_from_cache(e));
  struct stat sb;
  assert_int_equal(stat(MT_KJV, &sb), 0);
  assert_int_equal(ot_dataset_token_count(e), (size_t)sb.st_size);
  ot_dataset_free(e);
  /* A header naming another text is stale: flip the stored text hash. */
  free(raw);
  raw = mt_read(cpath, &cn);
  raw[24] ^= 1;
  mt_write(cpath, raw, cn);
  assert_int_equal(ot_dataset_open(MT_KJV, tok, &o, &e, NULL), OT_OK);
  assert_false(ot_dataset_from_cache(e));
  ot_dataset_free(e);
  free(raw);
  ot_tokenizer_free(bytes);
  ot_dataset_free(d);
  ot_tokenizer_free(tok);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_epochs_cover_every_window),
    cmocka_unit_test(test_seeded_and_resumable),
    cmocka_unit_test(test_eval_split),
    cmocka_unit_test(test_bad_options),
    cmocka_unit_test(test_kjv_with_cache),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
