/* Time: the cycles each data-path instruction occupies its engine, from the cost classes of
** opcodes.def and the constants of the chip description (trainium.md §5.1).  N is the free size
** (elements per partition) of the instruction's main operand; partitions cost nothing extra
** (fewer than 128 partitions take as long as 128, §5.1). */
#include <math.h>

#include "sim/sim_int.h"

static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }
static uint64_t ceil_div(uint64_t a, uint64_t b) { return b ? (a + b - 1) / b : a; }

static bool is16(const ot_view *v) { return v->mem != OT_MEM_NONE && v->esize == 2; }
static bool present(const ot_view *v) { return v->mem != OT_MEM_NONE; }

/* Unit stride in the innermost dimension (contiguous rows), or a single element. */
static bool unit_stride(const ot_view *v) {
  return v->ndim == 0 || v->stride[v->ndim - 1] == (int64_t)v->esize || v->size[v->ndim - 1] == 1;
}

/* The 16-bit fast modes of VectorE (and, on NC-v4, ScalarE): fast16_sbuf for SBUF-to-SBUF
** unit-stride copies and tensor_scalar, fast16_other for other 16-bit work. */
static uint64_t fast16(const ot_engine_desc *e, const ot_view *dst, const ot_view *src, uint64_t n) {
  if (!is16(dst) || !is16(src)) return n;
  bool sbuf_contig = dst->mem == OT_MEM_SBUF && src->mem == OT_MEM_SBUF && unit_stride(dst) && unit_stride(src);
  return ceil_div(n, sbuf_contig ? e->fast16_sbuf : e->fast16_other);
}

static uint64_t cost_matmul(const ot_chip *c, const ot_view *dst, const ot_view *mov, ot_timing_model model) {
  uint64_t n = mov->free_elems;
  if (model == OT_TIMING_SCALESIM) return c->tensor.rows + c->tensor.cols + n - 2; /* stream, fill and drain */
  uint64_t cyc = max_u64(n, c->tensor.mm_init_latency);
  if (mov->dtype == OT_DT_FP32) cyc *= c->tensor.fp32_factor;
  else if (mov->esize == 1 && c->tensor.fp8_rate > 1) cyc = ceil_div(cyc, c->tensor.fp8_rate);
  (void)dst;
  return cyc;
}

static uint64_t cost_ldweights(const ot_chip *c, const ot_view *src, ot_timing_model model) {
  if (model == OT_TIMING_SCALESIM) return c->tensor.rows; /* weights shifted in row by row */
  uint64_t cyc = ceil_div(src->free_elems, c->tensor.ls_speedup);
  if (src->dtype == OT_DT_FP32) cyc *= c->tensor.fp32_factor;
  return cyc ? cyc : 1;
}

static uint64_t cost_tt(const ot_engine_desc *e, const ot_insn *in, const ot_view *v) {
  const ot_view *dst = &v[0], *a = &v[1], *b = &v[2];
  uint64_t n = a->free_elems;
  int op = in->o[3].i;
  bool one_psum = (a->mem == OT_MEM_PSUM) != (b->mem == OT_MEM_PSUM);
  bool all16 = is16(dst) && is16(a) && is16(b) && a->mem == OT_MEM_SBUF && b->mem == OT_MEM_SBUF &&
               unit_stride(a) && unit_stride(b) && (op == OT_ALU_ADD || op == OT_ALU_MUL || op == OT_ALU_SUB);
  return max_u64(e->min_ii, one_psum || all16 ? n : 2 * n);
}

static uint64_t cost_select(const ot_engine_desc *e, const ot_view *v) {
  uint64_t n = v[0].free_elems;
  bool psum = v[1].mem == OT_MEM_PSUM || v[2].mem == OT_MEM_PSUM || v[3].mem == OT_MEM_PSUM;
  return max_u64(e->min_ii, psum ? n : 2 * n);
}

static uint64_t cost_reduce(const ot_insn *in, const ot_view *v) {
  int op = in->o[2].i;
  uint64_t n = v[1].free_elems;
  return is16(&v[0]) && is16(&v[1]) && (op == OT_ALU_ADD || op == OT_ALU_MAX) ? ceil_div(n, 2) : n;
}

static uint64_t cost_memset(const ot_engine_desc *e, const ot_insn *in, const ot_view *dst) {
  uint64_t n = dst->free_elems;
  return max_u64(e->min_ii, is16(dst) && in->o[1].f == 0.0f ? ceil_div(n, 2) : n);
}

/* FLOPs of TensorE work: a matmul is 2*K*M*N; a transpose multiplies by a P x P identity. */
static void tensor_flops(ot_cost *c, const ot_insn *in, const ot_view *v, const ot_core_state *core) {
  if (in->op == OT_OP_MATMUL) {
    uint64_t k = core && core->stat_k ? core->stat_k : v[1].parts;
    c->flops = 2 * k * (uint64_t)v[0].parts * v[1].free_elems;
  } else if (in->op == OT_OP_TRANSPOSE) {
    c->flops = 2 * (uint64_t)v[1].parts * v[1].parts * v[1].free_elems;
    c->is_transpose_flops = true;
  }
}

ot_cost ot_cost_insn(const ot_chip *chip, ot_engine eng, const ot_insn *in, const ot_view *v,
                     const ot_core_state *core, ot_timing_model model) {
  const ot_engine_desc *e = &chip->eng[eng];
  ot_cost c = {0, 0, false};
  const ot_view *dst = &v[0], *src = &v[1];
  uint64_t n = present(src) ? src->free_elems : dst->free_elems;
  switch (ot_opcodes[in->op].cost) {
  case OT_COST_LS: c.cycles = cost_ldweights(chip, &v[0], model); break;
  case OT_COST_MM: c.cycles = cost_matmul(chip, dst, src, model); break;
  case OT_COST_PE_TRANSPOSE:
    c.cycles = max_u64(src->parts, src->free_elems < chip->tensor.transpose_min ? src->free_elems : chip->tensor.transpose_min);
    break;
  case OT_COST_ACT:
    c.cycles = max_u64(e->min_ii, fast16(e, dst, src, n)) + (v[6].mem != OT_MEM_NONE ? chip->scalar.acc_read_cycles : 0);
    break;
  case OT_COST_TT: c.cycles = cost_tt(e, in, v); break;
  case OT_COST_TS:
  case OT_COST_COPY: c.cycles = max_u64(e->min_ii, fast16(e, dst, src, n)); break;
  case OT_COST_STT: c.cycles = is16(dst) && is16(src) && is16(&v[5]) ? n : 2 * n; break;
  case OT_COST_REDUCE: c.cycles = cost_reduce(in, v); break;
  case OT_COST_MEMSET: c.cycles = cost_memset(e, in, dst); break;
  case OT_COST_GPSIMD: c.cycles = e->fixed_overhead + dst->free_elems; break;
  case OT_COST_SELECT: c.cycles = cost_select(e, v); break;
  case OT_COST_N1: c.cycles = max_u64(e->min_ii, n); break;
  case OT_COST_BN_AGGR: c.cycles = max_u64(e->min_ii, 13 * (n / 3)); break;
  case OT_COST_RECIP: c.cycles = max_u64(e->min_ii, 8 * n); break;
  default: c.cycles = chip->seq.control_cycles; break;
  }
  if (eng == OT_ENG_TENSOR) tensor_flops(&c, in, v, core);
  return c;
}

ot_ps ot_cycles_to_ps(const ot_chip *chip, ot_engine eng, uint64_t cycles) {
  /* 1000 / GHz picoseconds per cycle; rounded to the nearest picosecond (deterministic). */
  return (ot_ps)llround((double)cycles * 1000.0 / chip->eng[eng].clock_ghz);
}
