/* The OpenCL backend's vtable, context life cycle and raw buffers. The module exports only
 * pattn_backend_entry; the rest is hidden (meson: gnu_symbol_visibility hidden). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl.h"

const pattn_core_api *ocl_core;

static pattn_status ocl_probe(char *why, size_t why_len, char *devices, size_t devices_len) {
  return ocl_list_devices(why, why_len, devices, devices_len);
}

static void ocl_destroy(void *state) {
  ocl_state *st = state;
  if (!st) return;
  if (st->queue) clFinish(st->queue);
  ocl_release_programs(st);
  if (st->queue) clReleaseCommandQueue(st->queue);
  if (st->context) clReleaseContext(st->context);
  free(st);
}

static void info_str(cl_device_id dev, cl_device_info what, char *buf, size_t len) {
  if (clGetDeviceInfo(dev, what, len, buf, NULL) != CL_SUCCESS) snprintf(buf, len, "?");
  buf[len - 1] = '\0';
}

static pattn_status ocl_init(pattn_context *ctx, const pattn_options *opt, const char *device, void **state,
                             char *name, size_t name_len) {
  (void)opt;
  *state = NULL;
  ocl_state *st = calloc(1, sizeof *st);
  if (!st) return ocl_core->error(ctx, PATTN_ERR_OUT_OF_MEMORY, "opencl: out of memory");
  st->ctx = ctx;
  pattn_status s = ocl_choose_device(ctx, device, &st->platform, &st->device);
  if (s != PATTN_OK) {
    free(st);
    return s;
  }
  info_str(st->device, CL_DEVICE_NAME, st->device_name, sizeof st->device_name);
  info_str(st->device, CL_DRIVER_VERSION, st->driver_version, sizeof st->driver_version);
  info_str(st->device, CL_DEVICE_VERSION, st->device_version, sizeof st->device_version);
  if (clGetPlatformInfo(st->platform, CL_PLATFORM_NAME, sizeof st->platform_name, st->platform_name, NULL) !=
      CL_SUCCESS)
    snprintf(st->platform_name, sizeof st->platform_name, "?");
  cl_bool compiler = CL_FALSE;
  cl_int err = clGetDeviceInfo(st->device, CL_DEVICE_COMPILER_AVAILABLE, sizeof compiler, &compiler, NULL);
  if (err == CL_SUCCESS) err = clGetDeviceInfo(st->device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof st->local_mem, &st->local_mem, NULL);
  if (err == CL_SUCCESS) err = clGetDeviceInfo(st->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof st->max_wg, &st->max_wg, NULL);
  if (err == CL_SUCCESS)
    err = clGetDeviceInfo(st->device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof st->compute_units, &st->compute_units, NULL);
  if (st->compute_units == 0) st->compute_units = 1;
  if (err == CL_SUCCESS) err = clGetDeviceInfo(st->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof st->max_alloc, &st->max_alloc, NULL);
  if (err == CL_SUCCESS) err = clGetDeviceInfo(st->device, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof st->mem_align, &st->mem_align, NULL);
  if (err != CL_SUCCESS) {
    free(st);
    return ocl_check(ctx, err, "clGetDeviceInfo");
  }
  if (!compiler) {
    s = ocl_core->error(ctx, PATTN_ERR_NO_DEVICE, "opencl: device %s has no compiler", st->device_name);
    free(st);
    return s;
  }
  cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)st->platform, 0};
  st->context = clCreateContext(props, 1, &st->device, NULL, NULL, &err);
  if (err != CL_SUCCESS) {
    free(st);
    return ocl_check(ctx, err, "clCreateContext");
  }
  /* clCreateCommandQueue is deprecated in 2.0 but is the 1.2 call we target */
  /* profiling on: pattn_event_record times on the device (markers' profiling timestamps) */
  st->queue = clCreateCommandQueue(st->context, st->device, CL_QUEUE_PROFILING_ENABLE, &err);
  if (err != CL_SUCCESS) {
    s = ocl_check(ctx, err, "clCreateCommandQueue");
    ocl_destroy(st);
    return s;
  }
  ocl_cache_init(st);
  snprintf(name, name_len, "%s", st->device_name);
  ocl_core->log(PATTN_LOG_DEBUG, "opencl: %s, driver %s, %s, local mem %llu, max work-group %zu, cache %s",
                st->device_name, st->driver_version, st->device_version, (unsigned long long)st->local_mem,
                st->max_wg, st->cache_on ? st->cache_dir : "off");
  *state = st;
  return PATTN_OK;
}

static pattn_status ocl_buf_alloc(pattn_context *ctx, size_t bytes, void **buf) {
  ocl_state *st = ocl_state_of(ctx);
  *buf = NULL;
  if (bytes == 0) bytes = 1;
  if (bytes > st->max_alloc)
    return ocl_core->error(ctx, PATTN_ERR_OUT_OF_MEMORY,
                           "opencl: %zu bytes exceed the device's largest allocation (%llu bytes)", bytes,
                           (unsigned long long)st->max_alloc);
  cl_int err = CL_SUCCESS;
  cl_mem m = clCreateBuffer(st->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
  if (err != CL_SUCCESS) {
    if (m) clReleaseMemObject(m);
    if (err == CL_INVALID_BUFFER_SIZE) err = CL_MEM_OBJECT_ALLOCATION_FAILURE;
    return ocl_check(ctx, err, "clCreateBuffer");
  }
  *buf = m;
  return PATTN_OK;
}

static void ocl_buf_free(pattn_context *ctx, void *buf) {
  (void)ctx;
  /* the runtime keeps the object alive until enqueued commands using it complete */
  if (buf) clReleaseMemObject((cl_mem)buf);
}

static pattn_status ocl_buf_write(pattn_context *ctx, void *buf, size_t offset, const void *src, size_t bytes) {
  if (bytes == 0) return PATTN_OK;
  ocl_state *st = ocl_state_of(ctx);
  /* blocking: the caller may reuse src as soon as we return */
  cl_int err = clEnqueueWriteBuffer(st->queue, (cl_mem)buf, CL_TRUE, offset, bytes, src, 0, NULL, NULL);
  return ocl_check(ctx, err, "clEnqueueWriteBuffer");
}

static pattn_status ocl_buf_read(pattn_context *ctx, const void *buf, size_t offset, void *dst, size_t bytes) {
  if (bytes == 0) return PATTN_OK;
  ocl_state *st = ocl_state_of(ctx);
  cl_int err = clEnqueueReadBuffer(st->queue, (cl_mem)buf, CL_TRUE, offset, bytes, dst, 0, NULL, NULL);
  return ocl_check(ctx, err, "clEnqueueReadBuffer");
}

static pattn_status ocl_synchronize(pattn_context *ctx) {
  ocl_state *st = ocl_state_of(ctx);
  return ocl_check(ctx, clFinish(st->queue), "clFinish");
}

static pattn_status ocl_linear_op(pattn_context *ctx, int64_t m, int64_t n, int64_t k, pattn_mat x, pattn_mat w,
                                  pattn_mat bias, pattn_mat y) {
  return ocl_linear(ctx, m, n, k, x, w, bias, y);
}

static pattn_status ocl_event_record(pattn_context *ctx, void **ev) {
  ocl_state *st = ocl_state_of(ctx);
  cl_event e = NULL;
  pattn_status s = ocl_check(ctx, clEnqueueMarkerWithWaitList(st->queue, 0, NULL, &e), "clEnqueueMarkerWithWaitList");
  if (s == PATTN_OK) *ev = e;
  return s;
}

/* The markers' completion times: each completes when everything enqueued before it has. */
static pattn_status ocl_event_elapsed(pattn_context *ctx, void *start, void *end, double *ms) {
  cl_event e = (cl_event)end;
  cl_ulong t0 = 0, t1 = 0;
  pattn_status s = ocl_check(ctx, clWaitForEvents(1, &e), "clWaitForEvents (an earlier operation may have failed)");
  if (s == PATTN_OK)
    s = ocl_check(ctx, clGetEventProfilingInfo((cl_event)start, CL_PROFILING_COMMAND_END, sizeof t0, &t0, NULL),
                  "clGetEventProfilingInfo");
  if (s == PATTN_OK)
    s = ocl_check(ctx, clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL), "clGetEventProfilingInfo");
  if (s == PATTN_OK) *ms = ((double)t1 - (double)t0) * 1e-6;
  return s;
}

static void ocl_event_destroy(pattn_context *ctx, void *ev) { (void)clReleaseEvent((cl_event)ev); }

static const pattn_backend ocl_backend = {
  .abi = PATTN_BACKEND_ABI,
  .name = "opencl",
  .probe = ocl_probe,
  .init = ocl_init,
  .destroy = ocl_destroy,
  .buf_alloc = ocl_buf_alloc,
  .buf_free = ocl_buf_free,
  .buf_write = ocl_buf_write,
  .buf_read = ocl_buf_read,
  .synchronize = ocl_synchronize,
  .fill = ocl_fill,
  .copy = ocl_copy,
  .merge = ocl_merge,
  .linear = ocl_linear_op,
  .layernorm = ocl_layernorm,
  .attention = ocl_attention,
  .attention_backward = ocl_attention_backward,
  .block_sparse = ocl_block_sparse,
  .lrpe_forward = ocl_lrpe_forward,
  .lrpe_backward = ocl_lrpe_backward,
  .event_record = ocl_event_record,
  .event_elapsed = ocl_event_elapsed,
  .event_destroy = ocl_event_destroy,
};

__attribute__((visibility("default"))) const pattn_backend *pattn_backend_entry(const pattn_core_api *core) {
  if (!core || core->abi != PATTN_BACKEND_ABI) return NULL;
  ocl_core = core;
  return &ocl_backend;
}
