/* The values of data-path instructions: operand resolution, the checks every instruction
** shares (uninitialised reads, the NaN/Inf trap, written-byte tracking) and the dispatch to the
** instruction bodies in sim_exec_*.c.  The specification is docs/simulator-semantics.md. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_exec_int.h"

/* ---- errors and scratch -------------------------------------------------------------------- */
ot_status exec_fail(ot_exec_op *e, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return ot_site_error(e->x->site, e->x->err, "%s", msg);
}

const char *exec_name(const ot_exec_op *e, unsigned k) {
  const ot_opcode_info *info = &ot_opcodes[e->in->op];
  return k < info->n_operands ? info->operands[k].name : "operand";
}

void *exec_alloc(ot_exec_op *e, uint64_t n, size_t size) {
  void *p = NULL;
  if (e->nbuf < OT_EXEC_MAX_BUFS && n <= OT_EXEC_MAX_ELEMS * 4) p = malloc(n ? (size_t)n * size : 1);
  if (!p) {
    char where[640];
    ot_site_format(e->x->site, where, sizeof where);
    ot_error_set(e->x->err, OT_ENOMEM, "%s: cannot allocate scratch for %llu elements", where, (unsigned long long)n);
    return NULL;
  }
  e->buf[e->nbuf++] = p;
  return p;
}

void exec_free(ot_exec_op *e) {
  for (unsigned i = 0; i < e->nbuf; i++) free(e->buf[i]);
  e->nbuf = 0;
}

/* ---- operand resolution -------------------------------------------------------------------- */
static const char *mem_long(ot_mem m) { return m == OT_MEM_SBUF ? "SBUF" : m == OT_MEM_PSUM ? "PSUM" : "HBM"; }

/* The context holds the memory a view names, at least as large as the chip's (ot_view_resolve
** checked the view against the chip), so every access stays inside the allocation. */
ot_status exec_view_usable(ot_exec_ctx *x, const ot_view *v, const char *name) {
  const ot_sram *s = ot_mem_sram(&x->mem, v->mem);
  if (v->mem == OT_MEM_HBM) {
    if (x->mem.hbm && x->mem.hbm->bytes >= x->chip->hbm.bytes) return OT_OK;
  } else if (s && s->data && s->written) {
    bool sb = v->mem == OT_MEM_SBUF;
    uint32_t P = sb ? x->chip->sbuf.partitions : x->chip->psum.partitions;
    uint64_t B = sb ? x->chip->sbuf.bytes_per_partition : x->chip->psum.bytes_per_partition;
    if (s->partitions >= P && s->part_bytes >= B) return OT_OK;
  }
  return ot_site_error(x->site, x->err, "%s: the simulator has no %s of the chip's size in this context", name,
                       mem_long(v->mem));
}

static bool operand_is_ap(const ot_operand_spec *s, const ot_operand *o) {
  if (s->kind == OT_OK_AP) return o->ap.mem != OT_MEM_NONE;
  return s->kind == OT_OK_VAL && o->tag == OT_TAG_AP && o->ap.mem != OT_MEM_NONE;
}

static ot_status exec_resolve(ot_exec_op *e) {
  const ot_opcode_info *info = &ot_opcodes[e->in->op];
  ot_exec_ctx *x = e->x;
  for (unsigned k = 0; k < info->n_operands && k < OT_MAX_OPERANDS; k++) {
    const ot_operand_spec *s = &info->operands[k];
    if (!operand_is_ap(s, &e->in->o[k])) {
      if (s->kind == OT_OK_AP && !s->optional) return exec_fail(e, "%s: missing access pattern", s->name);
      continue;
    }
    ot_status st = ot_view_resolve(&e->v[k], &e->in->o[k].ap, x->regs, x->chip, x->site, x->err);
    if (st == OT_OK) st = exec_view_usable(x, &e->v[k], s->name);
    if (st != OT_OK) return st;
    if (ot_view_elems(&e->v[k]) > OT_EXEC_MAX_ELEMS)
      return exec_fail(e, "%s: %llu elements, more than the %llu one instruction may touch", s->name,
                       (unsigned long long)ot_view_elems(&e->v[k]), (unsigned long long)OT_EXEC_MAX_ELEMS);
    e->has[k] = true;
  }
  return OT_OK;
}

/* ---- reads --------------------------------------------------------------------------------- */
ot_status exec_check_init(ot_exec_op *e, unsigned k) {
  const ot_view *v = &e->v[k];
  uint64_t bad = 0;
  if (ot_view_is_written(&e->x->mem, v, &bad)) return OT_OK;
  if (!e->x->check_uninit) {
    if (e->x->warnings) (*e->x->warnings)++;
    return OT_OK;
  }
  uint64_t F = v->free_elems ? v->free_elems : 1;
  return exec_fail(e, "%s reads %s bytes that were never written: element %llu (partition %llu, free index %llu)", exec_name(e, k),
                   mem_long(v->mem), (unsigned long long)bad, (unsigned long long)(v->part_start + bad / F),
                   (unsigned long long)(bad % F));
}

ot_status exec_read_bits(ot_exec_op *e, unsigned k, uint32_t **out) {
  ot_status st = exec_check_init(e, k);
  if (st != OT_OK) return st;
  *out = exec_alloc(e, ot_view_elems(&e->v[k]), sizeof **out);
  if (!*out) return OT_ENOMEM;
  ot_view_load_bits(&e->x->mem, &e->v[k], *out);
  return OT_OK;
}

ot_status exec_read_f32(ot_exec_op *e, unsigned k, float **out) {
  ot_status st = exec_check_init(e, k);
  if (st != OT_OK) return st;
  *out = exec_alloc(e, ot_view_elems(&e->v[k]), sizeof **out);
  if (!*out) return OT_ENOMEM;
  ot_view_load_f32(&e->x->mem, &e->v[k], *out);
  return OT_OK;
}

ot_status exec_per_partition(ot_exec_op *e, unsigned k, uint32_t parts, float def, float **out) {
  const ot_operand_spec *s = &ot_opcodes[e->in->op].operands[k];
  if (e->has[k]) {
    const ot_view *v = &e->v[k];
    if (v->parts != parts || v->free_elems != 1)
      return exec_fail(e, "%s: [%u partitions, %llu elements], expected a per-partition [%u, 1]", s->name, v->parts,
                       (unsigned long long)v->free_elems, parts);
    return exec_read_f32(e, k, out);
  }
  float val = s->kind == OT_OK_VAL && e->in->o[k].tag == OT_TAG_IMM ? e->in->o[k].f : def;
  *out = exec_alloc(e, parts, sizeof **out);
  if (!*out) return OT_ENOMEM;
  for (uint32_t p = 0; p < parts; p++) (*out)[p] = val;
  return OT_OK;
}

/* ---- writes -------------------------------------------------------------------------------- */
static bool bits_finite(ot_dtype t, uint32_t b) {
  switch (t) {
  case OT_DT_FP32: return (b & 0x7F800000u) != 0x7F800000u;
  case OT_DT_BF16: return (b & 0x7F80u) != 0x7F80u;
  default: return isfinite(ot_bits_to_f32(b, t));
  }
}

static ot_status exec_trap(ot_exec_op *e, unsigned k, const uint32_t *bits) {
  const ot_view *v = &e->v[k];
  if (!e->x->trap_nonfinite || !ot_dtype_is_float(v->dtype)) return OT_OK;
  uint64_t n = ot_view_elems(v), F = v->free_elems ? v->free_elems : 1;
  for (uint64_t i = 0; i < n; i++) {
    if (bits_finite(v->dtype, bits[i])) continue;
    float f = ot_bits_to_f32(bits[i], v->dtype);
    return exec_fail(e, "writes %s to %s element %llu (partition %llu, free index %llu)", isnan(f) ? "NaN" : f > 0 ? "+Inf" : "-Inf",
                     exec_name(e, k), (unsigned long long)i, (unsigned long long)(v->part_start + i / F),
                     (unsigned long long)(i % F));
  }
  return OT_OK;
}

ot_status exec_write_bits(ot_exec_op *e, unsigned k, const uint32_t *bits, bool by_matmul) {
  ot_status st = exec_trap(e, k, bits);
  if (st != OT_OK) return st;
  if (ot_view_store_bits_checked(&e->x->mem, &e->v[k], bits) != OT_OK)
    return exec_fail(e, "%s: out of memory allocating HBM pages", exec_name(e, k));
  ot_view_mark_written(&e->x->mem, &e->v[k], by_matmul);
  return OT_OK;
}

/* fp32 values straight into an fp32 SBUF/PSUM view (no rounding, so no bit staging). */
static bool exec_write_f32_fast(ot_exec_op *e, unsigned k, const float *vals, bool by_matmul, ot_status *st) {
  const ot_view *v = &e->v[k];
  const ot_cvt *c = &e->x->cvt;
  bool plain = (c->round != OT_ROUND_STOCHASTIC || !c->rng) && !c->saturate;
  if (v->dtype != OT_DT_FP32 || v->mem == OT_MEM_HBM || !plain) return false;
  uint64_t n = ot_view_elems(v), F = v->free_elems ? v->free_elems : 1;
  for (uint64_t i = 0; e->x->trap_nonfinite && i < n; i++)
    if (!isfinite(vals[i])) {
      *st = exec_fail(e, "writes %s to %s element %llu (partition %llu, free index %llu)",
                      isnan(vals[i]) ? "NaN" : vals[i] > 0 ? "+Inf" : "-Inf", exec_name(e, k), (unsigned long long)i,
                      (unsigned long long)(v->part_start + i / F), (unsigned long long)(i % F));
      return true;
    }
  ot_view_store_f32(&e->x->mem, v, vals, NULL);
  ot_view_mark_written(&e->x->mem, v, by_matmul);
  *st = OT_OK;
  return true;
}

ot_status exec_write_f32(ot_exec_op *e, unsigned k, const float *vals, bool by_matmul) {
  ot_status st;
  if (exec_write_f32_fast(e, k, vals, by_matmul, &st)) return st;
  uint64_t n = ot_view_elems(&e->v[k]);
  uint32_t *bits = exec_alloc(e, n, sizeof *bits);
  if (!bits) return OT_ENOMEM;
  ot_f32_to_bits_n(e->v[k].dtype, vals, bits, n, &e->x->cvt);
  return exec_write_bits(e, k, bits, by_matmul);
}

/* ---- shapes -------------------------------------------------------------------------------- */
ot_status exec_same_parts(ot_exec_op *e, unsigned a, unsigned b) {
  if (e->v[a].parts == e->v[b].parts) return OT_OK;
  return exec_fail(e, "%s spans %u partitions, %s %u", exec_name(e, a), e->v[a].parts, exec_name(e, b), e->v[b].parts);
}

ot_status exec_same_shape(ot_exec_op *e, unsigned a, unsigned b) {
  const ot_view *va = &e->v[a], *vb = &e->v[b];
  if (va->parts == vb->parts && va->free_elems == vb->free_elems) return OT_OK;
  return exec_fail(e, "%s is [%u partitions, %llu elements], %s [%u, %llu]", exec_name(e, a), va->parts,
                   (unsigned long long)va->free_elems, exec_name(e, b), vb->parts, (unsigned long long)vb->free_elems);
}

void exec_transpose_bits(const uint32_t *src, uint32_t *dst, uint64_t P, uint64_t F) {
  for (uint64_t p = 0; p < P; p++)
    for (uint64_t f = 0; f < F; f++) dst[f * P + p] = src[p * F + f];
}

/* ---- dispatch ------------------------------------------------------------------------------ */
typedef ot_status (*exec_body)(ot_exec_op *e);

static exec_body exec_body_of(ot_opcode op) {
  switch (op) {
  case OT_OP_LDWEIGHTS: return exec_ldweights;
  case OT_OP_MATMUL: return exec_matmul;
  case OT_OP_TRANSPOSE: case OT_OP_TRANSPOSE32: return exec_transpose;
  case OT_OP_ACTIVATE: return exec_activate;
  case OT_OP_TENSOR_TENSOR: return exec_tensor_tensor;
  case OT_OP_TENSOR_SCALAR: return exec_tensor_scalar;
  case OT_OP_SCALAR_TENSOR_TENSOR: return exec_scalar_tensor_tensor;
  case OT_OP_TENSOR_REDUCE: return exec_tensor_reduce;
  case OT_OP_TENSOR_COPY: return exec_tensor_copy;
  case OT_OP_MEMSET: return exec_memset;
  case OT_OP_RECIPROCAL: return exec_reciprocal;
  case OT_OP_SELECT: return exec_select;
  case OT_OP_IOTA: return exec_iota;
  case OT_OP_AFFINE_SELECT: return exec_affine_select;
  case OT_OP_BN_STATS: return exec_bn_stats;
  case OT_OP_BN_AGGR: return exec_bn_aggr;
  default: return NULL;
  }
}

ot_status ot_exec_insn(ot_exec_ctx *x, const ot_insn *in) {
  if (!x || !in || !x->chip) return OT_EINVAL;
  if (in->op >= OT_OP_COUNT) return ot_site_error(x->site, x->err, "opcode %u unknown", in->op);
  ot_opcode op = (ot_opcode)in->op;
  ot_cost_class cls = ot_opcodes[op].cost;
  if (cls == OT_COST_CTRL || cls == OT_COST_WAIT) return OT_OK; /* no values: the sequencer's business */
  exec_body body = exec_body_of(op);
  if (!body) return ot_site_error(x->site, x->err, "%s moves data through a DMA queue (ot_exec_dma), not an engine",
                                  ot_opcodes[op].mnemonic);
  ot_exec_op e;
  memset(&e, 0, sizeof e);
  e.x = x, e.in = in;
  ot_status st = exec_resolve(&e);
  if (st == OT_OK) st = body(&e);
  exec_free(&e);
  return st;
}
