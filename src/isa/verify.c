/* The static verifier: every instruction of every stream against the chip's rules.  Generic
** checks come from the operand specs of opcodes.def (memories, roles, kinds); the few
** instruction-specific shape rules are below, one function per instruction family.  All
** violations are reported in one pass. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "arch/chip_int.h"
#include "isa/disasm.h"
#include "isa/verify.h"

static const char *const rule_names[] = {
#define R(id, summary) #id,
#include "isa/verify_rules.def"
#undef R
};
static const char *const rule_summaries[] = {
#define R(id, summary) summary,
#include "isa/verify_rules.def"
#undef R
};

const char *ot_verify_rule_name(ot_verify_rule r) { return (unsigned)r < OT_RULE_COUNT ? rule_names[r] : "?"; }
const char *ot_verify_rule_summary(ot_verify_rule r) { return (unsigned)r < OT_RULE_COUNT ? rule_summaries[r] : "?"; }

typedef struct {
  const ot_program *prog;
  const ot_chip *chip;
  const ot_stream *stream;
  uint32_t pc;
  const ot_insn *in;
  ot_error *err;
  unsigned violations;
} vctx;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void violate(vctx *v, ot_verify_rule rule, const char *fmt, ...) {
  char text[512], msg[512];
  FILE *f = fmemopen(text, sizeof text, "w");
  if (f) { ot_insn_print(f, v->in, v->prog); fclose(f); } else { text[0] = '\0'; }
  text[sizeof text - 1] = '\0';
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char line[32] = "";
  if (v->in->line) snprintf(line, sizeof line, " (line %u)", v->in->line);
  ot_error_set(v->err, OT_EVERIFY, "%s[%u]%s `%s`: [%s] %s", ot_engine_name((ot_engine)v->stream->engine), v->pc,
               line, text, rule_names[rule], msg);
  v->violations++;
}

static const ot_engine_desc *eng(const vctx *v) { return &v->chip->eng[v->stream->engine]; }
static const char *dt(const ot_ap *ap) { return ot_dtype_name((ot_dtype)ap->dtype); }

/* ---- access patterns --------------------------------------------------------------------- */
/* What a compute engine may do with a memory (trainium.md §3.2). */
static bool engine_reaches(ot_engine e, ot_mem m, bool write) {
  switch (e) {
  case OT_ENG_TENSOR: return write ? m == OT_MEM_PSUM : m == OT_MEM_SBUF;
  case OT_ENG_VECTOR:
  case OT_ENG_SCALAR: return m == OT_MEM_SBUF || m == OT_MEM_PSUM;
  case OT_ENG_GPSIMD: return m == OT_MEM_SBUF;
  default: return false;
  }
}

static uint64_t mem_partition_bytes(const ot_chip *c, ot_mem m) {
  return m == OT_MEM_SBUF ? c->sbuf.bytes_per_partition : c->psum.bytes_per_partition;
}
static uint32_t mem_partitions(const ot_chip *c, ot_mem m) {
  return m == OT_MEM_SBUF ? c->sbuf.partitions : c->psum.partitions;
}

static bool check_partition_range(vctx *v, const char *name, const ot_ap *ap) {
  uint32_t P = mem_partitions(v->chip, (ot_mem)ap->mem);
  uint32_t n = ap->part_count, s = ap->part_start;
  if (n != 0 && s + n <= P) return true;
  violate(v, OT_RULE_PARTITION_RANGE, "%s: partitions %u..%d, the %s has 0..%u", name, s, (int)(s + n) - 1,
          ot_mem_name((ot_mem)ap->mem), P - 1);
  return false;
}

/* Compute engines address contiguous partitions from an aligned start (§3.3). */
static void check_partition_rules(vctx *v, const char *name, const ot_ap *ap) {
  if (!check_partition_range(v, name, ap)) return;
  uint32_t P = mem_partitions(v->chip, (ot_mem)ap->mem);
  uint32_t n = ap->part_count, s = ap->part_start;
  uint32_t step = n > P / 2 ? P : n > P / 4 ? P / 2 : P / 4;
  if (step && s % step)
    violate(v, OT_RULE_PARTITION_START, "%s: %u partitions may start at a multiple of %u, not at %u", name, n,
            step == P ? 0 : step, s);
}

static void check_address(vctx *v, const char *name, const ot_ap *ap) {
  int64_t lo, hi;
  uint64_t limit = ap->mem == OT_MEM_HBM ? v->chip->hbm.bytes : mem_partition_bytes(v->chip, (ot_mem)ap->mem);
  const char *what = ap->mem == OT_MEM_HBM ? "HBM" : ap->mem == OT_MEM_SBUF ? "an SBUF partition" : "a PSUM partition";
  if (!ot_ap_byte_range(ap, &lo, &hi) || (uint64_t)hi > limit)
    violate(v, OT_RULE_ADDRESS, "%s: bytes %lld..%lld, %s holds %llu", name, (long long)lo, (long long)hi - 1, what,
            (unsigned long long)limit);
  if (ap->offset % ot_dtype_size((ot_dtype)ap->dtype))
    violate(v, OT_RULE_ALIGN, "%s: offset %llu is not a multiple of %zu (%s)", name, (unsigned long long)ap->offset,
            ot_dtype_size((ot_dtype)ap->dtype), dt(ap));
  if (ap->reg && (unsigned)(ap->reg - 1) >= v->chip->seq.registers)
    violate(v, OT_RULE_REGISTER, "%s: offset register r%u, the sequencer has r0..r%u", name, ap->reg - 1u,
            v->chip->seq.registers - 1);
}

static void check_compute_ap(vctx *v, const ot_operand_spec *s, const ot_ap *ap, bool write) {
  ot_engine e = (ot_engine)v->stream->engine;
  if (!engine_reaches(e, (ot_mem)ap->mem, write)) {
    violate(v, OT_RULE_ENGINE_MEM, "%s: %s cannot %s %s", s->name, ot_engine_name(e), write ? "write" : "read",
            ot_mem_name((ot_mem)ap->mem));
    return;
  }
  if (!ot_chip_engine_has_dtype(v->chip, e, (ot_dtype)ap->dtype))
    violate(v, OT_RULE_DTYPE, "%s: %s does not support %s on %s", s->name, ot_engine_name(e), dt(ap), v->chip->name);
  check_partition_rules(v, s->name, ap);
  for (unsigned d = 0; d < ap->ndim && d < OT_AP_MAX_DIMS; d++)
    if (ap->dim[d].size > UINT16_MAX || ap->dim[d].stride < INT16_MIN || ap->dim[d].stride > INT16_MAX)
      violate(v, OT_RULE_AP_LIMITS, "%s: dim %u [stride %d, size %u], fields are int16 stride and uint16 size",
              s->name, d, ap->dim[d].stride, ap->dim[d].size);
  uint64_t fmax = ap->mem == OT_MEM_PSUM ? eng(v)->free_max_psum : eng(v)->free_max_sbuf;
  uint64_t n = ot_ap_free_elems(ap);
  if (fmax && e != OT_ENG_TENSOR && n > fmax)
    violate(v, OT_RULE_FREE_SIZE, "%s: free size %llu, %s allows %llu per instruction on %s", s->name,
            (unsigned long long)n, ot_engine_name(e), (unsigned long long)fmax, ot_mem_name((ot_mem)ap->mem));
}

static void check_ap(vctx *v, const ot_operand_spec *s, const ot_ap *ap) {
  if (ap->mem == OT_MEM_NONE) return;
  if (ap->ndim > OT_AP_MAX_DIMS || ap->mem >= OT_MEM_COUNT || ap->dtype >= OT_DT_COUNT) {
    violate(v, OT_RULE_AP_LIMITS, "%s: memory %u, type %u, %u dimensions (at most %d)", s->name, ap->mem, ap->dtype,
            ap->ndim, OT_AP_MAX_DIMS);
    return;
  }
  if (!(s->mems & OT_MEM_BIT(ap->mem))) {
    violate(v, OT_RULE_OPERAND_MEM, "%s: %s cannot be in %s", s->name, ot_opcodes[v->in->op].mnemonic,
            ot_mem_name((ot_mem)ap->mem));
    return;
  }
  bool dma = s->role == OT_ROLE_RD || s->role == OT_ROLE_WD;
  if (dma && ap->mem != OT_MEM_HBM) check_partition_range(v, s->name, ap);
  if (!dma) check_compute_ap(v, s, ap, s->role == OT_ROLE_W);
  check_address(v, s->name, ap);
}

/* ---- scalar operands --------------------------------------------------------------------- */
static void check_index(vctx *v, const ot_operand_spec *s, int32_t i, uint32_t limit, ot_verify_rule rule, char pfx) {
  if (i < 0 || (uint32_t)i >= limit)
    violate(v, rule, "%s: %c%d, the chip has %c0..%c%u", s->name, pfx, i, pfx, pfx, limit - 1);
}

static void check_alu(vctx *v, const ot_operand_spec *s, int op) {
  ot_alu_class c = ot_alu_class_of(op);
  const char *mn = ot_opcodes[v->in->op].mnemonic;
  bool cmp_slot = !strcmp(s->name, "cmp");
  if (cmp_slot && c != OT_ALU_CMP)
    violate(v, OT_RULE_ALU_OP, "%s: '%s' is not a comparison (eq ne ge gt le lt)", s->name, ot_alu_name(op));
  else if (v->in->op == OT_OP_REG_OP && c != OT_ALU_BITVEC && op != OT_ALU_ADD && op != OT_ALU_SUB &&
           op != OT_ALU_MUL && op != OT_ALU_MIN && op != OT_ALU_MAX)
    violate(v, OT_RULE_ALU_OP, "%s: '%s' is not a 32-bit integer register operation", s->name, ot_alu_name(op));
  else if (v->in->op == OT_OP_TENSOR_REDUCE && !ot_alu_reduce_ok(op))
    violate(v, OT_RULE_ALU_OP, "%s: '%s' is not a reduction operator", s->name, ot_alu_name(op));
  (void)mn;
}

static void check_operand(vctx *v, unsigned k) {
  const ot_operand_spec *s = &ot_opcodes[v->in->op].operands[k];
  const ot_operand *o = &v->in->o[k];
  const ot_chip *c = v->chip;
  switch (s->kind) {
  case OT_OK_AP: check_ap(v, s, &o->ap); break;
  case OT_OK_VAL: if (o->tag == OT_TAG_AP) check_ap(v, s, &o->ap); break;
  case OT_OK_REG: check_index(v, s, o->i, c->seq.registers, OT_RULE_REGISTER, 'r'); break;
  case OT_OK_RI: if (o->tag == OT_TAG_REG) check_index(v, s, o->i, c->seq.registers, OT_RULE_REGISTER, 'r'); break;
  case OT_OK_SEM: check_index(v, s, o->i, c->seq.semaphores, OT_RULE_SEMAPHORE, 's'); break;
  case OT_OK_QUEUE: check_index(v, s, o->i, c->dma.queues, OT_RULE_QUEUE, 'q'); break;
  case OT_OK_LABEL:
    if (o->i < 0 || (uint32_t)o->i > v->stream->n)
      violate(v, OT_RULE_BRANCH_TARGET, "%s: instruction %d, the stream has 0..%u", s->name, o->i, v->stream->n);
    break;
  case OT_OK_ALU: check_alu(v, s, o->i); break;
  case OT_OK_CORE:
    if (o->i != OT_CORE_SELF && (o->i < 0 || (uint32_t)o->i >= c->cores_per_chip))
      violate(v, OT_RULE_CORE, "%s: core %d, chip %s has cores 0..%u", s->name, o->i, c->name, c->cores_per_chip - 1);
    break;
  default: break;
  }
}

/* ---- instruction families ---------------------------------------------------------------- */
#define AP(k) (&v->in->o[k].ap)

static bool present(const ot_ap *ap) { return ap->mem != OT_MEM_NONE; }

static void same_partitions(vctx *v, const ot_ap *dst, const ot_ap *src, const char *name) {
  if (present(src) && dst->part_count != src->part_count)
    violate(v, OT_RULE_PARTITION_MATCH, "dst spans %u partitions, %s %u", dst->part_count, name, src->part_count);
}

static void same_shape(vctx *v, const ot_ap *dst, const ot_ap *src, const char *name) {
  if (!present(src)) return;
  same_partitions(v, dst, src, name);
  if (ot_ap_free_elems(dst) != ot_ap_free_elems(src))
    violate(v, OT_RULE_SHAPE_MATCH, "dst has %llu elements per partition, %s %llu",
            (unsigned long long)ot_ap_free_elems(dst), name, (unsigned long long)ot_ap_free_elems(src));
}

static void scalar_operand(vctx *v, const ot_ap *dst, const ot_operand *o, const char *name) {
  if (o->tag != OT_TAG_AP || !present(&o->ap)) return;
  if (ot_ap_free_elems(&o->ap) != 1 || o->ap.part_count != dst->part_count)
    violate(v, OT_RULE_SCALAR_OPERAND, "%s: [%u partitions, %llu elements], expected [%u, 1]", name, o->ap.part_count,
            (unsigned long long)ot_ap_free_elems(&o->ap), dst->part_count);
}

static void check_matmul(vctx *v) {
  const ot_chip *c = v->chip;
  const ot_ap *dst = AP(0), *mov = AP(1);
  uint64_t n = ot_ap_free_elems(mov);
  bool dst16 = ot_dtype_size((ot_dtype)dst->dtype) == 2;
  uint64_t fmax = dst16 ? c->tensor.moving_fmax_16bit : c->tensor.moving_fmax;
  if (mov->part_count > c->tensor.rows)
    violate(v, OT_RULE_MATMUL_TILE, "mov: contraction over %u partitions, the PE array has %u rows", mov->part_count, c->tensor.rows);
  if (n > fmax)
    violate(v, OT_RULE_MATMUL_TILE, "mov: free size %llu, tensor.moving_fmax%s is %llu on %s", (unsigned long long)n,
            dst16 ? "_16bit" : "", (unsigned long long)fmax, c->name);
  if (dst->part_count > c->tensor.cols)
    violate(v, OT_RULE_MATMUL_TILE, "dst: %u output partitions, the PE array has %u columns", dst->part_count, c->tensor.cols);
  if (ot_ap_free_elems(dst) != n)
    violate(v, OT_RULE_SHAPE_MATCH, "dst has %llu elements per partition, mov %llu", (unsigned long long)ot_ap_free_elems(dst),
            (unsigned long long)n);
  if (dst->dtype != OT_DT_FP32 && !(c->generation >= 4 && dst->dtype == OT_DT_BF16))
    violate(v, OT_RULE_PSUM_DTYPE, "dst is %s; matmul accumulates into fp32 PSUM%s", dt(dst),
            c->generation >= 4 ? " or bf16 PSUM" : " on this generation");
  int64_t lo, hi;
  uint64_t bank = c->psum.bytes_per_partition / c->psum.banks;
  if (bank && ot_ap_byte_range(dst, &lo, &hi) && hi > lo && (uint64_t)lo / bank != (uint64_t)(hi - 1) / bank)
    violate(v, OT_RULE_PSUM_BANK, "dst: bytes %lld..%lld cross a %llu-byte PSUM bank boundary", (long long)lo,
            (long long)hi - 1, (unsigned long long)bank);
}

static void check_ldweights(vctx *v) {
  const ot_ap *src = AP(0);
  if (src->part_count > v->chip->tensor.rows || ot_ap_free_elems(src) > v->chip->tensor.stationary_fmax)
    violate(v, OT_RULE_MATMUL_TILE, "stationary [%u, %llu] exceeds [%u rows, %u = tensor.stationary_fmax]",
            src->part_count, (unsigned long long)ot_ap_free_elems(src), v->chip->tensor.rows, v->chip->tensor.stationary_fmax);
}

static void check_transpose(vctx *v, uint32_t block) {
  const ot_ap *dst = AP(0), *src = AP(1);
  uint64_t f = ot_ap_free_elems(src);
  if (src->part_count > block || f > block)
    violate(v, OT_RULE_TRANSPOSE, "src [%u, %llu] exceeds the %ux%u transpose block", src->part_count,
            (unsigned long long)f, block, block);
  if (dst->part_count != f || ot_ap_free_elems(dst) != src->part_count)
    violate(v, OT_RULE_TRANSPOSE, "dst is [%u, %llu], the transpose of src [%u, %llu] is [%llu, %u]", dst->part_count,
            (unsigned long long)ot_ap_free_elems(dst), src->part_count, (unsigned long long)f, (unsigned long long)f,
            src->part_count);
  if (v->in->op == OT_OP_TRANSPOSE && dst->dtype != src->dtype && dst->dtype != OT_DT_FP32)
    violate(v, OT_RULE_TRANSPOSE, "dst %s, expected src's type %s or fp32", dt(dst), dt(src));
}

static void check_bn(vctx *v) {
  const ot_ap *dst = AP(0), *src = AP(1);
  same_partitions(v, dst, src, "src");
  uint64_t nd = ot_ap_free_elems(dst), ns = ot_ap_free_elems(src);
  if (v->in->op == OT_OP_BN_STATS) {
    if (ns > v->chip->vector.bn_stats_fmax)
      violate(v, OT_RULE_BN_STATS, "src free size %llu, vector.bn_stats_fmax is %u", (unsigned long long)ns,
              v->chip->vector.bn_stats_fmax);
    if (nd != 6) violate(v, OT_RULE_BN_STATS, "dst holds %llu elements per partition, bn_stats writes 6", (unsigned long long)nd);
  } else {
    if (ns == 0 || ns % 6) violate(v, OT_RULE_BN_STATS, "src holds %llu elements per partition, expected a multiple of 6", (unsigned long long)ns);
    if (nd != 2) violate(v, OT_RULE_BN_STATS, "dst holds %llu elements per partition, bn_aggr writes 2 (mean, var)", (unsigned long long)nd);
  }
}

static void check_reduce(vctx *v) {
  const ot_ap *dst = AP(0), *src = AP(1);
  int32_t axes = v->in->o[3].i;
  same_partitions(v, dst, src, "src");
  if (axes < 1 || axes > (int32_t)(src->ndim ? src->ndim : 1)) {
    violate(v, OT_RULE_REDUCE_AXES, "axes=%d, src has %u free dimensions", axes, src->ndim);
    return;
  }
  uint64_t kept = 1;
  for (int d = 0; d < (int)src->ndim - axes; d++) kept *= src->dim[d].size;
  if (ot_ap_free_elems(dst) != kept)
    violate(v, OT_RULE_REDUCE_AXES, "dst holds %llu elements per partition, reducing %d axes leaves %llu",
            (unsigned long long)ot_ap_free_elems(dst), axes, (unsigned long long)kept);
}

static void check_dma(vctx *v) {
  const ot_ap *dst = AP(1), *src = AP(2);
  if (v->in->op == OT_OP_DMA_COPY) {
    if (ot_ap_elems(dst) != ot_ap_elems(src))
      violate(v, OT_RULE_DMA_SHAPE, "dst holds %llu elements, src %llu", (unsigned long long)ot_ap_elems(dst),
              (unsigned long long)ot_ap_elems(src));
    return;
  }
  if (!v->chip->dma.transpose)
    violate(v, OT_RULE_DMA_TRANSPOSE, "chip %s has no DMA transpose (dma.transpose is false): transpose on the PE array",
            v->chip->name);
  size_t es = ot_dtype_size((ot_dtype)src->dtype);
  if (dst->dtype != src->dtype || (es != 2 && es != 4))
    violate(v, OT_RULE_DMA_TRANSPOSE, "types %s -> %s; DMA transpose needs one 2- or 4-byte type", dt(src), dt(dst));
  /* As a matrix: SBUF = [partitions, free]; HBM = [outer dims, innermost]. */
  uint64_t sr, sc, dr, dc;
  sr = src->mem == OT_MEM_HBM ? ot_ap_elems(src) / (src->ndim ? src->dim[src->ndim - 1].size : 1) : src->part_count;
  sc = ot_ap_elems(src) / (sr ? sr : 1);
  dr = dst->mem == OT_MEM_HBM ? ot_ap_elems(dst) / (dst->ndim ? dst->dim[dst->ndim - 1].size : 1) : dst->part_count;
  dc = ot_ap_elems(dst) / (dr ? dr : 1);
  if (dr != sc || dc != sr)
    violate(v, OT_RULE_DMA_TRANSPOSE, "src is [%llu, %llu], dst [%llu, %llu]; expected dst [%llu, %llu]",
            (unsigned long long)sr, (unsigned long long)sc, (unsigned long long)dr, (unsigned long long)dc,
            (unsigned long long)sc, (unsigned long long)sr);
}

/* dma_gather / dma_scatter_add: the table [rows, cols] in HBM, the SBUF side [P, K*cols], idx int32
** [P, K].  The index values are only known at run time (sim_exec_dma.c checks them). */
static void check_dma_indirect(vctx *v) {
  bool gather = v->in->op == OT_OP_DMA_GATHER;
  const ot_ap *table = gather ? AP(2) : AP(1), *sb = gather ? AP(1) : AP(2), *idx = AP(3);
  const char *tn = gather ? "src" : "dst", *sn = gather ? "dst" : "src";
  if (idx->dtype != OT_DT_INT32)
    violate(v, OT_RULE_DMA_INDEX, "idx is %s; indices are int32", dt(idx));
  if (idx->part_count != sb->part_count)
    violate(v, OT_RULE_DMA_INDEX, "idx spans %u partitions, %s %u; one row of indices per partition", idx->part_count,
            sn, sb->part_count);
  uint64_t k = ot_ap_free_elems(idx);
  if (k == 0) violate(v, OT_RULE_DMA_INDEX, "idx holds no index per partition");
  if (table->ndim != 2 || table->dim[0].size == 0 || table->dim[1].size == 0) {
    violate(v, OT_RULE_DMA_INDIRECT, "%s: the table must be a non-empty 2-D HBM pattern [rows, cols], not %u-D with %llu elements",
            tn, table->ndim, (unsigned long long)ot_ap_free_elems(table));
    return;
  }
  uint64_t cols = table->dim[1].size;
  if (k && ot_ap_free_elems(sb) != k * cols)
    violate(v, OT_RULE_DMA_INDIRECT, "%s holds %llu elements per partition; %llu indices per partition x %llu columns = %llu",
            sn, (unsigned long long)ot_ap_free_elems(sb), (unsigned long long)k, (unsigned long long)cols,
            (unsigned long long)(k * cols));
  if (!gather && !ot_dtype_is_float((ot_dtype)table->dtype))
    violate(v, OT_RULE_DMA_INDIRECT, "dst is %s; dma_scatter_add accumulates into a float table", dt(table));
}

static void check_family(vctx *v) {
  const ot_insn *in = v->in;
  switch ((ot_opcode)in->op) {
  case OT_OP_MATMUL: check_matmul(v); break;
  case OT_OP_LDWEIGHTS: check_ldweights(v); break;
  case OT_OP_TRANSPOSE: check_transpose(v, v->chip->tensor.rows < v->chip->tensor.cols ? v->chip->tensor.rows : v->chip->tensor.cols); break;
  case OT_OP_TRANSPOSE32: check_transpose(v, 32); break;
  case OT_OP_BN_STATS: case OT_OP_BN_AGGR: check_bn(v); break;
  case OT_OP_TENSOR_REDUCE: check_reduce(v); break;
  case OT_OP_DMA_COPY: case OT_OP_DMA_TRANSPOSE: check_dma(v); break;
  case OT_OP_DMA_GATHER: case OT_OP_DMA_SCATTER_ADD: check_dma_indirect(v); break;
  case OT_OP_TENSOR_TENSOR:
    same_shape(v, AP(0), AP(1), "a");
    same_shape(v, AP(0), AP(2), "b");
    if (AP(1)->mem == OT_MEM_PSUM && AP(2)->mem == OT_MEM_PSUM)
      violate(v, OT_RULE_TT_PSUM, "a and b are both in PSUM; at most one input may be");
    break;
  case OT_OP_TENSOR_SCALAR:
    same_shape(v, AP(0), AP(1), "src");
    scalar_operand(v, AP(0), &in->o[3], "s0");
    scalar_operand(v, AP(0), &in->o[5], "s1");
    break;
  case OT_OP_SCALAR_TENSOR_TENSOR:
    same_shape(v, AP(0), AP(1), "a");
    same_shape(v, AP(0), AP(5), "b");
    scalar_operand(v, AP(0), &in->o[3], "s0");
    break;
  case OT_OP_ACTIVATE: {
    same_shape(v, AP(0), AP(1), "src");
    scalar_operand(v, AP(0), &in->o[3], "scale");
    ot_operand bias = {.tag = OT_TAG_AP, .ap = *AP(4)};
    scalar_operand(v, AP(0), &bias, "bias");
    ot_operand red = {.tag = OT_TAG_AP, .ap = *AP(6)};
    scalar_operand(v, AP(0), &red, "red");
    if (in->o[5].f != 0 && in->o[2].i != OT_ACT_PRELU)
      violate(v, OT_RULE_ACT_ALPHA, "alpha=%g with func=%s; alpha is prelu's slope", (double)in->o[5].f, ot_act_name(in->o[2].i));
    break;
  }
  case OT_OP_SELECT:
    same_shape(v, AP(0), AP(1), "pred");
    same_shape(v, AP(0), AP(2), "a");
    same_shape(v, AP(0), AP(3), "b");
    break;
  case OT_OP_TENSOR_COPY: case OT_OP_RECIPROCAL: case OT_OP_AFFINE_SELECT:
    same_shape(v, AP(0), AP(1), "src");
    break;
  default: break;
  }
}

static void verify_insn(vctx *v) {
  const ot_opcode_info *info = &ot_opcodes[v->in->op];
  if (!(info->engines & OT_ENG_BIT(v->stream->engine))) {
    violate(v, OT_RULE_ENGINE, "%s is not an instruction of %s", info->mnemonic, ot_engine_name((ot_engine)v->stream->engine));
    return;
  }
  unsigned before = v->violations;
  for (unsigned k = 0; k < info->n_operands; k++) check_operand(v, k);
  if (v->violations == before) check_family(v); /* shape rules assume sane operands */
}

ot_status ot_program_verify(const ot_program *prog, const ot_chip *chip, ot_error *err) {
  vctx v = {prog, chip, NULL, 0, NULL, err, 0};
  for (uint32_t s = 0; s < prog->n_streams; s++) {
    v.stream = &prog->streams[s];
    if (v.stream->core >= chip->cores_per_chip) {
      ot_error_set(err, OT_EVERIFY, "%s stream of core %u: the chip %s has %u cores", ot_engine_name((ot_engine)v.stream->engine),
                   v.stream->core, chip->name, chip->cores_per_chip);
      v.violations++;
      continue;
    }
    for (v.pc = 0; v.pc < v.stream->n; v.pc++) {
      v.in = &v.stream->insns[v.pc];
      if (v.in->op >= OT_OP_COUNT) {
        ot_error_set(err, OT_EVERIFY, "%s[%u]: opcode %u unknown", ot_engine_name((ot_engine)v.stream->engine), v.pc, v.in->op);
        v.violations++;
        continue;
      }
      verify_insn(&v);
    }
  }
  for (uint32_t t = 0; t < prog->n_tensors; t++) {
    const ot_tensor_info *ti = &prog->tensors[t];
    if (ti->offset + ot_tensor_bytes(ti) > chip->hbm.bytes) {
      ot_error_set(err, OT_EVERIFY, "tensor '%s': bytes %llu..%llu, the chip's HBM holds %llu", ti->name,
                   (unsigned long long)ti->offset, (unsigned long long)(ti->offset + ot_tensor_bytes(ti) - 1),
                   (unsigned long long)chip->hbm.bytes);
      v.violations++;
    }
  }
  return v.violations ? OT_EVERIFY : OT_OK;
}
