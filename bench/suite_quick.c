/* pattn-bench suite "quick": one small row of every op, in under a minute on 2 CPU cores,
 * plus the two CPU claims the core issue makes:
 *  - fast dense attention forward at least 5x faster than the reference mode
 *    (2 threads, f32, b=1, h=8, n=2048, d=64): both rows and their ratio;
 *  - flash forward at n=16384 (b=1, h=1, d=64) allocates O(n*d) workspace, not n^2:
 *    peak minus inputs/outputs, against the n^2 f32 scores a naive kernel needs. */
#include <string.h>

#include "bench.h"

#define SUITE "quick"

/* rows of the checks, by index: the row array may move as it grows */
static int g_fast_i = -1, g_ref_i = -1, g_long_i = -1;

static void run(bench_env *env) {
  const bench_opts *o = env->opts;
  pattn_dtype f32 = suite_dtype(env, PATTN_F32);
  pattn_context *fast = env->ctx, *ref = NULL, *own_fast = NULL;
  int threads = o->threads ? o->threads : 2;
  g_fast_i = g_ref_i = g_long_i = -1;
  env->total_planned = env->is_cpu ? 12 : 11;

  /* the claim is about 2 threads: its rows get their own contexts on the CPU backend */
  if (env->is_cpu) {
    static char dev[256]; /* the rows' device (thread count), kept past the context */
    if (bench_context(o, 0, threads, &own_fast) == PATTN_OK) fast = own_fast;
    if (bench_context(o, 1, threads, &ref) != PATTN_OK) ref = NULL;
    snprintf(dev, sizeof(dev), "%s", pattn_context_device(fast));
    env->device_name = dev;
  }
  op_spec s = spec_base(OP_ATTN, f32, 1, 8, 2048, 2048, 64);
  s.algo = PATTN_ALGO_FLASH;
  g_fast_i = env->nrows;
  bench_do(env, fast, SUITE, "attn", env->is_cpu ? "flash (fast mode)" : "flash", &s);
  if (env->is_cpu) {
    g_ref_i = env->nrows;
    if (ref) bench_do(env, ref, SUITE, "attn", "flash (reference mode)", &s);
    else bench_unavailable(env, SUITE, "attn", "flash (reference mode)", &s,
                           "cannot create a CPU context in reference mode");
  }
  s.algo = PATTN_ALGO_NAIVE;
  bench_do(env, fast, SUITE, "attn", "naive", &s);

  op_spec l = spec_base(OP_ATTN, f32, 1, 1, 16384, 16384, 64);
  l.algo = PATTN_ALGO_FLASH;
  g_long_i = env->nrows;
  bench_do(env, fast, SUITE, "attn", "flash n=16384", &l);
  pattn_context_destroy(ref);

  op_spec bw = spec_base(OP_ATTN_BWD, f32, 1, 8, 1024, 1024, 64);
  bench_do(env, fast, SUITE, "attn_bwd", "attention backward", &bw);

  op_spec r = spec_base(OP_RING, f32, 1, 8, 2048, 2048, 64);
  r.ring_size = 4;
  bench_do(env, fast, SUITE, "ring", "ring (4 chunks)", &r);

  op_spec d = spec_base(OP_DILATED, f32, 1, 8, 2048, 2048, 64);
  d.nseg = 3;
  d.seg[0] = 512, d.seg[1] = 1024, d.seg[2] = 2048;
  d.rate[0] = 1, d.rate[1] = 2, d.rate[2] = 4;
  bench_do(env, fast, SUITE, "dilated", "dilated (head groups)", &d);

  op_spec bs = spec_base(OP_BLOCK_SPARSE, f32, 1, 8, 2048, 2048, 64);
  bs.block_size = 64;
  bs.local_window = 1;
  bs.nrates = 2;
  bs.rates[0] = 2, bs.rates[1] = 4;
  bench_do(env, fast, SUITE, "block_sparse", "block-sparse (local+dilated)", &bs);

  op_spec m = d;
  m.kind = OP_MHA;
  m.layout = PATTN_LAYOUT_BHND;
  m.mha_core = PATTN_MHA_DILATED;
  m.nq = m.nk = 1024;
  m.seg[0] = 256, m.seg[1] = 512, m.seg[2] = 1024;
  bench_do(env, fast, SUITE, "mha_dilated", "MHA over dilated (E=512)", &m);

  pattn_dtype bf16 = suite_dtype(env, PATTN_BF16);
  op_spec lf = spec_base(OP_LRPE_FWD, bf16, 2, 12, 0, 0, 128);
  lf.ndims = 1;
  lf.grid[0] = 4096;
  bench_do(env, fast, SUITE, "lrpe_fwd", "md_lrpe_cosine fwd (1d)", &lf);
  op_spec lb = lf;
  lb.kind = OP_LRPE_BWD;
  lb.use_cache = 1;
  bench_do(env, fast, SUITE, "lrpe_bwd", "md_lrpe_cosine bwd (1d, cache)", &lb);
  op_spec l2 = lf;
  l2.ndims = 2, l2.grid[0] = l2.grid[1] = 64, l2.extra = 10;
  bench_do(env, fast, SUITE, "lrpe_fwd", "md_lrpe_cosine fwd (2d, l=10)", &l2);
  pattn_context_destroy(own_fast);
}

static void print(FILE *f, const bench_env *env, const peer_row *p, int np) {
  char title[128];
  snprintf(title, sizeof(title), "pattn-bench quick: one small row of every op");
  print_header(f, env, title);
  char rate_hdr[32];
  snprintf(rate_hdr, sizeof(rate_hdr), "%s", flops_unit(env));
  const char *hdr[] = {"Implementation", "shape", "dtype", "median ms", "std ms", "min ms", "runs",
                       rate_hdr, "GB/s", "Memory (MB)", "Workspace (MB)", "Status"};
  const int right[] = {0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0};
  table *t = table_new(12, hdr, right);
  for (int i = 0; i < env->nrows; i++) {
    const bench_row *r = &env->rows[i];
    char med[32], sd[32], mn[32], runs[16], rate[32], gbs[32], mem[32], ws[32];
    fmt_time(med, sizeof(med), r, 3);
    snprintf(sd, sizeof(sd), r->status == ROW_OK ? "%.3f" : "N/A", r->std);
    snprintf(mn, sizeof(mn), r->status == ROW_OK ? "%.3f" : "N/A", r->min);
    snprintf(runs, sizeof(runs), "%d", r->runs);
    fmt_rate(rate, sizeof(rate), env, r);
    /* GB/s where bandwidth is the limit (the elementwise LRPE); FLOP/s elsewhere */
    if (r->flops > 0) snprintf(gbs, sizeof(gbs), "-");
    else fmt_gbs(gbs, sizeof(gbs), r);
    snprintf(mem, sizeof(mem), r->status == ROW_OK ? "%.2f" : "N/A", r->memory_mb);
    snprintf(ws, sizeof(ws), r->status == ROW_OK ? "%.2f" : "N/A", r->workspace_mb);
    const char *c[] = {r->impl, r->key, r->dtype, med, sd, mn, runs, rate, gbs, mem, ws,
                       status_mark(r)};
    table_add(t, c);
  }
  table_print_markdown(f, t);
  table_free(t);

  fprintf(f, "\nChecks\n");
  if (g_fast_i >= 0 && g_ref_i >= 0 && g_ref_i < env->nrows) {
    const bench_row *fr = &env->rows[g_fast_i], *rr = &env->rows[g_ref_i];
    int threads = env->opts->threads ? env->opts->threads : 2;
    if (fr->status == ROW_OK && rr->status == ROW_OK) {
      double x = rr->median / fr->median;
      fprintf(f, "- dense flash forward, %d threads, %s, b=1 h=8 n=2048 d=64: fast %.2f ms, "
                 "reference %.2f ms: fast is %.1fx faster (target >= 5x): %s\n",
              threads, fr->dtype, fr->median, rr->median, x, x >= 5.0 ? "PASS" : "FAIL");
    } else {
      fprintf(f, "- fast vs reference mode: not measured (%s)\n",
              fr->status != ROW_OK ? fr->reason : rr->reason);
    }
  } else {
    fprintf(f, "- fast vs reference mode: the reference mode is a CPU backend option; "
               "run --backend cpu for it\n");
  }
  if (g_long_i >= 0 && g_long_i < env->nrows) {
    const bench_row *r = &env->rows[g_long_i];
    double n = 16384, d = 64;
    double scores_mb = n * n * 4 / (1024.0 * 1024.0), nd_mb = n * d * 4 / (1024.0 * 1024.0);
    if (r->status == ROW_OK)
      fprintf(f, "- flash forward n=16384 (b=1 h=1 d=64): inputs+outputs %.2f MB, workspace "
                 "(peak minus inputs/outputs) %.3f MB = %.2f x (n*d f32, %.1f MB); an n^2 f32 "
                 "score matrix would be %.0f MB: %s\n",
              r->inputs_mb, r->workspace_mb, r->workspace_mb / nd_mb, nd_mb, scores_mb,
              r->workspace_mb < scores_mb / 16 ? "O(n*d), PASS" : "FAIL");
    else
      fprintf(f, "- flash forward n=16384: not measured (%s)\n", r->reason);
  }
  print_failures(f, env);
  (void)p, (void)np;
}

const suite_def suite_quick = {"quick", "one small row of every op + the CPU fast/reference "
                               "and O(n*d) workspace checks (< 1 minute on 2 cores)",
                               run, print, 6.0, 0};
