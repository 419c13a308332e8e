/* The opentrn command line: one function per subcommand, each parsing its own arguments.
** Exit statuses (documented in `opentrn --help` and the README):
**   0  success
**   1  input rejected (bad file, illegal program, failed check)
**   2  usage error (unknown command or option, missing argument)
*/
#ifndef OT_CLI_H
#define OT_CLI_H

#include <stdio.h>

enum { CLI_OK = 0, CLI_REJECTED = 1, CLI_USAGE = 2 };

/* Each takes argv with argv[0] = the subcommand name. */
int cli_chip(int argc, char **argv);
int cli_asm(int argc, char **argv);
int cli_disasm(int argc, char **argv);
int cli_verify(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_demo(int argc, char **argv);
int cli_isa(int argc, char **argv);
int cli_cost(int argc, char **argv);
int cli_report(int argc, char **argv);
int cli_compile(int argc, char **argv);
int cli_fit(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_graph(int argc, char **argv);
int cli_train(int argc, char **argv);
int cli_generate(int argc, char **argv);

/* True if argv holds -h or --help. */
int cli_wants_help(int argc, char **argv);

/* Prints "opentrn <cmd>: <message>" and the command's usage to stderr; returns CLI_USAGE. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
int cli_usage_fail(const char *cmd, const char *usage, const char *fmt, ...);

#endif
