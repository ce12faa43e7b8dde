/* OpenCL kernel sources embedded at build time by kernels_cl/embed.py. */
#ifndef PATTN_OCL_SOURCES_H
#define PATTN_OCL_SOURCES_H

#include <stddef.h>

typedef struct ocl_source {
  const char          *name;   /* file name without .cl: "common", "attention_flash", ... */
  const unsigned char *data;   /* not NUL-terminated */
  size_t               size;
  const char          *sha256; /* hex digest of data */
} ocl_source;

extern const ocl_source ocl_sources[];
extern const int        ocl_num_sources;
extern const char       ocl_sources_hash[];

#endif /* PATTN_OCL_SOURCES_H */
