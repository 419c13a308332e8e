/* Compiled-code quality on transformer shapes, in simulated time (timing-only mode):
**   - a GPT-2-small-shaped block forward (d 768, 12 heads, seq 1024, batch 1): HFU;
**   - layernorm and softmax alone: memory-bandwidth utilisation (MBU);
**   - a GPT-2 block forward + backward (a training step's per-layer work): HFU, compile time.
**
**   bench_compile_block [chip] [seq]        default trn1, 1024 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <opentrn/compile.h>
#include <opentrn/device.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define C 768
#define H 12
#define D 64

/* Weights: bf16 for the forward (inference) block, fp32 master weights for training. */
static ot_dtype weight_dtype = OT_DT_BF16;

static ot_tid weight(ot_graph *g, const char *name, int64_t a, int64_t b) {
  int64_t s[2] = {a, b};
  return ot_graph_weight(g, name, weight_dtype, b ? 2 : 1, s);
}

static ot_tid heads(ot_graph *g, const char *name, ot_tid x, int64_t S) {
  char n1[64], n2[64];
  snprintf(n1, sizeof n1, "%s.heads", name);
  snprintf(n2, sizeof n2, "%s.bhsd", name);
  int64_t s4[4] = {1, S, H, D}, perm[4] = {0, 2, 1, 3};
  return ot_graph_transpose(g, n2, ot_graph_reshape(g, n1, x, 4, s4), 4, perm);
}

/* GPT-2 block: x [S, C] bf16 activations, fp32 master weights. */
static ot_tid gpt2_block(ot_graph *g, ot_tid x, int64_t S) {
  ot_tid ln1 = ot_graph_layernorm(g, "ln_1", x, weight(g, "ln_1.weight", C, 0), weight(g, "ln_1.bias", C, 0), 1e-5f);
  ot_tid qkv = ot_graph_linear(g, "attn.c_attn", ln1, weight(g, "attn.c_attn.weight", C, 3 * C), weight(g, "attn.c_attn.bias", 3 * C, 0), false);
  ot_tid p[3];
  int64_t sizes[3] = {C, C, C};
  ot_graph_split(g, "attn.split", qkv, 1, 3, sizes, p);
  ot_tid y = ot_graph_attention(g, "attn", heads(g, "q", p[0], S), heads(g, "k", p[1], S), heads(g, "v", p[2], S), true, 0.0f);
  int64_t perm[4] = {0, 2, 1, 3}, s2[2] = {S, C};
  ot_tid merged = ot_graph_reshape(g, "attn.merge", ot_graph_transpose(g, "attn.bshd", y, 4, perm), 2, s2);
  ot_tid proj = ot_graph_linear(g, "attn.c_proj", merged, weight(g, "attn.c_proj.weight", C, C), weight(g, "attn.c_proj.bias", C, 0), false);
  ot_tid h = ot_graph_add(g, "res_1", x, proj);
  ot_tid ln2 = ot_graph_layernorm(g, "ln_2", h, weight(g, "ln_2.weight", C, 0), weight(g, "ln_2.bias", C, 0), 1e-5f);
  ot_tid fc = ot_graph_gelu(g, "mlp.gelu", ot_graph_linear(g, "mlp.c_fc", ln2, weight(g, "mlp.c_fc.weight", C, 4 * C), weight(g, "mlp.c_fc.bias", 4 * C, 0), false), true);
  ot_tid mp = ot_graph_linear(g, "mlp.c_proj", fc, weight(g, "mlp.c_proj.weight", 4 * C, C), weight(g, "mlp.c_proj.bias", C, 0), false);
  return ot_graph_add(g, "res_2", h, mp);
}

typedef struct { double ms, hfu, mbu, compile_s, sim_s; unsigned long long insns; } result;

static bool no_schedule, trace_written;
static int runs_seen;

static int run(const char *chip_name, ot_graph *g, result *r) {
  ot_error err;
  ot_error_clear(&err);
  ot_chip *chip;
  if (ot_graph_status(g)) { fprintf(stderr, "%s\n", ot_graph_error(g)); return 1; }
  if (ot_chip_open(chip_name, &chip, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
  ot_program *p;
  double t0 = now_s();
  ot_compile_options co;
  ot_compile_options_default(&co);
  co.schedule = !no_schedule;
  if (ot_compile(g, chip, &co, &p, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
  double t1 = now_s();
  ot_device *d;
  if (ot_device_open_chip(chip, &d, &err) || ot_device_load(d, p)) { fprintf(stderr, "load failed\n"); return 1; }
  ot_run_options o;
  ot_run_options_default(&o);
  o.mode = OT_RUN_TIMING;
  o.insn_budget = 4000000000ull;
  const char *trace = getenv("BENCH_TRACE"); /* the first run's Perfetto trace, for reading the timeline */
  /* BENCH_TRACE_RUN=n: trace the n-th run instead (0 block, 1 layernorm, 2 softmax, ...) */
  o.trace = trace && !trace_written && runs_seen++ == (getenv("BENCH_TRACE_RUN") ? atoi(getenv("BENCH_TRACE_RUN")) : 0);
  if (ot_device_run(d, &o)) { fprintf(stderr, "%s\n", ot_device_last_error(d)); return 1; }
  double t2 = now_s();
  ot_run_summary s;
  ot_device_summary(d, &s);
  if (getenv("BENCH_STATS")) ot_device_print_stats(d, stdout);
  if (o.trace) trace_written = !ot_device_write_trace(d, trace);
  r->ms = s.time_ps * 1e-9;
  r->hfu = s.hfu * 100;
  r->mbu = s.mbu * 100;
  r->insns = (unsigned long long)s.insns;
  r->compile_s = t1 - t0;
  r->sim_s = t2 - t1;
  ot_device_close(d);
  ot_program_free(p);
  ot_chip_free(chip);
  return 0;
}

static ot_tid input(ot_graph *g, const char *name, ot_dtype dt, int64_t a, int64_t b) {
  int64_t s[2] = {a, b};
  return ot_graph_input(g, name, dt, 2, s);
}

int main(int argc, char **argv) {
  const char *chip = argc > 1 ? argv[1] : "trn1";
  int64_t S = argc > 2 ? atoll(argv[2]) : 1024;
  result r;
  int rc = 0;

  ot_graph *g = ot_graph_new();
  ot_graph_output(g, gpt2_block(g, input(g, "x", OT_DT_BF16, S, C), S), "y");
  if (!(rc |= run(chip, g, &r)))
    printf("%s GPT-2 block forward, seq %lld, bf16 weights and activations: %.3f ms, HFU %.2f%%, %llu insns, compile %.2f s\n", chip, (long long)S,
           r.ms, r.hfu, r.insns, r.compile_s);
  ot_graph_free(g);

  g = ot_graph_new();
  ot_graph_output(g, ot_graph_layernorm(g, "ln", input(g, "x", OT_DT_BF16, 8 * S, C), weight(g, "g", C, 0), weight(g, "b", C, 0), 1e-5f), "y");
  if (!(rc |= run(chip, g, &r)))
    printf("%s layernorm [%lld, %d] bf16: %.3f ms, MBU %.2f%%\n", chip, (long long)(8 * S), C, r.ms, r.mbu);
  ot_graph_free(g);

  g = ot_graph_new();
  ot_graph_output(g, ot_graph_softmax(g, "softmax", input(g, "x", OT_DT_BF16, 8 * S, S)), "y");
  if (!(rc |= run(chip, g, &r)))
    printf("%s softmax [%lld, %lld] bf16: %.3f ms, MBU %.2f%%\n", chip, (long long)(8 * S), (long long)S, r.ms, r.mbu);
  ot_graph_free(g);

  weight_dtype = OT_DT_FP32;
  g = ot_graph_new();
  ot_tid x = input(g, "x", OT_DT_BF16, S, C);
  ot_tid y = gpt2_block(g, x, S);
  ot_tid loss = ot_graph_reduce_sum(g, "loss", ot_graph_reshape(g, "y.flat", y, 1, (int64_t[]){S * C}), 0, false);
  ot_error err;
  ot_error_clear(&err);
  if (ot_graph_backward(g, loss, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
  if (!(rc |= run(chip, g, &r)))
    printf("%s GPT-2 block forward + backward, seq %lld, fp32 master weights, bf16 activations: %.3f ms, HFU %.2f%%, %llu insns, compile %.2f s\n", chip,
           (long long)S, r.ms, r.hfu, r.insns, r.compile_s);
  no_schedule = true; /* the same program in the lowerings' emission order: what list scheduling gains */
  if (!(rc |= run(chip, g, &r)))
    printf("%s   the same without list scheduling: %.3f ms, HFU %.2f%%\n", chip, r.ms, r.hfu);
  ot_graph_free(g);
  return rc;
}
