/* pattn-bench suite "fa2": issue 7's bf16/f16 target, at FlashAttention-2's benchmark shapes
 * (flash-attention benchmarks/benchmark_flash_attention.py): b*n = 16384 tokens, hidden
 * 2048, head dim d = 64, 128, 256 (h = 2048/d), n = 512 .. 16384 (b = 16384/n), causal and
 * not, forward and backward (dq, dk, dv given out, lse and dout), bf16 and f16 (--dtype runs
 * one dtype instead). FLOPs as FlashAttention counts them: 4 b h n^2 d forward, halved for
 * causal, 2.5x that backward (op_flops). Layout BHND, pattn's flash algorithm.
 *
 * The report follows FlashAttention's benchmark: one table per (dtype, direction, causal, d)
 * with n along the rows and the TFLOP/s of pattn and, with --compare (run_peers.py --suite
 * fa2), of each PyTorch SDPA backend forced with sdpa_kernel: FLASH (FlashAttention-2, the
 * issue's yardstick), cuDNN, efficient and math; then pattn / FLASH and pattn / cuDNN as speed
 * ratios, and a summary of the target (pattn / FLASH >= 1.00x on every row). */
#include <math.h>
#include <string.h>

#include "bench.h"

#define SUITE "fa2"
#define TOKENS 16384
#define HIDDEN 2048
#define NN 6 /* n = 512 << i */

static const int64_t k_d[3] = {64, 128, 256};

/* peer columns: run_peers.py's impl names, the column titles */
static const struct {
  const char *impl, *col;
} k_peers[] = {{"torch sdpa (flash)", "FLASH (FA2)"},
               {"torch sdpa (cudnn)", "cuDNN"},
               {"torch sdpa (efficient)", "efficient"},
               {"torch sdpa (math)", "math"}};
#define NPEERS ((int)(sizeof(k_peers) / sizeof(k_peers[0])))

static int suite_dtypes(const bench_env *env, pattn_dtype *dt) {
  if (env->opts->dtype_set) {
    dt[0] = env->opts->dtype;
    return 1;
  }
  dt[0] = PATTN_BF16;
  dt[1] = PATTN_F16;
  return 2;
}

static void run(bench_env *env) {
  pattn_dtype dts[2];
  int ndt = suite_dtypes(env, dts);
  env->total_planned = ndt * 2 * 3 * NN * 2;
  /* FlashAttention's order (causal, head dim, shape; forward then backward), smallest n
   * first so the time budget extrapolates from the row before */
  for (int t = 0; t < ndt; t++)
    for (int causal = 0; causal <= 1; causal++)
      for (int di = 0; di < 3; di++)
        for (int i = 0; i < NN; i++)
          for (int bwd = 0; bwd <= 1; bwd++) {
            int64_t n = (int64_t)512 << i, d = k_d[di];
            op_spec s = spec_base(bwd ? OP_ATTN_BWD : OP_ATTN, dts[t], TOKENS / n, HIDDEN / d, n,
                                  n, d);
            s.causal = causal;
            s.algo = PATTN_ALGO_FLASH;
            bench_do(env, env->ctx, SUITE, bwd ? "attn_bwd" : "attn",
                     bwd ? "pattn flash bwd" : "pattn flash fwd", &s);
          }
}

static const bench_row *find(const bench_env *env, const char *dtype, int bwd, int causal,
                             int64_t d, int64_t n) {
  for (int i = 0; i < env->nrows; i++) {
    const bench_row *r = &env->rows[i];
    if (!strcmp(r->dtype, dtype) && !strcmp(r->op, bwd ? "attn_bwd" : "attn") &&
        row_shape_of(r, "causal") == causal && row_shape_of(r, "d") == d &&
        row_shape_of(r, "nq") == n)
      return r;
  }
  return NULL;
}

static void fmt_peer(char *buf, size_t n, const bench_env *env, const bench_row *r,
                     const peer_row *q) {
  double v = peer_rate(env, r, q);
  if (v > 0) snprintf(buf, n, "%.1f", v);
  else if (q) snprintf(buf, n, "✗");
  else snprintf(buf, n, "-");
}

/* pattn's rate over the peer's (= peer time / pattn time); 0 when either is missing */
static double speed_ratio(const bench_row *r, const peer_row *q) {
  if (!r || r->status != ROW_OK || r->median <= 0 || !q || !q->ok) return 0;
  return q->median / r->median;
}

static void fmt_ratio(char *buf, size_t n, const bench_row *r, const peer_row *q) {
  double x = speed_ratio(r, q);
  if (x > 0) snprintf(buf, n, "%.2fx", x);
  else if (!q) snprintf(buf, n, "-");
  else snprintf(buf, n, "✗"); /* pattn or the peer has no figure */
}

typedef struct ratio_stats {
  int    n, met, pattn_missing; /* rows with a peer figure; of those >= 1; pattn ✗ there */
  double lo, hi, logsum;
} ratio_stats;

static void stats_add(ratio_stats *s, const bench_row *r, const peer_row *q) {
  if (!q || !q->ok) return;
  double x = speed_ratio(r, q);
  if (x <= 0) {
    s->pattn_missing++;
    return;
  }
  if (!s->n || x < s->lo) s->lo = x;
  if (!s->n || x > s->hi) s->hi = x;
  s->logsum += log(x);
  s->n++;
  s->met += x >= 1.0;
}

static void fmt_stats(char *buf, size_t n, const ratio_stats *s) {
  if (!s->n) snprintf(buf, n, "-");
  else snprintf(buf, n, "%.2fx / %.2fx / %.2fx", s->lo, exp(s->logsum / s->n), s->hi);
}

static void print(FILE *f, const bench_env *env, const peer_row *p, int np) {
  print_header(f, env, "# FlashAttention-2 benchmark shapes (pattn-bench fa2, issue 7)");
  const char *unit = flops_unit(env);
  fprintf(f, "b*n = %d tokens, h*d = %d; FLOPs 4*b*h*n^2*d forward, halved for causal, 2.5x "
             "that backward (FlashAttention's count); %s from the median run.\n"
             "Backward: dq, dk, dv given dout (pattn_attention_backward, out and lse from a "
             "forward in setup; peers: autograd.grad of SDPA's output, as FlashAttention's "
             "benchmark_backward).\n"
             "Peers (--compare, bench/peers/run_peers.py --suite fa2): PyTorch SDPA with "
             "sdpa_kernel forcing one backend; FLASH is FlashAttention-2. ✗: pattn failed or was "
             "skipped, or the backend refuses the shape/dtype (reasons at the end); -: no peer "
             "row. pattn / X: pattn's %s over X's (above 1.00x pattn is faster).\n\n",
          TOKENS, HIDDEN, unit, unit);
  if (!p || !np)
    fprintf(f, "(no --compare file: the peer columns are empty)\n\n");

  pattn_dtype dts[2];
  int ndt = suite_dtypes(env, dts);
  ratio_stats st[2][2][2]; /* dtype, direction, peer (FLASH, cuDNN) */
  memset(st, 0, sizeof(st));
  for (int t = 0; t < ndt; t++)
    for (int bwd = 0; bwd <= 1; bwd++)
      for (int causal = 0; causal <= 1; causal++)
        for (int di = 0; di < 3; di++) {
          const char *dn = dtype_name(dts[t]);
          int64_t d = k_d[di];
          fprintf(f, "### %s %s, causal=%s, headdim=%lld, nheads=%lld, batch_size*seqlen=%d "
                     "(%s) ###\n\n",
                  dn, bwd ? "bwd" : "fwd", causal ? "True" : "False", (long long)d,
                  (long long)(HIDDEN / d), TOKENS, unit);
          const char *hdr[4 + NPEERS + 2] = {"seqlen", "batch", "pattn", "runs"};
          const int right[4 + NPEERS + 2] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
          for (int k = 0; k < NPEERS; k++) hdr[4 + k] = k_peers[k].col;
          hdr[4 + NPEERS] = "pattn / FLASH";
          hdr[5 + NPEERS] = "pattn / cuDNN";
          table *tb = table_new(6 + NPEERS, hdr, right);
          for (int i = 0; i < NN; i++) {
            int64_t n = (int64_t)512 << i;
            const bench_row *r = find(env, dn, bwd, causal, d, n);
            if (!r) continue;
            char sn[16], sb[16], rate[32], runs[16], pc[NPEERS][32], rf[32], rc[32];
            snprintf(sn, sizeof(sn), "%lld", (long long)n);
            snprintf(sb, sizeof(sb), "%lld", (long long)(TOKENS / n));
            const char *u;
            double v = throughput_flops(env, r, &u);
            if (v > 0) snprintf(rate, sizeof(rate), "%.1f", v);
            else snprintf(rate, sizeof(rate), "✗");
            if (r->status == ROW_OK) snprintf(runs, sizeof(runs), "%d", r->runs);
            else snprintf(runs, sizeof(runs), "-");
            const peer_row *q[NPEERS];
            for (int k = 0; k < NPEERS; k++) {
              q[k] = peer_find(r, p, np, k_peers[k].impl);
              fmt_peer(pc[k], sizeof(pc[k]), env, r, q[k]);
            }
            fmt_ratio(rf, sizeof(rf), r, q[0]);
            fmt_ratio(rc, sizeof(rc), r, q[1]);
            stats_add(&st[t][bwd][0], r, q[0]);
            stats_add(&st[t][bwd][1], r, q[1]);
            const char *cells[4 + NPEERS + 2] = {sn, sb, rate, runs};
            for (int k = 0; k < NPEERS; k++) cells[4 + k] = pc[k];
            cells[4 + NPEERS] = rf;
            cells[5 + NPEERS] = rc;
            table_add(tb, cells);
          }
          table_print_markdown(f, tb);
          table_free(tb);
          fputc('\n', f);
        }

  /* the target, read off the tables above */
  fprintf(f, "## Issue 7 target: pattn / FLASH >= 1.00x on every shape (cuDNN beside it)\n\n");
  const char *hdr[] = {"dtype", "direction", "rows", "pattn / FLASH min / geomean / max",
                       "rows >= 1.00x", "pattn / cuDNN min / geomean / max", "rows >= 1.00x",
                       "target"};
  const int right[] = {0, 0, 1, 1, 1, 1, 1, 0};
  table *tb = table_new(8, hdr, right);
  for (int t = 0; t < ndt; t++)
    for (int bwd = 0; bwd <= 1; bwd++) {
      const ratio_stats *a = &st[t][bwd][0], *c = &st[t][bwd][1];
      char rows[16], fa[64], fm[32], cu[64], cm[32], verdict[64];
      int covered = a->n + a->pattn_missing, shapes = 2 * 3 * NN;
      snprintf(rows, sizeof(rows), "%d of %d", covered, shapes);
      fmt_stats(fa, sizeof(fa), a);
      fmt_stats(cu, sizeof(cu), c);
      snprintf(fm, sizeof(fm), "%d of %d", a->met, a->n + a->pattn_missing);
      snprintf(cm, sizeof(cm), "%d of %d", c->met, c->n + c->pattn_missing);
      if (!covered) snprintf(verdict, sizeof(verdict), "no FLASH figures");
      else if (a->met < covered) snprintf(verdict, sizeof(verdict), "not met");
      else if (covered < shapes) snprintf(verdict, sizeof(verdict), "met on the %d rows", covered);
      else snprintf(verdict, sizeof(verdict), "MET");
      const char *cells[] = {dtype_name(dts[t]), bwd ? "bwd" : "fwd", rows, fa, fm, cu, cm,
                             verdict};
      table_add(tb, cells);
    }
  table_print_markdown(f, tb);
  table_free(tb);
  fprintf(f, "\n(rows: the shapes where FLASH has a figure; pattn ✗ on such a row counts "
             "against the target; MET needs every shape)\n");

  print_peer_failures(f, SUITE, p, np);
  print_failures(f, env);
}

const suite_def suite_fa2 = {"fa2", "issue 7: bf16/f16 flash fwd+bwd at FlashAttention-2's "
                             "benchmark shapes (b*n=16k, h*d=2048), TFLOP/s vs SDPA backends",
                             run, print, 0.75, 1};
