/* pattn-bench suite "seed000": shared/seeds/000_*.txt. Six implementations × batch 1, 2 ×
 * seq 512, 1024 × heads 8, 16, d=64, f32, in the seed's tabulate grid.
 *   standard               dense attention, NAIVE (scores materialised)
 *   improved               dilated attention, head-group merge, segments n/4, n/2, n at
 *                          rates 1, 2, 4
 *   multihead_improved     MHA (E = 64 h, bias) over that dilated core
 *   ring_v2_collective     ring attention on one context, ring_size 1
 *   block_sparse           block 64, local window 1 + dilated blocks at ±2, ±4
 *   block_sparse_multihead MHA over that block-sparse core
 * The seed's multihead rows failed at h=16 (SPEC.md section 5); every pattn row must be ✓. */
#include <string.h>

#include "bench.h"

#define SUITE "seed000"

static const char *const k_impl[] = {"standard", "improved", "multihead_improved",
                                     "ring_v2_collective", "block_sparse",
                                     "block_sparse_multihead"};
static const char *const k_op[] = {"attn", "dilated", "mha_dilated", "ring", "block_sparse",
                                   "mha_block_sparse"};

static op_spec make(int impl, pattn_dtype dt, int64_t b, int64_t n, int64_t h) {
  op_spec s = spec_base(OP_ATTN, dt, b, h, n, n, 64);
  switch (impl) {
  case 0: s.algo = PATTN_ALGO_NAIVE; break;
  case 1:
  case 2:
    s = spec_base(impl == 1 ? OP_DILATED : OP_MHA, dt, b, h, n, n, 64);
    s.mha_core = PATTN_MHA_DILATED;
    s.nseg = 3;
    s.seg[0] = n / 4, s.seg[1] = n / 2, s.seg[2] = n;
    s.rate[0] = 1, s.rate[1] = 2, s.rate[2] = 4;
    break;
  case 3: s.kind = OP_RING; s.ring_size = 1; break;
  case 4:
  case 5:
    s.kind = impl == 4 ? OP_BLOCK_SPARSE : OP_MHA;
    s.mha_core = PATTN_MHA_BLOCK_SPARSE;
    s.block_size = 64;
    s.local_window = 1;
    s.nrates = 2;
    s.rates[0] = 2, s.rates[1] = 4;
    break;
  }
  return s;
}

static void run(bench_env *env) {
  pattn_dtype dt = suite_dtype(env, PATTN_F32);
  env->total_planned = 6 * 8;
  for (int i = 0; i < 6; i++)
    for (int64_t b = 1; b <= 2; b++)
      for (int64_t n = 512; n <= 1024; n *= 2)
        for (int64_t h = 8; h <= 16; h *= 2) {
          op_spec s = make(i, dt, b, n, h);
          bench_do(env, env->ctx, SUITE, k_op[i], k_impl[i], &s);
        }
}

static void print(FILE *f, const bench_env *env, const peer_row *p, int np) {
  char title[160];
  snprintf(title, sizeof(title), "Benchmark Results (pattn-bench seed000)\nDevice: %s (%s), "
           "Dtype: %s", env->device_name, env->backend_name,
           env->nrows ? env->rows[0].dtype : "f32");
  print_header(f, env, title);
  char rate_hdr[32];
  snprintf(rate_hdr, sizeof(rate_hdr), "%s", flops_unit(env));
  const char *hdr[] = {"Implementation", "Batch", "Seq Len", "Heads", "Time (ms)",
                       "Memory (MB)", "Throughput (tok/s)", "Status", rate_hdr};
  const int right[] = {0, 1, 1, 1, 0, 0, 0, 0, 1};
  table *t = table_new(9, hdr, right);
  for (int i = 0; i < env->nrows; i++) {
    const bench_row *r = &env->rows[i];
    char b[16], n[16], h[16], tm[32], mem[32], tp[32], rate[32];
    int64_t vb = 0, vn = 0, vh = 0;
    for (int k = 0; k < r->nshape; k++) {
      if (!strcmp(r->shape_name[k], "b")) vb = r->shape_val[k];
      if (!strcmp(r->shape_name[k], "n") || !strcmp(r->shape_name[k], "nq")) vn = r->shape_val[k];
      if (!strcmp(r->shape_name[k], "h")) vh = r->shape_val[k];
    }
    snprintf(b, sizeof(b), "%lld", (long long)vb);
    snprintf(n, sizeof(n), "%lld", (long long)vn);
    snprintf(h, sizeof(h), "%lld", (long long)vh);
    fmt_time(tm, sizeof(tm), r, 2);
    if (r->status == ROW_OK) {
      snprintf(mem, sizeof(mem), "%.2f", r->memory_mb);
      snprintf(tp, sizeof(tp), "%.0f", (double)(vb * vn) / (r->median * 1e-3));
    } else {
      snprintf(mem, sizeof(mem), "N/A");
      snprintf(tp, sizeof(tp), "N/A");
    }
    fmt_rate(rate, sizeof(rate), env, r);
    const char *c[] = {r->impl, b, n, h, tm, mem, tp, status_mark(r), rate};
    table_add(t, c);
  }
  table_print_grid(f, t, 1);
  table_free(t);
  fprintf(f, "\nTime: median; Memory: peak pattn allocated during the call, inputs, weights "
             "and outputs included; last column: attention (+ projection) FLOPs / time.\n");
  print_failures(f, env);
  (void)p, (void)np;
}

const suite_def suite_seed000 = {"seed000", "standard/improved/multihead/ring/block-sparse, "
                                 "f32, b 1-2, n 512-1024, h 8-16 (seed 000)",
                                 run, print, 30.0, 0};
