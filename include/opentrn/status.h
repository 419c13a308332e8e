/* OpenTRN status codes and error reports.
**
** Every library function that can fail returns an ot_status and, when given one, fills a
** caller-owned ot_error with a precise message: what went wrong, where (file:line, field,
** engine and program counter), and what was expected.  The library never exits or aborts on
** bad input.  An ot_error can hold several messages (the assembler and verifier report every
** problem in one pass); the first one sets the code.
*/
#ifndef OPENTRN_STATUS_H
#define OPENTRN_STATUS_H

#include <stddef.h>

/* X(name, value, description) */
#define OT_STATUS_MAP(X)                                                         \
  X(OK,          0, "success")                                                   \
  X(EINVAL,      1, "invalid argument")                                          \
  X(ENOMEM,      2, "out of memory")                                             \
  X(EIO,         3, "input/output error")                                        \
  X(EPARSE,      4, "malformed input")                                           \
  X(EFORMAT,     5, "malformed program file")                                    \
  X(EVERIFY,     6, "program rejected by the verifier")                          \
  X(ERANGE,      7, "value out of range")                                        \
  X(ENOTFOUND,   8, "not found")                                                 \
  X(EUNSUPPORTED,9, "unsupported")                                               \
  X(ERUNTIME,   10, "run-time error")

typedef enum {
#define OT_X(name, value, desc) OT_##name = value,
  OT_STATUS_MAP(OT_X)
#undef OT_X
} ot_status;

/* Human-readable description of a status code ("success", "malformed input", ...). */
const char *ot_status_str(ot_status s);

#define OT_ERROR_MSG_MAX 4096

typedef struct ot_error {
  ot_status code;           /* first error's code, OT_OK if none */
  unsigned count;           /* number of messages reported (may exceed what fits) */
  char msg[OT_ERROR_MSG_MAX]; /* messages, one per line */
} ot_error;

/* Reset an error report to "no error". */
void ot_error_clear(ot_error *err);

/* Append a message; the first one sets err->code.  err may be NULL.  Returns code (this
** message's code, so `return ot_error_set(err, OT_EIO, ...)` returns OT_EIO). */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
ot_status ot_error_set(ot_error *err, ot_status code, const char *fmt, ...);

#endif
