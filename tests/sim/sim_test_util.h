/* Shared by the simulator tests: assemble, run, find trace events. */
#ifndef SIM_TEST_UTIL_H
#define SIM_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <opentrn/chip.h>

#include "isa/program.h"
#include "sim/sim.h"

static inline ot_program *st_asm(const char *text) {
  ot_program *p = NULL;
  ot_error err;
  ot_error_clear(&err);
  if (ot_asm_text(text, "test", &p, &err)) fprintf(stderr, "assembly failed:\n%s\n%s\n", err.msg, text);
  return p;
}

static inline ot_chip *st_chip(const char *name) {
  ot_chip *c = NULL;
  ot_error err;
  ot_error_clear(&err);
  if (ot_chip_preset(name, &c, &err)) fprintf(stderr, "%s\n", err.msg);
  return c;
}

/* Run p on chip with opt (NULL: defaults, trace on); returns the simulator (caller frees) or
** NULL, with the error in err. */
static inline ot_sim *st_run(const ot_chip *chip, const ot_program *p, const ot_sim_options *opt, ot_error *err) {
  ot_sim_options o;
  if (opt) o = *opt; else { ot_sim_options_default(&o); o.trace = true; }
  ot_sim *s = NULL;
  if (ot_sim_new(chip, p, &o, &s, err)) return NULL;
  if (ot_sim_run(s, err)) { ot_sim_free(s); return NULL; }
  return s;
}

/* The n-th (0-based) trace event of a kind on an engine track of core 0. */
static inline const ot_trace_event *st_event(const ot_sim *s, ot_engine eng, ot_event_kind kind, unsigned nth) {
  const ot_trace *t = ot_sim_get_trace(s);
  for (size_t i = 0; i < t->n; i++) {
    const ot_trace_event *e = &t->ev[i];
    if (e->core == 0 && e->track_kind == OT_TRACK_ENGINE && e->track == eng && e->kind == kind && nth-- == 0) return e;
  }
  return NULL;
}

static inline const char *st_name(const ot_sim *s, const ot_trace_event *e) {
  return ot_sim_get_trace(s)->strings + e->name;
}

#endif
