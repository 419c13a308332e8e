/* The cases of the PyTorch comparisons: small forward graphs with random leaves (fixed seeds),
** one per op and form, and whole GPT-2 and Llama blocks trained with a cross-entropy loss.
** Shared by test_autodiff.c (the host reference evaluator and autodiff against torch) and
** test_device_torch.c (the same graphs compiled and run on the simulated chip against torch). */
#ifndef OT_TESTS_TORCH_CASES_H
#define OT_TESTS_TORCH_CASES_H

#include "ref_harness.h"

#define SH(...) ((const int64_t[]){__VA_ARGS__})
#define ND(...) (unsigned)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), SH(__VA_ARGS__)
#define FP OT_DT_FP32
#define BF OT_DT_BF16

/* ---- one op each ------------------------------------------------------------------------- */
static void b_matmul(rh_case *c) {
  ot_graph_matmul(c->g, "mm", rh_weight(c, "a", FP, ND(7, 129)), rh_weight(c, "b", FP, ND(129, 13)), false);
}
static void b_matmul_tb(rh_case *c) {
  ot_graph_matmul(c->g, "mm", rh_weight(c, "a", FP, ND(2, 7, 33)), rh_weight(c, "b", FP, ND(13, 33)), true);
}
static void b_matmul_batched(rh_case *c) {
  ot_graph_matmul(c->g, "mm", rh_weight(c, "a", FP, ND(2, 3, 7, 9)), rh_weight(c, "b", FP, ND(2, 3, 9, 5)), false);
}
static void b_matmul_batched_tb(rh_case *c) {
  ot_graph_matmul(c->g, "mm", rh_weight(c, "a", FP, ND(3, 1, 9)), rh_weight(c, "b", FP, ND(3, 5, 9)), true);
}
static void b_linear(rh_case *c) {
  ot_graph_linear(c->g, "fc", rh_weight(c, "x", FP, ND(2, 7, 129)), rh_weight(c, "w", FP, ND(129, 13)),
                  rh_weight(c, "bias", FP, ND(13)), false);
}
static void b_linear_out_in(rh_case *c) {
  ot_graph_linear(c->g, "fc", rh_weight(c, "x", FP, ND(7, 33)), rh_weight(c, "w", FP, ND(1, 33)), OT_TID_NONE, true);
}
static void b_add(rh_case *c) {
  ot_graph_add(c->g, "add", rh_weight(c, "a", FP, ND(7, 129)), rh_weight(c, "b", FP, ND(7, 129)));
}
static void b_add_bcast(rh_case *c) {
  ot_graph_add(c->g, "add", rh_weight(c, "a", FP, ND(2, 7, 13)), rh_weight(c, "b", FP, ND(13)));
}
static void b_add_scalar(rh_case *c) { /* b is [] */
  ot_graph_add(c->g, "add", rh_weight(c, "a", FP, ND(7, 3)), rh_weight(c, "b", FP, 0, NULL));
}
static void b_sub_bcast(rh_case *c) {
  ot_graph_sub(c->g, "sub", rh_weight(c, "a", FP, ND(3, 7, 5)), rh_weight(c, "b", FP, ND(7, 5)));
}
static void b_mul(rh_case *c) {
  ot_graph_mul(c->g, "mul", rh_weight(c, "a", FP, ND(7, 129)), rh_weight(c, "b", FP, ND(7, 129)));
}
static void b_mul_bcast(rh_case *c) {
  ot_graph_mul(c->g, "mul", rh_weight(c, "a", FP, ND(7, 129)), rh_weight(c, "b", FP, ND(129)));
}
static void b_mul_self(rh_case *c) { /* x used twice by one node: contributions accumulate */
  ot_tid x = rh_weight(c, "x", FP, ND(7, 5));
  ot_graph_mul(c->g, "sq", x, x);
}
static void b_scale(rh_case *c) { ot_graph_scale(c->g, "scale", rh_weight(c, "x", FP, ND(7, 129)), 0.37f); }
static void b_softmax(rh_case *c) {
  ot_graph_softmax(c->g, "sm", rh_weight_r(c, "x", FP, ND(3, 7, 129), -4.0f, 4.0f));
}
static void b_softmax_1(rh_case *c) { ot_graph_softmax(c->g, "sm", rh_weight(c, "x", FP, ND(7, 1))); }
static void b_layernorm(rh_case *c) {
  ot_graph_layernorm(c->g, "ln", rh_weight_r(c, "x", FP, ND(2, 7, 129), -2.0f, 3.0f), rh_weight(c, "g", FP, ND(129)),
                     rh_weight(c, "b", FP, ND(129)), 1e-5f);
}
static void b_rmsnorm(rh_case *c) {
  ot_graph_rmsnorm(c->g, "rms", rh_weight(c, "x", FP, ND(7, 129)), rh_weight(c, "g", FP, ND(129)), 1e-6f);
}
static void b_gelu_tanh(rh_case *c) { ot_graph_gelu(c->g, "gelu", rh_weight_r(c, "x", FP, ND(7, 129), -5, 5), true); }
static void b_gelu_erf(rh_case *c) { ot_graph_gelu(c->g, "gelu", rh_weight_r(c, "x", FP, ND(7, 129), -5, 5), false); }
static void b_silu(rh_case *c) { ot_graph_silu(c->g, "silu", rh_weight_r(c, "x", FP, ND(7, 129), -6, 6)); }
static void b_swiglu(rh_case *c) {
  ot_graph_swiglu(c->g, "swiglu", rh_weight_r(c, "gate", FP, ND(7, 129), -4, 4), rh_weight(c, "up", FP, ND(7, 129)));
}
static void b_embedding(rh_case *c) { /* 14 ids over 11 rows: duplicates accumulate */
  ot_graph_embedding(c->g, "emb", rh_ids(c, "ids", ND(2, 7), 11), rh_weight(c, "table", FP, ND(11, 129)));
}
static void b_rope(rh_case *c) {
  ot_graph_rope(c->g, "rope", rh_weight(c, "x", FP, ND(1, 2, 7, 16)), 10000.0f, 0);
}
/* Llama-3 scaling: wavelengths 6.3 .. 2e4 against 256 / 1 and 256 / 4, so pairs j <= 2 keep their
** frequency, j = 3 is blended and j >= 4 are divided by 8 (positions from 40: angles up to 3 rad
** change, and torch's fp32 angles stay within the fp32 tolerance of the device's double ones). */
static void b_rope_llama3(rh_case *c) {
  ot_rope_llama3 rs = {8.0f, 1.0f, 4.0f, 256};
  ot_graph_rope_scaled(c->g, "rope", rh_weight(c, "x", FP, ND(1, 2, 7, 16)), 10000.0f, 40, &rs);
}
/* Llama-3.2-1B's rope (theta 500000, factor 32, 1, 4, 8192; D = 128): pairs j <= 28 keep their
** frequency, 29..35 are blended, 36..63 divided by 32. */
static void b_rope_llama3_1b(rh_case *c) {
  ot_rope_llama3 rs = {32.0f, 1.0f, 4.0f, 8192};
  ot_graph_rope_scaled(c->g, "rope", rh_weight(c, "x", FP, ND(1, 2, 5, 128)), 500000.0f, 8, &rs);
}
static void b_rope_offset(rh_case *c) {
  ot_graph_rope(c->g, "rope", rh_weight(c, "x", FP, ND(2, 1, 9, 6)), 500.0f, 37);
}
static void b_attention_gqa(rh_case *c) {
  ot_graph_attention(c->g, "attn", rh_weight(c, "q", FP, ND(1, 4, 7, 16)), rh_weight(c, "k", FP, ND(1, 2, 7, 16)),
                     rh_weight(c, "v", FP, ND(1, 2, 7, 16)), true, 0.0f);
}
static void b_attention_full(rh_case *c) {
  ot_graph_attention(c->g, "attn", rh_weight(c, "q", FP, ND(2, 2, 9, 8)), rh_weight(c, "k", FP, ND(2, 2, 9, 8)),
                     rh_weight(c, "v", FP, ND(2, 2, 9, 8)), false, 0.3f);
}
static void b_attention_s1(rh_case *c) {
  ot_graph_attention(c->g, "attn", rh_weight(c, "q", FP, ND(1, 3, 1, 5)), rh_weight(c, "k", FP, ND(1, 1, 1, 5)),
                     rh_weight(c, "v", FP, ND(1, 1, 1, 5)), true, 0.0f);
}
static void b_transpose(rh_case *c) {
  ot_graph_transpose(c->g, "tr", rh_weight(c, "x", FP, ND(2, 3, 7, 5)), ND(3, 1, 0, 2));
}
static void b_reshape(rh_case *c) { ot_graph_reshape(c->g, "rs", rh_weight(c, "x", FP, ND(2, 7, 12)), ND(14, -1, 4)); }
static void b_concat(rh_case *c) {
  ot_tid xs[3] = {rh_weight(c, "x0", FP, ND(7, 3)), rh_weight(c, "x1", FP, ND(7, 5)), rh_weight(c, "x2", FP, ND(7, 1))};
  ot_graph_concat(c->g, "cat", 3, xs, 1);
}
static void b_split(rh_case *c) { /* output 1 unused: its part of dx is zero */
  ot_tid outs[3];
  ot_graph_split(c->g, "split", rh_weight(c, "x", FP, ND(7, 13)), 1, 3, SH(3, 9, 1), outs);
  ot_tid ys[2] = {outs[2], outs[0]};
  ot_graph_concat(c->g, "cat", 2, ys, 1);
}
static void b_slice(rh_case *c) { ot_graph_slice(c->g, "sl", rh_weight(c, "x", FP, ND(7, 13)), 1, 3, 9); }
static void b_slice_edge(rh_case *c) { ot_graph_slice(c->g, "sl", rh_weight(c, "x", FP, ND(129, 2)), 0, -7, 129); }
static void b_reduce_sum(rh_case *c) { ot_graph_reduce_sum(c->g, "rsum", rh_weight(c, "x", FP, ND(3, 7, 5)), 1, false); }
static void b_reduce_mean(rh_case *c) {
  ot_graph_reduce_mean(c->g, "rmean", rh_weight(c, "x", FP, ND(3, 7, 129)), -1, true);
}
static void b_reduce_max(rh_case *c) { ot_graph_reduce_max(c->g, "rmax", rh_weight(c, "x", FP, ND(7, 129)), -1, false); }
static void b_reduce_max0(rh_case *c) { ot_graph_reduce_max(c->g, "rmax", rh_weight(c, "x", FP, ND(7, 3, 5)), 0, true); }
static void b_cross_entropy(rh_case *c) {
  c->loss = ot_graph_cross_entropy(c->g, "ce", rh_weight_r(c, "logits", FP, ND(7, 129), -3, 3), rh_ids(c, "t", ND(7), 129));
}
static void b_cross_entropy_1(rh_case *c) {
  c->loss = ot_graph_cross_entropy(c->g, "ce", rh_weight(c, "logits", FP, ND(1, 1)), rh_ids(c, "t", ND(1), 1));
}
/* Vocabularies beyond the engines' free size (65536 on trn2) and one column past a chunk (2048):
** the vocabulary is walked in chunks; targets placed in the last chunk and at chunk edges. */
static void ce_wide(rh_case *c, int64_t N, int64_t V, const int64_t *tgt, unsigned n_tgt) {
  ot_tid t = rh_ids(c, "t", ND(N), V);
  for (unsigned i = 0; i < n_tgt; i++) c->leaf[t][i] = (float)tgt[i];
  c->loss = ot_graph_cross_entropy(c->g, "ce", rh_weight_r(c, "logits", FP, ND(N, V), -3, 3), t);
}
static void b_cross_entropy_70000(rh_case *c) { ce_wide(c, 3, 70000, SH(69999, 65536), 2); }
static void b_cross_entropy_llama_vocab(rh_case *c) { ce_wide(c, 2, 128256, SH(128255, 0), 2); }
static void b_cross_entropy_chunk1(rh_case *c) { ce_wide(c, 130, 2049, SH(2048, 2047, 0, 2048), 4); }
static void b_cast_bf16(rh_case *c) { ot_graph_cast(c->g, "cast", rh_weight(c, "x", FP, ND(7, 129)), BF); }
static void b_cast_fp32(rh_case *c) { ot_graph_cast(c->g, "cast", rh_weight(c, "x", BF, ND(7, 13)), FP); }
static void b_broadcast(rh_case *c) {
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_BROADCAST);
  ot_tid x = rh_weight(c, "x", FP, ND(1, 5));
  p.name = "bc";
  p.in = &x;
  p.n_in = 1;
  p.n_list = 3;
  p.list[0] = 3;
  p.list[1] = 7;
  p.list[2] = 5;
  ot_graph_add_node(c->g, &p);
}

/* ---- blocks ------------------------------------------------------------------------------ */
enum { BK_B = 2, BK_S = 7, BK_C = 32, BK_H = 4, BK_D = 8, BK_V = 37, BK_HKV = 2 };

/* [B, S, H*D] -> [B, H, S, D] and back. */
static ot_tid heads_split(rh_case *c, const char *name, ot_tid x, int64_t h) {
  char nm[64];
  snprintf(nm, sizeof nm, "%s.heads", name);
  ot_tid r = ot_graph_reshape(c->g, nm, x, ND(BK_B, BK_S, h, BK_D));
  snprintf(nm, sizeof nm, "%s.bhsd", name);
  return ot_graph_transpose(c->g, nm, r, ND(0, 2, 1, 3));
}
static ot_tid heads_merge(rh_case *c, const char *name, ot_tid x) {
  char nm[64];
  snprintf(nm, sizeof nm, "%s.bshd", name);
  ot_tid t = ot_graph_transpose(c->g, nm, x, ND(0, 2, 1, 3));
  snprintf(nm, sizeof nm, "%s.merge", name);
  return ot_graph_reshape(c->g, nm, t, ND(BK_B, BK_S, BK_C));
}

static void gpt2_block(rh_case *c, ot_dtype dt) {
  ot_graph *g = c->g;
  ot_tid ids = rh_ids(c, "ids", ND(BK_B, BK_S), BK_V), tgt = rh_ids(c, "targets", ND(BK_B * BK_S), BK_V);
  ot_tid wte = rh_weight(c, "wte", dt, ND(BK_V, BK_C)), wpe = rh_weight_r(c, "wpe", dt, ND(BK_S, BK_C), -0.2f, 0.2f);
  ot_tid h = ot_graph_add(g, "pos", ot_graph_embedding(g, "tok", ids, wte), wpe);
  ot_tid ln1 = ot_graph_layernorm(g, "ln1", h, rh_weight(c, "ln1.g", dt, ND(BK_C)), rh_weight(c, "ln1.b", dt, ND(BK_C)), 1e-5f);
  ot_tid qkv = ot_graph_linear(g, "qkv", ln1, rh_weight_r(c, "qkv.w", dt, ND(BK_C, 3 * BK_C), -0.3f, 0.3f),
                               rh_weight(c, "qkv.b", dt, ND(3 * BK_C)), false);
  ot_tid parts[3];
  ot_graph_split(g, "qkv.split", qkv, 2, 3, SH(BK_C, BK_C, BK_C), parts);
  ot_tid y = ot_graph_attention(g, "attn", heads_split(c, "q", parts[0], BK_H), heads_split(c, "k", parts[1], BK_H),
                                heads_split(c, "v", parts[2], BK_H), true, 0.0f);
  ot_tid proj = ot_graph_linear(g, "proj", heads_merge(c, "attn", y), rh_weight_r(c, "proj.w", dt, ND(BK_C, BK_C), -0.3f, 0.3f),
                                rh_weight(c, "proj.b", dt, ND(BK_C)), false);
  ot_tid h2 = ot_graph_add(g, "res1", h, proj);
  ot_tid ln2 = ot_graph_layernorm(g, "ln2", h2, rh_weight(c, "ln2.g", dt, ND(BK_C)), rh_weight(c, "ln2.b", dt, ND(BK_C)), 1e-5f);
  ot_tid fc = ot_graph_linear(g, "fc", ln2, rh_weight_r(c, "fc.w", dt, ND(BK_C, 4 * BK_C), -0.3f, 0.3f),
                              rh_weight(c, "fc.b", dt, ND(4 * BK_C)), false);
  ot_tid mlp = ot_graph_linear(g, "mlp.proj", ot_graph_gelu(g, "gelu", fc, true),
                               rh_weight_r(c, "mlp.proj.w", dt, ND(4 * BK_C, BK_C), -0.2f, 0.2f),
                               rh_weight(c, "mlp.proj.b", dt, ND(BK_C)), false);
  ot_tid h3 = ot_graph_add(g, "res2", h2, mlp);
  ot_tid lnf = ot_graph_layernorm(g, "lnf", h3, rh_weight(c, "lnf.g", dt, ND(BK_C)), rh_weight(c, "lnf.b", dt, ND(BK_C)), 1e-5f);
  ot_tid flat = ot_graph_reshape(g, "lnf.flat", lnf, ND(BK_B * BK_S, BK_C));
  ot_tid logits = ot_graph_matmul(g, "lm_head", flat, wte, true); /* tied with the token embedding */
  c->loss = ot_graph_cross_entropy(g, "loss", logits, tgt);
}
static void b_gpt2_block(rh_case *c) { gpt2_block(c, OT_DT_FP32); }
static void b_gpt2_block_bf16(rh_case *c) { gpt2_block(c, OT_DT_BF16); } /* every tensor bf16 */

/* loss of shape [] straight from a weight: the seed itself is the gradient (copied). */
static void b_loss_rank0(rh_case *c) {
  ot_tid w = rh_weight(c, "w", FP, ND(129));
  c->loss = ot_graph_reduce_sum(c->g, "loss", ot_graph_scale(c->g, "s", w, -0.5f), 0, false);
}

static ot_tid llama_linear(rh_case *c, const char *name, ot_tid x, int64_t out, int64_t in) {
  char wn[64];
  snprintf(wn, sizeof wn, "%s.w", name);
  return ot_graph_linear(c->g, name, x, rh_weight_r(c, wn, FP, ND(out, in), -0.3f, 0.3f), OT_TID_NONE, true);
}

static void b_llama_block(rh_case *c) {
  ot_graph *g = c->g;
  ot_tid ids = rh_ids(c, "ids", ND(BK_B, BK_S), BK_V), tgt = rh_ids(c, "targets", ND(BK_B * BK_S), BK_V);
  ot_tid h = ot_graph_embedding(g, "tok", ids, rh_weight(c, "embed", FP, ND(BK_V, BK_C)));
  ot_tid x = ot_graph_rmsnorm(g, "attn_norm", h, rh_weight(c, "attn_norm.g", FP, ND(BK_C)), 1e-6f);
  ot_tid q = ot_graph_rope(g, "q.rope", heads_split(c, "q", llama_linear(c, "q", x, BK_C, BK_C), BK_H), 10000.0f, 0);
  ot_tid k = ot_graph_rope(g, "k.rope", heads_split(c, "k", llama_linear(c, "k", x, BK_HKV * BK_D, BK_C), BK_HKV),
                           10000.0f, 0);
  ot_tid v = heads_split(c, "v", llama_linear(c, "v", x, BK_HKV * BK_D, BK_C), BK_HKV);
  ot_tid y = ot_graph_attention(g, "attn", q, k, v, true, 0.0f);
  ot_tid h2 = ot_graph_add(g, "res1", h, llama_linear(c, "o", heads_merge(c, "attn", y), BK_C, BK_C));
  ot_tid m = ot_graph_rmsnorm(g, "mlp_norm", h2, rh_weight(c, "mlp_norm.g", FP, ND(BK_C)), 1e-6f);
  ot_tid act = ot_graph_swiglu(g, "swiglu", llama_linear(c, "gate", m, 64, BK_C), llama_linear(c, "up", m, 64, BK_C));
  ot_tid h3 = ot_graph_add(g, "res2", h2, llama_linear(c, "down", act, BK_C, 64));
  ot_tid f = ot_graph_rmsnorm(g, "norm", h3, rh_weight(c, "norm.g", FP, ND(BK_C)), 1e-6f);
  ot_tid logits = llama_linear(c, "lm_head", ot_graph_reshape(g, "norm.flat", f, ND(BK_B * BK_S, BK_C)), BK_V, BK_C);
  c->loss = ot_graph_cross_entropy(g, "loss", logits, tgt);
}

/* Mixed precision: fp32 master weights cast to bf16, bf16 activations, fp32 loss. */
static void b_mlp_bf16(rh_case *c) {
  ot_graph *g = c->g;
  ot_tid x = rh_input(c, "x", BF, ND(7, 32));
  ot_tid w1 = ot_graph_cast(g, "w1.bf16", rh_weight_r(c, "w1", FP, ND(32, 129), -0.3f, 0.3f), BF);
  ot_tid w2 = ot_graph_cast(g, "w2.bf16", rh_weight_r(c, "w2", FP, ND(129, 13), -0.3f, 0.3f), BF);
  ot_tid hdn = ot_graph_gelu(g, "gelu", ot_graph_linear(g, "fc1", x, w1, OT_TID_NONE, false), true);
  ot_tid logits = ot_graph_cast(g, "logits.fp32", ot_graph_linear(g, "fc2", hdn, w2, OT_TID_NONE, false), FP);
  c->loss = ot_graph_cross_entropy(g, "loss", logits, rh_ids(c, "t", ND(7), 13));
}

#define CASE(fn) {.name = &(#fn)[2], .build = fn, .want_grad = true}
static rh_case cases[] = {
    CASE(b_matmul), CASE(b_matmul_tb), CASE(b_matmul_batched), CASE(b_matmul_batched_tb), CASE(b_linear),
    CASE(b_linear_out_in), CASE(b_add), CASE(b_add_bcast), CASE(b_add_scalar), CASE(b_sub_bcast), CASE(b_mul), CASE(b_mul_bcast),
    CASE(b_mul_self), CASE(b_scale), CASE(b_softmax), CASE(b_softmax_1), CASE(b_layernorm), CASE(b_rmsnorm),
    CASE(b_gelu_tanh), CASE(b_gelu_erf), CASE(b_silu), CASE(b_swiglu), CASE(b_embedding), CASE(b_rope),
    CASE(b_rope_offset), CASE(b_rope_llama3), CASE(b_rope_llama3_1b), CASE(b_attention_gqa), CASE(b_attention_full), CASE(b_attention_s1), CASE(b_transpose),
    CASE(b_reshape), CASE(b_concat), CASE(b_split), CASE(b_slice), CASE(b_slice_edge), CASE(b_reduce_sum),
    CASE(b_reduce_mean), CASE(b_reduce_max), CASE(b_reduce_max0), CASE(b_cross_entropy), CASE(b_cross_entropy_1),
    CASE(b_cross_entropy_70000), CASE(b_cross_entropy_llama_vocab), CASE(b_cross_entropy_chunk1),
    CASE(b_cast_bf16), CASE(b_cast_fp32), CASE(b_broadcast), CASE(b_gpt2_block), CASE(b_gpt2_block_bf16), CASE(b_loss_rank0), CASE(b_llama_block),
    CASE(b_mlp_bf16),
};

#endif
