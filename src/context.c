/* Contexts: backend choice from options or environment, device memory accounting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

void pattn_options_default(pattn_options *opt) {
  if (!opt) return;
  memset(opt, 0, sizeof *opt);
  opt->struct_size = sizeof *opt;
  opt->cpu_reference = -1;
}

static int env_int(const char *name, int fallback) {
  const char *s = getenv(name);
  if (!s || !*s) return fallback;
  char *end;
  long v = strtol(s, &end, 10);
  return (*end || v < 0 || v > 4096) ? fallback : (int)v;
}

/* Resolve what the options leave to the environment, so backends see final values. */
static pattn_status resolve_options(const pattn_options *in, pattn_options *out, const char **backend,
                                    const char **device) {
  pattn_options_default(out);
  if (in) {
    if (in->struct_size < offsetof(pattn_options, num_threads) + sizeof(int))
      return pattn__global_error(PATTN_ERR_INVALID_ARGUMENT,
                                 "context: opt->struct_size=%zu is too small (set it to sizeof(pattn_options))",
                                 in->struct_size);
    out->backend = in->backend;
    out->device = in->device;
    out->num_threads = in->num_threads;
    if (in->struct_size >= offsetof(pattn_options, cpu_reference) + sizeof(int)) out->cpu_reference = in->cpu_reference;
    if (out->num_threads < 0)
      return pattn__global_error(PATTN_ERR_INVALID_ARGUMENT, "context: opt->num_threads=%d is negative", in->num_threads);
  }
  if (!out->backend || !*out->backend) out->backend = getenv("PATTN_BACKEND");
  if (!out->backend || !*out->backend) out->backend = "auto";
  if (!out->device || !*out->device) out->device = getenv("PATTN_DEVICE");
  if (out->device && !*out->device) out->device = NULL;
  if (out->num_threads == 0) out->num_threads = env_int("PATTN_NUM_THREADS", 0);
  if (out->num_threads == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    out->num_threads = n > 0 ? (int)n : 1;
  }
  if (out->cpu_reference < 0) out->cpu_reference = env_int("PATTN_CPU_REFERENCE", 0) ? 1 : 0;
  *backend = out->backend;
  *device = out->device;
  return PATTN_OK;
}

static pattn_status open_backend(pattn_context *ctx, const char *name, const pattn_options *opt, const char *device) {
  char why[PATTN_ERROR_LEN];
  const pattn_backend *be = NULL;
  pattn_status st = pattn__backend_get(name, &be, why, sizeof why);
  if (st != PATTN_OK) return pattn__global_error(st, "%s", why);
  ctx->be = be;
  snprintf(ctx->backend_name, sizeof ctx->backend_name, "%s", be->name);
  ctx->device_name[0] = '\0';
  ctx->last_error[0] = '\0';
  st = be->init(ctx, opt, device, &ctx->be_state, ctx->device_name, sizeof ctx->device_name);
  if (st != PATTN_OK) {
    pattn__global_error(st, "%s: %s", name, ctx->last_error[0] ? ctx->last_error : pattn_status_string(st));
    ctx->be = NULL;
    ctx->be_state = NULL;
  }
  return st;
}

pattn_status pattn_context_create(pattn_context **out, const pattn_options *opt_in) {
  if (!out) return pattn__global_error(PATTN_ERR_INVALID_ARGUMENT, "context: ctx (the output pointer) is NULL");
  pattn_options opt;
  const char *name = NULL, *device = NULL;
  pattn_status st = resolve_options(opt_in, &opt, &name, &device);
  if (st != PATTN_OK) return st;

  int known = !strcmp(name, "auto");
  for (int i = 0; i < pattn__backend_count; i++) known |= !strcmp(name, pattn__backend_names[i]);
  if (!known)
    return pattn__global_error(PATTN_ERR_NO_BACKEND, "unknown backend '%s': valid names are auto, cpu, opencl, cuda", name);

  pattn_context *ctx = calloc(1, sizeof *ctx);
  if (!ctx) return pattn__global_error(PATTN_ERR_OUT_OF_MEMORY, "context: out of host memory");

  if (strcmp(name, "auto") != 0) {
    st = open_backend(ctx, name, &opt, device);
  } else {
    /* auto: a CUDA device, else an OpenCL GPU, else the CPU. Failures are quiet. */
    st = open_backend(ctx, "cuda", &opt, device);
    if (st != PATTN_OK) {
      pattn__log(PATTN_LOG_DEBUG, "auto: cuda not used: %s", pattn_last_error(NULL));
      st = open_backend(ctx, "opencl", &opt, device ? device : "@gpu");
    }
    if (st != PATTN_OK) {
      pattn__log(PATTN_LOG_DEBUG, "auto: opencl GPU not used: %s", pattn_last_error(NULL));
      st = open_backend(ctx, "cpu", &opt, NULL);
    }
  }
  if (st != PATTN_OK) {
    free(ctx);
    return st;
  }
  pattn__log(PATTN_LOG_INFO, "context: backend %s, device %s", ctx->backend_name, ctx->device_name);
  *out = ctx;
  return PATTN_OK;
}

void pattn_context_destroy(pattn_context *ctx) {
  if (!ctx) return;
  if (ctx->be) {
    if (ctx->be->synchronize) ctx->be->synchronize(ctx);
    ctx->be->destroy(ctx->be_state);
  }
  free(ctx);
}

const char *pattn_context_backend(const pattn_context *ctx) { return ctx ? ctx->backend_name : ""; }
const char *pattn_context_device(const pattn_context *ctx) { return ctx ? ctx->device_name : ""; }

pattn_status pattn_synchronize(pattn_context *ctx) {
  pattn_status st = pattn__check_ctx(ctx);
  if (st != PATTN_OK) return st;
  return ctx->be->synchronize(ctx);
}

pattn_status pattn_memory_stats(const pattn_context *ctx, size_t *in_use, size_t *peak) {
  if (!ctx) return pattn__global_error(PATTN_ERR_INVALID_ARGUMENT, "memory_stats: ctx is NULL");
  if (in_use) *in_use = ctx->mem_in_use;
  if (peak) *peak = ctx->mem_peak;
  return PATTN_OK;
}

pattn_status pattn_device_memory(pattn_context *ctx, size_t *free_bytes, size_t *total_bytes) {
  pattn_status st = pattn__check_ctx(ctx);
  if (st != PATTN_OK) return st;
  if (!free_bytes || !total_bytes)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "device_memory: %s is NULL", !free_bytes ? "free_bytes" : "total_bytes");
  if (!ctx->be->device_memory)
    return pattn__error(ctx, PATTN_ERR_UNSUPPORTED, "device_memory: the %s backend cannot report its device's memory",
                        ctx->backend_name);
  return ctx->be->device_memory(ctx, free_bytes, total_bytes);
}

void pattn_memory_reset_peak(pattn_context *ctx) {
  if (ctx) ctx->mem_peak = ctx->mem_in_use;
}

pattn_status pattn__alloc(pattn_context *ctx, size_t bytes, void **buf) {
  *buf = NULL;
  ctx->last_error[0] = '\0'; /* this call is failing or succeeding now: its message wins */
  pattn_status st = ctx->be->buf_alloc(ctx, bytes ? bytes : 1, buf);
  if (st != PATTN_OK) {
    if (!ctx->last_error[0])
      pattn__error(ctx, st, "cannot allocate %zu bytes on %s: %s", bytes, ctx->device_name, pattn_status_string(st));
    return st;
  }
  ctx->mem_in_use += bytes;
  if (ctx->mem_in_use > ctx->mem_peak) ctx->mem_peak = ctx->mem_in_use;
  return PATTN_OK;
}

void pattn__free(pattn_context *ctx, void *buf, size_t bytes) {
  if (!buf) return;
  ctx->be->buf_free(ctx, buf);
  ctx->mem_in_use -= bytes;
}
