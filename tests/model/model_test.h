/* Helpers shared by the model tests: scratch directories under the build tree, whole-file
** reads and writes, running the Python oracles (Debian's /usr/bin/python3), and error checks. */
#ifndef OT_TESTS_MODEL_TEST_H
#define OT_TESTS_MODEL_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <opentrn/model.h>

/* Where scripts/setup.sh installs the data (scripts/fetch_gpt2_bpe.sh, scripts/fetch_kjv.sh). */
#define MT_GPT2_DIR OT_SOURCE_DIR "/data/gpt2"
#define MT_KJV OT_SOURCE_DIR "/data/kjv.txt"

static inline const char *mt_dir(const char *name) {
  static char dir[4][512];
  static int k;
  char *d = dir[k++ & 3];
  snprintf(d, sizeof dir[0], "%s/model_test", OT_BINARY_DIR);
  mkdir(d, 0755);
  snprintf(d, sizeof dir[0], "%s/model_test/%s", OT_BINARY_DIR, name);
  mkdir(d, 0755);
  return d;
}

static inline char *mt_path(const char *dir, const char *file) {
  static char buf[8][1024];
  static int k;
  char *p = buf[k++ & 7];
  snprintf(p, sizeof buf[0], "%s/%s", dir, file);
  return p;
}

static inline void mt_write(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, n, f), n);
  fclose(f);
}

static inline char *mt_read(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) fprintf(stderr, "cannot open %s\n", path);
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)sz + 1);
  assert_non_null(b);
  assert_int_equal(fread(b, 1, (size_t)sz, f), (size_t)sz);
  b[sz] = '\0';
  fclose(f);
  *n = (size_t)sz;
  return b;
}

/* Run a script under tests/model with OT_PYTHON; fails the test if it fails. */
static inline void mt_python(const char *script, const char *args) {
  char cmd[8192];
  int n = snprintf(cmd, sizeof cmd, "%s %s/tests/model/%s %s", OT_PYTHON, OT_SOURCE_DIR, script, args);
  assert_true(n > 0 && (size_t)n < sizeof cmd);
  int rc = system(cmd);
  if (rc != 0) fprintf(stderr, "'%s' failed (status %d)\n", cmd, rc);
  assert_int_equal(rc, 0);
}

/* The status is an error and the message holds every needle (NULL-terminated list). */
static inline void mt_expect(ot_status s, const ot_error *err, ...) {
  if (s == OT_OK) fprintf(stderr, "accepted, expected an error\n");
  assert_int_not_equal(s, OT_OK);
  va_list ap;
  va_start(ap, err);
  for (const char *n = va_arg(ap, const char *); n; n = va_arg(ap, const char *)) {
    if (!strstr(err->msg, n)) fprintf(stderr, "expected '%s' in:\n%s\n", n, err->msg);
    assert_non_null(strstr(err->msg, n));
  }
  va_end(ap);
}

static inline void mt_need_file(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0)
    fprintf(stderr, "%s is missing: run scripts/setup.sh (it installs the model test data)\n", path);
  assert_int_equal(stat(path, &st), 0);
}

#endif
