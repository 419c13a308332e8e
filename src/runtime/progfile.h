/* The program file, format version 1.  All integers little-endian.
**
**   offset  size  field
**   0       8     magic "OTRNPROG"
**   8       2     format version major (1): a reader refuses other majors
**   10      2     format version minor (0): additions that old readers may ignore
**   12      4     header size (64)
**   16      8     file size in bytes
**   24      4     CRC-32 (zlib) of the whole file with this field set to zero
**   28      4     number of sections
**   32      4     instruction-encoding version (encoding.h, OT_ISA_VERSION)
**   36      28    target chip name, NUL-padded ("" = any)
**   64      32*n  section table: kind u32, core u32, engine u32, count u32, offset u64, size u64
**
**   kind 1 STREAM       one per (core, engine): count instructions, size bytes of encoded words
**   kind 2 DESCRIPTORS  DMA descriptor table: count words
**   kind 3 TENSORS      count entries of 56 bytes: name (STRINGS offset) u32, dtype u8, role u8,
**                       ndim u8, reserved u8, shape u64[4], HBM offset u64, CONSTS offset u64
**                       (constants; ~0 otherwise)
**   kind 4 CONSTS       the constants' bytes
**   kind 5 STRINGS      NUL-terminated names and provenance tags; starts with "" (offset 0)
**   kind 6 DEBUG        one per STREAM (same core, engine, count): per instruction
**                       source line u32, provenance tag (STRINGS offset) u32
** Sections start 8-byte aligned.  The reader checks sizes, counts, offsets and the checksum
** before using anything, and names the failed check.
*/
#ifndef OT_PROGFILE_H
#define OT_PROGFILE_H

#define OT_PROG_MAGIC "OTRNPROG"
#define OT_PROG_VERSION_MAJOR 1
#define OT_PROG_VERSION_MINOR 0
#define OT_PROG_HEADER_SIZE 64
#define OT_PROG_SECTION_SIZE 32
#define OT_PROG_TENSOR_SIZE 56

enum {
  OT_SEC_STREAM = 1, OT_SEC_DESCRIPTORS = 2, OT_SEC_TENSORS = 3, OT_SEC_CONSTS = 4, OT_SEC_STRINGS = 5,
  OT_SEC_DEBUG = 6
};

#endif
