/* Running the `opentrn` command line from a cmocka test: shared by the CLI tests of every module.
** Include after <cmocka.h>. */
#ifndef OT_TESTS_CLI_RUN_H
#define OT_TESTS_CLI_RUN_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Runs `opentrn <args>` (through sh, from /tmp so nothing depends on the working directory),
** returns its exit status and its stdout+stderr in a malloc'd string. */
static inline int cli_run(const char *args, char **out) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "cd /tmp && '%s' %s 2>&1", OT_BINARY_DIR "/opentrn", args);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  assert_non_null(buf);
  for (size_t got; (got = fread(buf + n, 1, cap - n - 1, p)) > 0;) {
    n += got;
    if (n + 1 == cap) { buf = realloc(buf, cap *= 2); assert_non_null(buf); }
  }
  buf[n] = '\0';
  int status = pclose(p);
  assert_true(WIFEXITED(status));
  *out = buf;
  return WEXITSTATUS(status);
}

/* `opentrn <args>` must exit with `code` and, when piece is not NULL, print it. */
static inline void cli_expect(const char *args, int code, const char *piece) {
  char *out = NULL;
  int rc = cli_run(args, &out);
  if (rc != code || (piece && !strstr(out, piece)))
    fail_msg("opentrn %s: exit %d (want %d), output lacks \"%s\"?\n%s", args, rc, code, piece ? piece : "", out);
  free(out);
}

#endif
