/* sim_mem.c: SBUF/PSUM/HBM storage, views (bounds, registers, element order), element access
** and written-byte tracking, checked against the test's own addressing model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "isa/disasm.h"
#include "test_exec_util.h"

static void test_sram_init(void **state) {
  (void)state;
  ot_sram m;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_sram_init(&m, 4, 64, true, &err), OT_OK);
  assert_int_equal(m.partitions, 4);
  assert_int_equal(m.part_bytes, 64);
  assert_non_null(m.mm_written);
  for (int i = 0; i < 256; i++) assert_int_equal(m.data[i], 0);
  ot_sram_free(&m);
  assert_null(m.data);
  assert_int_equal(ot_sram_init(&m, 0, 64, false, &err), OT_EINVAL);
  assert_int_equal(ot_sram_init(&m, 128, 1ull << 40, false, &err), OT_EINVAL);
  ot_sram_free(&m); /* freeing a failed init is harmless */
}

static void test_hbm_paging(void **state) {
  (void)state;
  ot_hbm h;
  ot_error err;
  ot_error_clear(&err);
  uint64_t bytes = 96ull << 30; /* a trn2-sized HBM costs a page table, not 96 GiB */
  assert_int_equal(ot_hbm_init(&h, bytes, &err), OT_OK);
  assert_int_equal(h.n_pages, bytes >> OT_HBM_PAGE_BITS);
  uint8_t buf[5000], back[5000];
  for (int i = 0; i < 5000; i++) buf[i] = (uint8_t)(i * 7 + 1);
  uint64_t off = (3ull << OT_HBM_PAGE_BITS) - 2000; /* straddles pages 2 and 3 */
  assert_int_equal(ot_hbm_write(&h, off, buf, sizeof buf), OT_OK);
  ot_hbm_read(&h, off, back, sizeof back);
  assert_memory_equal(buf, back, sizeof buf);
  uint64_t allocated = 0;
  for (uint64_t i = 0; i < h.n_pages; i++) allocated += h.pages[i] != NULL;
  assert_int_equal(allocated, 2);
  ot_hbm_read(&h, 90ull << 30, back, 100); /* never written: zeros */
  for (int i = 0; i < 100; i++) assert_int_equal(back[i], 0);
  assert_int_equal(ot_hbm_write(&h, bytes - 4, buf, 8), OT_EINVAL);
  assert_int_equal(ot_hbm_write(&h, bytes - 4, buf, 4), OT_OK);
  ot_hbm_free(&h);
}

static void test_site_format(void **state) {
  (void)state;
  ot_insn in;
  ot_insn_init(&in, OT_OP_MEMSET);
  in.o[0].ap = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 128, 0, 8);
  in.o[1].f = 2.5f;
  in.line = 12;
  ot_site s = {NULL, 2, OT_ENG_GPSIMD, 7, &in};
  char buf[256];
  ot_site_format(&s, buf, sizeof buf);
  assert_string_equal(buf, "core 2 gpsimd pc 7 (line 12) `memset sb.fp32[0:128]@0[1,8], 2.5`");
  in.line = 0;
  ot_site_format(&s, buf, sizeof buf);
  assert_string_equal(buf, "core 2 gpsimd pc 7 `memset sb.fp32[0:128]@0[1,8], 2.5`");
  ot_site_format(&s, buf, 10); /* truncated, terminated */
  assert_int_equal(strlen(buf), 9);
}

/* ---- view resolution ------------------------------------------------------------------------ */
static ot_status resolve(xt_env *e, ot_view *v, unsigned k) {
  ot_error_clear(&e->err);
  return ot_view_resolve(v, &e->insn.o[k].ap, e->regs, e->chip, &e->site, &e->err);
}

static void test_resolve_ok(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  ot_insn_init(&e->insn, OT_OP_TENSOR_COPY);
  ot_ap *a = &e->insn.o[1].ap;
  *a = xt_ap(OT_MEM_SBUF, OT_DT_BF16, 32, 64, 100);
  a->ndim = 2, a->dim[0] = (ot_dim){-8, 3}, a->dim[1] = (ot_dim){1, 8};
  a->reg = 1 + 5;
  e->regs[5] = 60;
  ot_view v;
  assert_int_equal(resolve(e, &v, 1), OT_OK);
  assert_int_equal(v.mem, OT_MEM_SBUF);
  assert_int_equal(v.esize, 2);
  assert_int_equal(v.part_start, 32);
  assert_int_equal(v.parts, 64);
  assert_int_equal(v.offset, 160);
  assert_int_equal(v.stride[0], -16);
  assert_int_equal(v.stride[1], 2);
  assert_int_equal(v.free_elems, 24);
  /* lowest byte: 160 - 2*16 = 128 >= 0 */
  e->regs[5] = -29; /* 71 - 32 = 39 >= 0, still fine (alignment is the verifier's business) */
  assert_int_equal(resolve(e, &v, 1), OT_OK);
  /* HBM: no partitions */
  *a = xt_dense(OT_MEM_HBM, OT_DT_FP32, 0, 0, (96ull << 30) - 400, 100);
  a->reg = 0;
  assert_int_equal(resolve(e, &v, 1), OT_OK);
  assert_int_equal(v.parts, 1);
  assert_int_equal(v.free_elems, 100);
  xt_env_free(e);
}

static void test_resolve_errors(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  ot_insn_init(&e->insn, OT_OP_TENSOR_COPY);
  ot_ap *d = &e->insn.o[0].ap;
  ot_view v;
  /* the register pushes the pattern past the 224 KiB partition */
  *d = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 128, 0, 512);
  d->reg = 1 + 1;
  e->regs[1] = 229000;
  assert_int_equal(resolve(e, &v, 0), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "core 0 vector pc 0 `tensor_copy sb.fp32[0:128]@0+r1[1,512]", "dst: bytes 229000..231047"));
  assert_true(xt_msg_has(e, "offset 0 + r1 (229000) = 229000", "an SBUF partition holds 229376"));
  /* negative address */
  e->regs[1] = -4;
  assert_int_equal(resolve(e, &v, 0), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "dst: negative address", "r1 (-4)"));
  /* a negative stride reaching below 0 */
  *d = xt_ap(OT_MEM_PSUM, OT_DT_FP32, 0, 128, 8);
  d->ndim = 1, d->dim[0] = (ot_dim){-1, 4};
  assert_int_equal(resolve(e, &v, 0), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "dst: bytes -4..11", "a PSUM partition holds 16384"));
  /* partitions */
  *d = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 100, 64, 0, 4);
  assert_int_equal(resolve(e, &v, 0), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "dst: partitions 100..163", "the SBUF has 0..127"));
  /* HBM end */
  *d = xt_dense(OT_MEM_HBM, OT_DT_FP32, 0, 0, (96ull << 30) - 8, 4);
  assert_int_equal(resolve(e, &v, 0), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "dst: bytes", "HBM holds 103079215104"));
  /* an absurd stride times size does not overflow */
  *d = xt_ap(OT_MEM_HBM, OT_DT_FP32, 0, 0, 0);
  d->ndim = 4;
  for (int i = 0; i < 4; i++) d->dim[i] = (ot_dim){INT32_MAX, UINT32_MAX};
  assert_int_equal(resolve(e, &v, 0), OT_ERUNTIME);
  /* register index beyond the sequencer */
  *d = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 1, 0, 4);
  d->reg = 250;
  assert_int_equal(resolve(e, &v, 0), OT_ERUNTIME);
  assert_true(xt_msg_has(e, "dst: offset register r249", NULL));
  /* garbage memory and dtype */
  *d = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 1, 0, 4);
  d->dtype = 99;
  assert_int_equal(resolve(e, &v, 0), OT_ERUNTIME);
  d->dtype = OT_DT_FP32, d->mem = 9;
  assert_int_equal(resolve(e, &v, 0), OT_ERUNTIME);
  /* an operand not in the instruction is named generically; a zero-size view touches nothing */
  ot_ap other = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 1, 1ull << 20, 0);
  assert_int_equal(ot_view_resolve(&v, &other, e->regs, e->chip, &e->site, &e->err), OT_ERUNTIME);
  other.offset = 0;
  assert_int_equal(ot_view_resolve(&v, &other, e->regs, e->chip, &e->site, &e->err), OT_OK);
  assert_int_equal(v.free_elems, 0);
  xt_env_free(e);
}

/* ---- element access --------------------------------------------------------------------------- */
static void check_access(xt_env *e, ot_mem mem, ot_dtype t) {
  uint32_t P = mem == OT_MEM_HBM ? 1 : xt_rand_parts(), F = xt_rand_free();
  uint64_t span;
  uint64_t base = mem == OT_MEM_HBM ? (1ull << OT_HBM_PAGE_BITS) - 300 + xt_below(600) : 64 * xt_below(8);
  ot_ap a = xt_rand_ap(mem, t, 0, P, base, F, &span);
  uint32_t pmax = mem == OT_MEM_PSUM ? e->chip->psum.partitions : e->chip->sbuf.partitions;
  if (mem != OT_MEM_HBM) a.part_start = (uint16_t)xt_below(pmax - P + 1);
  ot_view v;
  assert_int_equal(ot_view_resolve(&v, &a, e->regs, e->chip, &e->site, &e->err), OT_OK);
  uint64_t n = (uint64_t)P * F;
  uint32_t *in = malloc(n * 4), *out = malloc(n * 4), *ref = malloc(n * 4);
  uint32_t mask = ot_dtype_size(t) == 4 ? 0xFFFFFFFFu : (1u << (8 * ot_dtype_size(t))) - 1;
  for (uint64_t i = 0; i < n; i++) in[i] = (uint32_t)xt_next() & mask;
  ot_view_store_bits(&e->x.mem, &v, in);
  xt_get_bits(e, &a, ref); /* where the model says the elements are */
  assert_true(xt_same_bits(ref, in, n, "store order"));
  for (uint64_t i = 0; i < n; i++) in[i] = (uint32_t)xt_next() & mask;
  xt_put_bits(e, &a, in);
  ot_view_load_bits(&e->x.mem, &v, out);
  assert_true(xt_same_bits(out, in, n, "load order"));
  /* fp32 interface: values convert like ot_load_f32 / ot_store_f32 */
  float *f = malloc(n * 4), *g = malloc(n * 4);
  ot_view_load_f32(&e->x.mem, &v, f);
  for (uint64_t i = 0; i < n; i++) {
    float want = ot_bits_to_f32(in[i], t);
    assert_true(memcmp(&f[i], &want, 4) == 0 || (isnan(f[i]) && isnan(want)));
    g[i] = xt_uniform(-300.0f, 300.0f);
  }
  ot_view_store_f32(&e->x.mem, &v, g, NULL);
  ot_view_load_bits(&e->x.mem, &v, out);
  for (uint64_t i = 0; i < n; i++) assert_int_equal(out[i], ot_f32_to_bits(g[i], t, NULL));
  free(in), free(out), free(ref), free(f), free(g);
}

static void test_element_order(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  xt_seed(11);
  static const ot_dtype types[] = {OT_DT_FP32, OT_DT_BF16, OT_DT_FP8E4M3, OT_DT_INT16, OT_DT_UINT8, OT_DT_INT32, OT_DT_FP16};
  for (int it = 0; it < 60; it++) {
    ot_dtype t = types[xt_below(7)];
    check_access(e, OT_MEM_SBUF, t);
    check_access(e, OT_MEM_PSUM, t);
    check_access(e, OT_MEM_HBM, t);
  }
  xt_env_free(e);
}

static void test_stochastic_store_reproducible(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  ot_ap a = xt_dense(OT_MEM_SBUF, OT_DT_BF16, 0, 4, 0, 100);
  ot_view v;
  assert_int_equal(ot_view_resolve(&v, &a, NULL, e->chip, &e->site, &e->err), OT_OK);
  float x[400];
  uint32_t b1[400], b2[400];
  for (int i = 0; i < 400; i++) x[i] = 1.0f + (float)i * 0x1p-12f;
  ot_rng r;
  ot_cvt sr = {OT_ROUND_STOCHASTIC, false, &r};
  ot_rng_seed(&r, 5);
  ot_view_store_f32(&e->x.mem, &v, x, &sr);
  ot_view_load_bits(&e->x.mem, &v, b1);
  ot_rng_seed(&r, 5);
  for (int i = 0; i < 400; i++) b2[i] = ot_f32_to_bits(x[i], OT_DT_BF16, &sr); /* one draw per element, in order */
  assert_memory_equal(b1, b2, sizeof b1);
  xt_env_free(e);
}

static void test_cursor_merges_dims(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  ot_ap a = xt_ap(OT_MEM_HBM, OT_DT_FP32, 0, 0, 4096);
  a.ndim = 3, a.dim[0] = (ot_dim){512, 4}, a.dim[1] = (ot_dim){128, 4}, a.dim[2] = (ot_dim){1, 128};
  ot_view v;
  assert_int_equal(ot_view_resolve(&v, &a, NULL, e->chip, &e->site, &e->err), OT_OK);
  ot_view_cursor c;
  ot_view_run r;
  ot_view_cursor_init(&c, &e->x.mem, &v);
  assert_true(ot_view_cursor_next(&c, UINT64_MAX, &r));
  assert_int_equal(r.n, 2048); /* the three dims are one dense run */
  assert_int_equal(r.addr, 4096);
  assert_false(ot_view_cursor_next(&c, UINT64_MAX, &r));
  /* SBUF: one run per partition; a max splits runs */
  ot_ap s = xt_dense(OT_MEM_SBUF, OT_DT_BF16, 64, 2, 10, 6);
  assert_int_equal(ot_view_resolve(&v, &s, NULL, e->chip, &e->site, &e->err), OT_OK);
  ot_view_cursor_init(&c, &e->x.mem, &v);
  uint64_t pb = e->core.sbuf.part_bytes;
  assert_true(ot_view_cursor_next(&c, 4, &r));
  assert_int_equal(r.addr, 64 * pb + 10);
  assert_int_equal(r.n, 4);
  assert_true(ot_view_cursor_next(&c, 4, &r));
  assert_int_equal(r.addr, 64 * pb + 18);
  assert_int_equal(r.n, 2);
  assert_true(ot_view_cursor_next(&c, 100, &r));
  assert_int_equal(r.addr, 65 * pb + 10);
  assert_int_equal(r.n, 6);
  assert_false(ot_view_cursor_next(&c, 100, &r));
  xt_env_free(e);
}

/* ---- written tracking ------------------------------------------------------------------------- */
static void test_written_tracking(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  ot_ap a = xt_dense(OT_MEM_SBUF, OT_DT_FP32, 0, 2, 40, 10);
  ot_ap part = xt_dense(OT_MEM_SBUF, OT_DT_BF16, 1, 1, 50, 3); /* bytes 50..55 of partition 1 */
  ot_view v, w;
  assert_int_equal(ot_view_resolve(&v, &a, NULL, e->chip, &e->site, &e->err), OT_OK);
  assert_int_equal(ot_view_resolve(&w, &part, NULL, e->chip, &e->site, &e->err), OT_OK);
  uint64_t bad = 99;
  assert_false(ot_view_is_written(&e->x.mem, &v, &bad));
  assert_int_equal(bad, 0);
  ot_view_mark_written(&e->x.mem, &w, false);
  assert_true(ot_view_is_written(&e->x.mem, &w, NULL));
  ot_view_mark_written(&e->x.mem, &v, false);
  assert_true(ot_view_is_written(&e->x.mem, &v, NULL));
  /* one byte cleared: the element holding it is reported (partition 1, element 3 = index 13) */
  uint64_t byte = e->core.sbuf.part_bytes + 40 + 3 * 4 + 2;
  e->core.sbuf.written[byte >> 3] &= (uint8_t)~(1u << (byte & 7));
  ot_sram_written_changed(&e->core.sbuf); /* the map was edited behind ot_view_mark_written's back */
  assert_false(ot_view_is_written(&e->x.mem, &v, &bad));
  assert_int_equal(bad, 13);
  /* a strided view over the hole */
  ot_ap s = xt_ap(OT_MEM_SBUF, OT_DT_FP32, 1, 1, 76);
  s.ndim = 1, s.dim[0] = (ot_dim){-3, 4}; /* elements at bytes 76, 64, 52, 40 */
  assert_int_equal(ot_view_resolve(&w, &s, NULL, e->chip, &e->site, &e->err), OT_OK);
  assert_false(ot_view_is_written(&e->x.mem, &w, &bad));
  assert_int_equal(bad, 2);
  /* HBM is always written */
  ot_ap h = xt_dense(OT_MEM_HBM, OT_DT_FP32, 0, 0, 0, 10);
  assert_int_equal(ot_view_resolve(&w, &h, NULL, e->chip, &e->site, &e->err), OT_OK);
  assert_true(ot_view_is_written(&e->x.mem, &w, NULL));
  xt_env_free(e);
}

static void test_mm_written(void **state) {
  (void)state;
  xt_env *e = xt_env_new("trn2");
  ot_ap a = xt_dense(OT_MEM_PSUM, OT_DT_FP32, 0, 128, 0, 512);
  ot_ap mid = xt_dense(OT_MEM_PSUM, OT_DT_BF16, 3, 1, 100, 3); /* bytes 100..105: words 25, 26 */
  ot_view v, w;
  assert_int_equal(ot_view_resolve(&v, &a, NULL, e->chip, &e->site, &e->err), OT_OK);
  assert_int_equal(ot_view_resolve(&w, &mid, NULL, e->chip, &e->site, &e->err), OT_OK);
  uint64_t bad;
  assert_false(ot_view_is_mm_written(&e->x.mem, &v, &bad));
  ot_view_mark_written(&e->x.mem, &v, true);
  assert_true(ot_view_is_mm_written(&e->x.mem, &v, NULL));
  ot_view_mark_written(&e->x.mem, &w, false); /* e.g. a tensor_copy into the bank */
  assert_false(ot_view_is_mm_written(&e->x.mem, &v, &bad));
  assert_int_equal(bad, 3 * 512 + 25);
  assert_true(ot_view_is_written(&e->x.mem, &v, NULL));
  ot_view_mark_written(&e->x.mem, &w, true);
  assert_true(ot_view_is_mm_written(&e->x.mem, &v, NULL));
  xt_env_free(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sram_init),
    cmocka_unit_test(test_hbm_paging),
    cmocka_unit_test(test_site_format),
    cmocka_unit_test(test_resolve_ok),
    cmocka_unit_test(test_resolve_errors),
    cmocka_unit_test(test_element_order),
    cmocka_unit_test(test_stochastic_store_reproducible),
    cmocka_unit_test(test_cursor_merges_dims),
    cmocka_unit_test(test_written_tracking),
    cmocka_unit_test(test_mm_written),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
