/* Flat element-wise lowerings: add/sub/mul (with a broadcast [d] operand), scale, gelu, silu,
** swiglu, their gradients, and cast.
**
** The output is a flat array; a tile is np partitions x f elements, f a whole number of
** broadcast periods d (or one column chunk of a period longer than a tile), so a [1000, 1]
** tensor fills 125 partitions x 8 instead of 8 tiles of one element per partition.  Broadcast
** operands with a short period are loaded once, repeated along the partitions (stride 0) and
** along the free axis, and reused by every tile. */
#include <string.h>

#include "compiler/lower_elem_int.h"

#define PW_MAX_F 2048u   /* elements per partition per tile: 1 MiB fp32 per transfer */

typedef struct {
  elem_pw *pw;
  uint32_t P, ch, F, g, slots;
  bool long_period;
  kir_buf buf[ELEM_BUFS][3 * ELEM_MAX_IO];
  kir_buf cst[ELEM_MAX_IO];
} pw_run;

static unsigned pw_slot_in(unsigned k) { return k; }
static unsigned pw_slot_out(const elem_pw *pw, unsigned k) { return pw->n_in + k; }
static unsigned pw_slot_tmp(const elem_pw *pw, unsigned k) { return pw->n_in + pw->n_out + k; }

static ot_status pw_plan(pw_run *r) {
  elem_pw *pw = r->pw;
  r->P = elem_parts(pw->c);
  r->slots = pw->n_in + pw->n_out + pw->n_tmp;
  uint32_t avail = elem_sbuf_avail(pw->c);
  r->ch = avail / (4u * (ELEM_BUFS * r->slots + pw->n_in));
  if (r->ch > PW_MAX_F) r->ch = PW_MAX_F;
  if (r->ch < 1)
    return kir_fail(pw->c->k, OT_ENOMEM, "element-wise tiles of %u buffers do not fit in the %u bytes per partition of SBUF left",
                    ELEM_BUFS * r->slots, avail);
  uint64_t R = pw->total / pw->d;
  r->long_period = pw->d > r->ch;
  if (r->long_period) {
    r->g = 1;
    r->F = r->ch;
    return OT_OK;
  }
  uint64_t g = r->ch / pw->d, per_part = (R + r->P - 1) / r->P;
  if (g > per_part) g = per_part;
  if (g < 1) g = 1;
  r->g = (uint32_t)g;
  r->F = (uint32_t)((g < R ? g : R) * pw->d);
  return OT_OK;
}

static void pw_alloc(pw_run *r) {
  elem_pw *pw = r->pw;
  kir *k = pw->c->k;
  for (unsigned s = 0; s < ELEM_BUFS; s++)
    for (unsigned j = 0; j < r->slots; j++) {
      if (j < pw->n_in && pw->in_bcast[j] && !r->long_period) continue;
      kir_alloc(k, OT_MEM_SBUF, r->P, r->F * 4, &r->buf[s][j]);
    }
  if (r->long_period) return;
  uint64_t R = pw->total / pw->d;
  uint32_t np = R >= r->g ? (uint32_t)(R / r->g < r->P ? R / r->g : r->P) : 1;
  uint32_t gg = r->F / (uint32_t)pw->d;
  for (unsigned j = 0; j < pw->n_in; j++) {
    if (!pw->in_bcast[j]) continue;
    kir_alloc(k, OT_MEM_SBUF, r->P, r->F * 4, &r->cst[j]);
    int64_t hs[3] = {0, 0, 1};
    uint32_t hz[3] = {np, gg, (uint32_t)pw->d};
    kir_dma(k, elem_tile_dt(&r->cst[j], np, 0, r->F, elem_load_dtype(&pw->in[j])), kir_hbm_ap(&pw->in[j], 0, 3, hs, hz),
            OT_ENG_COUNT);
  }
}

static void pw_release(pw_run *r) {
  for (unsigned s = 0; s < ELEM_BUFS; s++)
    for (unsigned j = 0; j < 3 * ELEM_MAX_IO; j++) kir_release(r->pw->c->k, &r->buf[s][j]);
  for (unsigned j = 0; j < ELEM_MAX_IO; j++) kir_release(r->pw->c->k, &r->cst[j]);
}

/* A tile: np partitions x f elements, partitions `stride` elements apart from element eoff,
** starting at column c0 of the broadcast period. */
typedef struct {
  uint32_t t, np, f;
  uint64_t eoff, stride, c0;
  uint64_t bstride;              /* long period: the broadcast operand's partition stride */
} pw_pos;

static void pw_load(pw_run *r, const pw_pos *q, ot_ap *ap) {
  elem_pw *pw = r->pw;
  kir *k = pw->c->k;
  kir_buf *b = r->buf[q->t % ELEM_BUFS];
  for (unsigned j = 0; j < pw->n_in; j++) {
    ot_dtype dt = elem_load_dtype(&pw->in[j]);
    if (pw->in_bcast[j] && !r->long_period) { ap[ELEM_X(j)] = elem_tile_dt(&r->cst[j], q->np, 0, q->f, dt); continue; }
    ap[ELEM_X(j)] = elem_tile_dt(&b[pw_slot_in(j)], q->np, 0, q->f, dt);
    if (pw->in_bcast[j]) {
      int64_t hs[2] = {(int64_t)q->bstride, 1};
      uint32_t hz[2] = {q->np, q->f};
      kir_dma(k, ap[ELEM_X(j)], kir_hbm_ap(&pw->in[j], q->c0, 2, hs, hz), OT_ENG_COUNT);
    } else {
      kir_dma(k, ap[ELEM_X(j)], elem_hbm_rows(&pw->in[j], q->eoff, q->np, q->stride, q->f), OT_ENG_COUNT);
    }
  }
  for (unsigned j = 0; j < pw->n_out; j++) ap[ELEM_Y(j)] = elem_tile(&b[pw_slot_out(pw, j)], q->np, 0, q->f);
  for (unsigned j = 0; j < pw->n_tmp; j++) ap[ELEM_T(j)] = elem_tile(&b[pw_slot_tmp(pw, j)], q->np, 0, q->f);
}

void elem_insn_exec(kir *k, uint32_t t, const ot_ap *ap, const elem_insn *in) {
  ot_engine e = in->eng == ELEM_ALT ? elem_alt_engine(t) : in->eng == ELEM_ALT2 ? elem_alt_engine(t + 1)
                                                                                : (ot_engine)in->eng;
  switch (in->kind) {
  case ELEM_TT: kir_tt(k, e, ap[in->dst], ap[in->a], ap[in->b], in->op0); break;
  case ELEM_TS: kir_ts(k, e, ap[in->dst], ap[in->a], in->op0, in->s0, NULL, in->op1, in->s1, NULL); break;
  case ELEM_ACT: kir_activate(k, e, ap[in->dst], ap[in->a], in->func, in->s0, NULL, NULL, NULL); break;
  default: kir_stt(k, ap[in->dst], ap[in->a], in->op0, in->s0, NULL, in->op1, ap[in->b]); break;
  }
}

/* Loads of every tile of the group, their programs interleaved instruction by instruction, then
** the stores. */
static void pw_group(pw_run *r, const pw_pos *q, unsigned n) {
  elem_pw *pw = r->pw;
  kir *k = pw->c->k;
  ot_ap ap[ELEM_GROUP][3 * ELEM_MAX_IO];
  for (unsigned i = 0; i < n; i++) pw_load(r, &q[i], ap[i]);
  for (unsigned s = 0; s < pw->n_prog; s++)
    for (unsigned i = 0; i < n; i++) elem_insn_exec(k, q[i].t, ap[i], &pw->prog[s]);
  for (unsigned i = 0; i < n; i++)
    for (unsigned j = 0; j < pw->n_out; j++)
      kir_dma(k, elem_hbm_rows(&pw->out[j], q[i].eoff, q[i].np, q[i].stride, q[i].f), ap[i][ELEM_Y(j)], OT_ENG_COUNT);
}

typedef struct {
  pw_pos q[ELEM_GROUP];
  unsigned n;
  uint32_t t;
} pw_batch;

static void pw_add(pw_run *r, pw_batch *bt, uint64_t eoff, uint32_t np, uint64_t stride, uint32_t f, uint64_t c0,
                   uint64_t bstride) {
  pw_pos p = {bt->t++, np, f, eoff, stride, c0, bstride};
  bt->q[bt->n++] = p;
  if (bt->n == ELEM_GROUP) { pw_group(r, bt->q, bt->n); bt->n = 0; }
}

/* A long period repeated over fewer rows than partitions (GPT-2's position embedding added to
** B sequences: 2 rows of 786432): each row is cut into [np, ch] tiles of consecutive elements,
** the broadcast operand loaded with the same cut, instead of [rows, ch] tiles on a few
** partitions. */
static void pw_tiles_few_rows(pw_run *r, pw_batch *bt, uint64_t R, uint64_t d) {
  uint64_t f = r->ch;
  for (uint64_t row = 0; row < R && !kir_status(r->pw->c->k); row++)
    for (uint64_t c0 = 0; c0 < d;) {
      uint64_t left = d - c0, np = left / f < r->P ? left / f : r->P;
      if (np == 0) { pw_add(r, bt, row * d + c0, 1, left, (uint32_t)left, c0, left); break; }
      pw_add(r, bt, row * d + c0, (uint32_t)np, f, (uint32_t)f, c0, f);
      c0 += np * f;
    }
}

static void pw_tiles(pw_run *r) {
  elem_pw *pw = r->pw;
  uint64_t R = pw->total / pw->d, d = pw->d;
  pw_batch bt;
  memset(&bt, 0, sizeof bt);
  if (r->long_period && R < r->P) {
    pw_tiles_few_rows(r, &bt, R, d);
  } else if (r->long_period) {
    for (uint64_t r0 = 0; r0 < R && !kir_status(pw->c->k); r0 += r->P) {
      uint32_t np = (uint32_t)(R - r0 < r->P ? R - r0 : r->P);
      for (uint64_t c0 = 0; c0 < d; c0 += r->ch)
        pw_add(r, &bt, r0 * d + c0, np, d, (uint32_t)(d - c0 < r->ch ? d - c0 : r->ch), c0, 0);
    }
  } else {
    for (uint64_t r0 = 0; r0 < R && !kir_status(pw->c->k);) {
      uint64_t left = R - r0;
      uint32_t np = 1, gg = (uint32_t)left;
      if (left >= r->g) { np = (uint32_t)(left / r->g < r->P ? left / r->g : r->P); gg = r->g; }
      pw_add(r, &bt, r0 * d, np, (uint64_t)gg * d, gg * (uint32_t)d, 0, 0);
      r0 += (uint64_t)np * gg;
    }
  }
  if (bt.n && !kir_status(pw->c->k)) pw_group(r, bt.q, bt.n);
}

ot_status elem_pw_run(elem_pw *pw) {
  pw_run r;
  memset(&r, 0, sizeof r);
  r.pw = pw;
  if (pw->d < 1) pw->d = 1;
  if (pw_plan(&r) == OT_OK) {
    pw_alloc(&r);
    if (!kir_status(pw->c->k)) pw_tiles(&r);
  }
  pw_release(&r);
  return kir_status(pw->c->k);
}

/* ---- set-up ------------------------------------------------------------------------------ */
static void pw_init(elem_pw *pw, lower_ctx *c, const ot_gnode *n, unsigned n_in, unsigned n_out, unsigned n_tmp) {
  memset(pw, 0, sizeof *pw);
  pw->c = c;
  pw->n = n;
  pw->n_in = n_in;
  pw->n_out = n_out;
  pw->n_tmp = n_tmp;
  for (unsigned j = 0; j < n_in; j++) pw->in[j] = c->hbm[n->in[j]];
  for (unsigned j = 0; j < n_out; j++) pw->out[j] = c->hbm[n->out[j]];
  pw->total = (uint64_t)ot_gtensor_elems(elem_out(c, n, 0));
  pw->d = 1;
}

static void pw_tt(elem_pw *pw, uint8_t eng, uint8_t dst, uint8_t a, uint8_t b, int alu) {
  elem_insn in = {ELEM_TT, eng, dst, a, b, (uint8_t)alu, 0, 0, 0.0f, 0.0f};
  pw->prog[pw->n_prog++] = in;
}
static void pw_ts(elem_pw *pw, uint8_t eng, uint8_t dst, uint8_t a, int op0, float s0, int op1, float s1) {
  elem_insn in = {ELEM_TS, eng, dst, a, 0, (uint8_t)op0, (uint8_t)op1, 0, s0, s1};
  pw->prog[pw->n_prog++] = in;
}
static void pw_act(elem_pw *pw, uint8_t dst, uint8_t a, int func, float scale) {
  elem_insn in = {ELEM_ACT, OT_ENG_SCALAR, dst, a, 0, 0, 0, (uint8_t)func, scale, 0.0f};
  pw->prog[pw->n_prog++] = in;
}
/* dst = (a op0 s0) op1 b on the VectorE. */
static void pw_stt(elem_pw *pw, uint8_t dst, uint8_t a, int op0, float s0, int op1, uint8_t b) {
  elem_insn in = {ELEM_STT, OT_ENG_VECTOR, dst, a, b, (uint8_t)op0, (uint8_t)op1, 0, s0, 0.0f};
  pw->prog[pw->n_prog++] = in;
}
/* ---- lowerings --------------------------------------------------------------------------- */
ot_status lower_elem_binary(lower_ctx *c, const ot_gnode *n) {
  elem_pw pw;
  pw_init(&pw, c, n, 2, 1, 0);
  int alu = n->op == OT_GOP_ADD ? OT_ALU_ADD : n->op == OT_GOP_SUB ? OT_ALU_SUB : OT_ALU_MUL;
  pw_tt(&pw, ELEM_ALT, ELEM_Y(0), ELEM_X(0), ELEM_X(1), alu);
  uint64_t nb = (uint64_t)ot_gtensor_elems(elem_in(c, n, 1));
  if (nb != pw.total) { /* b is a suffix of a's shape: a [d] vector repeated over the rows */
    pw.in_bcast[1] = true;
    pw.d = nb;
  }
  return elem_pw_run(&pw);
}

/* ScalarE: y = func(x * scale); scale, gelu and silu are one activation each. */
ot_status lower_elem_unary(lower_ctx *c, const ot_gnode *n) {
  elem_pw pw;
  pw_init(&pw, c, n, 1, 1, 0);
  if (n->op == OT_GOP_SCALE) pw_act(&pw, ELEM_Y(0), ELEM_X(0), OT_ACT_COPY, n->f[0]);
  else if (n->op == OT_GOP_SILU) pw_act(&pw, ELEM_Y(0), ELEM_X(0), OT_ACT_SILU, 1.0f);
  else pw_act(&pw, ELEM_Y(0), ELEM_X(0), n->i[0] ? OT_ACT_GELU_TANH : OT_ACT_GELU, 1.0f);
  return elem_pw_run(&pw);
}

/* silu(gate) * up, in the reference's order. */
ot_status lower_elem_swiglu(lower_ctx *c, const ot_gnode *n) {
  elem_pw pw;
  pw_init(&pw, c, n, 2, 1, 0);
  pw_act(&pw, ELEM_Y(0), ELEM_X(0), OT_ACT_SILU, 1.0f);
  pw_tt(&pw, ELEM_ALT, ELEM_Y(0), ELEM_Y(0), ELEM_X(1), OT_ALU_MUL);
  return elem_pw_run(&pw);
}

/* The tanh-form gelu derivative from primitives (there is no gelu_apprx_tanh_dx), factored so
** that it needs five two-input products instead of the textbook form's eight:
**   t = tanh(k x (1 + c x^2)),  a = 0.5 k x (1 + 3c x^2),
**   g = 0.5 (1 + t) + a (1 - t^2) = (1 + t) (0.5 + a (1 - t)),  dx = (0.5 + a (1 - t)) ((1 + t) dy).
** Each engine does what it is fastest at (fp32 tiles): the ScalarE the one-input steps (square,
** tanh with its free pre-scale, the affine tensor_scalar steps: N cycles each), the GpSimd three
** tensor_tensor products, the VectorE two scalar_tensor_tensor products (2N cycles each).  10
** instructions (was 17: VectorE 246, ScalarE 199, GpSimd 172 us busy on trn2's [1024, 3072]).
** Differs from the reference's order by a few fp32 ulps (1 - t is exact where it matters). */
static void gelu_tanh_dx_prog(elem_pw *pw) {
  const float kk = 0.7978845608028654f, c = 0.044715f;
  const uint8_t S = OT_ENG_SCALAR, G = OT_ENG_GPSIMD, x = ELEM_X(0), dy = ELEM_X(1);
  const uint8_t t0 = ELEM_T(0), t1 = ELEM_T(1), y = ELEM_Y(0); /* y doubles as the third temporary */
  pw_act(pw, t0, x, OT_ACT_SQUARE, 1.0f);                                  /* x^2 */
  pw_ts(pw, S, t1, t0, OT_ALU_MUL, c, OT_ALU_ADD, 1.0f);                   /* 1 + c x^2 */
  pw_tt(pw, G, t1, t1, x, OT_ALU_MUL);                                     /* x + c x^3 */
  pw_act(pw, t1, t1, OT_ACT_TANH, kk);                                     /* t */
  pw_ts(pw, S, t0, t0, OT_ALU_MUL, 1.5f * kk * c, OT_ALU_ADD, 0.5f * kk);  /* 0.5 k (1 + 3c x^2) */
  pw_tt(pw, G, t0, t0, x, OT_ALU_MUL);                                     /* a */
  pw_ts(pw, S, y, t1, OT_ALU_MUL, -1.0f, OT_ALU_ADD, 1.0f);                /* 1 - t */
  pw_tt(pw, G, t0, t0, y, OT_ALU_MUL);                                     /* a (1 - t) */
  pw_stt(pw, y, t1, OT_ALU_ADD, 1.0f, OT_ALU_MUL, dy);                     /* (1 + t) dy */
  pw_stt(pw, y, t0, OT_ALU_ADD, 0.5f, OT_ALU_MUL, y);                      /* dx */
}

/* dx = dy * f'(x): ScalarE has gelu_dx (erf form) and silu_dx; the tanh form is built.  Also the
** epilogue of a GEMM whose result is dy (lower_matmul.c): the same program on its PSUM tiles. */
void elem_act_bwd_body(elem_pw *pw) {
  if (pw->n->op == OT_GOP_GELU_BWD && pw->n->i[0]) {
    pw->n_tmp = 2;
    gelu_tanh_dx_prog(pw);
    return;
  }
  pw->n_tmp = 0;
  pw_act(pw, ELEM_Y(0), ELEM_X(0), pw->n->op == OT_GOP_SILU_BWD ? OT_ACT_SILU_DX : OT_ACT_GELU_DX, 1.0f);
  pw_tt(pw, ELEM_ALT, ELEM_Y(0), ELEM_X(1), ELEM_Y(0), OT_ALU_MUL);
}

ot_status lower_elem_act_bwd(lower_ctx *c, const ot_gnode *n) {
  elem_pw pw;
  pw_init(&pw, c, n, 2, 1, 0);
  elem_act_bwd_body(&pw);
  return elem_pw_run(&pw);
}

/* dgate = (dy up) silu'(gate), dup = (dy gate) sigmoid(gate), as the reference orders them. */
ot_status lower_elem_swiglu_bwd(lower_ctx *c, const ot_gnode *n) {
  elem_pw pw;
  pw_init(&pw, c, n, 3, 2, 2);
  const uint8_t gate = ELEM_X(0), up = ELEM_X(1), dy = ELEM_X(2);
  pw_act(&pw, ELEM_Y(0), gate, OT_ACT_SILU_DX, 1.0f);
  pw_act(&pw, ELEM_Y(1), gate, OT_ACT_SIGMOID, 1.0f);
  pw_tt(&pw, ELEM_ALT, ELEM_T(0), dy, up, OT_ALU_MUL);
  pw_tt(&pw, ELEM_ALT2, ELEM_T(1), dy, gate, OT_ALU_MUL);
  pw_tt(&pw, ELEM_ALT, ELEM_Y(0), ELEM_T(0), ELEM_Y(0), OT_ALU_MUL);
  pw_tt(&pw, ELEM_ALT2, ELEM_Y(1), ELEM_T(1), ELEM_Y(1), OT_ALU_MUL);
  return elem_pw_run(&pw);
}

/* One HBM -> HBM DMA per 2^30 elements: the DMA converts src -> fp32 -> dst with round to
** nearest even (and saturation into int32), the graph's cast semantics. */
ot_status lower_elem_cast(lower_ctx *c, const ot_gnode *n) {
  uint64_t total = (uint64_t)ot_gtensor_elems(elem_out(c, n, 0));
  const uint64_t piece = (uint64_t)1 << 30;
  for (uint64_t e0 = 0; e0 < total && !kir_status(c->k); e0 += piece) {
    int64_t st = 1;
    uint32_t sz = (uint32_t)(total - e0 < piece ? total - e0 : piece);
    kir_dma(c->k, kir_hbm_ap(&c->hbm[n->out[0]], e0, 1, &st, &sz), kir_hbm_ap(&c->hbm[n->in[0]], e0, 1, &st, &sz),
            OT_ENG_COUNT);
  }
  return kir_status(c->k);
}
