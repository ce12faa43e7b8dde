/* Lazy program build per (source, options) and kernel lookup, cached in the context's state.
 * A program is common.cl followed by its own source, compiled with -D options that fix the
 * dtypes, head dim and tile sizes. Built from the disk cache's binary when one is valid. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl.h"
#include "ocl_sources.h"

static const ocl_source *find_source(const char *name) {
  for (int i = 0; i < ocl_num_sources; i++)
    if (strcmp(ocl_sources[i].name, name) == 0) return &ocl_sources[i];
  return NULL;
}

/* The build log, or "" (malloc'd; NULL on failure). */
static char *build_log(const ocl_state *st, cl_program prog) {
  size_t len = 0;
  if (clGetProgramBuildInfo(prog, st->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &len) != CL_SUCCESS) return NULL;
  char *log = malloc(len + 1);
  if (!log) return NULL;
  if (clGetProgramBuildInfo(prog, st->device, CL_PROGRAM_BUILD_LOG, len, log, NULL) != CL_SUCCESS) len = 0;
  log[len] = '\0';
  return log;
}

/* Binary of a built program (malloc'd) for the cache; NULL if the driver gives none. */
static unsigned char *program_binary(const ocl_state *st, cl_program prog, size_t *size) {
  cl_uint ndev = 0;
  *size = 0;
  if (clGetProgramInfo(prog, CL_PROGRAM_NUM_DEVICES, sizeof ndev, &ndev, NULL) != CL_SUCCESS || ndev != 1)
    return NULL;
  size_t sz = 0;
  if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof sz, &sz, NULL) != CL_SUCCESS || sz == 0) return NULL;
  unsigned char *bin = malloc(sz);
  if (!bin) return NULL;
  unsigned char *bins[1] = {bin};
  if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) != CL_SUCCESS) {
    free(bin);
    return NULL;
  }
  (void)st;
  *size = sz;
  return bin;
}

static cl_program try_cached(pattn_context *ctx, ocl_state *st, const char *key, const char *options) {
  unsigned char *bin = NULL;
  size_t size = 0;
  if (!ocl_cache_load(st, key, &bin, &size)) return NULL;
  cl_int bstatus = CL_SUCCESS, err = CL_SUCCESS;
  const unsigned char *bins[1] = {bin};
  cl_program prog = clCreateProgramWithBinary(st->context, 1, &st->device, &size, bins, &bstatus, &err);
  free(bin);
  if (err != CL_SUCCESS || bstatus != CL_SUCCESS) {
    if (prog) clReleaseProgram(prog);
    return NULL;
  }
  if (clBuildProgram(prog, 1, &st->device, options, NULL, NULL) != CL_SUCCESS) {
    clReleaseProgram(prog);
    return NULL;
  }
  (void)ctx;
  return prog;
}

static pattn_status build_program(pattn_context *ctx, ocl_state *st, const char *source, const char *options,
                                  cl_program *out) {
  *out = NULL;
  const ocl_source *common = find_source("common"), *src = find_source(source);
  if (!common || !src)
    return ocl_core->error(ctx, PATTN_ERR_BACKEND, "opencl: kernel source %s.cl not embedded", source);
  size_t hlen = strlen(common->sha256) + strlen(src->sha256) + 2;
  char *hash = malloc(hlen);
  if (!hash) return ocl_core->error(ctx, PATTN_ERR_OUT_OF_MEMORY, "opencl: out of memory");
  snprintf(hash, hlen, "%s+%s", common->sha256, src->sha256);
  char *key = ocl_cache_key(st, hash, options);
  free(hash);
  if (!key) return ocl_core->error(ctx, PATTN_ERR_OUT_OF_MEMORY, "opencl: out of memory");

  cl_program prog = try_cached(ctx, st, key, options);
  if (prog) {
    ocl_core->log(PATTN_LOG_DEBUG, "opencl: loaded program %s [%s] from cache", source, options);
    free(key);
    *out = prog;
    return PATTN_OK;
  }

  const char *texts[2] = {(const char *)common->data, (const char *)src->data};
  size_t lens[2] = {common->size, src->size};
  cl_int err = CL_SUCCESS;
  prog = clCreateProgramWithSource(st->context, 2, texts, lens, &err);
  if (err != CL_SUCCESS) {
    free(key);
    return ocl_check(ctx, err, "clCreateProgramWithSource");
  }
  err = clBuildProgram(prog, 1, &st->device, options, NULL, NULL);
  if (err != CL_SUCCESS) {
    char *log = build_log(st, prog);
    pattn_status s = ocl_core->error(ctx, PATTN_ERR_BACKEND, "opencl: building %s.cl [%s] failed: %s (%d)\n%s",
                                     source, options, ocl_err_name(err), (int)err, log ? log : "(no build log)");
    free(log);
    free(key);
    clReleaseProgram(prog);
    return s;
  }
  ocl_core->log(PATTN_LOG_DEBUG, "opencl: built program %s [%s]", source, options);
  size_t size = 0;
  unsigned char *bin = program_binary(st, prog, &size);
  ocl_cache_store(st, key, bin, size);
  free(bin);
  free(key);
  *out = prog;
  return PATTN_OK;
}

pattn_status ocl_get_kernel(pattn_context *ctx, ocl_state *st, const char *source, const char *options,
                            const char *name, ocl_kernel **out) {
  *out = NULL;
  size_t plen = strlen(source) + strlen(options) + 2, klen = plen + strlen(name) + 1;
  char *pkey = malloc(plen), *kkey = malloc(klen);
  if (!pkey || !kkey) {
    free(pkey);
    free(kkey);
    return ocl_core->error(ctx, PATTN_ERR_OUT_OF_MEMORY, "opencl: out of memory");
  }
  snprintf(pkey, plen, "%s|%s", source, options);
  snprintf(kkey, klen, "%s|%s", pkey, name);
  for (ocl_kernel *k = st->kernels; k; k = k->next)
    if (strcmp(k->key, kkey) == 0) {
      free(pkey);
      free(kkey);
      *out = k;
      return PATTN_OK;
    }

  ocl_program *p = st->programs;
  while (p && strcmp(p->key, pkey) != 0) p = p->next;
  pattn_status s = PATTN_OK;
  if (!p) {
    cl_program prog = NULL;
    s = build_program(ctx, st, source, options, &prog);
    if (s != PATTN_OK) goto fail;
    p = calloc(1, sizeof *p);
    if (!p) {
      clReleaseProgram(prog);
      s = ocl_core->error(ctx, PATTN_ERR_OUT_OF_MEMORY, "opencl: out of memory");
      goto fail;
    }
    p->key = pkey;
    pkey = NULL;
    p->prog = prog;
    p->next = st->programs;
    st->programs = p;
  }

  cl_int err = CL_SUCCESS;
  cl_kernel kern = clCreateKernel(p->prog, name, &err);
  if (err != CL_SUCCESS) {
    s = ocl_core->error(ctx, PATTN_ERR_BACKEND, "opencl: clCreateKernel(%s) from %s.cl: %s (%d)", name, source,
                        ocl_err_name(err), (int)err);
    goto fail;
  }
  ocl_kernel *k = calloc(1, sizeof *k);
  if (!k) {
    clReleaseKernel(kern);
    s = ocl_core->error(ctx, PATTN_ERR_OUT_OF_MEMORY, "opencl: out of memory");
    goto fail;
  }
  if (clGetKernelWorkGroupInfo(kern, st->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof k->wg_max, &k->wg_max, NULL) !=
      CL_SUCCESS)
    k->wg_max = st->max_wg;
  k->key = kkey;
  k->kern = kern;
  k->next = st->kernels;
  st->kernels = k;
  free(pkey);
  *out = k;
  return PATTN_OK;
fail:
  free(pkey);
  free(kkey);
  return s;
}

void ocl_release_programs(ocl_state *st) {
  while (st->kernels) {
    ocl_kernel *k = st->kernels;
    st->kernels = k->next;
    clReleaseKernel(k->kern);
    free(k->key);
    free(k);
  }
  while (st->programs) {
    ocl_program *p = st->programs;
    st->programs = p->next;
    clReleaseProgram(p->prog);
    free(p->key);
    free(p);
  }
}
