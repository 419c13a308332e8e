/* Status strings and the append-only error report. */
#include <opentrn/status.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *ot_status_str(ot_status s) {
  switch (s) {
#define OT_X(name, value, desc) case OT_##name: return desc;
    OT_STATUS_MAP(OT_X)
#undef OT_X
  }
  return "unknown status";
}

void ot_error_clear(ot_error *err) {
  if (!err) return;
  err->code = OT_OK;
  err->count = 0;
  err->msg[0] = '\0';
}

ot_status ot_error_set(ot_error *err, ot_status code, const char *fmt, ...) {
  if (!err) return code;
  if (err->count == 0) err->code = code;
  err->count++;
  size_t used = strlen(err->msg);
  /* Keep room for a final "... more" line so a flood of messages is still reported honestly. */
  const size_t reserve = 64;
  if (used + reserve >= sizeof err->msg) return code;
  char *p = err->msg + used;
  size_t room = sizeof err->msg - used - reserve;
  if (used) { *p++ = '\n'; room--; }
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(p, room, fmt, ap);
  va_end(ap);
  if (n < 0) { *p = '\0'; return code; }
  if ((size_t)n >= room) {
    size_t end = strlen(err->msg);
    snprintf(err->msg + end, sizeof err->msg - end, "\n(further messages omitted)");
  }
  return code;
}
