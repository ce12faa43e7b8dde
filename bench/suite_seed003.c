/* pattn-bench suite "seed003": shared/seeds/003_*.txt, the attention forward sweep.
 * Q_N = K_N = 512 .. 16384; (head_dim, heads, batch) in (64, 12, 1), (64, 12, 8),
 * (128, 12, 1), (256, 24, 2); kernels pattn naive (scores materialised) and pattn flash
 * (fused, online softmax); f32. The seed's markdown table with avg/std/min, plus median,
 * the FLOP rate and a status (the seed printed 0 for a failure; pattn prints ✗ and says why).
 * PNG plots come from bench/plot.py reading --out DIR/seed003.json. */
#include <string.h>

#include "bench.h"

#define SUITE "seed003"

static const int64_t k_cfg[4][3] = {{64, 12, 1}, {64, 12, 8}, {128, 12, 1}, {256, 24, 2}};

static void run(bench_env *env) {
  pattn_dtype dt = suite_dtype(env, PATTN_F32);
  env->total_planned = 2 * 4 * 6;
  for (int k = 0; k < 2; k++)
    for (int c = 0; c < 4; c++)
      for (int64_t n = 512; n <= 16384; n *= 2) {
        op_spec s = spec_base(OP_ATTN, dt, k_cfg[c][2], k_cfg[c][1], n, n, k_cfg[c][0]);
        s.algo = k ? PATTN_ALGO_FLASH : PATTN_ALGO_NAIVE;
        bench_do(env, env->ctx, SUITE, "attn", k ? "pattn_flash" : "pattn_naive", &s);
      }
}

static int64_t shape_of(const bench_row *r, const char *name) {
  for (int k = 0; k < r->nshape; k++)
    if (!strcmp(r->shape_name[k], name)) return r->shape_val[k];
  return 0;
}

static void print(FILE *f, const bench_env *env, const peer_row *p, int np) {
  print_header(f, env, "# Attention Forward Benchmark Sweep (pattn-bench seed003)");
  const char *hdr[] = {"Kernel", "Tier", "Q_N", "K_N", "head_dim", "heads", "batch", "avg_ms",
                       "std_ms", "min_ms", "median_ms", flops_unit(env), "Status"};
  const int right[] = {0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0};
  table *t = table_new(13, hdr, right);
  for (int i = 0; i < env->nrows; i++) {
    const bench_row *r = &env->rows[i];
    int64_t n = shape_of(r, "nq"), d = shape_of(r, "d"), h = shape_of(r, "h"), b = shape_of(r, "b");
    char tier[64], qn[16], kn[16], hd[16], hh[16], bb[16], avg[32], sd[32], mn[32], med[32],
        rate[32];
    if (n >= 1024) snprintf(tier, sizeof(tier), "Long-hd%lld-%lldh-%lldb-%lldk", (long long)d,
                            (long long)h, (long long)b, (long long)(n / 1024));
    else snprintf(tier, sizeof(tier), "Long-hd%lld-%lldh-%lldb-%lld", (long long)d, (long long)h,
                  (long long)b, (long long)n);
    snprintf(qn, sizeof(qn), "%lld", (long long)n);
    snprintf(kn, sizeof(kn), "%lld", (long long)shape_of(r, "nk"));
    snprintf(hd, sizeof(hd), "%lld", (long long)d);
    snprintf(hh, sizeof(hh), "%lld", (long long)h);
    snprintf(bb, sizeof(bb), "%lld", (long long)b);
    if (r->status == ROW_OK) {
      snprintf(avg, sizeof(avg), "%.4f", r->mean);
      snprintf(sd, sizeof(sd), "%.4f", r->std);
      snprintf(mn, sizeof(mn), "%.4f", r->min);
      snprintf(med, sizeof(med), "%.4f", r->median);
    } else {
      snprintf(avg, sizeof(avg), "N/A");
      snprintf(sd, sizeof(sd), "N/A");
      snprintf(mn, sizeof(mn), "N/A");
      snprintf(med, sizeof(med), "N/A");
    }
    fmt_rate(rate, sizeof(rate), env, r);
    const char *c[] = {r->impl, tier, qn, kn, hd, hh, bb, avg, sd, mn, med, rate, status_mark(r)};
    table_add(t, c);
  }
  table_print_markdown(f, t);
  table_free(t);
  fprintf(f, "\n![Forward Time](attention_sweep_forward.png)\n\n![Heatmap](attention_sweep_heatmap.png)"
             "\n\n![Scaling Curve](attention_sweep_scaling.png)\n\n"
             "(plots: python3 bench/plot.py DIR/seed003.json, after pattn-bench --suite seed003 "
             "--out DIR)\n");
  print_failures(f, env);
  (void)p, (void)np;
}

const suite_def suite_seed003 = {"seed003", "attention forward sweep, naive and flash, f32, "
                                 "n 512-16k (seed 003)", run, print, 30.0, 0};
