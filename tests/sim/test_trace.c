/* The simulator's presentation layer, on hand-built data (no event loop needed):
**   - the trace writer: a trace is written, parsed back with cJSON and checked against the rules
**     of the Chrome trace-event format (top-level object with a traceEvents array; ph X or M;
**     X events with numeric ts >= 0 and dur >= 0, integer pid/tid, string name; M events
**     process_name / thread_name / *_sort_index with args.name / args.sort_index; every (pid, tid)
**     of an X event named), names with quotes, backslashes, control characters and non-ASCII
**     text escaped so they read back exactly;
**   - string interning and the writer's checks of malformed events;
**   - the statistics printers: the table and the JSON, field by field. */
#include <cjson/cJSON.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sim/sim.h"

static char *capture_trace(const ot_trace *t, const ot_chip *chip, ot_status *st, ot_error *err) {
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  assert_non_null(f);
  *st = ot_trace_write_json(t, chip, f, err);
  fclose(f);
  return buf;
}

static void add(ot_trace *t, uint32_t core, ot_track_kind tk, uint16_t track, ot_event_kind k, ot_ps start, ot_ps dur,
                const char *name, const char *tag) {
  ot_trace_event e = {start, dur, core, (uint8_t)tk, (uint8_t)k, track, ot_trace_string(t, name), tag ? ot_trace_string(t, tag) : 0};
  assert_true(ot_trace_add(t, &e));
}

static const char *const tricky[] = {
  "quote \" and backslash \\ and slash /",
  "newline\nand tab\tand cr\r and bell\a and del\x7f",
  "caf\xc3\xa9 \xe2\x86\x92 \xf0\x9f\x98\x80",   /* café → 😀: 2-, 3- and 4-byte UTF-8 */
};

/* ---- the rules of the format -------------------------------------------------------------- */
static bool is_int(const cJSON *j) { return cJSON_IsNumber(j) && j->valuedouble == floor(j->valuedouble); }

typedef struct { double pid, tid; } ptid;

static void check_meta(const cJSON *ev, const char *name) {
  const cJSON *args = cJSON_GetObjectItemCaseSensitive(ev, "args");
  assert_true(cJSON_IsObject(args));
  if (!strcmp(name, "process_name") || !strcmp(name, "thread_name"))
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(args, "name")));
  else if (!strcmp(name, "process_sort_index") || !strcmp(name, "thread_sort_index"))
    assert_true(is_int(cJSON_GetObjectItemCaseSensitive(args, "sort_index")));
  else
    fail_msg("unknown metadata event '%s'", name);
}

static void check_x(const cJSON *ev) {
  const cJSON *ts = cJSON_GetObjectItemCaseSensitive(ev, "ts"), *dur = cJSON_GetObjectItemCaseSensitive(ev, "dur");
  assert_true(cJSON_IsNumber(ts) && ts->valuedouble >= 0);
  assert_true(cJSON_IsNumber(dur) && dur->valuedouble >= 0);
  const char *cat = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "cat"));
  assert_non_null(cat);
  assert_true(!strcmp(cat, "insn") || !strcmp(cat, "wait") || !strcmp(cat, "dma"));
}

static bool named(const ptid *names, size_t n, double pid, double tid) {
  for (size_t i = 0; i < n; i++)
    if (names[i].pid == pid && names[i].tid == tid) return true;
  return false;
}

/* Check every rule; returns the parsed document (caller deletes). */
static cJSON *check_format(const char *text) {
  cJSON *root = cJSON_Parse(text);
  if (!root) fprintf(stderr, "not JSON near: %.80s\n", cJSON_GetErrorPtr());
  assert_non_null(root);
  assert_true(cJSON_IsObject(root));
  const cJSON *evs = cJSON_GetObjectItemCaseSensitive(root, "traceEvents");
  assert_true(cJSON_IsArray(evs));
  assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "displayTimeUnit")), "ns");
  size_t n = (size_t)cJSON_GetArraySize(evs), nn = 0;
  ptid *names = calloc(n + 1, sizeof *names);
  const cJSON *ev;
  cJSON_ArrayForEach(ev, evs) {
    assert_true(cJSON_IsObject(ev));
    const char *ph = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "ph"));
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "name"));
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(ev, "pid"), *tid = cJSON_GetObjectItemCaseSensitive(ev, "tid");
    assert_non_null(ph);
    assert_non_null(name);
    assert_true(is_int(pid) && pid->valuedouble >= 1); /* pid 0 is the idle task to Perfetto */
    assert_true(is_int(tid) && tid->valuedouble >= 0);
    if (!strcmp(ph, "M")) {
      check_meta(ev, name);
      if (!strcmp(name, "thread_name")) names[nn++] = (ptid){pid->valuedouble, tid->valuedouble};
    } else {
      assert_string_equal(ph, "X");
      check_x(ev);
      assert_true(tid->valuedouble >= 1);
    }
  }
  /* Every (pid, tid) of a slice has a thread_name (metadata comes first in our files). */
  cJSON_ArrayForEach(ev, evs) {
    if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "ph")), "X")) continue;
    assert_true(named(names, nn, cJSON_GetObjectItemCaseSensitive(ev, "pid")->valuedouble,
                      cJSON_GetObjectItemCaseSensitive(ev, "tid")->valuedouble));
  }
  free(names);
  return root;
}

static const cJSON *find_x(const cJSON *root, const char *name) {
  const cJSON *ev;
  cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(root, "traceEvents")) {
    const char *ph = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "ph"));
    const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "name"));
    if (!strcmp(ph, "X") && !strcmp(n, name)) return ev;
  }
  return NULL;
}

static const char *thread_name(const cJSON *root, double pid, double tid) {
  const cJSON *ev;
  cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(root, "traceEvents")) {
    const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "name"));
    if (strcmp(n, "thread_name") || cJSON_GetObjectItemCaseSensitive(ev, "pid")->valuedouble != pid ||
        cJSON_GetObjectItemCaseSensitive(ev, "tid")->valuedouble != tid)
      continue;
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ev, "args"), "name"));
  }
  return NULL;
}

static double num(const cJSON *o, const char *k) {
  const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
  assert_true(cJSON_IsNumber(j));
  return j->valuedouble;
}

/* ---- trace tests ------------------------------------------------------------------------------ */
static void test_trace_format(void **state) {
  (void)state;
  ot_chip *chip = NULL;
  assert_int_equal(ot_chip_preset("trn2", &chip, NULL), OT_OK);
  ot_trace t = {0};
  add(&t, 0, OT_TRACK_ENGINE, OT_ENG_TENSOR, OT_EV_INSN, 1234567, 350, "matmul ps.fp32[0:128]@0[1,512], ...", "layer0.qkv");
  add(&t, 0, OT_TRACK_ENGINE, OT_ENG_VECTOR, OT_EV_WAIT, 0, 1000000, "wait s3 >= 5", NULL);
  add(&t, 0, OT_TRACK_QUEUE, 3, OT_EV_DMA, 2000001, 1416000, "dma_copy q3, ...", NULL);
  add(&t, 1, OT_TRACK_QUEUE, 15, OT_EV_DMA, 5, 0, "dma_copy q15, ...", "");
  add(&t, 1, OT_TRACK_ENGINE, OT_ENG_SYNC, OT_EV_INSN, UINT64_C(12345678901234567), 1, "halt", NULL);
  for (size_t i = 0; i < sizeof tricky / sizeof tricky[0]; i++)
    add(&t, 0, OT_TRACK_ENGINE, OT_ENG_GPSIMD, OT_EV_INSN, 10 * i, 1, tricky[i], tricky[i]);
  ot_status st;
  ot_error err;
  ot_error_clear(&err);
  char *text = capture_trace(&t, chip, &st, &err);
  assert_int_equal(st, OT_OK);
  for (const char *p = text; *p; p++) assert_true((unsigned char)*p < 0x80); /* pure ASCII */
  cJSON *root = check_format(text);

  /* Times: exact microseconds from picoseconds. */
  const cJSON *mm = find_x(root, "matmul ps.fp32[0:128]@0[1,512], ...");
  assert_non_null(mm);
  assert_true(strstr(text, "\"ts\": 1.234567, \"dur\": 0.000350") != NULL);
  assert_true(strstr(text, "\"ts\": 12345678901.234567") != NULL);
  assert_true(fabs(num(mm, "ts") - 1.234567) < 1e-12);
  assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(mm, "cat")), "insn");
  assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(mm, "args"), "tag")),
                      "layer0.qkv");
  assert_string_equal(thread_name(root, num(mm, "pid"), num(mm, "tid")), "tensor");

  const cJSON *w = find_x(root, "wait s3 >= 5");
  assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(w, "cat")), "wait");
  assert_null(cJSON_GetObjectItemCaseSensitive(w, "args")); /* no tag, no args */
  assert_string_equal(thread_name(root, num(w, "pid"), num(w, "tid")), "vector");

  const cJSON *q = find_x(root, "dma_copy q3, ...");
  assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(q, "cat")), "dma");
  assert_string_equal(thread_name(root, num(q, "pid"), num(q, "tid")), "dma q3");
  const cJSON *q15 = find_x(root, "dma_copy q15, ...");
  assert_true(num(q15, "pid") != num(q, "pid")); /* core 1 is its own process */
  assert_string_equal(thread_name(root, num(q15, "pid"), num(q15, "tid")), "dma q15");

  /* Tricky names and tags read back byte for byte. */
  for (size_t i = 0; i < sizeof tricky / sizeof tricky[0]; i++) {
    const cJSON *e = find_x(root, tricky[i]);
    assert_non_null(e);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "args"), "tag")),
                        tricky[i]);
  }

  /* Engines are sorted before queues; core processes are named "core N". */
  assert_non_null(strstr(text, "\"args\": {\"name\": \"core 0\"}"));
  assert_non_null(strstr(text, "\"args\": {\"name\": \"core 1\"}"));
  assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "otherData"), "chip")),
                      "trn2");
  cJSON_Delete(root);
  free(text);
  ot_trace_free(&t);
  ot_chip_free(chip);
}

static void test_sort_index(void **state) {
  (void)state;
  ot_trace t = {0};
  add(&t, 0, OT_TRACK_QUEUE, 0, OT_EV_DMA, 0, 1, "d", NULL);
  add(&t, 0, OT_TRACK_ENGINE, OT_ENG_GPSIMD, OT_EV_INSN, 0, 1, "g", NULL);
  ot_status st;
  char *text = capture_trace(&t, NULL, &st, NULL);
  assert_int_equal(st, OT_OK);
  cJSON *root = check_format(text);
  /* Each thread's sort index: engines 0..4 in engine order, queues after them. */
  double idx[2] = {-1, -1};
  const cJSON *ev;
  cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(root, "traceEvents")) {
    if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "name")), "thread_sort_index")) continue;
    const char *tn = thread_name(root, num(ev, "pid"), num(ev, "tid"));
    double si = num(cJSON_GetObjectItemCaseSensitive(ev, "args"), "sort_index");
    if (!strcmp(tn, "gpsimd")) idx[0] = si;
    if (!strcmp(tn, "dma q0")) idx[1] = si;
    if (!strcmp(tn, "sync")) assert_true(si == 0);
  }
  assert_true(idx[0] >= 0 && idx[1] > idx[0]);
  assert_null(cJSON_GetObjectItemCaseSensitive(root, "otherData")->child->next); /* no chip given */
  cJSON_Delete(root);
  free(text);
  ot_trace_free(&t);
}

static void test_empty_trace(void **state) {
  (void)state;
  ot_trace t = {0};
  ot_status st;
  char *text = capture_trace(&t, NULL, &st, NULL);
  assert_int_equal(st, OT_OK);
  cJSON *root = check_format(text);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "traceEvents")), 0);
  cJSON_Delete(root);
  free(text);
  ot_trace_free(&t);
  ot_trace_free(&t); /* freeing twice is harmless: the struct is zeroed */
}

static void test_intern(void **state) {
  (void)state;
  ot_trace t = {0};
  assert_int_equal(ot_trace_string(&t, ""), 0);
  assert_int_equal(ot_trace_string(&t, NULL), 0);
  uint32_t a = ot_trace_string(&t, "wait s1 >= 2");
  uint32_t b = ot_trace_string(&t, "wait s1 >= 3");
  assert_true(a && b && a != b);
  /* Many strings (the index grows), then every one again: same offsets, no new bytes. */
  enum { N = 5000 };
  static uint32_t off[N];
  char buf[32];
  for (int i = 0; i < N; i++) {
    snprintf(buf, sizeof buf, "name %d", i);
    off[i] = ot_trace_string(&t, buf);
    assert_true(off[i] != 0);
  }
  size_t len = t.strings_len;
  for (int i = 0; i < N; i++) {
    snprintf(buf, sizeof buf, "name %d", i);
    assert_int_equal(ot_trace_string(&t, buf), off[i]);
    assert_string_equal(t.strings + off[i], buf);
  }
  assert_int_equal(t.strings_len, len);
  assert_int_equal(ot_trace_string(&t, "wait s1 >= 2"), a);
  ot_trace_free(&t);
}

static void expect_bad(ot_trace_event e, const char *needle) {
  ot_trace t = {0};
  e.name = ot_trace_string(&t, "x");
  if (e.tag == 99) e.tag = 1000; /* outside the pool */
  assert_true(ot_trace_add(&t, &e));
  ot_status st;
  ot_error err;
  ot_error_clear(&err);
  char *text = capture_trace(&t, NULL, &st, &err);
  assert_int_equal(st, OT_EINVAL);
  if (!strstr(err.msg, needle)) fprintf(stderr, "expected '%s' in: %s\n", needle, err.msg);
  assert_non_null(strstr(err.msg, needle));
  free(text);
  ot_trace_free(&t);
}

static void test_bad_events(void **state) {
  (void)state;
  expect_bad((ot_trace_event){.track_kind = OT_TRACK_ENGINE, .track = OT_ENG_COUNT}, "engine 5 does not exist");
  expect_bad((ot_trace_event){.kind = 7}, "bad kind");
  expect_bad((ot_trace_event){.track_kind = 9}, "bad kind");
  expect_bad((ot_trace_event){.tag = 99}, "string offset");
  expect_bad((ot_trace_event){.start = UINT64_MAX, .dur = 2}, "overflows");
}

/* ---- statistics printers ----------------------------------------------------------------------- */
typedef struct {
  ot_sim_stats s;
  ot_engine_stats eng[2 * OT_ENG_COUNT];
  ot_queue_stats queue[2 * 16];
  ot_ps idle_sem[2 * OT_ENG_COUNT][32];
  uint32_t signallers[2 * 32];
} fake_stats;

static void fake(fake_stats *f) {
  memset(f, 0, sizeof *f);
  f->s.total = 2000000; /* 2 us */
  f->s.cores = 2;
  f->s.queues = 16;
  f->s.semaphores = 32;
  f->s.eng = f->eng;
  f->s.queue = f->queue;
  for (int i = 0; i < 2 * OT_ENG_COUNT; i++) f->eng[i].idle_sem = f->idle_sem[i];
  ot_engine_stats *pe = &f->eng[OT_ENG_TENSOR];
  pe->busy = 1500000;
  pe->insns = 12;
  pe->insn_by_op[OT_OP_MATMUL] = 8;
  pe->busy_cycles = 2100;
  pe->idle[OT_IDLE_SEMAPHORE] = 400000;
  pe->idle[OT_IDLE_DONE] = 100000;
  f->idle_sem[OT_ENG_TENSOR][3] = 300000;
  f->idle_sem[OT_ENG_TENSOR][1] = 50000;
  f->idle_sem[OT_ENG_TENSOR][7] = 50001;
  f->idle_sem[OT_ENG_TENSOR][9] = 1;
  f->queue[3].transfers = 2;
  f->queue[3].bytes = 65536;
  f->queue[3].busy = 1000000;
  f->queue[16 + 5].transfers = 1; /* core 1, q5 */
  f->s.mem[OT_MEM_HBM].read = 65536;
  f->s.mem[OT_MEM_SBUF].written = 65536;
  f->s.model_flops = 2 * 128 * 128 * 512;
  f->s.transpose_flops = 1000;
  f->s.hfu = 0.5, f->s.mfu = 0.25, f->s.mbu = 0.125, f->s.tensor_util = 0.75;
  f->s.warnings = 2;
  f->s.sem_signallers = f->signallers;
  f->signallers[7] = 1u << OT_SIGNAL_DMA;
  f->signallers[1] = (1u << OT_ENG_VECTOR) | (1u << OT_SIGNAL_DMA);
}

static void test_stats_table(void **state) {
  (void)state;
  static fake_stats f;
  fake(&f);
  char *buf = NULL;
  size_t n = 0;
  FILE *out = open_memstream(&buf, &n);
  ot_sim_stats_print(&f.s, NULL, out);
  fclose(out);
  const char *want[] = {"simulated time: 2000.000 ns (2.000 us)", "12 instructions, 2 warning(s)", "core 0", "core 1",
                        "tensor", "1500.000", "75.00", "idle semaphore ns", "400.000",
                        "tensor   waited longest on s3 (300.000 ns, signalled by nobody), s7 (50.001 ns, signalled by DMA), s1 (50.000 ns, signalled by vector+DMA)",
                        "q3", "65536", "q5", "HFU 50.00 %", "MFU 25.00 %", "MBU 12.50 %", "TensorE utilisation 75.00 %",
                        "hbm", "16777216 model"};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    if (!strstr(buf, want[i])) fprintf(stderr, "missing '%s' in:\n%s\n", want[i], buf);
    assert_non_null(strstr(buf, want[i]));
  }
  assert_null(strstr(buf, "s9 (")); /* only the three longest waits */
  assert_null(strstr(buf, "q4 "));  /* idle queues are not listed */
  free(buf);
  assert_string_equal(ot_idle_reason_name(OT_IDLE_SEMAPHORE), "semaphore wait");
  assert_string_equal(ot_idle_reason_name((ot_idle_reason)99), "?");
}

static void test_stats_json(void **state) {
  (void)state;
  static fake_stats f;
  fake(&f);
  ot_chip *chip = NULL;
  assert_int_equal(ot_chip_preset("trn2", &chip, NULL), OT_OK);
  char *buf = NULL;
  size_t n = 0;
  FILE *out = open_memstream(&buf, &n);
  assert_int_equal(ot_sim_stats_json(&f.s, chip, out, NULL), OT_OK);
  fclose(out);
  cJSON *j = cJSON_Parse(buf);
  assert_non_null(j);
  assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "chip")), "trn2");
  assert_true(num(j, "total_ps") == 2000000 && num(j, "total_ns") == 2000 && num(j, "total_us") == 2);
  assert_true(num(j, "insns") == 12 && num(j, "warnings") == 2);
  assert_true(num(j, "hfu_percent") == 50 && num(j, "mfu_percent") == 25 && num(j, "mbu_percent") == 12.5);
  assert_true(num(j, "tensor_util_percent") == 75);
  const cJSON *cores = cJSON_GetObjectItemCaseSensitive(j, "cores");
  assert_int_equal(cJSON_GetArraySize(cores), 2);
  const cJSON *c0 = cJSON_GetArrayItem(cores, 0);
  assert_true(num(c0, "core") == 0);
  const cJSON *pe = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c0, "engines"), OT_ENG_TENSOR);
  assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pe, "engine")), "tensor");
  assert_true(num(pe, "busy_ps") == 1500000 && num(pe, "busy_percent") == 75 && num(pe, "insns") == 12);
  assert_true(num(pe, "busy_cycles") == 2100);
  const cJSON *idle = cJSON_GetObjectItemCaseSensitive(pe, "idle_ps");
  assert_true(num(idle, "semaphore") == 400000 && num(idle, "barrier") == 0 && num(idle, "port") == 0 &&
              num(idle, "done") == 100000);
  const cJSON *waits = cJSON_GetObjectItemCaseSensitive(pe, "semaphore_waits");
  assert_int_equal(cJSON_GetArraySize(waits), 4);
  assert_true(num(cJSON_GetArrayItem(waits, 0), "semaphore") == 3 && num(cJSON_GetArrayItem(waits, 0), "idle_ps") == 300000);
  assert_true(num(cJSON_GetArrayItem(waits, 3), "semaphore") == 9);
  assert_true(num(cJSON_GetObjectItemCaseSensitive(pe, "insns_by_op"), "matmul") == 8);
  const cJSON *qs = cJSON_GetObjectItemCaseSensitive(c0, "dma_queues");
  assert_int_equal(cJSON_GetArraySize(qs), 1);
  const cJSON *q3 = cJSON_GetArrayItem(qs, 0);
  assert_true(num(q3, "queue") == 3 && num(q3, "transfers") == 2 && num(q3, "bytes") == 65536);
  assert_true(num(q3, "busy_ps") == 1000000 && num(q3, "busy_percent") == 50);
  const cJSON *mem = cJSON_GetObjectItemCaseSensitive(j, "memory");
  assert_true(num(cJSON_GetObjectItemCaseSensitive(mem, "hbm"), "read_bytes") == 65536);
  assert_true(num(cJSON_GetObjectItemCaseSensitive(mem, "sb"), "written_bytes") == 65536);
  assert_true(num(cJSON_GetObjectItemCaseSensitive(mem, "ps"), "read_bytes") == 0);
  const cJSON *fl = cJSON_GetObjectItemCaseSensitive(j, "flops");
  assert_true(num(fl, "model") == 2.0 * 128 * 128 * 512 && num(fl, "transpose") == 1000);
  cJSON_Delete(j);
  free(buf);
  ot_chip_free(chip);
}

static void test_stats_zero_time(void **state) {
  (void)state;
  /* A functional-only run has no time: percentages are 0, never NaN. */
  static fake_stats f;
  fake(&f);
  f.s.total = 0;
  char *buf = NULL;
  size_t n = 0;
  FILE *out = open_memstream(&buf, &n);
  assert_int_equal(ot_sim_stats_json(&f.s, NULL, out, NULL), OT_OK);
  ot_sim_stats_print(&f.s, NULL, out);
  fclose(out);
  assert_null(strstr(buf, "nan"));
  cJSON *j = cJSON_Parse(buf); /* the JSON object comes first; cJSON stops after it */
  assert_non_null(j);
  assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "chip")));
  cJSON_Delete(j);
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_trace_format), cmocka_unit_test(test_sort_index),  cmocka_unit_test(test_empty_trace),
    cmocka_unit_test(test_intern),       cmocka_unit_test(test_bad_events),  cmocka_unit_test(test_stats_table),
    cmocka_unit_test(test_stats_json),   cmocka_unit_test(test_stats_zero_time),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
