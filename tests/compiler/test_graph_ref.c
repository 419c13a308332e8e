/* The reference evaluator (ot_graph_eval_ref) forward against PyTorch: op variants that the
** autodiff test does not cover (bf16 storage, sizes of 1, larger odd sizes such as 129 rows
** of attention, rope's inverse and large offsets, reductions with keepdim on leading axes, 4-D
** permutations), its determinism, its errors (ids out of range, missing leaf values), and
** AdamW with and without weight decay (the decay attribute) by hand. */
#include "ref_harness.h"

#define SH(...) ((const int64_t[]){__VA_ARGS__})
#define ND(...) (unsigned)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), SH(__VA_ARGS__)
#define FP OT_DT_FP32
#define BF OT_DT_BF16

static void f_matmul_bf16(rh_case *c) {
  ot_graph_matmul(c->g, "mm", rh_input(c, "a", BF, ND(7, 129)), rh_weight(c, "b", BF, ND(129, 13)), false);
}
static void f_matmul_ones(rh_case *c) {
  ot_graph_matmul(c->g, "mm", rh_input(c, "a", FP, ND(1, 1)), rh_input(c, "b", FP, ND(1, 1)), false);
}
static void f_linear_bf16(rh_case *c) {
  ot_graph_linear(c->g, "fc", rh_input(c, "x", BF, ND(3, 7, 64)), rh_input(c, "w", BF, ND(129, 64)),
                  rh_input(c, "bias", BF, ND(129)), true);
}
static void f_add_scalar(rh_case *c) {
  ot_graph_add(c->g, "add", rh_input(c, "a", FP, ND(7, 3)), rh_input(c, "b", FP, 0, NULL)); /* b is [] */
}
static void f_mul_bf16(rh_case *c) {
  ot_graph_mul(c->g, "mul", rh_input(c, "a", BF, ND(2, 129)), rh_input(c, "b", BF, ND(129)));
}
static void f_softmax_bf16(rh_case *c) {
  ot_graph_softmax(c->g, "sm", ot_graph_scale(c->g, "x8", rh_input(c, "x", BF, ND(7, 129)), 8.0f));
}
static void f_layernorm_bf16(rh_case *c) {
  ot_graph_layernorm(c->g, "ln", rh_input(c, "x", BF, ND(7, 129)), rh_input(c, "g", BF, ND(129)),
                     rh_input(c, "b", BF, ND(129)), 1e-5f);
}
static void f_layernorm_d1(rh_case *c) {
  ot_graph_layernorm(c->g, "ln", rh_input(c, "x", FP, ND(7, 1)), rh_input(c, "g", FP, ND(1)), rh_input(c, "b", FP, ND(1)),
                     1e-5f);
}
static void f_rmsnorm_bf16(rh_case *c) {
  ot_graph_rmsnorm(c->g, "rms", rh_input(c, "x", BF, ND(1, 129)), rh_input(c, "g", BF, ND(129)), 1e-6f);
}
static void f_gelu_erf_bf16(rh_case *c) { ot_graph_gelu(c->g, "gelu", rh_input(c, "x", BF, ND(1000)), false); }
static void f_silu_bf16(rh_case *c) { ot_graph_silu(c->g, "silu", rh_input(c, "x", BF, ND(129))); }
static void f_swiglu_bf16(rh_case *c) {
  ot_graph_swiglu(c->g, "swiglu", rh_input(c, "gate", BF, ND(7, 9)), rh_input(c, "up", BF, ND(7, 9)));
}
static void f_embedding_bf16(rh_case *c) {
  ot_graph_embedding(c->g, "emb", rh_ids(c, "ids", ND(129), 5), rh_input(c, "table", BF, ND(5, 7)));
}
static void f_rope_inverse(rh_case *c) {
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_ROPE);
  ot_tid x = rh_input(c, "x", FP, ND(1, 3, 5, 8));
  p.name = "rope.inv";
  p.in = &x;
  p.n_in = 1;
  p.f[0] = 10000.0f;
  p.i[0] = 3;
  p.i[1] = 1;
  ot_graph_add_node(c->g, &p);
}
static void f_rope_big_offset(rh_case *c) {
  ot_graph_rope(c->g, "rope", rh_input(c, "x", FP, ND(1, 1, 4, 2)), 10000.0f, 1000);
}
static void f_attention_129(rh_case *c) {
  ot_graph_attention(c->g, "attn", rh_input(c, "q", FP, ND(1, 2, 129, 16)), rh_input(c, "k", FP, ND(1, 1, 129, 16)),
                     rh_input(c, "v", FP, ND(1, 1, 129, 16)), true, 0.0f);
}
static void f_attention_bf16(rh_case *c) {
  ot_graph_attention(c->g, "attn", rh_input(c, "q", BF, ND(2, 2, 7, 8)), rh_input(c, "k", BF, ND(2, 2, 7, 8)),
                     rh_input(c, "v", BF, ND(2, 2, 7, 8)), false, 0.0f);
}
static void f_transpose_4d(rh_case *c) {
  ot_graph_transpose(c->g, "tr", rh_input(c, "x", FP, ND(2, 3, 1, 7)), ND(3, 1, 0, 2));
}
static void f_concat_ids(rh_case *c) { /* data movement keeps int32 values */
  ot_tid xs[2] = {rh_ids(c, "a", ND(3, 2), 100), rh_ids(c, "b", ND(3, 1), 100)};
  ot_tid cat = ot_graph_concat(c->g, "cat", 2, xs, -1);
  ot_graph_embedding(c->g, "emb", ot_graph_reshape(c->g, "rs", cat, ND(9)), rh_input(c, "t", FP, ND(100, 3)));
}
static void f_split_slice(rh_case *c) {
  ot_tid outs[2];
  ot_graph_split(c->g, "split", rh_input(c, "x", FP, ND(4, 129, 3)), 1, 2, SH(128, 1), outs);
  ot_graph_slice(c->g, "sl", outs[0], -1, 1, 3);
}
static void f_reduce_keepdim0(rh_case *c) {
  ot_tid x = rh_input(c, "x", FP, ND(129, 7));
  ot_graph_reduce_sum(c->g, "rsum", x, 0, true);
  ot_graph_reduce_mean(c->g, "rmean", x, 0, false);
  ot_graph_reduce_max(c->g, "rmax", x, 1, true);
}
static void f_cross_entropy_wide(rh_case *c) {
  ot_graph_cross_entropy(c->g, "ce", rh_input(c, "logits", FP, ND(3, 1000)), rh_ids(c, "t", ND(3), 1000));
}
static void f_cast_roundtrip(rh_case *c) {
  ot_tid b = ot_graph_cast(c->g, "to_bf16", rh_input(c, "x", FP, ND(129)), BF);
  ot_graph_cast(c->g, "to_fp32", b, FP);
}

#define CASE(fn) {.name = &(#fn)[2], .build = fn}
static rh_case cases[] = {
    CASE(f_matmul_bf16), CASE(f_matmul_ones), CASE(f_linear_bf16), CASE(f_add_scalar), CASE(f_mul_bf16),
    CASE(f_softmax_bf16), CASE(f_layernorm_bf16), CASE(f_layernorm_d1), CASE(f_rmsnorm_bf16), CASE(f_gelu_erf_bf16),
    CASE(f_silu_bf16), CASE(f_swiglu_bf16), CASE(f_embedding_bf16), CASE(f_rope_inverse), CASE(f_rope_big_offset),
    CASE(f_attention_129), CASE(f_attention_bf16), CASE(f_transpose_4d), CASE(f_concat_ids), CASE(f_split_slice),
    CASE(f_reduce_keepdim0), CASE(f_cross_entropy_wide), CASE(f_cast_roundtrip),
};

/* ---- determinism and errors --------------------------------------------------------------- */
static ot_graph *small_graph(ot_tid *ids, ot_tid *table, ot_tid *y) {
  ot_graph *g = ot_graph_new();
  *ids = ot_graph_input(g, "ids", OT_DT_INT32, ND(2, 3));
  *table = ot_graph_weight(g, "wte", FP, ND(4, 5));
  *y = ot_graph_embedding(g, "tok_emb", *ids, *table);
  assert_int_equal(ot_graph_status(g), OT_OK);
  return g;
}

static void test_embedding_out_of_range(void **state) {
  (void)state;
  ot_tid ids, table, y;
  ot_graph *g = small_graph(&ids, &table, &y);
  float idv[6] = {0, 1, 3, 2, 4, 0}, tab[20] = {0};
  float *v[8] = {0};
  v[ids] = idv;
  v[table] = tab;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_eval_ref(g, v, &err), OT_ERANGE);
  assert_non_null(strstr(err.msg, "'tok_emb'"));
  assert_non_null(strstr(err.msg, "index 4"));
  assert_non_null(strstr(err.msg, "position 4"));
  assert_non_null(strstr(err.msg, "'ids'"));
  assert_non_null(strstr(err.msg, "4 rows"));
  free(v[y]);
  ot_graph_free(g);
}

static void test_target_out_of_range(void **state) {
  (void)state;
  ot_graph *g = ot_graph_new();
  ot_tid lg = ot_graph_input(g, "logits", FP, ND(2, 3)), t = ot_graph_input(g, "labels", OT_DT_INT32, ND(2));
  ot_tid y = ot_graph_cross_entropy(g, "xent", lg, t);
  assert_int_equal(ot_graph_status(g), OT_OK);
  float lv[6] = {0}, tv[2] = {2, -1};
  float *v[4] = {0};
  v[lg] = lv;
  v[t] = tv;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_eval_ref(g, v, &err), OT_ERANGE);
  assert_non_null(strstr(err.msg, "'xent'"));
  assert_non_null(strstr(err.msg, "index -1 at position 1 of 'labels'"));
  free(v[y]);
  ot_graph_free(g);
}

static void test_missing_value(void **state) {
  (void)state;
  ot_tid ids, table, y;
  ot_graph *g = small_graph(&ids, &table, &y);
  float idv[6] = {0};
  float *v[8] = {0};
  v[ids] = idv;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_eval_ref(g, v, &err), OT_EINVAL);
  assert_non_null(strstr(err.msg, "weight 'wte'"));
  assert_null(v[y]);
  ot_graph_free(g);
}

/* Two evaluations give the same bits (fixed accumulation order, no threads). */
static void test_deterministic(void **state) {
  (void)state;
  ot_graph *g = ot_graph_new();
  ot_tid q = ot_graph_input(g, "q", FP, ND(1, 2, 33, 8));
  ot_tid y = ot_graph_attention(g, "attn", q, q, q, true, 0.0f);
  ot_tid gm = ot_graph_input(g, "g", FP, ND(8)), bt = ot_graph_input(g, "b", FP, ND(8));
  ot_tid ln = ot_graph_layernorm(g, "ln", y, gm, bt, 1e-5f);
  assert_int_equal(ot_graph_status(g), OT_OK);
  float *a[8] = {0}, *b[8] = {0};
  float qv[528], gv[8], bv[8];
  for (int i = 0; i < 528; i++) qv[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
  for (int i = 0; i < 8; i++) gv[i] = bv[i] = (float)i / 8.0f;
  a[q] = b[q] = qv;
  a[gm] = b[gm] = gv;
  a[bt] = b[bt] = bv;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_eval_ref(g, a, &err), OT_OK);
  assert_int_equal(ot_graph_eval_ref(g, b, &err), OT_OK);
  assert_memory_equal(a[ln], b[ln], 528 * sizeof(float));
  free(a[y]);
  free(a[ln]);
  free(b[y]);
  free(b[ln]);
  ot_graph_free(g);
}

/* AdamW's decay attribute, by hand: lr 0.1, weight decay 0.5, eps 0, bias corrections 1, no
** clipping, m = v = 0, g = 2, p = 1, betas 0.9 / 0.999: m = 0.2, v = 0.004, step
** 0.1 * 0.2 / sqrt(0.004) = 0.31622777; p = 1 * (1 - 0.05) - step with decay, 1 - step without. */
static void test_adamw_decay(void **state) {
  (void)state;
  ot_graph *g = ot_graph_new();
  ot_tid hy = ot_graph_input(g, "hyper", FP, ND(6)), nm = ot_graph_input(g, "norm", FP, ND(1)), t[2][4];
  ot_tid out[2];
  const char *names[4] = {"p", "g", "m", "v"};
  for (int k = 0; k < 2; k++) {
    char n[16];
    for (int j = 0; j < 4; j++) {
      snprintf(n, sizeof n, "%s%d", names[j], k);
      t[k][j] = ot_graph_input(g, n, FP, ND(1));
    }
    snprintf(n, sizeof n, "adamw%d", k);
    out[k] = ot_graph_adamw_decay(g, n, t[k][0], t[k][1], t[k][2], t[k][3], nm, hy, 0.9f, 0.999f, k == 0);
  }
  assert_int_equal(ot_graph_status(g), OT_OK);
  float hv[6] = {0.1f, 0.5f, 0.0f, 1.0f, 1.0f, 0.0f}, nv = 2.0f, pv = 1.0f, gv = 2.0f, zero = 0.0f;
  float **v = calloc(g->n_t, sizeof *v);
  v[hy] = hv;
  v[nm] = &nv;
  for (int k = 0; k < 2; k++) {
    v[t[k][0]] = &pv;
    v[t[k][1]] = &gv;
    v[t[k][2]] = v[t[k][3]] = &zero;
  }
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_eval_ref(g, v, &err), OT_OK);
  assert_float_equal(v[out[0]][0], 0.95 - 0.31622777, 1e-5); /* fp32 betas: 1 - 0.999f = 9.99987e-4 */
  assert_float_equal(v[out[1]][0], 1.0 - 0.31622777, 1e-5);
  for (uint32_t i = 0; i < g->n_node; i++)
    for (uint32_t j = 0; j < g->node[i].n_out; j++) free(v[g->node[i].out[j]]);
  free(v);
  ot_graph_free(g);
}

int main(void) {
  const struct CMUnitTest extra[] = {
      cmocka_unit_test(test_adamw_decay),
      cmocka_unit_test(test_embedding_out_of_range),
      cmocka_unit_test(test_target_out_of_range),
      cmocka_unit_test(test_missing_value),
      cmocka_unit_test(test_deterministic),
  };
  return rh_main("graph_ref", cases, sizeof cases / sizeof cases[0], extra, sizeof extra / sizeof extra[0]);
}
