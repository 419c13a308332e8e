/* Remote semaphores (sem_inc core=, dma_copy sem_core=): cross-core synchronisation on one chip.
** Semantics (the increment lands on the other core), timing (sequencer.remote_sem_latency_ns, then
** the usual sem_latency_ns), the race checker (a remote increment is a synchronisation edge; a
** misplaced one is caught), statistics (who signalled), cross-core deadlocks, run-time errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sim_test_util.h"

static const ot_trace_event *core_event(const ot_sim *s, uint32_t core, ot_engine eng, ot_event_kind kind, unsigned nth) {
  const ot_trace *t = ot_sim_get_trace(s);
  for (size_t i = 0; i < t->n; i++) {
    const ot_trace_event *e = &t->ev[i];
    if (e->core == core && e->track_kind == OT_TRACK_ENGINE && e->track == eng && e->kind == kind && nth-- == 0) return e;
  }
  return NULL;
}

static ot_ps ns(double v) { return (ot_ps)(v * 1000.0 + 0.5); }

static void test_sem_inc_core_timing(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  ot_program *p = st_asm(".chip trn2\n"
                         ".engine sync\n  sem_inc s3, core=1\n"
                         ".engine vector core 1\n  sem_wait s3, 1\n  sem_inc s4\n");
  assert_non_null(p);
  ot_error err;
  ot_error_clear(&err);
  ot_sim *s = st_run(chip, p, NULL, &err);
  if (!s) fprintf(stderr, "%s\n", err.msg);
  assert_non_null(s);
  const ot_trace_event *inc = core_event(s, 0, OT_ENG_SYNC, OT_EV_INSN, 0);
  const ot_trace_event *wait = core_event(s, 1, OT_ENG_VECTOR, OT_EV_WAIT, 0);
  assert_non_null(inc);
  assert_non_null(wait);
  /* lands remote_sem_latency_ns after the sem_inc completes; the waiter sees it sem_latency_ns later */
  ot_ps landed = inc->start + inc->dur + ns(chip->seq.remote_sem_latency_ns);
  assert_int_equal(wait->start + wait->dur, landed + ns(chip->seq.sem_latency_ns));
  const ot_sim_stats *st = ot_sim_get_stats(s);
  assert_int_equal(st->remote_signals, 1);
  char who[64];
  assert_string_equal(ot_sim_stats_signallers(st, 1, 3, who, sizeof who), "core0");
  assert_string_equal(ot_sim_stats_signallers(st, 1, 4, who, sizeof who), "vector");
  assert_string_equal(ot_sim_stats_signallers(st, 0, 3, who, sizeof who), "nobody"); /* core 0's own s3 */
  ot_sim_free(s);
  /* the same program without core=: core 1 waits for ever -- a deadlock naming core 1's engine */
  ot_program *q = st_asm(".chip trn2\n.engine sync\n  sem_inc s3\n.engine vector core 1\n  sem_wait s3, 1\n");
  ot_error_clear(&err);
  assert_null(st_run(chip, q, NULL, &err));
  assert_non_null(strstr(err.msg, "deadlock"));
  assert_non_null(strstr(err.msg, "core 1"));
  ot_program_free(q);
  /* functional-only: no latency at all */
  ot_sim_options o;
  ot_sim_options_default(&o);
  o.mode = OT_SIM_FUNCTIONAL;
  s = st_run(chip, p, &o, &err);
  assert_non_null(s);
  assert_int_equal(ot_sim_get_stats(s)->total, 0);
  ot_sim_free(s);
  ot_program_free(p);
  ot_chip_free(chip);
}

/* A ping-pong between two cores deadlocks when both wait first: every blocked engine of each core
** is named, with both cores' semaphores. */
static void test_cross_core_deadlock(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  ot_program *p = st_asm(".chip trn2\n"
                         ".engine sync\n  sem_wait s1, 1\n  sem_inc s2, core=1\n"
                         ".engine sync core 1\n  sem_wait s2, 1\n  sem_inc s1, core=0\n"
                         ".engine gpsimd core 1\n  sem_wait s7, 1\n");
  ot_error err;
  ot_error_clear(&err);
  assert_null(st_run(chip, p, NULL, &err));
  assert_non_null(strstr(err.msg, "deadlock"));
  assert_non_null(strstr(err.msg, "semaphores of core 0"));
  assert_non_null(strstr(err.msg, "semaphores of core 1"));
  unsigned waits = 0;
  for (const char *m = err.msg; (m = strstr(m, "waits for")); m++) waits++;
  assert_int_equal(waits, 3);
  ot_program_free(p);
  /* the working ping-pong */
  p = st_asm(".chip trn2\n"
             ".engine sync\n  sem_inc s2, core=1\n  sem_wait s1, 1\n"
             ".engine sync core 1\n  sem_wait s2, 1\n  sem_inc s1, core=0\n");
  ot_sim *s = st_run(chip, p, NULL, &err);
  assert_non_null(s);
  ot_sim_free(s);
  ot_program_free(p);
  ot_chip_free(chip);
}

static const char dma_prog[] =
    ".chip trn2\n"
    ".tensor a fp32 [4, 8] input\n.tensor b fp32 [4, 8] scratch\n.tensor c fp32 [4, 8] output\n"
    ".engine sync\n  dma_copy q0, $b, $a, s2, sem_core=1\n"
    ".engine sync core 1\n  sem_wait s2, 1\n  dma_copy q0, $c, $b, s0\n  sem_wait s0, 1\n";

static unsigned run_counting_races(const ot_chip *chip, const char *text, float *c_out, ot_error *err) {
  ot_program *p = st_asm(text);
  assert_non_null(p);
  ot_sim_options o;
  ot_sim_options_default(&o);
  o.race_check = true;
  o.trace = true;
  ot_sim *s = NULL;
  assert_int_equal(ot_sim_new(chip, p, &o, &s, err), OT_OK);
  float a[32];
  for (int i = 0; i < 32; i++) a[i] = (float)i * 0.5f - 3.0f;
  assert_int_equal(ot_sim_hbm_write(s, ot_program_find_tensor(p, "a")->offset, a, sizeof a, err), OT_OK);
  ot_sim_run(s, err);
  unsigned found = 0;
  for (const char *m = err->msg; (m = strstr(m, "race (")); m++) found++;
  if (c_out) assert_int_equal(ot_sim_hbm_read(s, ot_program_find_tensor(p, "c")->offset, c_out, 32 * sizeof(float), err), OT_OK);
  ot_sim_free(s);
  ot_program_free(p);
  return found;
}

static void test_dma_sem_core_orders_the_other_core(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  ot_error err;
  ot_error_clear(&err);
  float c[32];
  assert_int_equal(run_counting_races(chip, dma_prog, c, &err), 0);
  if (err.count) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(err.count, 0);
  for (int i = 0; i < 32; i++) assert_true(c[i] == (float)i * 0.5f - 3.0f);
  /* mutant: the completion signals core 0 (its own semaphore) -- core 1 reads b unordered */
  const char *bad = ".chip trn2\n"
                    ".tensor a fp32 [4, 8] input\n.tensor b fp32 [4, 8] scratch\n.tensor c fp32 [4, 8] output\n"
                    ".engine sync\n  dma_copy q0, $b, $a, s2\n  sem_inc s2, core=1\n"
                    ".engine sync core 1\n  sem_wait s2, 1\n  dma_copy q0, $c, $b, s0\n  sem_wait s0, 1\n";
  ot_error_clear(&err);
  assert_true(run_counting_races(chip, bad, NULL, &err) >= 1);
  assert_non_null(strstr(err.msg, "core 1 sync pc 1"));
  assert_non_null(strstr(err.msg, "core 0 sync pc 0"));
  ot_chip_free(chip);
}

/* The remote edge carries what the sender did before it: core 0 waits for its own DMA, then
** signals core 1 (race-free); signalling before the wait is a race, reported across cores. */
static void test_remote_edge_is_a_happens_before(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  const char *good = ".chip trn2\n"
                     ".tensor a fp32 [4, 8] input\n.tensor b fp32 [4, 8] scratch\n.tensor c fp32 [4, 8] output\n"
                     ".engine sync\n  dma_copy q1, $b, $a, s0\n  sem_wait s0, 1\n  sem_inc s9, core=1\n"
                     ".engine sync core 1\n  sem_wait s9, 1\n  dma_copy q3, $c, $b, s0\n  sem_wait s0, 1\n";
  const char *bad = ".chip trn2\n"
                    ".tensor a fp32 [4, 8] input\n.tensor b fp32 [4, 8] scratch\n.tensor c fp32 [4, 8] output\n"
                    ".engine sync\n  dma_copy q1, $b, $a, s0\n  sem_inc s9, core=1\n  sem_wait s0, 1\n"
                    ".engine sync core 1\n  sem_wait s9, 1\n  dma_copy q3, $c, $b, s0\n  sem_wait s0, 1\n";
  ot_error err;
  ot_error_clear(&err);
  float c[32];
  assert_int_equal(run_counting_races(chip, good, c, &err), 0);
  assert_int_equal(err.count, 0);
  for (int i = 0; i < 32; i++) assert_true(c[i] == (float)i * 0.5f - 3.0f);
  ot_error_clear(&err);
  assert_true(run_counting_races(chip, bad, NULL, &err) >= 1);
  assert_non_null(strstr(err.msg, "with no semaphore ordering them"));
  ot_chip_free(chip);
}

static void test_dma_remote_timing_and_errors(void **state) {
  (void)state;
  ot_chip *chip = st_chip("trn2");
  ot_program *p = st_asm(dma_prog);
  ot_error err;
  ot_error_clear(&err);
  ot_sim_options o;
  ot_sim_options_default(&o);
  o.trace = true;
  o.mode = OT_SIM_TIMING;
  ot_sim *s = st_run(chip, p, &o, &err);
  assert_non_null(s);
  const ot_trace *t = ot_sim_get_trace(s);
  const ot_trace_event *xfer = NULL;
  for (size_t i = 0; i < t->n && !xfer; i++)
    if (t->ev[i].core == 0 && t->ev[i].track_kind == OT_TRACK_QUEUE) xfer = &t->ev[i];
  assert_non_null(xfer);
  const ot_trace_event *wait = core_event(s, 1, OT_ENG_SYNC, OT_EV_WAIT, 0);
  assert_non_null(wait);
  assert_int_equal(wait->start + wait->dur,
                   xfer->start + xfer->dur + ns(chip->seq.remote_sem_latency_ns) + ns(chip->seq.sem_latency_ns));
  char who[64];
  assert_string_equal(ot_sim_stats_signallers(ot_sim_get_stats(s), 1, 2, who, sizeof who), "core0");
  ot_sim_free(s);
  ot_program_free(p);
  /* a core outside the program: a run-time error naming the instruction */
  p = st_asm(".chip trn2\n.engine sync\n  sem_inc s1, core=3\n.engine sync core 1\n  nop\n");
  ot_error_clear(&err);
  assert_null(st_run(chip, p, NULL, &err));
  assert_non_null(strstr(err.msg, "core 3 does not run in this program"));
  assert_non_null(strstr(err.msg, "sem_inc"));
  ot_program_free(p);
  ot_chip_free(chip);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sem_inc_core_timing),
      cmocka_unit_test(test_cross_core_deadlock),
      cmocka_unit_test(test_dma_sem_core_orders_the_other_core),
      cmocka_unit_test(test_remote_edge_is_a_happens_before),
      cmocka_unit_test(test_dma_remote_timing_and_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
