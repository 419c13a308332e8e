/* Whole-file reads and atomic writes (temporary file + fsync + rename, so a crash or a full
** disk never leaves a half-written file in place of a good one). */
#ifndef OT_FILEIO_H
#define OT_FILEIO_H

#include <opentrn/status.h>
#include <stddef.h>

/* Read a whole file; *data is NUL-terminated (not counted in *size) and owned by the caller. */
ot_status ot_file_read(const char *path, char **data, size_t *size, ot_error *err);

/* Write bytes to path atomically. */
ot_status ot_file_write_atomic(const char *path, const void *data, size_t size, ot_error *err);

#endif
