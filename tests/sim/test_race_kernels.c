/* The race checker end to end, through the event loop: the example kernels (correctly
** synchronised) give no report; seeded mutations of them that drop a semaphore wait or weaken
** it are caught, naming both instructions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sim_test_util.h"
#include "util/fileio.h"

static const char *const kernels[] = {"matmul_tiled", "softmax", "layernorm", "gelu", "causal_mask", "embedding"};

static char *kernel_text(const char *name) {
  char path[512], *text;
  size_t n;
  snprintf(path, sizeof path, "%s/examples/kernels/%s.s", OT_SOURCE_DIR, name);
  assert_int_equal(ot_file_read(path, &text, &n, NULL), OT_OK);
  return text;
}

/* Run with the race checker, all inputs zero (values do not matter for ordering). */
static unsigned races(const ot_chip *chip, const char *text, ot_error *err) {
  ot_program *p = st_asm(text);
  assert_non_null(p);
  ot_sim_options o;
  ot_sim_options_default(&o);
  o.race_check = true;
  o.uninit_is_error = false; /* a mutant may read before the data arrives: that is the race */
  ot_sim *s = NULL;
  assert_int_equal(ot_sim_new(chip, p, &o, &s, err), OT_OK);
  for (uint32_t t = 0; t < p->n_tensors; t++) {
    uint64_t n = ot_tensor_bytes(&p->tensors[t]);
    void *zero = calloc(1, n);
    ot_sim_hbm_write(s, p->tensors[t].offset, zero, n, NULL);
    free(zero);
  }
  unsigned before = err->count;
  ot_sim_run(s, err); /* a mutant may also deadlock or fail; the races reported so far count */
  unsigned found = 0;
  for (const char *m = err->msg; (m = strstr(m, "race (")); m++) found++;
  (void)before;
  ot_sim_free(s);
  ot_program_free(p);
  return found;
}

static void test_examples_have_no_races(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
    char *text = kernel_text(kernels[k]);
    ot_error err;
    ot_error_clear(&err);
    unsigned n = races(chip, text, &err);
    if (n) fprintf(stderr, "%s: false alarm:\n%s\n", kernels[k], err.msg);
    assert_int_equal(n, 0);
    assert_int_equal(err.count, 0);
    free(text);
  }
  ot_chip_free(chip);
}

/* Mutants: each `sem_wait` with an immediate threshold is, in turn, replaced by a nop.  Every
** mutant must be reported, naming both instructions -- except a final drain (a wait followed by
** nothing but other waits and `halt`, for the last stores to land), which orders no later access:
** removing it is not a data race, and the checker must stay silent. */
static void test_mutants_are_caught(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  unsigned mutants = 0, caught = 0, drains = 0;
  for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
    char *text = kernel_text(kernels[k]);
    for (char *line = strstr(text, "sem_wait"); line; line = strstr(line + 1, "sem_wait")) {
      /* only waits with an immediate threshold >= 1 (register waits stay: their loop needs them) */
      char *comma = strchr(line, ','), *eol = strchr(line, '\n');
      if (!comma || !eol || comma > eol) continue;
      long v = strtol(comma + 1, NULL, 10);
      if (v < 1) continue;
      char *mut = strdup(text);
      size_t at = (size_t)(line - text);
      memcpy(mut + at, "nop     ", 8);        /* "sem_wait" -> "nop     " */
      for (char *c = mut + at + 8; *c && *c != '\n' && *c != '#'; c++) *c = ' ';
      ot_error err;
      ot_error_clear(&err);
      unsigned n = races(chip, mut, &err);
      mutants++;
      /* a drain: only other waits stand between it and halt (it orders no later access) */
      const char *after = eol + 1;
      for (;;) {
        while (*after == ' ') after++;
        if (strncmp(after, "sem_wait", 8)) break;
        const char *nl = strchr(after, '\n');
        if (!nl) break;
        after = nl + 1;
      }
      bool drain = !strncmp(after, "halt", 4);
      if (drain) {
        assert_int_equal(n, 0); /* no false alarm */
        drains++;
      } else if (!n) {
        fprintf(stderr, "not caught: %s: %.*s\n", kernels[k], (int)(eol - line), line);
      }
      if (n) {
        caught++;
        assert_non_null(strstr(err.msg, " by core 0 "));   /* both instructions named */
        assert_non_null(strstr(err.msg, "with no semaphore ordering them"));
      }
      free(mut);
    }
    free(text);
  }
  assert_true(mutants - drains >= 12);
  assert_int_equal(caught, mutants - drains);
  ot_chip_free(chip);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_examples_have_no_races),
    cmocka_unit_test(test_mutants_are_caught),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
