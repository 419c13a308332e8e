/* OpenTRN programs: assemble, disassemble, verify, save and load.
**
** A program is what one NeuronCore runs: an instruction stream per engine (Sync, Tensor, Vector,
** Scalar, GpSimd), the DMA descriptors those streams trigger, a table of named tensors in device
** HBM (inputs, outputs, weights, scratch, constants) and the constants' data.  The file format
** (docs/isa.md, "Program file") is versioned and checksummed; the reader validates every size,
** count and offset before use and names the check that failed.
*/
#ifndef OPENTRN_PROGRAM_H
#define OPENTRN_PROGRAM_H

#include <opentrn/chip.h>
#include <opentrn/status.h>
#include <stddef.h>
#include <stdio.h>

typedef struct ot_program ot_program;

/* Assemble text (origin names it in messages) or a file.  Every error is reported, each with
** file:line:column, not only the first. */
ot_status ot_asm_text(const char *text, const char *origin, ot_program **out, ot_error *err);
ot_status ot_asm_file(const char *path, ot_program **out, ot_error *err);

/* Print a program as assembly that ot_asm_text accepts back (the same instructions). */
ot_status ot_disasm(const ot_program *prog, FILE *out, ot_error *err);

/* Check every instruction against the chip's rules; reports all violations in one pass. */
ot_status ot_program_verify(const ot_program *prog, const ot_chip *chip, ot_error *err);

/* Program files.  Saving is atomic: a temporary file is written, synced and renamed, so an
** existing file is never left half-written. */
ot_status ot_program_save(const ot_program *prog, const char *path, ot_error *err);
ot_status ot_program_load(const char *path, ot_program **out, ot_error *err);
ot_status ot_program_serialize(const ot_program *prog, void **bytes, size_t *size, ot_error *err);
ot_status ot_program_deserialize(const void *bytes, size_t size, ot_program **out, ot_error *err);

/* A program file or an assembly text file, told apart by the program file's magic. */
ot_status ot_program_open(const char *path, ot_program **out, ot_error *err);

void ot_program_free(ot_program *prog);

/* Target chip named by the program ("" if none) and total instruction count. */
const char *ot_program_chip(const ot_program *prog);
size_t ot_program_insn_count(const ot_program *prog);

#endif
