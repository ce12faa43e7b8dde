/* pattn-bench suite "seed002": shared/seeds/002_*.txt, md_lrpe_cosine speed and memory,
 * forward and backward; b=12, h=12, d=128, bf16; 1d n=256..32768, 2d n=16..128 (grid n×n),
 * 3d n=4..32 (grid n×n×n); extra tokens l=0 and l=10. The seed's pandas-style tables, one
 * column per implementation: the seed's Tri / Tri Ca / Tor / Tor C become
 * "pattn-BACKEND" (angles recomputed), "pattn-BACKEND Ca" (forward writes the angle cache,
 * backward reads it) and, with --compare, one column per peer. -1 marks an error, as in
 * the seed; the reasons follow the tables. */
#include <math.h>
#include <string.h>

#include "bench.h"

#define SUITE "seed002"
#define MAXN 8

static const int64_t k_ns[3][MAXN] = {{256, 512, 1024, 2048, 4096, 8192, 16384, 32768},
                                      {16, 32, 64, 128},
                                      {4, 8, 16, 32}};
static const int k_count[3] = {8, 4, 4};

static op_spec make(pattn_dtype dt, int dims, int64_t n, int64_t l, int bwd, int cache) {
  op_spec s = spec_base(bwd ? OP_LRPE_BWD : OP_LRPE_FWD, dt, 12, 12, 0, 0, 128);
  s.ndims = dims;
  for (int i = 0; i < dims; i++) s.grid[i] = n;
  s.extra = l;
  s.use_cache = cache;
  return s;
}

static void run(bench_env *env) {
  pattn_dtype dt = suite_dtype(env, PATTN_BF16);
  env->total_planned = 2 * 2 * 2 * (8 + 4 + 4);
  for (int dims = 1; dims <= 3; dims++)
    for (int64_t l = 0; l <= 10; l += 10)
      for (int bwd = 0; bwd <= 1; bwd++)
        for (int cache = 0; cache <= 1; cache++)
          for (int i = 0; i < k_count[dims - 1]; i++) {
            op_spec s = make(dt, dims, k_ns[dims - 1][i], l, bwd, cache);
            bench_do(env, env->ctx, SUITE, bwd ? "lrpe_bwd" : "lrpe_fwd",
                     cache ? "pattn Ca" : "pattn", &s);
          }
}

/* the row of (dims, l, pass, cache, n): rows were made in run()'s loop order */
static const bench_row *find(const bench_env *env, int dims, int64_t l, int bwd, int cache,
                             int i) {
  int idx = 0;
  for (int d = 1; d < dims; d++) idx += 2 * 2 * 2 * k_count[d - 1];
  idx += (int)(l / 10) * 2 * 2 * k_count[dims - 1];
  idx += bwd * 2 * k_count[dims - 1] + cache * k_count[dims - 1] + i;
  return idx < env->nrows ? &env->rows[idx] : NULL;
}

/* metric 0: time ms, 1: memory MB, 2: GB/s; -1 for an error as in the seed */
static double value(const bench_row *r, int metric) {
  if (!r || r->status != ROW_OK) return -1;
  if (metric == 0) return r->median;
  if (metric == 1) return r->memory_mb;
  return r->bytes / (r->median * 1e-3) / 1e9;
}

static double peer_value(const peer_row *q, int metric) {
  if (!q || !q->ok) return -1;
  if (metric == 0) return q->median;
  if (metric == 1) return q->memory_mb > 0 ? q->memory_mb : NAN; /* peers on CPU: not measured */
  return -1;
}

static void print_table(FILE *f, const bench_env *env, const peer_row *p, int np, int dims,
                        int64_t l, int bwd, int metric) {
  static const char *metric_name[] = {"speed", "memory", "bandwidth-GBps"};
  char cols[2 + 6][72];
  const char *peer_impl[6];
  int npi = 0, cnt = k_count[dims - 1];
  snprintf(cols[0], sizeof(cols[0]), "pattn-%s", env->backend_name);
  snprintf(cols[1], sizeof(cols[1]), "pattn-%s Ca", env->backend_name);
  /* peer columns: every peer impl that has a row for this table's shapes */
  for (int i = 0; i < cnt && metric < 2; i++)
    for (int cache = 0; cache < 2; cache++) {
      const bench_row *r = find(env, dims, l, bwd, cache, i);
      int idx[16], m = r ? peers_match(r, p, np, idx, 16) : 0;
      for (int k = 0; k < m; k++) {
        int seen = 0;
        for (int j = 0; j < npi; j++) seen |= !strcmp(peer_impl[j], p[idx[k]].impl);
        if (!seen && npi < 6) {
          peer_impl[npi] = p[idx[k]].impl;
          snprintf(cols[2 + npi], sizeof(cols[0]), "%s", p[idx[k]].impl);
          npi++;
        }
      }
    }
  const bench_row *r0 = find(env, dims, l, bwd, 0, 0);
  fprintf(f, "md_lrpe_cosine-%s-%s-batch12-head12-dim128-%s-%dd-l%lld:\n", metric_name[metric],
          bwd ? "bwd" : "fwd", r0 ? r0->dtype : "bf16", dims, (long long)l);
  int ncol = 2 + npi, w[8];
  char cell[MAXN][8][32], ncell[MAXN][16];
  int wn = 1, wi = 1;
  for (int i = 0; i < cnt; i++) {
    snprintf(ncell[i], sizeof(ncell[i]), "%.1f", (double)k_ns[dims - 1][i]);
    if ((int)strlen(ncell[i]) > wn) wn = (int)strlen(ncell[i]);
    for (int c = 0; c < ncol; c++) {
      double v;
      if (c < 2) v = value(find(env, dims, l, bwd, c, i), metric);
      else {
        const bench_row *r = find(env, dims, l, bwd, 0, i);
        int idx[16], m = r ? peers_match(r, p, np, idx, 16) : 0;
        const peer_row *q = NULL;
        for (int k = 0; k < m; k++)
          if (!strcmp(p[idx[k]].impl, peer_impl[c - 2])) q = &p[idx[k]];
        v = peer_value(q, metric);
      }
      if (v == -1) snprintf(cell[i][c], sizeof(cell[i][c]), "-1");
      else if (isnan(v)) snprintf(cell[i][c], sizeof(cell[i][c]), "NaN");
      else snprintf(cell[i][c], sizeof(cell[i][c]), "%.6f", v);
    }
  }
  if (cnt >= 10) wi = 2;
  for (int c = 0; c < ncol; c++) {
    w[c] = (int)strlen(cols[c]);
    for (int i = 0; i < cnt; i++)
      if ((int)strlen(cell[i][c]) > w[c]) w[c] = (int)strlen(cell[i][c]);
  }
  /* pandas: index column, then each column right-aligned, two spaces apart */
  fprintf(f, "%*s  %*s", wi, "", wn, "n");
  for (int c = 0; c < ncol; c++) fprintf(f, "  %*s", w[c], cols[c]);
  fputc('\n', f);
  for (int i = 0; i < cnt; i++) {
    fprintf(f, "%-*d  %*s", wi, i, wn, ncell[i]);
    for (int c = 0; c < ncol; c++) fprintf(f, "  %*s", w[c], cell[i][c]);
    fputc('\n', f);
  }
  fputc('\n', f);
}

static void print(FILE *f, const bench_env *env, const peer_row *p, int np) {
  print_header(f, env, "# Benchmark (pattn-bench seed002: md_lrpe_cosine)");
  fprintf(f, "## Notation\n\n- pattn-%s: angles recomputed (the seed's Tri)\n"
             "- pattn-%s Ca: forward writes the f32 angle cache [h, n, d], backward reads it "
             "(the seed's Tri Ca)\n- other columns: peers from --compare (Tor: torch, "
             "Tor C: torch.compile)\n\nspeed: median ms; memory: peak MB pattn allocated, "
             "inputs and outputs included; bandwidth: bytes the op must move (x/dout read, "
             "out/dx written, cache) / time. $-1$ indicate error; NaN: not measured (peers' memory "
             "on CPU).\n\n",
          env->backend_name, env->backend_name);
  static const char *dims_text[] = {"sequence length is $n$", "sequence length is $n^2$",
                                    "sequence length is $n^3$"};
  for (int dims = 1; dims <= 3; dims++) {
    fprintf(f, "### %dd\n\n%dd version, %s.\n", dims, dims, dims_text[dims - 1]);
    for (int64_t l = 0; l <= 10; l += 10) {
      if (l) fprintf(f, "num extra token $l=%lld$.\n", (long long)l);
      fprintf(f, "```\n");
      for (int bwd = 0; bwd <= 1; bwd++)
        for (int metric = 0; metric < 3; metric++) print_table(f, env, p, np, dims, l, bwd, metric);
      fprintf(f, "```\n\n");
    }
  }
  print_failures(f, env);
}

const suite_def suite_seed002 = {"seed002", "md_lrpe_cosine fwd/bwd speed and memory, bf16, "
                                 "b=12 h=12 d=128, 1d/2d/3d, l=0/10 (seed 002)",
                                 run, print, 30.0, 0};
