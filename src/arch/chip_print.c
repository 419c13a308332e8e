/* Printing a chip: `opentrn chip show` (a table for people) and `--json` (the description with
** provenance and derived figures, in the same layout as the preset files, so the output can be
** read back by ot_chip_load_json).  Both walk chip_fields[]; neither names a field itself. */
#include "arch/chip_int.h"

#include <string.h>

/* ---- Shared helpers ---------------------------------------------------------------------- */

/* Length of the section part of a path ("sbuf" of "sbuf.partitions"; 0 for top-level fields). */
static size_t section_len(const char *path) {
  const char *dot = strrchr(path, '.');
  return dot ? (size_t)(dot - path) : 0;
}

static void size_text(double bytes, char *buf, size_t size) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (u < 4 && bytes >= 1024.0) { bytes /= 1024.0; u++; }
  snprintf(buf, size, "%.4g %s", bytes, units[u]);
}

/* ---- Text ---------------------------------------------------------------------------------- */

static void print_fields(const ot_chip *c, FILE *out) {
  const char *prev = NULL;
  size_t prev_len = (size_t)-1;
  for (int i = 0; i < CHIP_FIELD_COUNT; i++) {
    const char *path = chip_fields[i].path;
    size_t sl = section_len(path);
    if (!prev || sl != prev_len || strncmp(prev, path, sl))
      fprintf(out, "%s%.*s\n", prev ? "\n" : "", sl ? (int)sl : 4, sl ? path : "chip");
    prev = path;
    prev_len = sl;
    char value[160];
    chip_field_format(c, i, value, sizeof value);
    const char *src = c->source[i] ? c->source[i] : "(no provenance)";
    fprintf(out, "  %-26s %-28s  %s\n", path + (sl ? sl + 1 : 0), value, src);
  }
}

static void print_peaks(const chip_derived *d, FILE *out) {
  fprintf(out, "  dense peak TFLOPS (TensorE)   per core     per chip\n");
  for (unsigned k = 0; k < d->npeak; k++)
    fprintf(out, "    %-26s %9.2f   %10.2f\n", d->peak[k].dtype, d->peak[k].core, d->peak[k].chip);
  if (!d->npeak) fprintf(out, "    (the TensorE takes no floating-point type)\n");
}

static void print_derived(const ot_chip *c, FILE *out) {
  chip_derived d;
  char a[32], b[32];
  chip_derive(c, &d);
  fprintf(out, "\nderived (computed from the fields above)\n");
  print_peaks(&d, out);
  size_text(d.sbuf_core, a, sizeof a);
  size_text(d.sbuf_chip, b, sizeof b);
  fprintf(out, "  SBUF                         %s per core, %s per chip\n", a, b);
  size_text(d.psum_core, a, sizeof a);
  size_text(d.psum_chip, b, sizeof b);
  fprintf(out, "  PSUM                         %s per core, %s per chip\n", a, b);
  size_text(d.hbm_chip, a, sizeof a);
  size_text(d.hbm_core, b, sizeof b);
  fprintf(out, "  HBM capacity                 %s per chip (%s per core, even share)\n", a, b);
  fprintf(out, "  HBM bandwidth                %.6g GB/s per chip (%.6g GB/s per core, even share)\n",
          d.hbm_gbps_chip, d.hbm_gbps_core);
  fprintf(out, "  DMA bandwidth                %.6g GB/s per core (%u engines x %.6g GB/s), %.6g GB/s "
          "per chip\n", d.dma_gbps_core, c->dma.engines, c->dma.engine_gbps, d.dma_gbps_chip);
  if (d.ridge_core > 0)
    fprintf(out, "  roofline ridge (bf16)        %.1f FLOP/byte per core (%.3g byte/FLOP), %.1f FLOP/byte "
            "per chip (%.3g byte/FLOP)\n", d.ridge_core, 1.0 / d.ridge_core, d.ridge_chip, 1.0 / d.ridge_chip);
  else
    fprintf(out, "  roofline ridge (bf16)        n/a (the TensorE does not take bf16)\n");
}

void ot_chip_print(const ot_chip *chip, FILE *out) {
  if (!chip || !out) return;
  if (chip->base[0])
    fprintf(out, "chip %s: custom, based on preset %s (NeuronCore generation %u, %u cores)\n", chip->name,
            chip->base, chip->generation, chip->cores_per_chip);
  else
    fprintf(out, "chip %s: preset (NeuronCore generation %u, %u cores)\n", chip->name, chip->generation,
            chip->cores_per_chip);
  fprintf(out, "Provenance: source keys (A1, H2, ...) name public AWS Neuron documents, listed in "
               "docs/chips.md; \"assumed:\" marks a number the documents do not give.\n\n");
  print_fields(chip, out);
  print_derived(chip, out);
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static void json_string(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') fprintf(out, "\\%c", ch);
    else if (ch == '\n') fputs("\\n", out);
    else if (ch < 0x20 || ch == 0x7f) fprintf(out, "\\u%04x", ch);
    else fputc(ch, out);
  }
  fputc('"', out);
}

static void json_value(FILE *out, const ot_chip *c, int i) {
  char num[64];
  double v = chip_field_get(c, i);
  if (chip_fields[i].kind == CHIP_BOOL) { fputs(v != 0.0 ? "true" : "false", out); return; }
  if (chip_fields[i].kind != CHIP_DTYPES) { chip_number_format(v, num, sizeof num); fputs(num, out); return; }
  uint64_t mask = (uint64_t)v;
  int n = 0;
  fputc('[', out);
  for (unsigned t = 0; t < OT_DT_COUNT; t++)
    if ((mask >> t) & 1u) { fputs(n++ ? ", " : "", out); json_string(out, chip_dtype_name(t)); }
  fputc(']', out);
}

static void json_leaf(FILE *out, const ot_chip *c, int i) {
  const char *src = c->source[i];
  if (!src) { json_value(out, c, i); return; }
  static const char assumed[] = "assumed: ";
  bool is_assumed = !strncmp(src, assumed, sizeof assumed - 1);
  fputs("{\"value\": ", out);
  json_value(out, c, i);
  fputs(is_assumed ? ", \"assumed\": " : ", \"source\": ", out);
  json_string(out, is_assumed ? src + sizeof assumed - 1 : src);
  fputc('}', out);
}

/* Has a field before i already opened the member `comp` (len bytes) under prefix? */
static bool member_seen(int i, const char *prefix, size_t plen, const char *comp, size_t len) {
  for (int j = 0; j < i; j++) {
    const char *p = chip_fields[j].path;
    if (strncmp(p, prefix, plen) || strncmp(p + plen, comp, len)) continue;
    if (p[plen + len] == '.' || p[plen + len] == '\0') return true;
  }
  return false;
}

/* Members of the object at `prefix` ("" or "sbuf."), nested sections as nested objects. */
static void json_members(FILE *out, const ot_chip *c, const char *prefix, int indent, bool *first) {
  size_t plen = strlen(prefix);
  for (int i = 0; i < CHIP_FIELD_COUNT; i++) {
    const char *path = chip_fields[i].path;
    if (strncmp(path, prefix, plen)) continue;
    const char *comp = path + plen, *dot = strchr(comp, '.');
    size_t len = dot ? (size_t)(dot - comp) : strlen(comp);
    if (member_seen(i, prefix, plen, comp, len)) continue;
    fprintf(out, "%s\n%*s\"%.*s\": ", *first ? "" : ",", indent, "", (int)len, comp);
    *first = false;
    if (!dot) { json_leaf(out, c, i); continue; }
    char sub[160];
    snprintf(sub, sizeof sub, "%.*s", (int)(plen + len + 1), path);
    bool inner = true;
    fputc('{', out);
    json_members(out, c, sub, indent + 2, &inner);
    fprintf(out, "\n%*s}", indent, "");
  }
}

static void json_pair(FILE *out, const char *key, double core, double chip, bool last) {
  fprintf(out, "    \"%s\": {\"core\": %.10g, \"chip\": %.10g}%s\n", key, core, chip, last ? "" : ",");
}

static void json_derived(FILE *out, const ot_chip *c) {
  chip_derived d;
  chip_derive(c, &d);
  fprintf(out, "  \"derived\": {\n    \"peak_dense_tflops\": {");
  for (unsigned k = 0; k < d.npeak; k++)
    fprintf(out, "%s\n      \"%s\": {\"core\": %.10g, \"chip\": %.10g}", k ? "," : "", d.peak[k].dtype,
            d.peak[k].core, d.peak[k].chip);
  fprintf(out, "\n    },\n");
  json_pair(out, "sbuf_bytes", d.sbuf_core, d.sbuf_chip, false);
  json_pair(out, "psum_bytes", d.psum_core, d.psum_chip, false);
  json_pair(out, "hbm_bytes", d.hbm_core, d.hbm_chip, false);
  json_pair(out, "hbm_gbps", d.hbm_gbps_core, d.hbm_gbps_chip, false);
  json_pair(out, "dma_gbps", d.dma_gbps_core, d.dma_gbps_chip, false);
  json_pair(out, "ridge_bf16_flop_per_byte", d.ridge_core, d.ridge_chip, false);
  json_pair(out, "ridge_bf16_byte_per_flop", d.ridge_core > 0 ? 1.0 / d.ridge_core : 0.0,
            d.ridge_chip > 0 ? 1.0 / d.ridge_chip : 0.0, true);
  fprintf(out, "  }");
}

ot_status ot_chip_print_json(const ot_chip *chip, FILE *out, ot_error *err) {
  if (!chip || !out) return CHIP_FAIL(err, OT_EINVAL, "ot_chip_print_json: chip or out is NULL");
  fputs("{\n  \"name\": ", out);
  json_string(out, chip->name);
  /* A preset's own output names itself as base, so the text loads back as a custom chip. */
  fputs(",\n  \"base\": ", out);
  json_string(out, chip->base[0] ? chip->base : chip->name);
  fputs(",\n  \"comment\": \"written by `opentrn chip show --json`: every field is given; "
        "\\\"derived\\\" is output only and ignored when read back\",", out);
  bool first = true;
  json_members(out, chip, "", 2, &first);
  fputs(",\n", out);
  json_derived(out, chip);
  fputs("\n}\n", out);
  if (ferror(out)) return CHIP_FAIL(err, OT_EIO, "writing the chip description failed");
  return OT_OK;
}
