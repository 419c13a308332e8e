/* OpenTRN devices: a simulated chip that loads a program, holds its tensors and runs it.
**
**   ot_device *d;
**   ot_device_open("trn2", &d, &err);                   a preset name or a chip JSON file
**   ot_device_load_file(d, "gelu.s");                   a program file or assembly
**   ot_device_write(d, "x", OT_DT_BF16, x, sizeof x);   inputs, by tensor name
**   ot_run_options o; ot_run_options_default(&o);
**   ot_device_run(d, &o);
**   ot_device_read(d, "y", OT_DT_BF16, y, sizeof y);    outputs
**   ot_device_close(d);
**
** Tensors live in the device between runs.  The device keeps every tensor of the loaded program
** (its bytes in device HBM, at the offset the program's tensor table gives); each run starts a
** fresh simulator, copies every tensor that has a value into its HBM, runs, and -- if the run
** succeeds and computes values -- copies every tensor back.  So outputs of one run can be read,
** or fed to the next run unchanged, and a program can run again with new inputs.  A failed run
** leaves the tensors as they were.  Constants (role const) are given their values at load and
** rewritten before each run.  HBM outside the tensors does not persist between runs.
**
** Errors: every call returns an ot_status; ot_device_last_error(d) is the message of the last
** call on d that failed (it is not cleared by calls that succeed).  ot_device_open reports into
** err, since there is no device yet.  The library never exits.  A device is not thread-safe:
** one thread at a time per device; separate devices are independent.
*/
#ifndef OPENTRN_DEVICE_H
#define OPENTRN_DEVICE_H

#include <opentrn/chip.h>
#include <opentrn/num.h>
#include <opentrn/program.h>
#include <opentrn/status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ot_device ot_device;

/* ---- open and close ----------------------------------------------------------------------- */
/* A device of a preset chip ("trn1", "trn2", "trn3") or of a chip JSON file. */
ot_status ot_device_open(const char *chip, ot_device **out, ot_error *err);
/* A device of a chip description (copied: the caller keeps and frees its own). */
ot_status ot_device_open_chip(const ot_chip *chip, ot_device **out, ot_error *err);
void ot_device_close(ot_device *d);
const ot_chip *ot_device_chip(const ot_device *d);

/* Message of the last failed call on d ("" if none has failed), and its status. */
const char *ot_device_last_error(const ot_device *d);
ot_status ot_device_last_status(const ot_device *d);

/* ---- programs ----------------------------------------------------------------------------- */
/* Load a program: it is copied (the caller keeps its own) and verified against the device's
** chip; every tensor must lie inside device HBM.  Replaces any loaded program and its tensors. */
ot_status ot_device_load(ot_device *d, const ot_program *prog);
/* Load a program but keep the values of the tensors it shares with the loaded one: a tensor of
** the new program whose name, dtype and shape equal a tensor of the loaded program that has a
** value takes that value (constants excepted); the other tensors start without one.  So weights
** and KV caches stay "in device HBM" across programs (a prefill program, then decode programs
** per context length) without being written again.  A failed load changes nothing. */
ot_status ot_device_load_keep(ot_device *d, const ot_program *prog);
/* Load a program file (.prog) or an assembly file (assembled in memory), told apart by the
** program file's magic. */
ot_status ot_device_load_file(ot_device *d, const char *path);

/* ---- tensors ------------------------------------------------------------------------------ */
#define OT_DEVICE_TENSOR_DIMS 4

typedef struct {
  const char *name;          /* owned by the device: valid until the next load or close */
  ot_dtype dtype;
  const char *role;          /* "input", "output", "weight", "scratch" or "const" */
  unsigned ndim;
  uint64_t shape[OT_DEVICE_TENSOR_DIMS];
  uint64_t bytes;            /* elements x element size */
  uint64_t hbm_offset;       /* byte offset in device HBM */
  bool has_value;            /* written, a constant, or produced by a run */
} ot_tensor_desc;

size_t ot_device_tensor_count(const ot_device *d);
/* Describe tensor i (in the program's table order) or the tensor called name. */
ot_status ot_device_tensor(ot_device *d, size_t i, ot_tensor_desc *out);
ot_status ot_device_tensor_find(ot_device *d, const char *name, ot_tensor_desc *out);

/* Write or read a whole tensor by name.  dtype and bytes must be exactly the tensor's dtype and
** size (elements x element size, row-major); a mismatch is rejected naming the tensor and both
** sizes and types.  Reading a tensor that has no value yet (an output before the first run that
** computes values) is an error. */
ot_status ot_device_write(ot_device *d, const char *name, ot_dtype dtype, const void *data, size_t bytes);
ot_status ot_device_read(ot_device *d, const char *name, ot_dtype dtype, void *data, size_t bytes);

/* The same through NumPy .npy files (docs/runtime.md, "NumPy files").  The array's shape must be
** the tensor's shape, and its dtype the tensor's, where formats numpy lacks travel as raw bits:
** bf16 as uint16 ('<u2'), fp8 as uint8 ('|u1'), tf32 as float32.  Saving is atomic. */
ot_status ot_device_write_npy(ot_device *d, const char *name, const char *path);
ot_status ot_device_read_npy(ot_device *d, const char *name, const char *path);
/* The numpy dtype (descr, e.g. "<u2") that carries tensors of type t. */
const char *ot_device_npy_descr(ot_dtype t);

/* ---- running ------------------------------------------------------------------------------ */
typedef enum {
  OT_RUN_FULL = 0,           /* values and time */
  OT_RUN_TIMING = 1,         /* time only: no values are computed (tensors are left unchanged) */
  OT_RUN_FUNCTIONAL = 2      /* values only: every instruction takes no time */
} ot_run_mode;

typedef struct {
  ot_run_mode mode;
  bool scalesim;             /* TensorE timing by SCALE-Sim's non-overlapped formula */
  bool stochastic_rounding;  /* stores round stochastically, from seed (else round-to-nearest-even) */
  uint64_t seed;
  bool uninit_is_error;      /* reading never-written SBUF/PSUM: an error (true) or a warning */
  bool nan_trap;             /* an instruction that writes NaN or Inf is an error */
  bool race_check;           /* report unsynchronised conflicting accesses (as warnings) */
  bool trace;                /* record a trace for ot_device_write_trace */
  bool allow_missing;        /* input and weight tensors without a value read as zeros */
  uint64_t insn_budget;      /* executed-instruction limit (runaway loops); 0 = 100 million */
} ot_run_options;

/* Full mode, Neuron timing, round-to-nearest-even, seed 1, uninitialised reads are errors,
** no trap, no race check, no trace, inputs required, default budget. */
void ot_run_options_default(ot_run_options *o);

/* Run the loaded program once (opt NULL = defaults).  Every input and weight tensor needs a
** value unless opt->allow_missing (not checked in timing mode, which reads no values). */
ot_status ot_device_run(ot_device *d, const ot_run_options *opt);
/* Warnings of the last run (uninitialised reads with uninit_is_error off, races), one per
** line; "" if none. */
const char *ot_device_run_log(const ot_device *d);

/* ---- results of the last run -------------------------------------------------------------- */
typedef struct {
  uint64_t time_ps;          /* simulated time, start to the last event */
  uint64_t insns;            /* instructions executed, all engines */
  uint64_t model_flops, transpose_flops;
  uint64_t hbm_read_bytes, hbm_written_bytes;
  double hfu, mfu, mbu;      /* fractions 0..1 (docs/runtime.md) */
  double tensor_util;        /* TensorE busy time / total time */
  uint64_t warnings;
} ot_run_summary;

ot_status ot_device_summary(ot_device *d, ot_run_summary *out);
/* The last run's time for the instructions tagged `tag` (a compiled program's graph node name,
** e.g. "allreduce"): span from the first start to the last end, and busy time summed over the
** engines and DMA transfers (either pointer may be NULL).  Zeros if no instruction has the tag. */
ot_status ot_device_tag_time(ot_device *d, const char *tag, uint64_t *span_ps, uint64_t *busy_ps);
/* Statistics of the last run as a table, or as JSON (fields in docs/runtime.md). */
ot_status ot_device_print_stats(ot_device *d, FILE *out);
ot_status ot_device_print_stats_json(ot_device *d, FILE *out);
/* The last run's trace (run with opt.trace) as Chrome / Perfetto trace-event JSON, written
** atomically: open it in ui.perfetto.dev or chrome://tracing. */
ot_status ot_device_write_trace(ot_device *d, const char *path);

#endif
