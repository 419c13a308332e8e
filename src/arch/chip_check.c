/* Cross-field consistency of a chip description.
**
** Each field is range-checked on its own when it is read; these rules tie fields together so
** that a custom chip cannot describe hardware the verifier and simulator would trip over (a
** PE array taller than SBUF, a matmul whose output cannot fit PSUM, ...).  Every violated rule
** is reported, each naming the fields, their values and why they must agree. */
#include "arch/chip_int.h"

#include <stdarg.h>

typedef struct {
  const char *who;
  ot_error *err;
  ot_status status;
} checker;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void require(checker *k, bool ok, const char *fmt, ...) {
  if (ok) return;
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  ot_error_set(k->err, OT_EINVAL, "%s: inconsistent fields: %s", k->who, msg);
  k->status = OT_EINVAL;
}

static unsigned long long u(uint64_t v) { return (unsigned long long)v; }

static void check_memories(checker *k, const ot_chip *c) {
  /* Ranges (checked on read) keep banks and cores >= 1; the guards only keep this total. */
  require(k, c->psum.banks && c->psum.bytes_per_partition % c->psum.banks == 0,
          "psum.bytes_per_partition (%llu B) must be a multiple of psum.banks (%u): every bank is an "
          "equal slice of a partition", u(c->psum.bytes_per_partition), c->psum.banks);
  require(k, c->gpsimd.cores && c->sbuf.partitions % c->gpsimd.cores == 0,
          "sbuf.partitions (%u) must be a multiple of gpsimd.cores (%u): each GpSimd processor serves "
          "an equal slice of the partitions (A1 §2.7)", c->sbuf.partitions, c->gpsimd.cores);
}

static void check_tensor(checker *k, const ot_chip *c) {
  uint64_t psum = c->psum.bytes_per_partition;
  require(k, c->tensor.rows <= c->sbuf.partitions,
          "tensor.rows (%u) must be <= sbuf.partitions (%u): the contraction runs over SBUF partitions",
          c->tensor.rows, c->sbuf.partitions);
  require(k, c->tensor.cols <= c->psum.partitions,
          "tensor.cols (%u) must be <= psum.partitions (%u): each PE column writes one PSUM partition",
          c->tensor.cols, c->psum.partitions);
  require(k, c->tensor.stationary_fmax <= c->tensor.cols,
          "tensor.stationary_fmax (%u) must be <= tensor.cols (%u): the stationary free axis maps onto PE "
          "columns", c->tensor.stationary_fmax, c->tensor.cols);
  /* One matmul's output must fit PSUM.  It may span banks (NC-v4 writes up to all 8, L1 §2.4),
  ** so the bound is the whole partition, not one bank. */
  require(k, (uint64_t)c->tensor.moving_fmax * 4 <= psum,
          "tensor.moving_fmax (%u) x 4 B (fp32) must be <= psum.bytes_per_partition (%llu B): a matmul "
          "output must fit PSUM", c->tensor.moving_fmax, u(psum));
  require(k, (uint64_t)c->tensor.moving_fmax_16bit * 2 <= psum,
          "tensor.moving_fmax_16bit (%u) x 2 B must be <= psum.bytes_per_partition (%llu B): a matmul "
          "output must fit PSUM", c->tensor.moving_fmax_16bit, u(psum));
  require(k, c->tensor.moving_fmax_16bit >= c->tensor.moving_fmax,
          "tensor.moving_fmax_16bit (%u) must be >= tensor.moving_fmax (%u): 16-bit outputs take half the "
          "PSUM space of fp32 ones", c->tensor.moving_fmax_16bit, c->tensor.moving_fmax);
  static const ot_dtype fp8s[] = {OT_DT_FP8E4M3, OT_DT_FP8E4M3FN, OT_DT_FP8E5M2, OT_DT_FP8E3M4};
  bool fp8 = false;
  for (size_t t = 0; t < sizeof fp8s / sizeof fp8s[0]; t++) fp8 |= ot_chip_engine_has_dtype(c, OT_ENG_TENSOR, fp8s[t]);
  require(k, c->tensor.fp8_rate == 1 || fp8,
          "tensor.fp8_rate is %u but tensor.dtypes has no fp8 type: a faster fp8 rate needs an fp8 input",
          c->tensor.fp8_rate);
}

static void check_engine(checker *k, const ot_chip *c, ot_engine e, bool psum) {
  const ot_engine_desc *d = &c->eng[e];
  const char *n = ot_engine_name(e);
  require(k, d->lanes <= c->sbuf.partitions, "%s.lanes (%u) must be <= sbuf.partitions (%u): one lane "
          "per partition", n, d->lanes, c->sbuf.partitions);
  require(k, d->dtypes != 0, "%s.dtypes is empty: the engine must take at least one data type", n);
  if (psum)
    require(k, d->free_max_psum <= d->free_max_sbuf, "%s.free_max_psum (%u) must be <= %s.free_max_sbuf "
            "(%u): PSUM partitions are far smaller than SBUF ones", n, d->free_max_psum, n, d->free_max_sbuf);
}

static void check_engines(checker *k, const ot_chip *c) {
  require(k, c->eng[OT_ENG_TENSOR].dtypes != 0, "tensor.dtypes is empty: the engine must take at least one "
          "data type");
  check_engine(k, c, OT_ENG_VECTOR, true);
  check_engine(k, c, OT_ENG_SCALAR, true);
  check_engine(k, c, OT_ENG_GPSIMD, false);
  require(k, c->vector.bn_stats_fmax <= c->eng[OT_ENG_VECTOR].free_max_sbuf,
          "vector.bn_stats_fmax (%u) must be <= vector.free_max_sbuf (%u)", c->vector.bn_stats_fmax,
          c->eng[OT_ENG_VECTOR].free_max_sbuf);
}

static void check_transfers(checker *k, const ot_chip *c) {
  require(k, c->dma.min_efficient_bytes <= c->dma.small_bytes,
          "dma.min_efficient_bytes (%u B) must be <= dma.small_transfer_bytes (%u B): a transfer that is "
          "fully overhead-bound is also small", c->dma.min_efficient_bytes, c->dma.small_bytes);
  require(k, (c->link.count == 0) == (c->link.chip_gbps == 0),
          "link.count (%u) and link.chip_gbps (%g GB/s) must both be zero or both non-zero",
          c->link.count, c->link.chip_gbps);
}

ot_status chip_check_fields(const ot_chip *c, const char *who, ot_error *err) {
  checker k = {who, err, OT_OK};
  check_memories(&k, c);
  check_tensor(&k, c);
  check_engines(&k, c);
  check_transfers(&k, c);
  return k.status;
}

ot_status ot_chip_check(const ot_chip *chip, ot_error *err) {
  if (!chip) return CHIP_FAIL(err, OT_EINVAL, "ot_chip_check: chip is NULL");
  char who[96];
  snprintf(who, sizeof who, "chip '%s'", chip->name);
  return chip_check_fields(chip, who, err);
}
