/* Encode -> decode -> disassemble -> assemble round trips, per opcode (generated from the
** table) and over a seeded random program of more than 10,000 instructions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "isa_test_util.h"

/* A program with a tensor and a constant, so HBM patterns print both as $name and as hbm. */
static ot_program *program_with_tensors(void) {
  ot_program *p = ot_program_new();
  ot_tensor_info t = {.name = "x", .dtype = OT_DT_FP32, .role = OT_ROLE_INPUT, .ndim = 2, .shape = {1024, 1024}, .offset = 4096};
  assert_int_equal(ot_program_add_tensor(p, &t, NULL), OT_OK);
  float vals[4] = {1.5f, -2.0f, 0.0f, 3.25f};
  ot_tensor_info c = {.name = "k", .dtype = OT_DT_FP32, .role = OT_ROLE_CONST, .ndim = 1, .shape = {4}, .offset = 0, .data = (uint8_t *)vals};
  assert_int_equal(ot_program_add_tensor(p, &c, NULL), OT_OK);
  return p;
}

/* Text round trip: disassemble, reassemble, compare encodings; print both on failure. */
static void check_text_roundtrip(const ot_program *p) {
  char *text = tu_disasm(p);
  assert_non_null(text);
  ot_program *back = NULL;
  ot_error err;
  ot_error_clear(&err);
  ot_status s = ot_asm_text(text, "roundtrip", &back, &err);
  if (s) fprintf(stderr, "reassembly failed:\n%s\n--- text ---\n%.4000s\n", err.msg, text);
  assert_int_equal(s, OT_OK);
  if (tu_programs_differ(p, back)) {
    char *again = tu_disasm(back);
    fprintf(stderr, "round trip changed the program:\n--- first ---\n%.3000s\n--- second ---\n%.3000s\n", text, again);
    free(again);
    fail();
  }
  ot_program_free(back);
  free(text);
}

/* Binary round trip through the program file format. */
static void check_file_roundtrip(const ot_program *p) {
  void *bytes;
  size_t n;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_program_serialize(p, &bytes, &n, &err), OT_OK);
  ot_program *back = NULL;
  ot_status s = ot_program_deserialize(bytes, n, &back, &err);
  if (s) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(s, OT_OK);
  assert_false(tu_programs_differ(p, back));
  ot_program_free(back);
  free(bytes);
}

static void test_each_opcode(void **state) {
  (void)state;
  tu_seed(1);
  for (unsigned op = 0; op < OT_OP_COUNT; op++) {
    for (int rep = 0; rep < 50; rep++) {
      ot_program *p = program_with_tensors();
      ot_engine eng = OT_ENG_SYNC;
      for (unsigned e = 0; e < OT_ENG_COUNT; e++) if (ot_opcodes[op].engines & OT_ENG_BIT(e)) { eng = (ot_engine)e; break; }
      ot_stream *s = ot_program_stream(p, 0, eng);
      ot_insn in, dec;
      tu_random_insn(&in, (ot_opcode)op, 1);
      assert_int_equal(ot_stream_append(s, &in), OT_OK);
      /* encode -> decode gives the same encoding */
      ot_wbuf w = {0}, d = {0}, w2 = {0}, d2 = {0};
      assert_int_equal(ot_insn_encode(&in, &w, &d, NULL), OT_OK);
      size_t used;
      assert_int_equal(ot_insn_decode(w.w, w.n, d.w, d.n, &dec, &used, NULL), OT_OK);
      assert_int_equal(used, w.n);
      assert_int_equal(ot_insn_encode(&dec, &w2, &d2, NULL), OT_OK);
      assert_int_equal(w.n, w2.n);
      assert_memory_equal(w.w, w2.w, w.n * 4);
      assert_int_equal(d.n, d2.n);
      if (d.n) assert_memory_equal(d.w, d2.w, d.n * 4);
      check_text_roundtrip(p);
      check_file_roundtrip(p);
      ot_wbuf_free(&w); ot_wbuf_free(&d); ot_wbuf_free(&w2); ot_wbuf_free(&d2);
      ot_program_free(p);
    }
  }
}

static void test_random_program(void **state) {
  (void)state;
  tu_seed(20261126);
  ot_program *p = program_with_tensors();
  const uint32_t per_stream = 2200; /* 5 streams: 11,000 instructions */
  for (unsigned e = 0; e < OT_ENG_COUNT; e++) {
    ot_stream *s = ot_program_stream(p, 0, (ot_engine)e);
    while (s->n < per_stream) {
      ot_opcode op = (ot_opcode)tu_below(OT_OP_COUNT);
      if (!(ot_opcodes[op].engines & OT_ENG_BIT(e))) continue;
      ot_insn in;
      tu_random_insn(&in, op, per_stream);
      assert_int_equal(ot_stream_append(s, &in), OT_OK);
    }
  }
  assert_true(ot_program_insn_count(p) >= 10000);
  check_text_roundtrip(p);
  check_file_roundtrip(p);
  ot_program_free(p);
}

/* The indirect DMAs in their documented syntax: assembled, they keep the operand order (q, dst, src,
** idx, sem) with all three patterns in the DMA descriptor, and disassemble to the same lines. */
static void test_indirect_dma_text(void **state) {
  (void)state;
  static const char *const lines[] = {
    "    dma_gather q1, sb.fp32[0:128]@64[1,64], $emb[64,1000][1,64], sb.int32[0:128]@0, s1\n",
    "    dma_scatter_add q2, $emb[64,1000][1,64], sb.bf16[0:128]@64[1,128], sb.int32[0:128]@0[1,2], s3\n",
  };
  char text[1024];
  snprintf(text, sizeof text, ".tensor emb fp32 [1000,64] input\n.engine sync\n%s%s", lines[0], lines[1]);
  ot_program *p = NULL;
  ot_error err;
  ot_error_clear(&err);
  if (ot_asm_text(text, "idma", &p, &err)) fail_msg("%s", err.msg);
  const ot_stream *s = &p->streams[0];
  assert_int_equal(s->n, 2);
  assert_int_equal(s->insns[0].op, OT_OP_DMA_GATHER);
  assert_int_equal(s->insns[1].op, OT_OP_DMA_SCATTER_ADD);
  assert_int_equal(s->insns[0].o[0].i, 1);
  assert_int_equal(s->insns[0].o[4].i, 1);
  assert_int_equal(s->insns[1].o[4].i, 3);
  assert_int_equal(s->insns[0].o[3].ap.dtype, OT_DT_INT32);
  assert_int_equal(s->insns[1].o[3].ap.dim[0].size, 2);
  ot_wbuf w = {0}, d = {0};
  assert_int_equal(ot_insn_encode(&s->insns[0], &w, &d, NULL), OT_OK);
  assert_int_equal(w.n, 4);       /* word 0, q, descriptor offset, sem */
  assert_int_equal(d.n, 6 + 8 + 4); /* dst (1 dim), src (2 dims), idx (no dims) */
  ot_wbuf_free(&w), ot_wbuf_free(&d);
  char *dis = tu_disasm(p);
  assert_non_null(dis);
  for (int i = 0; i < 2; i++)
    if (!strstr(dis, lines[i])) fail_msg("missing\n%s\nin\n%s", lines[i], dis);
  free(dis);
  check_text_roundtrip(p);
  check_file_roundtrip(p);
  ot_program_free(p);
}

/* Decoding never reads past the words it is given, whatever they hold. */
static void test_decode_garbage(void **state) {
  (void)state;
  tu_seed(7);
  uint32_t w[64], descs[16];
  for (int rep = 0; rep < 200000; rep++) {
    size_t n = 1 + tu_below(64);
    for (size_t i = 0; i < n; i++) w[i] = (uint32_t)tu_next();
    for (size_t i = 0; i < 16; i++) descs[i] = (uint32_t)tu_next();
    if (tu_below(2)) w[0] = OT_W0_MAKE(tu_below(OT_OP_COUNT), 1 + tu_below((uint32_t)n));
    ot_insn in;
    size_t used = 0;
    if (ot_insn_decode(w, n, descs, tu_below(17), &in, &used, NULL) == OT_OK) assert_true(used >= 1 && used <= n);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_each_opcode),
    cmocka_unit_test(test_random_program),
    cmocka_unit_test(test_decode_garbage),
    cmocka_unit_test(test_indirect_dma_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
