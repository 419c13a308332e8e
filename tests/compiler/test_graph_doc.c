/* docs/graph.md equals what the op table generates (a stale doc fails). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "compiler/graph_int.h"
#include "util/fileio.h"

static void test_graph_doc_is_current(void **state) {
  (void)state;
  char *generated = NULL;
  size_t glen = 0;
  FILE *f = open_memstream(&generated, &glen);
  ot_graph_doc_write(f);
  fclose(f);
  char path[512], *committed;
  size_t clen;
  snprintf(path, sizeof path, "%s/docs/graph.md", OT_SOURCE_DIR);
  assert_int_equal(ot_file_read(path, &committed, &clen, NULL), OT_OK);
  if (clen != glen || memcmp(committed, generated, glen))
    fprintf(stderr, "docs/graph.md is stale: regenerate with `build/opentrn graph --doc > docs/graph.md`\n");
  assert_int_equal(clen, glen);
  assert_memory_equal(committed, generated, glen);
  /* every op is documented */
  for (int op = 0; op < OT_GOP_COUNT; op++) {
    char head[64];
    snprintf(head, sizeof head, "### `%s`\n", ot_gop_table[op].name);
    assert_non_null(strstr(generated, head));
  }
  /* the example file of the format section is a valid graph */
  char *start = strstr(generated, "```json\n"), *end = start ? strstr(start + 8, "```\n") : NULL;
  assert_non_null(end);
  *end = '\0';
  ot_graph *g = NULL;
  ot_error err;
  ot_error_clear(&err);
  if (ot_graph_parse_json(start + 8, "docs/graph.md example", &g, &err)) fail_msg("%s", err.msg);
  assert_int_equal(g->n_node, 2);
  ot_graph_free(g);
  free(committed);
  free(generated);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_graph_doc_is_current),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
