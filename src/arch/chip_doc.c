/* The generated part of docs/chips.md: field reference, preset values, assumptions and source
** conflicts, all from chip_fields.def and the embedded presets.  tests/arch/test_chip_docs.c
** fails when the checked-in page differs; `cmake --build <dir> --target chip-docs` rewrites it. */
#include "arch/chip_int.h"

#include <string.h>

/* Markdown table cell: '|' would end the cell, a newline the row. */
static void cell(FILE *out, const char *s) {
  for (; *s; s++) {
    if (*s == '|') fputs("\\|", out);
    else if (*s == '\n') fputc(' ', out);
    else fputc(*s, out);
  }
}

static const char *kind_name(chip_kind k) {
  switch (k) {
  case CHIP_U32: case CHIP_U64: return "integer";
  case CHIP_F64: return "number";
  case CHIP_BOOL: return "true/false";
  case CHIP_DTYPES: return "list of data types";
  }
  return "?";
}

static void write_reference(FILE *out) {
  fprintf(out, "### Field reference\n\n| Field | Type | Accepted | Unit | Meaning |\n|---|---|---|---|---|\n");
  for (int i = 0; i < CHIP_FIELD_COUNT; i++) {
    const chip_field *f = &chip_fields[i];
    char lo[64], hi[64];
    fprintf(out, "| `%s` | %s | ", f->path, kind_name(f->kind));
    if (f->kind == CHIP_DTYPES) {
      for (unsigned t = 0; t < OT_DT_COUNT; t++) fprintf(out, "%s%s", t ? ", " : "", chip_dtype_name(t));
    } else if (f->kind != CHIP_BOOL) {
      chip_number_format(f->min, lo, sizeof lo);
      chip_number_format(f->max, hi, sizeof hi);
      fprintf(out, "%s – %s", lo, hi);
    }
    fprintf(out, " | %s | ", f->unit);
    cell(out, f->doc);
    fprintf(out, " |\n");
  }
}

typedef struct {
  ot_chip *chip[8];
  size_t n;
} preset_set;

static void presets_load(preset_set *ps, FILE *out) {
  const char *const *names = ot_chip_preset_names();
  ps->n = 0;
  for (size_t k = 0; names[k] && ps->n < 8; k++) {
    ot_error err;
    ot_error_clear(&err);
    if (ot_chip_preset(names[k], &ps->chip[ps->n], &err) == OT_OK) ps->n++;
    else fprintf(out, "**preset %s does not load: %s**\n\n", names[k], err.msg);
  }
}

static void write_values(FILE *out, const preset_set *ps) {
  fprintf(out, "\n### Preset values\n\n| Field |");
  for (size_t k = 0; k < ps->n; k++) fprintf(out, " %s |", ps->chip[k]->name);
  fprintf(out, "\n|---|");
  for (size_t k = 0; k < ps->n; k++) fprintf(out, "---|");
  fputc('\n', out);
  for (int i = 0; i < CHIP_FIELD_COUNT; i++) {
    fprintf(out, "| `%s` |", chip_fields[i].path);
    for (size_t k = 0; k < ps->n; k++) {
      char v[160];
      chip_field_format(ps->chip[k], i, v, sizeof v);
      fputc(' ', out);
      cell(out, v);
      fprintf(out, " |");
    }
    fputc('\n', out);
  }
}

static void write_assumptions(FILE *out, const preset_set *ps) {
  static const char tag[] = "assumed: ";
  fprintf(out, "\n### Assumptions in the presets\n\nValues the public documents do not give. Each "
               "reason is written next to the value in `configs/chips/<preset>.json`.\n");
  for (size_t k = 0; k < ps->n; k++) {
    const ot_chip *c = ps->chip[k];
    fprintf(out, "\n#### %s\n\n| Field | Value | Why |\n|---|---|---|\n", c->name);
    for (int i = 0; i < CHIP_FIELD_COUNT; i++) {
      const char *src = c->source[i];
      if (!src || strncmp(src, tag, sizeof tag - 1)) continue;
      char v[160];
      chip_field_format(c, i, v, sizeof v);
      fprintf(out, "| `%s` | ", chip_fields[i].path);
      cell(out, v);
      fputs(" | ", out);
      cell(out, src + sizeof tag - 1);
      fputs(" |\n", out);
    }
  }
}

static void write_conflicts(FILE *out, const preset_set *ps) {
  fprintf(out, "\n### Source conflicts and the value kept\n\nFields whose sources disagree "
               "(marked [conflict] in the fact sheet), with the choice and its reason.\n\n"
               "| Preset | Field | Value kept | Sources and reason |\n|---|---|---|---|\n");
  for (size_t k = 0; k < ps->n; k++)
    for (int i = 0; i < CHIP_FIELD_COUNT; i++) {
      const char *src = ps->chip[k]->source[i];
      if (!src || !strstr(src, "[conflict]")) continue;
      char v[160];
      chip_field_format(ps->chip[k], i, v, sizeof v);
      fprintf(out, "| %s | `%s` | ", ps->chip[k]->name, chip_fields[i].path);
      cell(out, v);
      fputs(" | ", out);
      cell(out, src);
      fputs(" |\n", out);
    }
}

void chip_doc_write(FILE *out) {
  preset_set ps;
  presets_load(&ps, out);
  write_reference(out);
  write_values(out, &ps);
  write_assumptions(out, &ps);
  write_conflicts(out, &ps);
  for (size_t k = 0; k < ps.n; k++) ot_chip_free(ps.chip[k]);
}

static void write_plain(FILE *out) {
  for (int i = 0; i < CHIP_FIELD_COUNT; i++) {
    const chip_field *f = &chip_fields[i];
    char lo[64], hi[64], range[160];
    chip_number_format(f->min, lo, sizeof lo);
    chip_number_format(f->max, hi, sizeof hi);
    if (f->kind == CHIP_BOOL) snprintf(range, sizeof range, "true/false");
    else if (f->kind == CHIP_DTYPES) snprintf(range, sizeof range, "[data types]");
    else snprintf(range, sizeof range, "%s %s..%s%s%s", kind_name(f->kind), lo, hi, f->unit[0] ? " " : "", f->unit);
    fprintf(out, "%-32s %-34s %s\n", f->path, range, f->doc);
  }
}

void ot_chip_print_reference(FILE *out, int markdown) {
  if (!out) return;
  if (markdown) chip_doc_write(out);
  else write_plain(out);
}
