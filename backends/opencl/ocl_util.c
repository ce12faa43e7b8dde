/* Small helpers shared by the OpenCL backend: error mapping, kernel launch, views. */
#include <stdlib.h>
#include <string.h>

#include "ocl.h"

const char *ocl_err_name(cl_int err) {
  switch (err) {
#define E(x) case x: return #x
  E(CL_SUCCESS); E(CL_DEVICE_NOT_FOUND); E(CL_DEVICE_NOT_AVAILABLE); E(CL_COMPILER_NOT_AVAILABLE);
  E(CL_MEM_OBJECT_ALLOCATION_FAILURE); E(CL_OUT_OF_RESOURCES); E(CL_OUT_OF_HOST_MEMORY);
  E(CL_PROFILING_INFO_NOT_AVAILABLE); E(CL_MEM_COPY_OVERLAP); E(CL_IMAGE_FORMAT_MISMATCH);
  E(CL_IMAGE_FORMAT_NOT_SUPPORTED); E(CL_BUILD_PROGRAM_FAILURE); E(CL_MAP_FAILURE);
  E(CL_MISALIGNED_SUB_BUFFER_OFFSET); E(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST);
  E(CL_COMPILE_PROGRAM_FAILURE); E(CL_LINKER_NOT_AVAILABLE); E(CL_LINK_PROGRAM_FAILURE);
  E(CL_INVALID_VALUE); E(CL_INVALID_DEVICE_TYPE); E(CL_INVALID_PLATFORM); E(CL_INVALID_DEVICE);
  E(CL_INVALID_CONTEXT); E(CL_INVALID_QUEUE_PROPERTIES); E(CL_INVALID_COMMAND_QUEUE);
  E(CL_INVALID_HOST_PTR); E(CL_INVALID_MEM_OBJECT); E(CL_INVALID_BINARY); E(CL_INVALID_BUILD_OPTIONS);
  E(CL_INVALID_PROGRAM); E(CL_INVALID_PROGRAM_EXECUTABLE); E(CL_INVALID_KERNEL_NAME);
  E(CL_INVALID_KERNEL_DEFINITION); E(CL_INVALID_KERNEL); E(CL_INVALID_ARG_INDEX);
  E(CL_INVALID_ARG_VALUE); E(CL_INVALID_ARG_SIZE); E(CL_INVALID_KERNEL_ARGS);
  E(CL_INVALID_WORK_DIMENSION); E(CL_INVALID_WORK_GROUP_SIZE); E(CL_INVALID_WORK_ITEM_SIZE);
  E(CL_INVALID_GLOBAL_OFFSET); E(CL_INVALID_EVENT_WAIT_LIST); E(CL_INVALID_EVENT);
  E(CL_INVALID_OPERATION); E(CL_INVALID_BUFFER_SIZE); E(CL_INVALID_GLOBAL_WORK_SIZE);
  E(CL_INVALID_PROPERTY);
#undef E
  default: return "unknown OpenCL error";
  }
}

pattn_status ocl_check(pattn_context *ctx, cl_int err, const char *what) {
  if (err == CL_SUCCESS) return PATTN_OK;
  pattn_status s = (err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_HOST_MEMORY ||
                    err == CL_OUT_OF_RESOURCES)
                       ? PATTN_ERR_OUT_OF_MEMORY
                       : PATTN_ERR_BACKEND;
  return ocl_core->error(ctx, s, "opencl: %s: %s (%d)", what, ocl_err_name(err), (int)err);
}

char *ocl_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

uint64_t ocl_fnv1a(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

cl_long8 ocl_view_arg(const pattn_view *v) {
  cl_long8 a;
  memset(&a, 0, sizeof a);
  a.s[0] = v->offset;
  a.s[1] = v->nb > 1 ? v->sb : 0;
  a.s[2] = v->ns > 1 ? v->ss : 0;
  a.s[3] = v->nh > 1 ? v->sh : 0;
  a.s[4] = v->n > 1 ? v->sn : 0;
  return a;
}

pattn_view ocl_dense_view(cl_mem buf, pattn_dtype dt, int64_t nb, int64_t ns, int64_t nh, int64_t n,
                          int64_t d) {
  pattn_view v;
  memset(&v, 0, sizeof v);
  v.buf = buf;
  v.dtype = dt;
  v.nb = nb; v.ns = ns; v.nh = nh; v.n = n; v.d = d;
  v.sn = d;
  v.sh = n * d;
  v.ss = nh * n * d;
  v.sb = ns * nh * n * d;
  return v;
}

pattn_status ocl_launch(pattn_context *ctx, cl_kernel k, cl_uint dims, const size_t *global,
                        const size_t *local, const char *what) {
  for (cl_uint i = 0; i < dims; i++)
    if (global[i] == 0) return PATTN_OK; /* nothing to do: OpenCL refuses empty ranges */
  ocl_state *st = ocl_state_of(ctx);
  cl_int err = clEnqueueNDRangeKernel(st->queue, k, dims, NULL, global, local, 0, NULL, NULL);
  return ocl_check(ctx, err, what);
}

pattn_status ocl_launch_1d(pattn_context *ctx, const ocl_kernel *k, size_t total, const char *what) {
  if (total == 0) return PATTN_OK;
  size_t l = 64;
  while (l > 1 && l > k->wg_max) l /= 2;
  size_t g = ocl_round_up(total, l);
  return ocl_launch(ctx, k->kern, 1, &g, &l, what);
}

pattn_status ocl_scratch(pattn_context *ctx, size_t bytes, cl_mem *buf, const char *what) {
  void *p = NULL;
  *buf = NULL;
  pattn_status s = ocl_core->alloc(ctx, bytes ? bytes : 4, &p);
  if (s != PATTN_OK) return s;
  if (!p) return ocl_core->error(ctx, PATTN_ERR_OUT_OF_MEMORY, "opencl: %s: cannot allocate %zu bytes", what, bytes);
  *buf = (cl_mem)p;
  return PATTN_OK;
}

void ocl_scratch_free(pattn_context *ctx, cl_mem buf, size_t bytes) {
  if (buf) ocl_core->free(ctx, buf, bytes ? bytes : 4);
}

const char *ocl_dtype_define(pattn_dtype dt) {
  return dt == PATTN_F16 ? "1" : dt == PATTN_BF16 ? "2" : "0";
}
