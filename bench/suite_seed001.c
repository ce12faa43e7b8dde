/* pattn-bench suite "seed001": shared/seeds/001_*.txt, the dilated attention family.
 * batch 1, 2, 4 × seq 2048, 4096, 8192; h=8, d=64, E=512; segments min(s, n/2) for s in
 * 1024, 2048, 4096; rates 1, 2, 4; f32. Per shape: the seed's progress lines, then the
 * summary table sorted by time and the speedups relative to the first row.
 *
 * The seed's six implementations map onto pattn's public API as follows; rows that the API
 * cannot produce are printed ✗ with the reason, never with made-up numbers:
 *   dilated (fused)             pattn_dilated_attention, head-group merge
 *                               (the seed's ImprovedDilatedAttention; DilatedAttention
 *                               computes the same function)
 *   dilated (fused, LSE merge)  the same with the LongNet paper's LSE merge
 *   ring dilated (1 rank)       pattn_ring_dilated_attention, comm NULL
 *   multihead dilated (fused)   pattn_mha over the dilated core
 *   dilated (gather/scatter)    the seed's reference-style DilatedAttention: the same op with
 *                               pattn_dilated_desc.gather = 1 (copies each group's positions
 *                               to contiguous buffers and back, on the device)
 *   multihead ring dilated      the seed's RingMultiheadDilatedAttention: on one rank ring
 *                               dilated is dilated attention, so pattn_mha over the dilated core
 *                               (its row equals "multihead dilated"; the distributed form is
 *                               suite ring-scaling) */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define SUITE "seed001"
#define NIMPL 6

static const char *const k_impl[NIMPL] = {"dilated (fused)", "dilated (fused, LSE merge)",
                                          "ring dilated (1 rank)", "multihead dilated (fused)",
                                          "dilated (gather/scatter)", "multihead ring dilated (1 rank)"};
static const char *const k_op[NIMPL] = {"dilated", "dilated_lse", "ring_dilated", "mha_dilated",
                                        "dilated_gather", "mha_ring_dilated"};
static const char *const k_seed[NIMPL] = {"ImprovedDilatedAttention", "(LongNet LSE merge)",
                                          "RingDilatedAttention",
                                          "(Improved)MultiheadDilatedAttention",
                                          "DilatedAttention", "RingMultiheadDilatedAttention"};

static op_spec make(int impl, pattn_dtype dt, int64_t b, int64_t n) {
  static const int64_t segs[3] = {1024, 2048, 4096};
  op_kind k = impl == 2 ? OP_RING_DILATED : impl == 3 || impl == 5 ? OP_MHA : OP_DILATED;
  op_spec s = spec_base(k, dt, b, 8, n, n, 64);
  s.nseg = 3;
  for (int i = 0; i < 3; i++) {
    s.seg[i] = segs[i] < n / 2 ? segs[i] : n / 2;
    s.rate[i] = (int64_t)1 << i;
  }
  s.merge = impl == 1 ? PATTN_DILATED_MERGE_LSE : PATTN_DILATED_MERGE_HEAD_GROUPS;
  s.gather = impl == 4;
  s.mha_core = PATTN_MHA_DILATED;
  return s;
}

static void run(bench_env *env) {
  pattn_dtype dt = suite_dtype(env, PATTN_F32);
  env->total_planned = 9 * NIMPL;
  for (int64_t b = 1; b <= 4; b *= 2)
    for (int64_t n = 2048; n <= 8192; n *= 2)
      for (int i = 0; i < NIMPL; i++) {
        op_spec s = make(i, dt, b, n);
        bench_do(env, env->ctx, SUITE, k_op[i], k_impl[i], &s);
      }
}

static int64_t shape_of(const bench_row *r, const char *name) {
  for (int k = 0; k < r->nshape; k++)
    if (!strcmp(r->shape_name[k], name)) return r->shape_val[k];
  return 0;
}

static const bench_row *g_sort_rows;
static int by_time(const void *a, const void *b) {
  const bench_row *x = &g_sort_rows[*(const int *)a], *y = &g_sort_rows[*(const int *)b];
  if (x->status != y->status) return x->status == ROW_OK ? -1 : 1;
  if (x->status != ROW_OK) return *(const int *)a - *(const int *)b;
  return (x->median > y->median) - (x->median < y->median);
}

static void print(FILE *f, const bench_env *env, const peer_row *p, int np) {
  char title[256];
  snprintf(title, sizeof(title), "Comprehensive Benchmark Results (pattn-bench seed001)\n"
           "================================================");
  print_header(f, env, title);
  fprintf(f, "Implementations (pattn row <- seed row):\n");
  for (int i = 0; i < NIMPL; i++) fprintf(f, "- %-27s <- %s\n", k_impl[i], k_seed[i]);
  fprintf(f, "\nRunning benchmarks on %s with dtype=%s\n", env->backend_name,
          env->nrows ? env->rows[0].dtype : "f32");
  fprintf(f, "================================================================================\n");
  for (int i = 0; i < env->nrows; i += NIMPL) {
    fprintf(f, "\nBenchmarking batch_size=%lld, seq_len=%lld\n",
            (long long)shape_of(&env->rows[i], "b"), (long long)shape_of(&env->rows[i], "n"));
    fprintf(f, "------------------------------------------------------------\n");
    for (int k = i; k < i + NIMPL && k < env->nrows; k++) {
      const bench_row *r = &env->rows[k];
      if (r->status == ROW_OK) fprintf(f, "  %s... ✓ %.2fms\n", r->impl, r->median);
      else fprintf(f, "  %s... ✗ %s\n", r->impl, r->reason);
    }
  }
  fprintf(f, "\n================================================================================\n"
             "BENCHMARK SUMMARY\n"
             "================================================================================\n");
  for (int i = 0; i < env->nrows; i += NIMPL) {
    int m = env->nrows - i < NIMPL ? env->nrows - i : NIMPL, idx[NIMPL];
    int64_t b = shape_of(&env->rows[i], "b");
    fprintf(f, "\nBatch Size: %lld, Sequence Length: %lld\n", (long long)b,
            (long long)shape_of(&env->rows[i], "n"));
    fprintf(f, "----------------------------------------------------------------------\n");
    for (int k = 0; k < m; k++) idx[k] = i + k;
    g_sort_rows = env->rows;
    qsort(idx, (size_t)m, sizeof(int), by_time);
    const char *hdr[] = {"Implementation", "Time (ms)", "Throughput (seq/s)", "Memory (MB)",
                         flops_unit(env), "Status"};
    const int right[] = {0, 0, 1, 1, 1, 0};
    table *t = table_new(6, hdr, right);
    for (int k = 0; k < m; k++) {
      const bench_row *r = &env->rows[idx[k]];
      char tm[48], tp[32], mem[32], rate[32];
      if (r->status == ROW_OK) {
        snprintf(tm, sizeof(tm), "%.2f ± %.2f", r->median, r->std);
        snprintf(tp, sizeof(tp), "%.1f", (double)b / (r->median * 1e-3));
        snprintf(mem, sizeof(mem), "%.2f", r->memory_mb);
      } else {
        snprintf(tm, sizeof(tm), "N/A");
        snprintf(tp, sizeof(tp), "N/A");
        snprintf(mem, sizeof(mem), "N/A");
      }
      fmt_rate(rate, sizeof(rate), env, r);
      const char *c[] = {r->impl, tm, tp, mem, rate, status_mark(r)};
      table_add(t, c);
    }
    table_print_grid(f, t, 0);
    table_free(t);
    const bench_row *base = &env->rows[i];
    if (base->status == ROW_OK) {
      fprintf(f, "\nSpeedups relative to %s:\n", base->impl);
      for (int k = i + 1; k < i + m; k++) {
        const bench_row *r = &env->rows[k];
        if (r->status == ROW_OK) fprintf(f, "  %s: %.2fx\n", r->impl, base->median / r->median);
        else fprintf(f, "  %s: ✗\n", r->impl);
      }
    } else {
      fprintf(f, "\nSpeedups: the first row (%s) has no time: %s\n", base->impl, base->reason);
    }
  }
  fprintf(f, "\nTime: median ± std; Throughput: batch / time; Memory: peak pattn allocated, "
             "inputs (and MHA weights) included.\n");
  print_failures(f, env);
  (void)p, (void)np;
}

const suite_def suite_seed001 = {"seed001", "dilated attention family, f32, b 1-4, n 2k-8k "
                                 "(seed 001)", run, print, 30.0, 0};
