/* Every kernel in examples/kernels: assemble, save, load, disassemble, reassemble -> the same
** instructions; and docs/isa.md equals what the tables generate (a stale doc fails). */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "isa/isa_doc.h"
#include "isa_test_util.h"
#include "util/fileio.h"

static void roundtrip_kernel(const char *path) {
  ot_program *p = NULL, *loaded = NULL, *again = NULL;
  ot_error err;
  ot_error_clear(&err);
  if (ot_asm_file(path, &p, &err)) fprintf(stderr, "%s\n", err.msg);
  assert_non_null(p);
  assert_true(ot_program_insn_count(p) > 0);
  void *bytes;
  size_t n;
  assert_int_equal(ot_program_serialize(p, &bytes, &n, &err), OT_OK);
  assert_int_equal(ot_program_deserialize(bytes, n, &loaded, &err), OT_OK);
  char *text = tu_disasm(loaded);
  if (ot_asm_text(text, path, &again, &err)) fprintf(stderr, "%s\n%s\n", err.msg, text);
  assert_non_null(again);
  assert_false(tu_programs_differ(p, again));
  free(text);
  free(bytes);
  ot_program_free(p);
  ot_program_free(loaded);
  ot_program_free(again);
}

static void test_kernels_roundtrip(void **state) {
  (void)state;
  char dir[512];
  snprintf(dir, sizeof dir, "%s/examples/kernels", OT_SOURCE_DIR);
  DIR *d = opendir(dir);
  assert_non_null(d);
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (len < 3 || strcmp(e->d_name + len - 2, ".s")) continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    roundtrip_kernel(path);
    count++;
  }
  closedir(d);
  assert_true(count >= 5);
}

static void test_isa_doc_is_current(void **state) {
  (void)state;
  char *generated = NULL;
  size_t glen = 0;
  FILE *f = open_memstream(&generated, &glen);
  ot_isa_doc_write(f);
  fclose(f);
  char path[512], *committed;
  size_t clen;
  snprintf(path, sizeof path, "%s/docs/isa.md", OT_SOURCE_DIR);
  assert_int_equal(ot_file_read(path, &committed, &clen, NULL), OT_OK);
  if (clen != glen || memcmp(committed, generated, glen))
    fprintf(stderr, "docs/isa.md is stale: regenerate with `build/opentrn isa > docs/isa.md`\n");
  assert_int_equal(clen, glen);
  assert_memory_equal(committed, generated, glen);
  free(committed);
  free(generated);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_kernels_roundtrip),
    cmocka_unit_test(test_isa_doc_is_current),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
