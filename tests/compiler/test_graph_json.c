/* JSON graph files: save -> load -> dump is identical (every op, constants, renamed outputs,
** backward nodes, gradients); malformed files are rejected naming file:line, node and field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "compiler/graph_int.h"
#include "util/fileio.h"

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})

static char *dump_text(const ot_graph *g) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  ot_graph_dump(g, f);
  fclose(f);
  return buf;
}

/* A graph using every forward op and some backward ones. */
static ot_graph *build_all(void) {
  ot_graph *g = ot_graph_new();
  ot_tid ids = ot_graph_input(g, "ids", OT_DT_INT32, 2, SHAPE(2, 8));
  ot_tid wte = ot_graph_weight(g, "wte", OT_DT_FP32, 2, SHAPE(100, 64));
  ot_tid g1 = ot_graph_weight(g, "ln.g", OT_DT_FP32, 1, SHAPE(64));
  ot_tid b1 = ot_graph_weight(g, "ln.b", OT_DT_FP32, 1, SHAPE(64));
  ot_tid wqkv = ot_graph_weight(g, "wqkv", OT_DT_BF16, 2, SHAPE(192, 64));
  ot_tid bqkv = ot_graph_weight(g, "bqkv", OT_DT_BF16, 1, SHAPE(192));
  uint16_t cb[4] = {ot_f32_to_bf16(0.1f), ot_f32_to_bf16(-2.5f), ot_f32_to_bf16(1e-3f), ot_f32_to_bf16(3e4f)};
  ot_tid cbf = ot_graph_const(g, "cbf", OT_DT_BF16, 1, SHAPE(4), cb);
  float cf[2] = {0.1f, 1.0f / 3.0f};
  ot_graph_const(g, "c\"q\\", OT_DT_FP32, 1, SHAPE(2), cf);
  int32_t ci[3] = {-7, 0, 2147483647};
  ot_graph_const(g, "ci", OT_DT_INT32, 1, SHAPE(3), ci);
  ot_tid x = ot_graph_embedding(g, "emb", ids, wte);
  ot_tid h = ot_graph_layernorm(g, "ln", x, g1, b1, 1e-5f);
  ot_tid hb = ot_graph_cast(g, NULL, h, OT_DT_BF16);
  ot_tid qkv = ot_graph_linear(g, "qkv", hb, wqkv, bqkv, true);
  ot_tid parts[3];
  ot_graph_split(g, "qkv_split", qkv, -1, 3, SHAPE(64, 64, 64), parts);
  ot_tid q = ot_graph_transpose(g, "q.t", ot_graph_reshape(g, "q.r", parts[0], 4, SHAPE(2, 8, 4, 16)), 4, SHAPE(0, 2, 1, 3));
  ot_tid k = ot_graph_transpose(g, "k.t", ot_graph_reshape(g, "k.r", parts[1], 4, SHAPE(2, 8, 4, -1)), 4, SHAPE(0, 2, 1, 3));
  k = ot_graph_slice(g, "k.s", k, 1, 0, 2);
  ot_tid v = ot_graph_transpose(g, "v.t", ot_graph_reshape(g, "v.r", parts[2], 4, SHAPE(2, 8, 2, 32)), 4, SHAPE(0, 2, 1, 3));
  v = ot_graph_slice(g, "v.s", v, 3, 0, 16);
  q = ot_graph_rope(g, "q.rope", q, 10000.0f, 3);
  k = ot_graph_rope_scaled(g, "k.rope", k, 500000.0f, 0, &(ot_rope_llama3){32.0f, 1.0f, 4.0f, 8192});
  ot_tid a = ot_graph_attention(g, "attn", q, k, v, true, 0.125f);
  ot_tid s = ot_graph_softmax(g, NULL, ot_graph_scale(g, NULL, a, 0.5f));
  ot_tid m = ot_graph_matmul(g, "mm", s, ot_graph_transpose(g, NULL, s, 4, SHAPE(0, 1, 3, 2)), false);
  ot_tid xs[2] = {m, m};
  ot_tid cat = ot_graph_concat(g, "cat", 2, xs, 2);
  ot_tid r1 = ot_graph_reduce_sum(g, NULL, cat, -1, true);
  ot_tid r2 = ot_graph_reduce_max(g, NULL, cat, 1, false);
  ot_tid r3 = ot_graph_reduce_mean(g, NULL, r2, 0, false);
  ot_tid gl = ot_graph_gelu(g, NULL, r3, false);
  ot_tid sl = ot_graph_silu(g, NULL, gl);
  ot_tid sw = ot_graph_swiglu(g, NULL, sl, gl);
  ot_tid ad = ot_graph_add(g, NULL, ot_graph_sub(g, NULL, sw, gl), ot_graph_mul(g, NULL, sw, sw));
  ot_tid rm = ot_graph_rmsnorm(g, "rms", h, g1, 1e-6f);
  ot_tid logits = ot_graph_reshape(g, NULL, ot_graph_add(g, NULL, rm, g1), 2, SHAPE(16, 64));
  ot_tid tg = ot_graph_input(g, "targets", OT_DT_INT32, 1, SHAPE(16));
  ot_tid loss = ot_graph_cross_entropy(g, "loss", logits, tg);
  ot_graph_output(g, loss, "the loss");
  ot_graph_output(g, ad, NULL);
  ot_graph_output(g, r1, NULL);
  ot_graph_output(g, cbf, NULL);
  /* a backward node, with its forward and a weight's gradient */
  ot_gnode p;
  ot_gnode_init(&p, OT_GOP_LAYERNORM_BWD);
  ot_tid lin[3] = {x, g1, h};
  p.in = lin;
  p.n_in = 3;
  p.forward = (int32_t)(g->t[h].producer);
  int32_t n = ot_graph_add_node(g, &p);
  assert_true(n >= 0);
  g->t[g1].grad = g->node[n].out[1];
  ot_graph_rename(g, g->node[n].out[1], "ln.g.grad");
  ot_graph_output(g, g->node[n].out[1], NULL);
  ot_gnode_init(&p, OT_GOP_BROADCAST);
  p.list[0] = 3; p.list[1] = 64;
  p.n_list = 2;
  p.in = &g1;
  p.n_in = 1;
  assert_true(ot_graph_add_node(g, &p) >= 0);
  if (ot_graph_status(g)) fail_msg("%s", ot_graph_error(g));
  return g;
}

static void test_roundtrip(void **state) {
  (void)state;
  ot_graph *g = build_all();
  /* every forward op is used */
  bool used[OT_GOP_COUNT] = {false};
  for (uint32_t k = 0; k < g->n_node; k++) used[g->node[k].op] = true;
  for (int op = 0; op <= OT_GOP_CAST; op++)
    if (!used[op]) fail_msg("op %s is not in the round-trip graph", ot_gop_table[op].name);
  char path[512], path2[512];
  snprintf(path, sizeof path, "%s/test_graph_roundtrip.json", OT_BINARY_DIR);
  snprintf(path2, sizeof path2, "%s/test_graph_roundtrip2.json", OT_BINARY_DIR);
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_graph_save_json(g, path, &err), OT_OK);
  ot_graph *h = NULL;
  if (ot_graph_load_json(path, &h, &err)) fail_msg("%s", err.msg);
  char *d1 = dump_text(g), *d2 = dump_text(h);
  if (strcmp(d1, d2)) fail_msg("dumps differ:\n%s\n----\n%s", d1, d2);
  assert_int_equal(ot_graph_save_json(h, path2, &err), OT_OK);
  char *t1, *t2;
  size_t n1, n2;
  assert_int_equal(ot_file_read(path, &t1, &n1, NULL), OT_OK);
  assert_int_equal(ot_file_read(path2, &t2, &n2, NULL), OT_OK);
  assert_string_equal(t1, t2);
  /* constants keep their bytes; the backward node its forward; the weight its gradient */
  ot_tid c = ot_graph_find(h, "cbf");
  assert_memory_equal(ot_graph_tensor(h, c)->data, ot_graph_tensor(g, ot_graph_find(g, "cbf"))->data, 8);
  ot_tid ci = ot_graph_find(h, "ci");
  assert_int_equal(((int32_t *)ot_graph_tensor(h, ci)->data)[2], 2147483647);
  ot_tid w = ot_graph_find(h, "ln.g");
  assert_int_equal(ot_graph_tensor(h, w)->grad, ot_graph_find(h, "ln.g.grad"));
  assert_true(ot_graph_tensor(h, ot_graph_find(h, "the loss"))->is_output);
  assert_true(strstr(d2, "forward=ln") != NULL);
  assert_true(strstr(d2, "  fc") == NULL);
  assert_true(strstr(t1, "{\"name\": \"qkv\", \"op\": \"linear\", \"inputs\": [\"cast_0\", \"wqkv\", \"bqkv\"], "
                         "\"attrs\": {\"w_out_in\": true}}") != NULL);
  /* nodes read from a file know their line */
  assert_true(h->node[0].line > 1);
  free(t1); free(t2); free(d1); free(d2);
  ot_graph_free(g);
  ot_graph_free(h);
}

/* A node output renamed after a leaf took its default name still reads back. */
static void test_roundtrip_renamed(void **state) {
  (void)state;
  ot_graph *g = ot_graph_new();
  ot_tid x = ot_graph_input(g, "x", OT_DT_FP32, 1, SHAPE(4));
  ot_tid s = ot_graph_softmax(g, "s", x);
  ot_graph_output(g, s, "probs");
  ot_graph_input(g, "s", OT_DT_FP32, 1, SHAPE(4));
  assert_int_equal(ot_graph_status(g), OT_OK);
  size_t len;
  char *text = ot_graph_json_text(g, &len);
  ot_graph *h = NULL;
  ot_error err;
  ot_error_clear(&err);
  if (ot_graph_parse_json(text, "renamed.json", &h, &err)) fail_msg("%s\n%s", err.msg, text);
  char *a = dump_text(g), *b = dump_text(h);
  assert_string_equal(a, b);
  free(a); free(b); free(text);
  ot_graph_free(g);
  ot_graph_free(h);
}

static void test_minimal_file(void **state) {
  (void)state;
  const char *text =
      "{\"format\": \"opentrn-graph\", \"version\": 1,\n"
      " \"tensors\": [{\"name\": \"x\", \"role\": \"input\", \"dtype\": \"bf16\", \"shape\": [128, 768]},\n"
      "             {\"name\": \"w\", \"role\": \"weight\", \"dtype\": \"fp32\", \"shape\": [768, 3072]}],\n"
      " \"nodes\": [{\"name\": \"fc\", \"op\": \"linear\", \"inputs\": [\"x\", \"w\"]},\n"
      "           {\"op\": \"gelu\", \"inputs\": [\"fc\"], \"outputs\": [\"y\"], \"comment\": \"defaults\"}],\n"
      " \"outputs\": [\"y\"]}\n";
  ot_graph *g = NULL;
  ot_error err;
  ot_error_clear(&err);
  if (ot_graph_parse_json(text, "mini.json", &g, &err)) fail_msg("%s", err.msg);
  char *d = dump_text(g);
  const char *want =
      "graph: 2 leaves, 2 nodes, 1 outputs\n"
      "  input  x: [128, 768] bf16\n"
      "  weight w: [768, 3072] fp32\n"
      "  fc = linear(x, w, -) w_out_in=false -> fc [128, 3072] bf16\n"
      "  gelu_0 = gelu(fc) tanh=true -> y [128, 3072] bf16 (output)\n"
      "outputs: y\n";
  assert_string_equal(d, want);
  assert_int_equal(g->node[1].line, 5);
  free(d);
  ot_graph_free(g);
}

typedef struct {
  const char *text;
  const char *want;  /* substrings separated by '|' */
} bad_case;

static void expect_parts(const char *msg, const char *want) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", want);
  for (char *part = strtok(buf, "|"); part; part = strtok(NULL, "|"))
    if (!strstr(msg, part)) fail_msg("message '%s' lacks '%s'", msg, part);
}

#define HEAD "{\"format\": \"opentrn-graph\", \"version\": 1,\n"
#define X_IN "\"tensors\": [\n  {\"name\": \"x\", \"role\": \"input\", \"dtype\": \"fp32\", \"shape\": [4, 8]}\n],\n"

static void test_malformed(void **state) {
  (void)state;
  static const bad_case cases[] = {
    {"{\"format\": \"opentrn-graph\",\n \"version\": 1,,\n}", "bad.json:2:15: malformed JSON near ',"},
    {"{\"format\": \"opentrn-graph\", \"version\": 1", "bad.json:1:41: malformed JSON: unexpected end of input"},
    {"[1, 2]", "bad.json:1: expected an object"},
    {"{\"format\": \"onnx\", \"version\": 1}", "bad.json:1: field 'format': expected \"opentrn-graph\""},
    {HEAD "\"version2\": 3}", "bad.json:2: graph: unknown field 'version2'"},
    {"{\"format\": \"opentrn-graph\",\n\"version\": 2}", "bad.json:2: field 'version': expected 1"},
    {HEAD "\"tensors\": [\n  {\"name\": \"x\", \"role\": \"input\", \"dtype\": \"bf17\", \"shape\": [4]}\n]}",
     "bad.json:3: tensor 'x': field 'dtype': unknown dtype 'bf17'; expected one of fp32"},
    {HEAD "\"tensors\": [\n  {\"name\": \"x\", \"role\": \"input\", \"dtype\": \"fp32\",\n   \"shape\": [4, 2.5]}\n]}",
     "bad.json:4: tensor 'x': field 'shape': entry 1: expected an integer"},
    {HEAD "\"tensors\": [\n  {\"name\": \"x\", \"role\": \"output\", \"dtype\": \"fp32\", \"shape\": [4]}\n]}",
     "bad.json:3: tensor 'x': field 'role': expected \"input\", \"weight\" or \"const\""},
    {HEAD "\"tensors\": [\n  {\"name\": \"x\", \"role\": \"input\", \"dtype\": \"fp32\", \"shape\": [4]},\n"
          "  {\"name\": \"x\", \"role\": \"input\", \"dtype\": \"fp32\", \"shape\": [4]}\n]}",
     "bad.json:4: input 'x': duplicate name"},
    {HEAD "\"tensors\": [\n  {\"name\": \"c\", \"role\": \"const\", \"dtype\": \"fp32\", \"shape\": [3],\n"
          "   \"data\": [1, 2]}\n]}",
     "bad.json:4: tensor 'c': field 'data': 2 numbers, expected 3"},
    {HEAD "\"tensors\": [\n  {\"name\": \"c\", \"role\": \"const\", \"dtype\": \"int32\", \"shape\": [2],\n"
          "   \"data\": [1,\n 5000000000]}\n]}",
     "bad.json:5: tensor 'c': field 'data': entry 1: expected an integer in the dtype's range"},
    {HEAD X_IN "\"nodes\": [\n  {\"name\": \"fc\", \"op\": \"linaer\", \"inputs\": [\"x\", \"x\"]}\n]}",
     "bad.json:6: node 'fc': field 'op': unknown op 'linaer' (did you mean 'linear'?)"},
    {HEAD X_IN "\"nodes\": [\n  {\"name\": \"fc\", \"op\": \"linear\",\n   \"inputs\": [\"x\", \"w\"]}\n]}",
     "bad.json:7: node 'fc' (linear): field 'inputs': entry 1 (w): unknown tensor 'w'"},
    {HEAD X_IN "\"nodes\": [\n  {\"name\": \"s\", \"op\": \"softmax\",\n   \"inputs\": [\"xx\"]}\n]}",
     "bad.json:7: node 's' (softmax): field 'inputs': entry 0 (x): unknown tensor 'xx' (did you mean 'x'?)"},
    {HEAD X_IN "\"nodes\": [\n  {\"name\": \"fc\", \"op\": \"linear\", \"inputs\": [\"x\", \"x\"],\n"
          "   \"attrs\": {\"w_out_in\": 1}}\n]}",
     "bad.json:7: node 'fc' (linear): field 'attrs.w_out_in': expected a boolean (true or false), got a number"},
    {HEAD "\"tensors\": [\n  {\"name\": \"x\", \"role\": \"input\", \"dtype\": \"fp32\", \"shape\": [1, 2, 3, 8]}\n],\n"
          "\"nodes\": [\n  {\"name\": \"r\", \"op\": \"rope\", \"inputs\": [\"x\"],\n"
          "   \"attrs\": {\"original_max_pos\": 8192, \"factor\": 32, \"low_freq_factor\": 4, \"high_freq_factor\": 1}}\n]}",
     "node 'r' (rope): llama3 scaling: original_max_pos 8192, factor 32, low_freq_factor 4, high_freq_factor 1; "
     "expected original_max_pos 0 (none) or > 0 with factor >= 1 and 0 < low_freq_factor < high_freq_factor"},
    {HEAD X_IN "\"nodes\": [\n  {\"name\": \"t\", \"op\": \"transpose\", \"inputs\": [\"x\"]}\n]}",
     "bad.json:6: node 't' (transpose): field 'attrs.perm' is missing"},
    {HEAD X_IN "\"nodes\": [\n  {\"name\": \"s\", \"op\": \"softmax\", \"inputs\": [\"x\"],\n \"attrs\": {\"axis\": 0}}\n]}",
     "bad.json:7: node 's' (softmax): unknown field 'axis'"},
    {HEAD X_IN "\"nodes\": [\n  {\"name\": \"s\", \"op\": \"softmax\", \"inputs\": [\"x\"], \"input\": 3}\n]}",
     "bad.json:6: node 's' (softmax): unknown field 'input' (did you mean 'inputs'?)"},
    {HEAD X_IN "\"nodes\": [\n  {\"name\": \"s\", \"op\": \"softmax\", \"inputs\": [\"x\", \"x\"]}\n]}",
     "bad.json:6: node 's' (softmax): field 'inputs': 2 given, expected 1"},
    {HEAD X_IN "\"nodes\": [\n  {\"op\": \"matmul\", \"inputs\": [\"x\", \"x\"]}\n]}",
     "bad.json:6: node 'matmul_0' (matmul): a [4, 8] and b [4, 8]: a's last dim 8 (K) must equal b's dim 0 4"},
    {HEAD X_IN "\"nodes\": [\n  {\"name\": \"c\", \"op\": \"cast\", \"inputs\": [\"x\"], \"attrs\": {\"dtype\": 3}}\n]}",
     "bad.json:6: node 'c' (cast): field 'attrs.dtype': expected a dtype name (a string), got a number"},
    {HEAD X_IN "\"nodes\": [\n  {\"name\": \"r\", \"op\": \"reduce_sum\", \"inputs\": [\"x\"],\n"
          "   \"attrs\": {\"axis\": 0.5}}\n]}",
     "bad.json:7: node 'r' (reduce_sum): field 'attrs.axis': expected an integer, got a fraction"},
    {HEAD X_IN "\"nodes\": [\n  {\"name\": \"s\", \"op\": \"softmax\", \"inputs\": [\"x\"]},\n"
          "  {\"name\": \"s\", \"op\": \"softmax\", \"inputs\": [\"x\"]}\n]}",
     "bad.json:7: node 's' (softmax): duplicate name"},
    {HEAD X_IN "\"nodes\": [\n  {\"name\": \"s\", \"op\": \"softmax\", \"inputs\": [\"x\"], \"outputs\": [\"x\"]}\n]}",
     "bad.json:6: node 's' (softmax): its output would be named 'x', but a tensor 'x' already exists"},
    {HEAD X_IN "\"nodes\": [\n  {\"name\": \"s\", \"op\": \"split\", \"inputs\": [\"x\"], \"attrs\": {\"axis\": 1, \"sizes\": [4, 4]},\n"
          "   \"outputs\": [\"a\"]}\n]}",
     "bad.json:6: node 's' (split): 1 output names given for its 2 outputs"},
    {HEAD X_IN "\"nodes\": [\n  {\"name\": \"s\", \"op\": \"split\", \"inputs\": [\"x\"], \"attrs\": {\"axis\": 1, \"sizes\": [4, 4]},\n"
          "   \"outputs\": [\"a\", \"a\"]}\n]}",
     "bad.json:6: node 's' (split): outputs 0 and 1 are both named 'a'"},
    {HEAD X_IN "\"nodes\": [],\n\"outputs\": [\"x\",\n \"nope\"]}",
     "bad.json:7: field 'outputs': entry 1: expected the name of a tensor, got unknown tensor 'nope'"},
    {HEAD X_IN "\"nodes\": [\n  {\"name\": \"g\", \"op\": \"gelu_bwd\", \"inputs\": [\"x\", \"x\"], \"forward\": \"zz\"}\n]}",
     "bad.json:6: node 'g' (gelu_bwd): field 'forward': expected the name of an earlier node"},
    {HEAD X_IN "\"nodes\": {}}", "bad.json:5: field 'nodes': expected a list, got an object"},
    {HEAD X_IN "\"nodes\": [\n  42\n]}", "bad.json:6: node 0: expected an object"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    ot_graph *g = (ot_graph *)1;
    ot_error err;
    ot_error_clear(&err);
    ot_status s = ot_graph_parse_json(cases[c].text, "bad.json", &g, &err);
    if (s == OT_OK) fail_msg("case %zu accepted", c);
    assert_null(g);
    expect_parts(err.msg, cases[c].want);
  }
  ot_error err;
  ot_error_clear(&err);
  ot_graph *g = NULL;
  assert_int_not_equal(ot_graph_load_json(OT_BINARY_DIR "/no-such-graph.json", &g, &err), OT_OK);
  assert_int_not_equal(ot_graph_parse_json(NULL, NULL, &g, NULL), OT_OK);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_roundtrip),
    cmocka_unit_test(test_roundtrip_renamed),
    cmocka_unit_test(test_minimal_file),
    cmocka_unit_test(test_malformed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
