#ifndef OT_ISA_DOC_H
#define OT_ISA_DOC_H
#include <stdio.h>
/* Write the instruction-set reference (docs/isa.md) as markdown. */
void ot_isa_doc_write(FILE *out);
#endif
