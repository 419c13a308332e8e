/* Printing instructions and access patterns as assembly (shared by the disassembler, the
** verifier's messages and, later, traces). */
#ifndef OT_DISASM_H
#define OT_DISASM_H

#include <stdio.h>

#include "isa/program.h"

/* p may be NULL (then HBM addresses print as hbm.DTYPE@OFFSET). */
void ot_ap_print(FILE *out, const ot_ap *ap, const ot_program *p);
void ot_insn_print(FILE *out, const ot_insn *in, const ot_program *p);

#endif
