/* Model configurations: preset parameter counts (the published ones), Hugging Face config.json
** files of both families, JSON out and back, the expected tensor lists, and invalid configs
** rejected with a message that names the key and what was expected. */
#include "model_test.h"

static ot_model_config preset(const char *name) {
  ot_model_config c;
  assert_int_equal(ot_model_config_preset(name, &c, NULL), OT_OK);
  return c;
}

static void test_preset_param_counts(void **state) {
  (void)state;
  assert_int_equal(ot_model_config_param_count(&(ot_model_config){0}), 0);
  ot_model_config c = preset("gpt2");
  assert_int_equal(ot_model_config_param_count(&c), 124439808u);
  c = preset("gpt2-medium");
  assert_int_equal(ot_model_config_param_count(&c), 354823168u);
  c = preset("llama-3.2-1b"); /* Llama-3.2-1B: 1,235,814,400 with tied embeddings */
  assert_int_equal(ot_model_config_param_count(&c), 1235814400u);
  assert_int_equal(c.n_kv_heads, 8);
  assert_int_equal(c.head_dim, 64);
  for (size_t i = 0; ot_model_config_preset_name(i); i++) {
    c = preset(ot_model_config_preset_name(i));
    assert_int_equal(ot_model_config_validate(&c, NULL, NULL), OT_OK);
    assert_string_equal(c.name, ot_model_config_preset_name(i));
  }
  assert_null(ot_model_config_preset_name(100));
  ot_error err;
  ot_error_clear(&err);
  mt_expect(ot_model_config_preset("gpt5", &c, &err), &err, "no model preset 'gpt5'", "gpt2-medium", NULL);
}

static void test_tensor_specs(void **state) {
  (void)state;
  ot_model_config c = preset("gpt2");
  ot_model_tensor_spec *s = NULL;
  size_t n = 0;
  assert_int_equal(ot_model_tensor_specs(&c, &s, &n, NULL), OT_OK);
  assert_int_equal(n, 148); /* 2 embeddings + 12 x 12 + ln_f weight and bias */
  assert_string_equal(s[0].name, "wte.weight");
  assert_int_equal(s[0].shape[0], 50257);
  assert_string_equal(s[4].name, "h.0.attn.c_attn.weight");
  assert_int_equal(s[4].shape[0], 768); /* Conv1D: [in, out] */
  assert_int_equal(s[4].shape[1], 2304);
  assert_string_equal(s[n - 1].name, "ln_f.bias");
  free(s);
  c = preset("llama-3.2-1b");
  assert_int_equal(ot_model_tensor_specs(&c, &s, &n, NULL), OT_OK);
  assert_int_equal(n, 2 + 16 * 9); /* tied: no lm_head.weight */
  assert_string_equal(s[1].name, "model.layers.0.self_attn.q_proj.weight");
  assert_int_equal(s[2].shape[0], 512); /* k_proj [n_kv_heads * head_dim, hidden] */
  assert_int_equal(s[2].shape[1], 2048);
  assert_string_equal(s[7].name, "model.layers.0.mlp.down_proj.weight");
  assert_int_equal(s[7].shape[0], 2048);
  assert_int_equal(s[7].shape[1], 8192);
  free(s);
  c = preset("llama-tiny");
  assert_int_equal(ot_model_tensor_specs(&c, &s, &n, NULL), OT_OK);
  assert_string_equal(s[n - 1].name, "lm_head.weight");
  free(s);
}

static const char gpt2_json[] =
  "{\"activation_function\": \"gelu_new\", \"architectures\": [\"GPT2LMHeadModel\"], \"attn_pdrop\": 0.1,"
  " \"bos_token_id\": 50256, \"embd_pdrop\": 0.1, \"eos_token_id\": 50256, \"initializer_range\": 0.02,"
  " \"layer_norm_epsilon\": 1e-05, \"model_type\": \"gpt2\", \"n_ctx\": 1024, \"n_embd\": 768, \"n_head\": 12,"
  " \"n_layer\": 12, \"n_positions\": 1024, \"resid_pdrop\": 0.1, \"summary_type\": \"cls_index\","
  " \"task_specific_params\": {\"text-generation\": {\"do_sample\": true, \"max_length\": 50}},"
  " \"vocab_size\": 50257}";

static const char llama_json[] =
  "{\"architectures\": [\"LlamaForCausalLM\"], \"attention_bias\": false, \"attention_dropout\": 0.0,"
  " \"bos_token_id\": 128000, \"eos_token_id\": 128001, \"head_dim\": 64, \"hidden_act\": \"silu\","
  " \"hidden_size\": 2048, \"initializer_range\": 0.02, \"intermediate_size\": 8192,"
  " \"max_position_embeddings\": 131072, \"mlp_bias\": false, \"model_type\": \"llama\","
  " \"num_attention_heads\": 32, \"num_hidden_layers\": 16, \"num_key_value_heads\": 8,"
  " \"pretraining_tp\": 1, \"rms_norm_eps\": 1e-05, \"rope_scaling\": {\"factor\": 32.0,"
  " \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0, \"original_max_position_embeddings\": 8192,"
  " \"rope_type\": \"llama3\"}, \"rope_theta\": 500000.0, \"tie_word_embeddings\": true,"
  " \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.45.0.dev0\", \"use_cache\": true,"
  " \"vocab_size\": 128256}";

static void same_shape(const ot_model_config *a, const ot_model_config *b) {
  assert_int_equal(a->family, b->family);
  assert_int_equal(a->vocab_size, b->vocab_size);
  assert_int_equal(a->max_position_embeddings, b->max_position_embeddings);
  assert_int_equal(a->hidden_size, b->hidden_size);
  assert_int_equal(a->num_hidden_layers, b->num_hidden_layers);
  assert_int_equal(a->n_heads, b->n_heads);
  assert_int_equal(a->n_kv_heads, b->n_kv_heads);
  assert_int_equal(a->head_dim, b->head_dim);
  assert_int_equal(a->intermediate_size, b->intermediate_size);
  assert_true(a->norm_eps == b->norm_eps);
  assert_true(a->rope_theta == b->rope_theta);
  assert_int_equal(a->rope_scaling, b->rope_scaling);
  assert_true(a->rope_factor == b->rope_factor);
  assert_int_equal(a->rope_original_max_position_embeddings, b->rope_original_max_position_embeddings);
  assert_int_equal(a->tie_word_embeddings, b->tie_word_embeddings);
  assert_int_equal(a->bos_token_id, b->bos_token_id);
  assert_int_equal(a->eos_token_id, b->eos_token_id);
}

static void test_hf_config_files(void **state) {
  (void)state;
  ot_model_config c, want = preset("gpt2");
  ot_error err;
  ot_error_clear(&err);
  assert_int_equal(ot_model_config_parse(gpt2_json, strlen(gpt2_json), "gpt2/config.json", &c, &err), OT_OK);
  same_shape(&c, &want);
  want = preset("llama-3.2-1b");
  assert_int_equal(ot_model_config_parse(llama_json, strlen(llama_json), "llama/config.json", &c, &err), OT_OK);
  same_shape(&c, &want);
  /* From a directory holding config.json, from the file, and by preset name. */
  const char *dir = mt_dir("config");
  mt_write(mt_path(dir, "config.json"), llama_json, strlen(llama_json));
  assert_int_equal(ot_model_config_load(dir, &c, NULL), OT_OK);
  same_shape(&c, &want);
  assert_int_equal(ot_model_config_load(mt_path(dir, "config.json"), &c, NULL), OT_OK);
  assert_int_equal(ot_model_config_load("gpt2-tiny", &c, NULL), OT_OK);
  assert_int_equal(c.vocab_size, 257);
}

static void test_json_round_trip(void **state) {
  (void)state;
  const char *dir = mt_dir("config");
  for (size_t i = 0; ot_model_config_preset_name(i); i++) {
    ot_model_config c = preset(ot_model_config_preset_name(i)), back;
    char *json = NULL;
    assert_int_equal(ot_model_config_to_json(&c, &json, NULL), OT_OK);
    assert_int_equal(ot_model_config_parse(json, strlen(json), "rt", &back, NULL), OT_OK);
    same_shape(&c, &back);
    assert_string_equal(back.name, c.name);
    if (c.family == OT_MODEL_GPT2) assert_non_null(strstr(json, "\"layer_norm_epsilon\":\t1e-05"));
    free(json);
    assert_int_equal(ot_model_config_save(&c, mt_path(dir, "saved.json"), NULL), OT_OK);
    assert_int_equal(ot_model_config_load(mt_path(dir, "saved.json"), &back, NULL), OT_OK);
    same_shape(&c, &back);
  }
}

static void expect_parse_error(const char *json, const char *n1, const char *n2) {
  ot_model_config c;
  ot_error err;
  ot_error_clear(&err);
  mt_expect(ot_model_config_parse(json, strlen(json), "bad/config.json", &c, &err), &err, "bad/config.json", n1, n2,
            NULL);
}

static void test_bad_configs(void **state) {
  (void)state;
  expect_parse_error("{\"model_type\": \"gpt2\", \"n_embd\": 770, \"n_layer\": 2, \"n_head\": 12, \"vocab_size\": 10}",
                     "hidden_size 770 is not divisible by n_heads 12", NULL);
  expect_parse_error("{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
                     " \"num_key_value_heads\": 3, \"intermediate_size\": 128, \"vocab_size\": 10}",
                     "n_heads 4 is not divisible by n_kv_heads 3", NULL);
  expect_parse_error("{\"model_type\": \"gpt2\", \"n_embd\": 64, \"n_head\": 4, \"vocab_size\": 10}", "missing key 'n_layer'",
                     NULL);
  expect_parse_error("{\"model_type\": \"gpt2\", \"n_embd\": 64.5, \"n_layer\": 2, \"n_head\": 4, \"vocab_size\": 10}",
                     "'n_embd' must be a non-negative integer", NULL);
  expect_parse_error("{\"model_type\": \"gpt2\", \"n_embd\": 64, \"n_layer\": 0, \"n_head\": 4, \"vocab_size\": 10}",
                     "num_hidden_layers is 0, expected 1..", NULL);
  expect_parse_error("{\"model_type\": \"gpt2\", \"n_embd\": 64, \"n_layer\": 2, \"n_head\": 4, \"vocab_size\": 10,"
                     " \"layer_norm_epsilon\": \"small\"}", "'layer_norm_epsilon' must be a number", NULL);
  expect_parse_error("{\"model_type\": \"gpt2\", \"n_embd\": 64, \"n_layer\": 2, \"n_head\": 4, \"vocab_size\": 10,"
                     " \"activation_function\": \"relu\"}", "activation_function 'relu' is not supported", "gelu_new");
  expect_parse_error("{\"model_type\": \"bert\"}", "model_type 'bert'", "'gpt2' or 'llama'");
  expect_parse_error("{\"n_embd\": 64}", "model_type '(missing)'", NULL);
  expect_parse_error("[]", "not a JSON object", NULL);
  expect_parse_error("{\"model_type\": \"gpt2\",", "not a JSON object", NULL);
  expect_parse_error("{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
                     " \"intermediate_size\": 128, \"vocab_size\": 10, \"rope_scaling\": {\"type\": \"yarn\"}}",
                     "rope_scaling type 'yarn' is not supported", NULL);
  expect_parse_error("{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
                     " \"intermediate_size\": 128, \"vocab_size\": 10, \"attention_bias\": true}",
                     "attention_bias", NULL);
  expect_parse_error("{\"model_type\": \"llama\", \"hidden_size\": 60, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
                     " \"intermediate_size\": 128, \"vocab_size\": 10}", "head_dim 15 is odd", NULL);
  expect_parse_error("{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
                     " \"intermediate_size\": 128, \"vocab_size\": 10, \"rms_norm_eps\": 0}", "norm epsilon is 0", NULL);
  ot_model_config c;
  ot_error err;
  ot_error_clear(&err);
  mt_expect(ot_model_config_load("/no/such/config.json", &c, &err), &err, "/no/such/config.json: no such file", NULL);
  ot_error_clear(&err);
  mt_expect(ot_model_config_load("gpt3", &c, &err), &err, "no model preset 'gpt3'", NULL);
  /* validate() reports every problem at once. */
  c = preset("gpt2");
  c.vocab_size = 0;
  c.norm_eps = -1.0f;
  ot_error_clear(&err);
  mt_expect(ot_model_config_validate(&c, "mine", &err), &err, "mine: vocab_size is 0", "norm epsilon is -1", NULL);
  assert_int_equal(err.count, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_preset_param_counts),
    cmocka_unit_test(test_tensor_specs),
    cmocka_unit_test(test_hf_config_files),
    cmocka_unit_test(test_json_round_trip),
    cmocka_unit_test(test_bad_configs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
