/* The static verifier's rule list (see verify_rules.def). */
#ifndef OT_VERIFY_H
#define OT_VERIFY_H

typedef enum {
#define R(id, summary) OT_RULE_##id,
#include "isa/verify_rules.def"
#undef R
  OT_RULE_COUNT
} ot_verify_rule;

const char *ot_verify_rule_name(ot_verify_rule r);
const char *ot_verify_rule_summary(ot_verify_rule r);

#endif
