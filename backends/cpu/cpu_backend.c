/* The built-in CPU backend: host memory buffers, a thread pool per context, and dispatch
 * to the reference (f64 oracle) or fast kernels by the context's mode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

const pattn_core_api *cpu_core;

static pattn_status cpu_probe(char *why, size_t why_len, char *devices, size_t devices_len) {
  if (why && why_len) why[0] = '\0';
  if (devices && devices_len) snprintf(devices, devices_len, "host CPU\n");
  return PATTN_OK;
}

static pattn_status cpu_init(pattn_context *ctx, const pattn_options *opt, const char *device, void **state, char *name,
                             size_t name_len) {
  if (device && strcmp(device, "0") != 0 && !strstr("cpu host CPU", device))
    return cpu_core->error(ctx, PATTN_ERR_NO_DEVICE, "cpu: no device matches '%s' (the CPU backend has one device: 0, \"cpu\")",
                           device);
  cpu_state *st = calloc(1, sizeof *st);
  if (!st) return cpu_core->error(ctx, PATTN_ERR_OUT_OF_MEMORY, "cpu: out of host memory");
  st->reference = opt->cpu_reference > 0;
  st->num_threads = st->reference ? 1 : (opt->num_threads > 0 ? opt->num_threads : 1);
  if (st->num_threads > 1) {
    st->pool = cpu_pool_create(st->num_threads);
    if (!st->pool) {
      free(st);
      return cpu_core->error(ctx, PATTN_ERR_BACKEND, "cpu: cannot start %d threads", opt->num_threads);
    }
  }
  snprintf(name, name_len, "host CPU (%s, %d thread%s)", st->reference ? "reference" : "fast", st->num_threads,
           st->num_threads == 1 ? "" : "s");
  *state = st;
  return PATTN_OK;
}

static void cpu_destroy(void *state) {
  cpu_state *st = state;
  if (!st) return;
  cpu_pool_destroy(st->pool);
  free(st);
}

static pattn_status cpu_buf_alloc(pattn_context *ctx, size_t bytes, void **buf) {
  /* 64-byte aligned for vector loads; rounded up as aligned_alloc requires */
  *buf = aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!*buf) return cpu_core->error(ctx, PATTN_ERR_OUT_OF_MEMORY, "cpu: cannot allocate %zu bytes", bytes);
  return PATTN_OK;
}

static void cpu_buf_free(pattn_context *ctx, void *buf) { free(buf); }

static pattn_status cpu_buf_write(pattn_context *ctx, void *buf, size_t off, const void *src, size_t bytes) {
  memcpy((char *)buf + off, src, bytes);
  return PATTN_OK;
}

static pattn_status cpu_buf_read(pattn_context *ctx, const void *buf, size_t off, void *dst, size_t bytes) {
  memcpy(dst, (const char *)buf + off, bytes);
  return PATTN_OK;
}

static pattn_status cpu_synchronize(pattn_context *ctx) { return PATTN_OK; }

#define DISPATCH(op, ...) (cpu_state_of(ctx)->reference ? cpu_ref_##op(__VA_ARGS__) : cpu_fast_##op(__VA_ARGS__))

static pattn_status cpu_linear(pattn_context *ctx, int64_t m, int64_t n, int64_t k, pattn_mat x, pattn_mat w, pattn_mat b, pattn_mat y) {
  return DISPATCH(linear, ctx, m, n, k, x, w, b, y);
}
static pattn_status cpu_layernorm(pattn_context *ctx, int64_t rows, int64_t cols, float eps, pattn_mat x, pattn_mat g, pattn_mat b,
                                  pattn_mat y) {
  return DISPATCH(layernorm, ctx, rows, cols, eps, x, g, b, y);
}
static pattn_status cpu_attention(pattn_context *ctx, const pattn_attn_args *a) { return DISPATCH(attention, ctx, a); }
static pattn_status cpu_attention_backward(pattn_context *ctx, const pattn_attn_bwd_args *a) {
  return DISPATCH(attention_backward, ctx, a);
}
static pattn_status cpu_block_sparse(pattn_context *ctx, const pattn_block_sparse_args *a) { return DISPATCH(block_sparse, ctx, a); }
static pattn_status cpu_lrpe_forward(pattn_context *ctx, const pattn_lrpe_args *a) { return DISPATCH(lrpe_forward, ctx, a); }
static pattn_status cpu_lrpe_backward(pattn_context *ctx, const pattn_lrpe_args *a) { return DISPATCH(lrpe_backward, ctx, a); }

static const pattn_backend cpu_backend = {
    .abi = PATTN_BACKEND_ABI,
    .name = "cpu",
    .probe = cpu_probe,
    .init = cpu_init,
    .destroy = cpu_destroy,
    .buf_alloc = cpu_buf_alloc,
    .buf_free = cpu_buf_free,
    .buf_write = cpu_buf_write,
    .buf_read = cpu_buf_read,
    .synchronize = cpu_synchronize,
    .fill = cpu_fill,
    .copy = cpu_copy,
    .merge = cpu_merge,
    .linear = cpu_linear,
    .layernorm = cpu_layernorm,
    .attention = cpu_attention,
    .attention_backward = cpu_attention_backward,
    .block_sparse = cpu_block_sparse,
    .lrpe_forward = cpu_lrpe_forward,
    .lrpe_backward = cpu_lrpe_backward,
};

const pattn_backend *pattn_cpu_backend(const pattn_core_api *core) {
  cpu_core = core;
  return &cpu_backend;
}
