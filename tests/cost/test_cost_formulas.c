/* The cost formulas against hand-computed values, and cost.md §7's worked example (GPT-3 175B,
** 3.14e23 FLOPs) reproduced to the cent.  Hand values were computed with 40-digit decimals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "cost/cost_int.h"

/* Equal to the cent. */
static void assert_cents(double got, double want) {
  if (fabs(got - want) >= 0.005) fail_msg("got %.4f, want %.2f", got, want);
}

static void assert_close(double got, double want, double rel) {
  if (fabs(got - want) > rel * fabs(want)) fail_msg("got %.12g, want %.12g", got, want);
}

static double run_cost(double flops, double peak, double mfu, double price) {
  return cost_rental(cost_chip_hours(flops, peak, mfu), price, 1.0);
}

/* cost.md §7, GPT-3 175B row: H100 p5 OD, H100 market, H200 p5en, Trn2 40%, Trn2 30%, Trn1 30%
** ($M: 1.52, 0.52, 1.74, 0.73, 0.97, 2.06). */
static void test_worked_example(void **state) {
  (void)state;
  const double F = 3.14e23;
  assert_close(cost_chip_hours(F, 989.4, 0.40), 220391.70765671675, 1e-12);
  assert_cents(run_cost(F, 989.4, 0.40, 6.88), 1516294.95);
  assert_cents(run_cost(F, 989.4, 0.40, 2.35), 517920.51);
  assert_cents(run_cost(F, 989.4, 0.40, 7.912), 1743739.19);
  assert_cents(run_cost(F, 667, 0.40, 2.235), 730665.92);
  assert_cents(run_cost(F, 667, 0.30, 2.235), 974221.22);
  assert_cents(run_cost(F, 190, 0.30, 1.344), 2056608.19);
  /* Rounded to $0.01M as the table prints them. */
  assert_true(fabs(run_cost(F, 989.4, 0.40, 6.88) / 1e6 - 1.52) < 0.005);
  assert_true(fabs(run_cost(F, 667, 0.40, 2.235) / 1e6 - 0.73) < 0.005);
  /* Goodput divides. */
  assert_cents(cost_rental(1000, 2.0, 0.8), 2500.00);
}

/* Through the whole comparison, with the defaults table: H100 AWS and market, H200 AWS. */
static void test_worked_example_compare(void **state) {
  (void)state;
  ot_cost_params *p;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_cost_params_new(&p, &err), OT_OK);
  ot_cost_options o;
  memset(&o, 0, sizeof o);
  assert_int_equal(ot_cost_shape_preset("gpt3-175b", &o.shape, &err), OT_OK);
  o.work.task = OT_COST_TRAIN;
  o.work.tokens = 300e9;
  o.work.flops = 3.14e23;
  o.gpus[0] = "h100", o.gpus[1] = "h200";
  o.n_gpus = 2;
  static ot_cost_result r;
  assert_int_equal(ot_cost_compare(p, &o, &r, &err), OT_OK);
  assert_int_equal(r.n_rows, 2);
  assert_cents(r.rows[0].cost, 1516294.95);
  assert_cents(r.rows[1].cost, 1743739.19);
  assert_close(r.rows[1].ratio, 7.912 / 6.88, 1e-12);
  o.prices = OT_COST_PRICES_MARKET;
  assert_int_equal(ot_cost_compare(p, &o, &r, &err), OT_OK);
  assert_cents(r.rows[0].cost, 517920.51);
  ot_cost_params_free(p);
}

/* cost.md §6 owner-view table: H100 $33.75k -> $1.04 [1.62], B200 $50k -> $1.53, Trn2 $12k/$18k
** -> $0.40/$0.57. */
static void test_owner(void **state) {
  (void)state;
  cost_owner_inputs in = {33750, 5, 0, 0.19, 700, 1.82, 0.75, 1.10, 0.0832};
  cost_owner_hour h;
  cost_owner_per_hour(&in, &h);
  assert_close(h.hw, 0.77054794520547945, 1e-12);
  assert_close(h.network, 0.18074581430745814, 1e-12);
  assert_close(h.energy, 0.08744736, 1e-12);
  assert_close(h.total, 1.0387411195129376, 1e-12);
  in.dep_rate_per_year = 0.14 * log(10.0);
  cost_owner_per_hour(&in, &h);
  assert_close(h.total, 1.6207517407989269, 1e-12);
  cost_owner_inputs b200 = {50000, 5, 0, 0.19, 1000, 1.82, 0.75, 1.10, 0.0832};
  cost_owner_per_hour(&b200, &h);
  assert_close(h.total, 1.5342488881673150, 1e-12);
  cost_owner_inputs trn2 = {12000, 5, 0, 0.19, 500, 1.82, 0.75, 1.10, 0.0832};
  cost_owner_per_hour(&trn2, &h);
  assert_close(h.total, 0.40070018116015559, 1e-12);
  trn2.capex = 18000;
  cost_owner_per_hour(&trn2, &h);
  assert_close(h.total, 0.56981907174023338, 1e-12);
  /* 10 h of an H100: 0.7 kW x 1.82 x 0.75 x 1.1 x 10 h = 10.51050 kWh. */
  assert_close(cost_energy_kwh(700, 1.82, 0.75, 1.1, 10), 10.5105, 1e-12);
}

static void test_shapes(void **state) {
  (void)state;
  ot_cost_shape s;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_cost_shape_preset("gpt2", &s, &err), OT_OK);
  /* 4·768² + 2·768·3072 */
  assert_true(ot_cost_shape_layer_params(&s) == 7077888.0);
  /* 12 layers + the tied 50257 x 768 head */
  assert_true(ot_cost_shape_matmul_params(&s) == 123532032.0);
  /* 6·N + 12·L·d·seq = 741,192,192 + 113,246,208 */
  assert_true(cost_train_flops_per_token(&s) == 854438400.0);
  assert_true(cost_layer_train_flops(&s) * 12 + 3 * cost_head_fwd_flops(&s) == 854438400.0);
  assert_int_equal(ot_cost_shape_preset("llama-3-8b", &s, &err), OT_OK);
  /* GQA attention 41,943,040 + SwiGLU 176,160,768 per layer; 8.03 B in all. */
  assert_true(ot_cost_shape_layer_params(&s) == 218103808.0);
  assert_true(ot_cost_shape_total_params(&s) == 8030261248.0);
  /* KV cache: 2 x 32 layers x 8 heads x 128 x 1000 tokens x 2 bytes */
  assert_true(cost_kv_bytes(&s, 1000, 2) == 131072000.0);
  assert_int_equal(ot_cost_shape_preset("gpt-5", &s, &err), OT_ENOTFOUND);
  assert_non_null(strstr(err.msg, "unknown model 'gpt-5': expected one of gpt2"));
}

/* A tiny model whose decode is memory-bound at every step: time = sum of bytes / (bw·eta). */
static void test_serve_roofline(void **state) {
  (void)state;
  ot_cost_shape s = {"tiny", 1, 64, 1, 1, 64, 128, 100, 64, 0, 1, 0};
  /* layer: 4·64² + 2·64·128 = 32768; + head 6400 = 39168 matmul params */
  assert_true(ot_cost_shape_matmul_params(&s) == 39168.0);
  ot_cost_workload w = {OT_COST_SERVE, OT_COST_BF16, 0, 0, 4, 2, 1};
  cost_roofline r = {1e15, 1e9, 1.0, 0.5, 2, 2};
  cost_serve_time t;
  cost_serve_roofline(&s, &w, &r, &t);
  /* weights 78,336 B; KV per token 2·1·1·64·2 = 256 B.  Prefill: (78336 + 4·256) / 5e8. */
  assert_close(t.prefill_s, (78336.0 + 1024) / 5e8, 1e-12);
  /* Steps at context 5 and 6. */
  assert_close(t.decode_s, (78336.0 + 5 * 256) / 5e8 + (78336.0 + 6 * 256) / 5e8, 1e-12);
  assert_close(t.tpot_s, t.decode_s / 2, 1e-12);
  /* Compute-bound when the chip is slow at math: prefill = FLOPs / peak. */
  r.peak_flops = 1e3;
  r.eta_c = 1;
  cost_serve_roofline(&s, &w, &r, &t);
  double flops = 4 * 2 * 39168.0 + 4 * 64.0 * 4 * 5 / 2;
  assert_close(t.prefill_s, flops / 1e3, 1e-12);
}

/* GPU rows from the defaults; Trainium rows stay empty without simulated figures. */
static void test_compare_defaults(void **state) {
  (void)state;
  ot_cost_params *p;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_cost_params_new(&p, &err), OT_OK);
  ot_chip *trn2;
  assert_int_equal(ot_chip_preset("trn2", &trn2, &err), OT_OK);
  ot_cost_options o;
  memset(&o, 0, sizeof o);
  assert_int_equal(ot_cost_shape_preset("gpt2", &o.shape, &err), OT_OK);
  o.work.task = OT_COST_TRAIN;
  o.work.tokens = 1e9;
  o.gpus[0] = "h100", o.gpus[1] = "b200";
  o.n_gpus = 2;
  o.trn[0] = trn2;
  o.n_trn = 1;
  o.measure = ot_cost_trn_measure;
  static ot_cost_result r;
  assert_int_equal(ot_cost_compare(p, &o, &r, &err), OT_OK);
  /* trn2 is measured: one GPT-2 layer compiled and simulated, scaled to the chip; its row is
  ** priced from that throughput alone (chip-hours = FLOPs / rate, cost = chip-hours x price). */
  assert_int_equal(r.rows[0].status, OT_COST_ROW_OK);
  assert_true(r.rows[0].tokens_per_s > 0 && r.rows[0].cost > 0);
  assert_non_null(strstr(r.rows[0].basis, "simulated"));
  assert_close(r.rows[0].chip_hours, 1e9 / r.rows[0].tokens_per_s / 3600.0, 1e-9);
  assert_close(r.rows[0].cost, r.rows[0].chip_hours * r.rows[0].price_per_hour, 1e-9);
  /* The Trainium peak is the chip description's: 8 cores x 128 x 128 x 2 x 2.4 GHz. */
  assert_close(r.rows[0].peak_tflops, 8 * 128 * 128 * 2 * 2.4e9 / 1e12, 1e-12);
  /* 8.544384e17 FLOPs at 989.4 TF x 0.4: 0.59972 h x $6.88 = $4.1261 */
  assert_close(r.rows[1].chip_hours, 0.59971700020214271, 1e-12);
  assert_close(r.rows[1].cost, 4.1261, 1e-4);
  assert_true(r.rows[1].ratio == 1.0);
  /* Break-even for a 40% saving, from prices and peaks: (2.235 / peak) / (0.6 x 6.88 / 0.9894 PF). */
  assert_close(r.rows[0].breakeven_mfu_ratio, (2.235 / (r.rows[0].peak_tflops / 1000)) / (0.6 * 6.88 / 0.9894), 1e-12);
  assert_close(r.rows[0].breakeven_mbu_ratio, (2.235 / 2.9) / (0.6 * 6.88 / 3.35), 1e-12);
  assert_close(r.rows[0].breakeven_mfu_ratio, 0.85144888523013093, 1e-12); /* peak 629.1456 TF */
  /* B200 has no AWS price: a throughput, but no dollars and no ratio. */
  assert_int_equal(r.rows[2].status, OT_COST_ROW_NO_PRICE);
  assert_true(r.rows[2].cost < 0 && r.rows[2].ratio == 0 && r.rows[2].tokens_per_s > 0);
  /* A measured figure replaces the model. */
  assert_int_equal(ot_cost_params_set(p, "h100.measured_tokens_per_s", 1e5, "test", &err), OT_OK);
  assert_int_equal(ot_cost_compare(p, &o, &r, &err), OT_OK);
  assert_close(r.rows[1].chip_hours, 1e9 / 1e5 / 3600, 1e-12);
  assert_non_null(strstr(r.rows[1].basis, "measured"));
  ot_chip_free(trn2);
  ot_cost_params_free(p);
}

/* Simulated figures of one layer are scaled by the layer count, the LM head and idle cores. */
static void test_trn_from_stats(void **state) {
  (void)state;
  ot_cost_shape s;
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_cost_shape_preset("gpt2", &s, &err), OT_OK);
  ot_cost_workload w = {OT_COST_TRAIN, OT_COST_BF16, 1e9, 0, 0, 0, 0};
  /* One layer, fwd+bwd over 1024 tokens, on core 0 of trn2, 1 ms. */
  char json[512];
  snprintf(json, sizeof json,
           "{\"chip\": \"trn2\", \"total_ps\": 1e9, \"flops\": {\"model\": %.17g}, "
           "\"cores\": [{\"core\": 0, \"engines\": [{\"engine\": \"tensor\", \"insns\": 10}]},"
           "{\"core\": 1, \"engines\": [{\"engine\": \"tensor\", \"insns\": 0}]}]}",
           1024 * cost_layer_train_flops(&s));
  ot_cost_trn_figures f;
  memset(&f, 0, sizeof f);
  char chip[64];
  assert_int_equal(ot_cost_trn_from_stats(json, "l.json", &s, &w, 0, 0, &f, chip, sizeof chip, &err), OT_OK);
  assert_string_equal(chip, "trn2");
  assert_int_equal(f.cores_used, 1);
  assert_close(f.train_s, 1e-3, 1e-12);
  assert_close(f.train_tokens, 1024, 1e-12);
  assert_non_null(strstr(f.source, "x 12 layers"));
  /* In the comparison: tokens/s per chip = 8 cores x 1024 / (12 x 1 ms x head factor). */
  ot_chip *trn2;
  assert_int_equal(ot_chip_preset("trn2", &trn2, &err), OT_OK);
  ot_cost_params *p;
  assert_int_equal(ot_cost_params_new(&p, &err), OT_OK);
  ot_cost_options o;
  memset(&o, 0, sizeof o);
  o.shape = s, o.work = w;
  o.trn[0] = trn2, o.n_trn = 1, o.trn_figures[0] = &f;
  static ot_cost_result r;
  assert_int_equal(ot_cost_compare(p, &o, &r, &err), OT_OK);
  double head = 1 + 3 * cost_head_fwd_flops(&s) / (12 * cost_layer_train_flops(&s));
  assert_close(r.rows[0].tokens_per_s, 8 * 1024 / (12 * 1e-3 * head), 1e-12);
  assert_close(r.rows[0].cost, 1e9 / r.rows[0].tokens_per_s / 3600 * 2.235, 1e-12);
  /* Serving: a prefill layer over 8 x 512 tokens (1 ms) and a decode step at batch 8 (0.1 ms). */
  ot_cost_trn_figures sf;
  memset(&sf, 0, sizeof sf);
  sf.prefill_s = 1e-3, sf.prefill_tokens = 4096, sf.decode_s = 1e-4, sf.decode_batch = 8, sf.cores_used = 8;
  o.work = (ot_cost_workload){OT_COST_SERVE, OT_COST_BF16, 0, 0, 512, 256, 8};
  o.trn_figures[0] = &sf;
  assert_int_equal(ot_cost_compare(p, &o, &r, &err), OT_OK);
  double hf = 1 + 768.0 * 50257 / (12 * 7077888.0); /* the LM head, by weights */
  assert_close(r.rows[0].ttft_s, 12 * 1e-3 * hf, 1e-12);
  assert_close(r.rows[0].tpot_s, 12 * 1e-4 * hf, 1e-12);
  assert_close(r.rows[0].tokens_per_s, 8 * 256 / (12 * 1e-3 * hf + 256 * 12 * 1e-4 * hf), 1e-12);
  assert_close(r.rows[0].cost, 1e6 / r.rows[0].tokens_per_s / 3600 * 2.235, 1e-12);
  /* Without the decode step the row stays empty. */
  sf.decode_s = 0;
  assert_int_equal(ot_cost_compare(p, &o, &r, &err), OT_OK);
  assert_int_equal(r.rows[0].status, OT_COST_ROW_NOT_SIMULATED);
  assert_non_null(strstr(r.rows[0].note, "--decode-stats"));
  /* Broken statistics are rejected, naming the file. */
  ot_error_clear(&err);
  assert_int_equal(ot_cost_trn_from_stats("{\"chip\": \"trn2\"}", "bad.json", &s, &w, 0, 0, &f, chip, sizeof chip, &err), OT_EPARSE);
  assert_non_null(strstr(err.msg, "bad.json: not `opentrn run --json` statistics"));
  ot_error_clear(&err);
  assert_int_equal(ot_cost_trn_from_stats("{\"chip\": \"trn2\", \"total_ps\": 5, \"flops\": {\"model\": 0}}", "z.json", &s, &w, 0, 0,
                                          &f, chip, sizeof chip, &err), OT_EINVAL);
  assert_non_null(strstr(err.msg, "--stats-tokens"));
  ot_cost_params_free(p);
  ot_chip_free(trn2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_worked_example),  cmocka_unit_test(test_worked_example_compare), cmocka_unit_test(test_owner),
    cmocka_unit_test(test_shapes),          cmocka_unit_test(test_serve_roofline),         cmocka_unit_test(test_compare_defaults),
    cmocka_unit_test(test_trn_from_stats),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
