#include "util/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Refuse absurd sizes before allocating: no OpenTRN input is near this. */
#define OT_FILE_MAX ((size_t)1 << 34)

ot_status ot_file_read(const char *path, char **data, size_t *size, ot_error *err) {
  *data = NULL;
  *size = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return ot_error_set(err, OT_EIO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return ot_error_set(err, OT_EIO, "%s: not a regular file", path);
  }
  if ((uint64_t)st.st_size > OT_FILE_MAX) {
    fclose(f);
    return ot_error_set(err, OT_EIO, "%s: %lld bytes is larger than the %zu-byte limit", path,
                        (long long)st.st_size, OT_FILE_MAX);
  }
  size_t n = (size_t)st.st_size;
  char *buf = malloc(n + 1);
  if (!buf) { fclose(f); return ot_error_set(err, OT_ENOMEM, "%s: out of memory (%zu bytes)", path, n); }
  size_t got = fread(buf, 1, n, f);
  int bad = ferror(f);
  fclose(f);
  if (bad || got != n) { free(buf); return ot_error_set(err, OT_EIO, "%s: read failed", path); }
  buf[n] = '\0';
  *data = buf;
  *size = n;
  return OT_OK;
}

ot_status ot_file_write_atomic(const char *path, const void *data, size_t size, ot_error *err) {
  size_t len = strlen(path);
  char *tmp = malloc(len + 16);
  if (!tmp) return ot_error_set(err, OT_ENOMEM, "%s: out of memory", path);
  snprintf(tmp, len + 16, "%s.tmpXXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    ot_status s = ot_error_set(err, OT_EIO, "%s: cannot create temporary file: %s", path, strerror(errno));
    free(tmp);
    return s;
  }
  const char *p = data;
  size_t left = size;
  while (left) {
    ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) goto fail;
    p += w;
    left -= (size_t)w;
  }
  if (fsync(fd) != 0) goto fail;
  if (close(fd) != 0) { fd = -1; goto fail; }
  fd = -1;
  if (chmod(tmp, 0644) != 0 || rename(tmp, path) != 0) goto fail;
  free(tmp);
  return OT_OK;
fail:;
  ot_status s = ot_error_set(err, OT_EIO, "%s: write failed: %s (the previous file, if any, is untouched)", path,
                             strerror(errno));
  if (fd >= 0) close(fd);
  unlink(tmp);
  free(tmp);
  return s;
}
