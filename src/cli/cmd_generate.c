/* opentrn generate: prefill + decode of a GPT-2 or Llama model on a simulated chip, the KV cache
** in device HBM (src/model/generate.h, docs/generation.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <opentrn/model.h>

#include "cli/cli.h"
#include "model/generate.h"

#define GEN_MAX_PROMPTS 64 /* the "bad value" message names it too */

static const char gen_usage[] =
  "usage: opentrn generate --model M --prompt TEXT [--prompt TEXT ...] [options]\n"
  "  Generate text on a simulated chip: one prefill program over the prompts, then one decode\n"
  "  program per token; weights and the per-layer KV caches stay in device HBM.  Reports time to\n"
  "  first token, time per output token and tokens/s in simulated time, and host wall time.\n"
  "  M: a preset (gpt2, gpt2-tiny, llama-tiny, ...), a config.json, or a directory holding\n"
  "  config.json (and model.safetensors, used unless --weights is given).\n"
  "  Several prompts form a batch; they must encode to the same number of tokens (no padding).\n"
  "options:\n"
  "  --max-tokens N       new tokens per prompt (20)\n"
  "  --chip CHIP          trn2 (default), trn1, trn3 or a chip JSON file\n"
  "  --weights FILE       safetensors weights (Hugging Face names); default: the model directory's\n"
  "                       model.safetensors, else seeded random weights\n"
  "  --temperature T      0 = greedy (default); > 0 samples from softmax(logits / T)\n"
  "  --top-k K            sample among the K most likely tokens (0 = all)\n"
  "  --top-p P            sample from the smallest set of tokens with probability >= P (1 = all)\n"
  "  --seed N             sampling RNG and random weights (1)\n"
  "  --fp32               fp32 TensorE operands and KV caches (default bf16 operands and caches)\n"
  "  --timing             simulated time only: no values are computed, tokens are placeholders (0)\n"
  "  --no-stop            do not stop at the end-of-text token\n"
  "  --tokenizer DIR      GPT-2 BPE files for vocabularies above 257 (default data/gpt2)\n";

typedef struct {
  const char *model, *weights, *tokenizer;
  const char *prompts[GEN_MAX_PROMPTS];
  uint32_t n_prompts, max_tokens;
  gen_opts o;
} gen_cli;

static int gen_parse_num(const char *name, const char *v, gen_cli *c) {
  char *end;
  if (!strcmp(name, "--max-tokens") || !strcmp(name, "--top-k")) {
    unsigned long x = strtoul(v, &end, 10);
    if (!*v || *end || x > 1000000ul) return -1;
    *(!strcmp(name, "--top-k") ? &c->o.top_k : &c->max_tokens) = (uint32_t)x;
    return 1;
  }
  if (!strcmp(name, "--temperature") || !strcmp(name, "--top-p")) {
    double x = strtod(v, &end);
    if (!*v || *end || !(x >= 0.0) || x > 1e6) return -1;
    *(!strcmp(name, "--top-p") ? &c->o.top_p : &c->o.temperature) = (float)x;
    return 1;
  }
  if (!strcmp(name, "--seed")) {
    c->o.seed = strtoull(v, &end, 10);
    return (*v && !*end) ? 1 : -1;
  }
  return 0;
}

/* What a bad value of option name should have been (for the message). */
static const char *gen_expects(const char *name) {
  if (!strcmp(name, "--max-tokens") || !strcmp(name, "--top-k")) return "an integer from 0 to 1000000";
  if (!strcmp(name, "--temperature") || !strcmp(name, "--top-p")) return "a number from 0 to 1e6";
  if (!strcmp(name, "--seed")) return "a non-negative integer";
  if (!strcmp(name, "--prompt")) return "at most 64 prompts (GEN_MAX_PROMPTS)";
  return "a valid value";
}

static int gen_parse_str(const char *name, const char *v, gen_cli *c) {
  if (!strcmp(name, "--model")) c->model = v;
  else if (!strcmp(name, "--weights")) c->weights = v;
  else if (!strcmp(name, "--tokenizer")) c->tokenizer = v;
  else if (!strcmp(name, "--chip")) c->o.chip = v;
  else if (!strcmp(name, "--prompt")) {
    if (c->n_prompts >= GEN_MAX_PROMPTS) return -1;
    c->prompts[c->n_prompts++] = v;
  } else return 0;
  return 1;
}

static int gen_parse(int argc, char **argv, gen_cli *c) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--fp32")) { c->o.fp32 = true; continue; }
    if (!strcmp(a, "--timing")) { c->o.mode = OT_RUN_TIMING; continue; }
    if (!strcmp(a, "--no-stop")) { c->o.stop_at_eos = false; continue; }
    if (i + 1 >= argc) { fprintf(stderr, "opentrn generate: '%s' needs a value (or is unknown)\n%s", a, gen_usage); return -1; }
    int r = gen_parse_num(a, argv[i + 1], c);
    if (!r) r = gen_parse_str(a, argv[i + 1], c);
    if (r < 0) { fprintf(stderr, "opentrn generate: bad value '%s' for %s: expected %s\n", argv[i + 1], a, gen_expects(a)); return -1; }
    if (!r) { fprintf(stderr, "opentrn generate: unknown option '%s'\n%s", a, gen_usage); return -1; }
    i++;
  }
  if (!c->model || !c->n_prompts) {
    fprintf(stderr, "opentrn generate: --model and at least one --prompt are required\n%s", gen_usage);
    return -1;
  }
  return 0;
}

/* --weights, else DIR/model.safetensors when --model is a directory that has one, else NULL. */
static const char *gen_weights_path(const gen_cli *c, char *buf, size_t cap) {
  struct stat st;
  if (c->weights) return c->weights;
  if (stat(c->model, &st) || !S_ISDIR(st.st_mode)) return NULL;
  snprintf(buf, cap, "%s/model.safetensors", c->model);
  return stat(buf, &st) ? NULL : buf;
}

static ot_status gen_tokenizer(const ot_model_config *m, const char *dir, ot_tokenizer **tok, ot_error *err) {
  uint32_t v = m->vocab_size;
  ot_status s = v <= 257 ? ot_tokenizer_bytes_new(v == 257, tok, err) : ot_tokenizer_load_dir(dir ? dir : "data/gpt2", tok, err);
  if (s) return s;
  if (ot_tokenizer_vocab_size(*tok) > v)
    return ot_error_set(err, OT_EINVAL, "model %s: vocabulary %u is smaller than the tokenizer's %u", m->name, v,
                        ot_tokenizer_vocab_size(*tok));
  return OT_OK;
}

/* Every prompt encoded into one [n, len] array; they must have the same length. */
static ot_status gen_encode(const gen_cli *c, const ot_tokenizer *tok, uint32_t **out, uint32_t *len, ot_error *err) {
  *out = NULL;
  ot_status s = OT_OK;
  for (uint32_t i = 0; !s && i < c->n_prompts; i++) {
    uint32_t *ids = NULL;
    size_t n = 0;
    s = ot_tokenizer_encode(tok, c->prompts[i], strlen(c->prompts[i]), 0, &ids, &n, err);
    if (s) break;
    if (i == 0) {
      *len = (uint32_t)n;
      *out = malloc((size_t)c->n_prompts * (n ? n : 1) * sizeof **out);
      if (!*out) s = ot_error_set(err, OT_ENOMEM, "out of memory");
    } else if (n != *len) {
      s = ot_error_set(err, OT_EINVAL, "prompt %u is %zu tokens and prompt 1 is %u: a batch needs prompts of the same "
                       "token count (no padding)", i + 1, n, *len);
    }
    if (!s) memcpy(*out + (size_t)i * *len, ids, n * sizeof *ids);
    free(ids);
  }
  if (!s && !*len) s = ot_error_set(err, OT_EINVAL, "the prompt is empty (at least one token is needed)");
  if (s) { free(*out); *out = NULL; }
  return s;
}

static void gen_print_rows(const gen_cli *c, const ot_tokenizer *tok, const uint32_t *out, uint32_t n) {
  for (uint32_t b = 0; b < c->n_prompts; b++) {
    char *text = NULL;
    size_t tl = 0;
    ot_error err;
    if (ot_tokenizer_decode(tok, out + (size_t)b * c->max_tokens, n, &text, &tl, &err)) continue;
    printf("--- %u: %s", b + 1, c->prompts[b]);
    fwrite(text, 1, tl, stdout);
    printf("\n");
    free(text);
  }
}

static void gen_print_stats(const gen_cli *c, uint32_t len, const gen_stats *st) {
  uint32_t decodes = st->new_tokens ? st->new_tokens - 1 : 0, B = c->n_prompts;
  double ttft = (double)st->prefill_ps * 1e-9, tpot = decodes ? (double)st->decode_ps * 1e-9 / decodes : 0.0;
  double total_s = (double)(st->prefill_ps + st->decode_ps) * 1e-12;
  printf("time to first token   %10.3f ms simulated (prefill of %u x %u tokens)\n", ttft, B, len);
  if (decodes) printf("time per output token  %10.3f ms simulated (mean of %u decode steps)\n", tpot, decodes);
  printf("tokens/s              %10.1f simulated (%u x %u new tokens / %.3f ms)", total_s > 0 ? B * st->new_tokens / total_s : 0.0,
         B, st->new_tokens, total_s * 1e3);
  if (decodes) printf("; decode alone %.1f tokens/s", B / (tpot * 1e-3));
  printf("\nhost wall             %10.2f s (compile %.2f s, simulate %.2f s, %u programs run)\n", st->wall_s, st->compile_s,
         st->run_s, st->steps);
}

static int gen_main(gen_cli *c) {
  ot_error err;
  ot_error_clear(&err);
  ot_model_config m;
  ot_tokenizer *tok = NULL;
  uint32_t *prompts = NULL, *out = NULL, len = 0;
  generator *g = NULL;
  gen_stats st;
  char wbuf[4096];
  const char *weights = gen_weights_path(c, wbuf, sizeof wbuf);
  ot_status s = ot_model_config_load(c->model, &m, &err);
  if (!s) s = gen_tokenizer(&m, c->tokenizer, &tok, &err);
  if (!s) s = gen_encode(c, tok, &prompts, &len, &err);
  if (!s && (uint64_t)len + c->max_tokens > m.max_position_embeddings)
    s = ot_error_set(&err, OT_EINVAL, "a prompt of %u tokens + %u new tokens is longer than the context of %s "
                     "(max_position_embeddings %u)", len, c->max_tokens, m.name, m.max_position_embeddings);
  if (!s) s = gen_open(&m, weights, c->o.seed, c->n_prompts, len + c->max_tokens, &c->o, &g, &err);
  if (!s && !(out = calloc((size_t)c->n_prompts * (c->max_tokens ? c->max_tokens : 1), sizeof *out)))
    s = ot_error_set(&err, OT_ENOMEM, "out of memory");
  if (!s) {
    printf("model %s (%.1fM parameters) on %s, batch %u, %s matmuls and KV cache, ", m.name,
           (double)ot_model_config_param_count(&m) / 1e6, c->o.chip, c->n_prompts, c->o.fp32 ? "fp32" : "bf16");
    if (weights) printf("weights %s\n", weights);
    else printf("random weights (seed %llu)\n", (unsigned long long)c->o.seed);
    fflush(stdout);
    s = gen_run(g, prompts, len, c->max_tokens, out, NULL, NULL, &st, &err);
  }
  if (!s) {
    if (c->o.mode != OT_RUN_TIMING) gen_print_rows(c, tok, out, st.new_tokens);
    gen_print_stats(c, len, &st);
  }
  if (s) fprintf(stderr, "opentrn generate: %s\n", err.msg);
  gen_free(g);
  free(out);
  free(prompts);
  ot_tokenizer_free(tok);
  return s ? CLI_REJECTED : CLI_OK;
}

int cli_generate(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) { fputs(gen_usage, stdout); return CLI_OK; }
  gen_cli c;
  memset(&c, 0, sizeof c);
  c.max_tokens = 20;
  gen_opts_default(&c.o);
  if (gen_parse(argc, argv, &c)) return CLI_USAGE;
  return gen_main(&c);
}
