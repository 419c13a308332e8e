/* OpenTRN chip descriptions: presets trn1 / trn2 / trn3 and custom chips from JSON.
**
** A chip description holds every constant of the simulated hardware (clocks, widths, memory
** geometry, bandwidths, per-instruction cost parameters, supported data types).  No other
** part of OpenTRN hard-codes a hardware number: it asks the chip.  Fields are named by a dotted
** path ("sbuf.bytes_per_partition"); docs/chips.md lists them all with units and sources.
*/
#ifndef OPENTRN_CHIP_H
#define OPENTRN_CHIP_H

#include <opentrn/status.h>
#include <stdio.h>

typedef struct ot_chip ot_chip;

/* Names of the built-in presets, NULL-terminated ({"trn1", "trn2", "trn3", NULL}). */
const char *const *ot_chip_preset_names(void);

/* Load a preset by name. */
ot_status ot_chip_preset(const char *name, ot_chip **out, ot_error *err);

/* Load a chip from a JSON file: {"base": "trn2", "name": "...", <fields overriding the base>}.
** A bad file or value is rejected naming the file, the field, the value and what was expected. */
ot_status ot_chip_load_file(const char *path, ot_chip **out, ot_error *err);

/* Same, from JSON text in memory; origin names it in messages (e.g. a file name). */
ot_status ot_chip_load_json(const char *text, const char *origin, ot_chip **out, ot_error *err);

/* Load a preset name or, if it is not one, a JSON file path. */
ot_status ot_chip_open(const char *name_or_path, ot_chip **out, ot_error *err);

void ot_chip_free(ot_chip *chip);
const char *ot_chip_name(const ot_chip *chip);

/* Read or change one field by its dotted path (numeric fields only), with range checking. */
ot_status ot_chip_get(const ot_chip *chip, const char *path, double *value, ot_error *err);
ot_status ot_chip_set(ot_chip *chip, const char *path, double value, ot_error *err);

/* Print the description with derived figures: a table for people, or JSON. */
void ot_chip_print(const ot_chip *chip, FILE *out);
ot_status ot_chip_print_json(const ot_chip *chip, FILE *out, ot_error *err);

/* Derived figure: dense peak TFLOPS of one core for a data type name ("bf16", "fp8e4m3",
** "fp32", ...); 0 if the TensorE does not support it.  Also accepts "fp8" (the fastest fp8
** type the TensorE takes) and "mxfp8" / "mxfp4" (the v4 MX matmul). */
double ot_chip_peak_tflops_core(const ot_chip *chip, const char *dtype);
int ot_chip_cores(const ot_chip *chip);

/* Copy a chip (fields and provenance); NULL if out of memory.  Free with ot_chip_free. */
ot_chip *ot_chip_clone(const ot_chip *chip);

/* Cross-field consistency (PSUM banks divide a partition, the PE array fits the partitions,
** a matmul output fits PSUM, ...).  Loading runs it; run it again after ot_chip_set calls. */
ot_status ot_chip_check(const ot_chip *chip, ot_error *err);

/* Where a field's value came from: "A2 §3.1", "assumed: <why>", "set in <file>", or NULL
** for an unknown path. */
const char *ot_chip_source(const ot_chip *chip, const char *path);

/* Preset a chip was derived from ("" for a preset itself). */
const char *ot_chip_base(const ot_chip *chip);

/* The field reference, generated from the field table: plain text (path, type and range, unit,
** meaning), or with markdown != 0 the generated section of docs/chips.md (field reference,
** preset values, assumptions and source conflicts of the presets). */
void ot_chip_print_reference(FILE *out, int markdown);

#endif
