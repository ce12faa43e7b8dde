/* Distributed ring attention and ring dilated attention (SPEC.md section 3) under mpirun:
 * every rank computes the one-context result of the whole sequence on a CPU reference
 * context, runs the distributed operator on its shard, and compares its rows. Covers
 * contiguous and zigzag sharding, causal and not, lse, GQA, both layouts, f32/f16/bf16;
 * ring dilated with both merges and segments shorter and longer than a shard (aligned to
 * shards or not); and ranks that disagree on shapes or options, which must all get
 * PATTN_ERR_INVALID_ARGUMENT (no hang).
 *
 *   mpirun -np W test-ring-mpi       backend from $PATTN_BACKEND (default cpu); exit 77 if it
 *                                    is not available here, unless $PATTN_REQUIRE_BACKENDS
 *                                    names it
 *   PATTN_TEST_COMM=nccl             (cuda) the comm is made from an NCCL communicator,
 *                                    rank r on CUDA device (local rank % device count)
 *
 * Not a cmocka program: a failed assertion on one rank would leave the others waiting in a
 * collective. Each case reports its failures and the ranks agree on the exit code. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "pattn/pattn.h"
#include "pattn/pattn_mpi.h"
#include "test_util.h"

#ifdef PATTN_TEST_NCCL
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <cuda_runtime_api.h>
#include "pattn/pattn_nccl.h"
#pragma GCC diagnostic pop
#else
/* what pattn_nccl.h declares, without nccl.h (ncclComm_t is struct ncclComm *) */
struct ncclComm;
pattn_status pattn_comm_create_nccl(pattn_context *ctx, struct ncclComm *comm, pattn_comm **out);
#endif

static int g_rank, g_size, g_fail, g_cases, g_verbose; /* g_verbose: $PATTN_TEST_VERBOSE */
static pattn_context *g_ctx, *g_ref;
static pattn_comm *g_comm;
#ifdef PATTN_TEST_NCCL
static ncclComm_t g_nccl;
#endif

#define CHECK(cond, ...)                                                 \
  do {                                                                   \
    if (!(cond)) {                                                       \
      fprintf(stderr, "[rank %d] FAIL %s:%d: ", g_rank, __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                                      \
      fprintf(stderr, "\n");                                             \
      g_fail++;                                                          \
    }                                                                    \
  } while (0)

static const char *dt_name(pattn_dtype dt) { return dt == PATTN_F32 ? "f32" : dt == PATTN_F16 ? "f16" : "bf16"; }

/* SPEC.md section 7 */
static void tolerances(pattn_dtype dt, double *rel, double *abs_) {
  *rel = dt == PATTN_F32 ? 1e-5 : dt == PATTN_F16 ? 2e-3 : 1.6e-2;
  *abs_ = dt == PATTN_F32 ? 1e-4 : dt == PATTN_F16 ? 1e-2 : 6e-2;
}

/* Host tensors [b][h][n][d] in the layout's order: element (ib, ih, i, j). */
static size_t idx(pattn_layout L, int64_t h, int64_t n, int64_t d, int64_t ib, int64_t ih, int64_t i, int64_t j) {
  return (size_t)(L == PATTN_LAYOUT_BHND ? ((ib * h + ih) * n + i) * d + j : ((ib * n + i) * h + ih) * d + j);
}

static pattn_tensor *mk(pattn_context *ctx, pattn_dtype dt, pattn_layout L, int64_t b, int64_t h, int64_t n, int64_t d,
                        const float *host) {
  int64_t shape[4] = {b, L == PATTN_LAYOUT_BHND ? h : n, L == PATTN_LAYOUT_BHND ? n : h, d};
  pattn_tensor *t = NULL;
  pattn_status st = pattn_tensor_create(ctx, dt, 4, shape, &t);
  CHECK(st == PATTN_OK, "tensor_create: %s", pattn_last_error(ctx));
  if (st == PATTN_OK && host) {
    st = pattn_tensor_write_f32(t, host, (size_t)(b * h * n * d));
    CHECK(st == PATTN_OK, "tensor_write: %s", pattn_last_error(ctx));
  }
  return t;
}

static float *rnd(uint64_t seed, size_t n, pattn_dtype dt) {
  float *x = malloc(n * sizeof *x);
  tu_rng r = tu_rng_seed(seed);
  tu_fill_normal(&r, x, n);
  tu_round_to(dt, x, n); /* what the device holds: the reference sees the same numbers */
  return x;
}

/* Local row i of rank r's shard -> global row (n_local rows, W ranks). */
static int64_t global_row(int zigzag, int r, int W, int64_t nl, int64_t i) {
  if (!zigzag) return (int64_t)r * nl + i;
  int64_t half = nl / 2;
  return i < half ? (int64_t)r * half + i : (int64_t)(2 * W - 1 - r) * half + (i - half);
}

/* Rows of rank r's shard out of a full host tensor. */
static float *shard(const float *full, pattn_layout L, int64_t b, int64_t h, int64_t N, int64_t d, int zigzag, int r, int W) {
  int64_t nl = N / W;
  float *s = malloc((size_t)(b * h * nl * d) * sizeof *s);
  for (int64_t ib = 0; ib < b; ib++)
    for (int64_t ih = 0; ih < h; ih++)
      for (int64_t i = 0; i < nl; i++)
        memcpy(&s[idx(L, h, nl, d, ib, ih, i, 0)], &full[idx(L, h, N, d, ib, ih, global_row(zigzag, r, W, nl, i), 0)],
               (size_t)d * sizeof *s);
  return s;
}

static float *readback(const pattn_tensor *t, size_t n) {
  float *x = malloc(n * sizeof *x);
  pattn_status st = pattn_tensor_read_f32(t, x, n);
  CHECK(st == PATTN_OK, "tensor_read: %s", pattn_status_string(st));
  return x;
}

static void compare(const char *what, const float *got, const float *want, size_t n, pattn_dtype dt) {
  double rel, ab;
  tolerances(dt, &rel, &ab);
  double e = tu_rel_l2(got, want, n), m = tu_max_abs(got, want, n);
  int bad = tu_count_nonfinite(got, want, n);
  CHECK(!bad && e <= rel && m <= ab, "%s: rel-L2 %.3g (tol %.3g), max abs %.3g (tol %.3g), %d non-finite", what, e, rel, m, ab, bad);
}

/* ---- ring attention ---- */

typedef struct ring_case {
  int64_t b, hq, hkv, nl, d; /* nl: positions per rank */
  pattn_layout L;
  pattn_dtype dt;
  int causal, zigzag, lse;
} ring_case;

static void ring_case_run(const ring_case *c, uint64_t seed) {
  const int W = g_size, r = g_rank;
  const int64_t N = c->nl * W, b = c->b, hq = c->hq, hkv = c->hkv, d = c->d;
  char what[160];
  snprintf(what, sizeof what, "ring W=%d b=%lld hq=%lld hkv=%lld n=%lld d=%lld %s %s causal=%d zigzag=%d lse=%d", W, (long long)b,
           (long long)hq, (long long)hkv, (long long)N, (long long)d, c->L == PATTN_LAYOUT_BHND ? "BHND" : "BNHD", dt_name(c->dt),
           c->causal, c->zigzag, c->lse);
  g_cases++;
  if (g_verbose) fprintf(stderr, "[rank %d] %s\n", g_rank, what);
  size_t nq = (size_t)(b * hq * N * d), nk = (size_t)(b * hkv * N * d);
  float *q = rnd(seed, nq, c->dt), *k = rnd(seed + 1, nk, c->dt), *v = rnd(seed + 2, nk, c->dt);

  /* the one-context result of the whole sequence */
  pattn_attention_desc ad = {0};
  ad.struct_size = sizeof ad;
  ad.layout = c->L;
  ad.causal = c->causal;
  pattn_tensor *fq = mk(g_ref, PATTN_F32, c->L, b, hq, N, d, q), *fk = mk(g_ref, PATTN_F32, c->L, b, hkv, N, d, k);
  pattn_tensor *fv = mk(g_ref, PATTN_F32, c->L, b, hkv, N, d, v), *fo = mk(g_ref, PATTN_F32, c->L, b, hq, N, d, NULL);
  int64_t lsh[3] = {b, hq, N};
  pattn_tensor *fl = NULL;
  pattn_tensor_create(g_ref, PATTN_F32, 3, lsh, &fl);
  pattn_status st = pattn_attention(g_ref, &ad, fq, fk, fv, NULL, fo, fl);
  CHECK(st == PATTN_OK, "%s: reference: %s", what, pattn_last_error(g_ref));
  float *ref = readback(fo, nq), *lref = readback(fl, (size_t)(b * hq * N));

  /* this rank's shard */
  float *sq = shard(q, c->L, b, hq, N, d, c->zigzag, r, W), *sk = shard(k, c->L, b, hkv, N, d, c->zigzag, r, W);
  float *sv = shard(v, c->L, b, hkv, N, d, c->zigzag, r, W), *sref = shard(ref, c->L, b, hq, N, d, c->zigzag, r, W);
  pattn_tensor *tq = mk(g_ctx, c->dt, c->L, b, hq, c->nl, d, sq), *tk = mk(g_ctx, c->dt, c->L, b, hkv, c->nl, d, sk);
  pattn_tensor *tv = mk(g_ctx, c->dt, c->L, b, hkv, c->nl, d, sv), *to = mk(g_ctx, c->dt, c->L, b, hq, c->nl, d, NULL);
  pattn_tensor *tl = NULL;
  int64_t llsh[3] = {b, hq, c->nl};
  if (c->lse) pattn_tensor_create(g_ctx, PATTN_F32, 3, llsh, &tl);
  pattn_ring_desc rd = {0};
  rd.struct_size = sizeof rd;
  rd.layout = c->L;
  rd.causal = c->causal;
  rd.zigzag = c->zigzag;
  rd.ring_size = 1;
  st = pattn_ring_attention(g_ctx, &rd, g_comm, tq, tk, tv, to, tl);
  CHECK(st == PATTN_OK, "%s: %s: %s", what, pattn_status_string(st), pattn_last_error(g_ctx));
  if (st == PATTN_OK) {
    size_t no = (size_t)(b * hq * c->nl * d);
    float *got = readback(to, no);
    compare(what, got, sref, no, c->dt);
    free(got);
    if (c->lse) {
      size_t nlse = (size_t)(b * hq * c->nl);
      float *gl = readback(tl, nlse), *wl = malloc(nlse * sizeof *wl);
      for (int64_t i = 0; i < b * hq; i++)
        for (int64_t j = 0; j < c->nl; j++) wl[i * c->nl + j] = lref[i * N + global_row(c->zigzag, r, W, c->nl, j)];
      char lw[200];
      snprintf(lw, sizeof lw, "%s (lse)", what);
      compare(lw, gl, wl, nlse, PATTN_F32 == c->dt ? PATTN_F32 : PATTN_F16);
      free(gl);
      free(wl);
    }
  }
  pattn_tensor *ts[] = {fq, fk, fv, fo, fl, tq, tk, tv, to, tl};
  for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) pattn_tensor_destroy(ts[i]);
  float *fs[] = {q, k, v, ref, lref, sq, sk, sv, sref};
  for (size_t i = 0; i < sizeof fs / sizeof *fs; i++) free(fs[i]);
}

static void ring_tests(void) {
  uint64_t seed = 1000;
  /* every combination of causal, zigzag, lse in f32 BHND with GQA */
  for (int causal = 0; causal < 2; causal++)
    for (int zigzag = 0; zigzag < 2; zigzag++)
      for (int lse = 0; lse < 2; lse++) {
        ring_case c = {1, 4, 2, 6, 16, PATTN_LAYOUT_BHND, PATTN_F32, causal, zigzag, lse};
        ring_case_run(&c, seed += 10);
      }
  /* BNHD, batch 2, half precision, odd head dim */
  ring_case more[] = {
      {2, 2, 2, 4, 8, PATTN_LAYOUT_BNHD, PATTN_F32, 1, 1, 1},
      {1, 2, 1, 8, 17, PATTN_LAYOUT_BNHD, PATTN_F32, 1, 0, 1},
      {1, 2, 2, 6, 16, PATTN_LAYOUT_BHND, PATTN_F16, 1, 1, 1},
      {1, 2, 2, 6, 16, PATTN_LAYOUT_BNHD, PATTN_BF16, 1, 0, 0},
      {1, 2, 2, 6, 16, PATTN_LAYOUT_BHND, PATTN_BF16, 0, 1, 1},
  };
  for (size_t i = 0; i < sizeof more / sizeof *more; i++) ring_case_run(&more[i], seed += 10);
}

/* ---- ring dilated attention ---- */

static void dilated_case_run(int64_t b, int64_t h, int64_t m, int64_t d, pattn_layout L, pattn_dtype dt, int merge, int causal,
                             int G, const int64_t *seg, const int64_t *rate, uint64_t seed) {
  const int W = g_size, r = g_rank;
  const int64_t N = m * W;
  char what[200];
  int w = snprintf(what, sizeof what, "ring-dilated W=%d h=%lld n=%lld %s %s merge=%s causal=%d seg/rate", W, (long long)h,
                   (long long)N, L == PATTN_LAYOUT_BHND ? "BHND" : "BNHD", dt_name(dt), merge ? "lse" : "groups", causal);
  for (int i = 0; i < G && w > 0 && w < (int)sizeof what; i++)
    w += snprintf(what + w, sizeof what - (size_t)w, " %lld/%lld", (long long)seg[i], (long long)rate[i]);
  g_cases++;
  if (g_verbose) fprintf(stderr, "[rank %d] %s\n", g_rank, what);
  size_t nf = (size_t)(b * h * N * d), nl = (size_t)(b * h * m * d);
  float *q = rnd(seed, nf, dt), *k = rnd(seed + 1, nf, dt), *v = rnd(seed + 2, nf, dt);
  pattn_dilated_desc dd = {0};
  dd.struct_size = sizeof dd;
  dd.layout = L;
  dd.causal = causal;
  dd.num_segments = G;
  dd.segment_lengths = seg;
  dd.dilation_rates = rate;
  dd.merge = merge ? PATTN_DILATED_MERGE_LSE : PATTN_DILATED_MERGE_HEAD_GROUPS;
  pattn_tensor *fq = mk(g_ref, PATTN_F32, L, b, h, N, d, q), *fk = mk(g_ref, PATTN_F32, L, b, h, N, d, k);
  pattn_tensor *fv = mk(g_ref, PATTN_F32, L, b, h, N, d, v), *fo = mk(g_ref, PATTN_F32, L, b, h, N, d, NULL);
  pattn_status st = pattn_dilated_attention(g_ref, &dd, fq, fk, fv, fo);
  CHECK(st == PATTN_OK, "%s: reference: %s", what, pattn_last_error(g_ref));
  float *ref = readback(fo, nf);
  float *sq = shard(q, L, b, h, N, d, 0, r, W), *sk = shard(k, L, b, h, N, d, 0, r, W), *sv = shard(v, L, b, h, N, d, 0, r, W);
  float *sref = shard(ref, L, b, h, N, d, 0, r, W);
  pattn_tensor *tq = mk(g_ctx, dt, L, b, h, m, d, sq), *tk = mk(g_ctx, dt, L, b, h, m, d, sk);
  pattn_tensor *tv = mk(g_ctx, dt, L, b, h, m, d, sv), *to = mk(g_ctx, dt, L, b, h, m, d, NULL);
  st = pattn_ring_dilated_attention(g_ctx, &dd, g_comm, tq, tk, tv, to);
  CHECK(st == PATTN_OK, "%s: %s: %s", what, pattn_status_string(st), pattn_last_error(g_ctx));
  if (st == PATTN_OK) {
    float *got = readback(to, nl);
    compare(what, got, sref, nl, dt);
    free(got);
  }
  pattn_tensor *ts[] = {fq, fk, fv, fo, tq, tk, tv, to};
  for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) pattn_tensor_destroy(ts[i]);
  float *fs[] = {q, k, v, ref, sq, sk, sv, sref};
  for (size_t i = 0; i < sizeof fs / sizeof *fs; i++) free(fs[i]);
}

/* A divisor of N that neither divides m nor is a multiple of it (segments that straddle
 * shard boundaries unaligned), or 0. */
static int64_t straddling_segment(int64_t N, int64_t m) {
  for (int64_t s = m + 1; s < N; s++)
    if (N % s == 0 && s % m) return s;
  for (int64_t s = 2; s < m; s++)
    if (N % s == 0 && m % s) return s;
  return 0;
}

static void dilated_tests(void) {
  const int W = g_size;
  const int64_t m = 12, N = m * W, h = 4;
  uint64_t seed = 5000;
  int64_t odd = straddling_segment(N, m);
  for (int merge = 0; merge < 2; merge++)
    for (int causal = 0; causal < 2; causal++) {
      /* segments inside a shard, and one the length of the whole sequence */
      int64_t s1[3] = {m / 2, N, N}, r1[3] = {1, 2, 3};
      dilated_case_run(1, h, m, 8, PATTN_LAYOUT_BNHD, PATTN_F32, merge, causal, 3, s1, r1, seed += 10);
      /* a segment of two shards (or the sequence), and unaligned ones */
      int64_t s2[2] = {W % 2 ? N : 2 * m, odd ? odd : N}, r2[2] = {2, 3};
      dilated_case_run(1, h, m, 8, PATTN_LAYOUT_BHND, PATTN_F32, merge, causal, 2, s2, r2, seed += 10);
    }
  /* half precision, batch 2, a rate larger than the heads (LSE: empty head blocks) */
  int64_t s3[2] = {m, N}, r3[2] = {1, 5};
  dilated_case_run(2, 3, m, 16, PATTN_LAYOUT_BNHD, PATTN_F16, 1, 1, 2, s3, r3, seed += 10);
  dilated_case_run(2, 3, m, 16, PATTN_LAYOUT_BNHD, PATTN_BF16, 0, 0, 2, s3, r3, seed += 10);
}

/* ---- ranks that disagree ---- */

static void expect_invalid_everywhere(const char *what, pattn_status st) {
  g_cases++;
  CHECK(st == PATTN_ERR_INVALID_ARGUMENT, "%s: got %s (%s), want INVALID_ARGUMENT on every rank", what, pattn_status_string(st),
        pattn_last_error(g_ctx));
}

static void mismatch_tests(void) {
  const int W = g_size, last = g_rank == W - 1;
  const int64_t b = 1, h = 2, d = 8;
  /* the last rank passes a longer shard (with W = 1: an odd shard with zigzag) */
  int64_t nl = W > 1 && last ? 6 : 4;
  if (W == 1) nl = 5;
  pattn_tensor *q = mk(g_ctx, PATTN_F32, PATTN_LAYOUT_BHND, b, h, nl, d, NULL), *k = mk(g_ctx, PATTN_F32, PATTN_LAYOUT_BHND, b, h, nl, d, NULL);
  pattn_tensor *v = mk(g_ctx, PATTN_F32, PATTN_LAYOUT_BHND, b, h, nl, d, NULL), *o = mk(g_ctx, PATTN_F32, PATTN_LAYOUT_BHND, b, h, nl, d, NULL);
  pattn_ring_desc rd = {0};
  rd.struct_size = sizeof rd;
  rd.zigzag = W == 1;
  expect_invalid_everywhere("ring, mismatched shard lengths", pattn_ring_attention(g_ctx, &rd, g_comm, q, k, v, o, NULL));
  for (int i = 0; i < 4; i++) pattn_tensor_destroy(i == 0 ? q : i == 1 ? k : i == 2 ? v : o);

  /* equal shapes, different options: causal on rank 0 only (W = 1: a bad scale) */
  q = mk(g_ctx, PATTN_F32, PATTN_LAYOUT_BHND, b, h, 4, d, NULL);
  k = mk(g_ctx, PATTN_F32, PATTN_LAYOUT_BHND, b, h, 4, d, NULL);
  v = mk(g_ctx, PATTN_F32, PATTN_LAYOUT_BHND, b, h, 4, d, NULL);
  o = mk(g_ctx, PATTN_F32, PATTN_LAYOUT_BHND, b, h, 4, d, NULL);
  rd.zigzag = 0;
  rd.causal = g_rank == 0;
  if (W == 1) rd.scale = -1.0f;
  expect_invalid_everywhere("ring, mismatched causal", pattn_ring_attention(g_ctx, &rd, g_comm, q, k, v, o, NULL));
  /* only the last rank's own arguments are bad (out missing) */
  rd.causal = 0;
  rd.scale = 0;
  expect_invalid_everywhere("ring, one rank with out NULL", pattn_ring_attention(g_ctx, &rd, g_comm, q, k, v, last ? NULL : o, NULL));

  /* dilated: the last rank has another segment length (W = 1: one that does not divide n) */
  int64_t seg_ok[1] = {4 * W}, seg_bad[1] = {W > 1 ? 4 : 3}, rate[1] = {1};
  pattn_dilated_desc dd = {0};
  dd.struct_size = sizeof dd;
  dd.num_segments = 1;
  dd.segment_lengths = last ? seg_bad : seg_ok;
  dd.dilation_rates = rate;
  expect_invalid_everywhere("ring dilated, mismatched segment_lengths", pattn_ring_dilated_attention(g_ctx, &dd, g_comm, q, k, v, o));
  /* and the comm still works afterwards */
  dd.segment_lengths = seg_ok;
  pattn_status st = pattn_ring_dilated_attention(g_ctx, &dd, g_comm, q, k, v, o);
  g_cases++;
  CHECK(st == PATTN_OK, "ring dilated after a mismatch: %s", pattn_last_error(g_ctx));
  pattn_tensor_destroy(q);
  pattn_tensor_destroy(k);
  pattn_tensor_destroy(v);
  pattn_tensor_destroy(o);
}

/* pattn_comm_create_nccl on a backend without NCCL: UNSUPPORTED naming it, the comm
 * pointer never touched (libpattn only forwards it). */
static void nccl_forwarder_tests(void) {
  if (!strcmp(pattn_context_backend(g_ctx), "cuda")) return;
  pattn_comm *c = (pattn_comm *)&g_fail;
  pattn_status st = pattn_comm_create_nccl(g_ctx, (struct ncclComm *)&g_size, &c);
  g_cases++;
  CHECK(st == PATTN_ERR_UNSUPPORTED && c == NULL && strstr(pattn_last_error(g_ctx), pattn_context_backend(g_ctx)),
        "comm_create_nccl on %s: got %s (%s)", pattn_context_backend(g_ctx), pattn_status_string(st), pattn_last_error(g_ctx));
  st = pattn_comm_create_nccl(g_ctx, NULL, &c);
  g_cases++;
  CHECK(st == PATTN_ERR_INVALID_ARGUMENT, "comm_create_nccl with a NULL comm: got %s", pattn_status_string(st));
  pattn_comm_destroy(NULL);
}

/* ---- setup ---- */

static int required(const char *backend) {
  const char *req = getenv("PATTN_REQUIRE_BACKENDS");
  if (!req) return 0;
  size_t n = strlen(backend);
  for (const char *p = req; (p = strstr(p, backend)); p += n)
    if ((p == req || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return 1;
  return 0;
}

#ifdef PATTN_TEST_NCCL
static int local_rank(void) {
  const char *e = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
  if (!e) e = getenv("MPI_LOCALRANKID");
  if (!e) e = getenv("SLURM_LOCALID");
  return e ? atoi(e) : g_rank;
}
#endif

/* The context (and, for NCCL, the device) of this rank. Returns 0 or a reason. */
static const char *open_context(const char *backend, int use_nccl, char *device, size_t device_len) {
  pattn_options o;
  pattn_options_default(&o);
  o.backend = backend;
  device[0] = '\0';
#ifdef PATTN_TEST_NCCL
  if (use_nccl) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev < 1) return "no CUDA device";
    /* NCCL takes one rank per GPU: more ranks than GPUs here is a skip */
    if (g_size > ndev) return "fewer CUDA devices than ranks (NCCL needs one GPU per rank)";
    int dev = local_rank() % ndev;
    if (cudaSetDevice(dev) != cudaSuccess) return "cudaSetDevice failed";
    snprintf(device, device_len, "%d", dev);
    o.device = device;
  }
#else
  (void)use_nccl;
  (void)device_len;
#endif
  if (pattn_context_create(&g_ctx, &o) != PATTN_OK) return pattn_last_error(NULL);
  return NULL;
}

static pattn_status open_comm(int use_nccl) {
#ifdef PATTN_TEST_NCCL
  if (use_nccl) {
    ncclUniqueId id;
    if (g_rank == 0 && ncclGetUniqueId(&id) != ncclSuccess) return PATTN_ERR_COMM;
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    ncclResult_t r = ncclCommInitRank(&g_nccl, g_size, id, g_rank);
    if (r != ncclSuccess) {
      fprintf(stderr, "[rank %d] ncclCommInitRank: %s\n", g_rank, ncclGetErrorString(r));
      return PATTN_ERR_COMM;
    }
    return pattn_comm_create_nccl(g_ctx, g_nccl, &g_comm);
  }
#else
  (void)use_nccl;
#endif
  return pattn_comm_create_mpi(g_ctx, MPI_COMM_WORLD, &g_comm);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  const char *backend = getenv("PATTN_BACKEND");
  if (!backend || !*backend) backend = "cpu";
  const char *commk = getenv("PATTN_TEST_COMM"), *verbose = getenv("PATTN_TEST_VERBOSE");
  g_verbose = verbose && *verbose && strcmp(verbose, "0");
  int use_nccl = commk && !strcmp(commk, "nccl");
#ifndef PATTN_TEST_NCCL
  if (use_nccl) {
    if (g_rank == 0) fprintf(stderr, "PATTN_TEST_COMM=nccl: this test was built without NCCL\n");
    MPI_Finalize();
    return 77;
  }
#endif

  /* skip (77) only when every rank lacks the backend and nobody requires it */
  char device[32];
  const char *why = open_context(backend, use_nccl, device, sizeof device);
  int have = why == NULL, all_have = 0;
  MPI_Allreduce(&have, &all_have, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (!all_have) {
    int req = required(backend);
    if (!have) fprintf(stderr, "[rank %d] backend %s not available: %s%s\n", g_rank, backend, why, req ? " (required)" : "");
    pattn_context_destroy(g_ctx);
    MPI_Finalize();
    return req ? 1 : 77;
  }
  pattn_status st;
  g_ref = tu_context("cpu", 1, &st);
  if (!g_ref) {
    fprintf(stderr, "[rank %d] no CPU reference context: %s\n", g_rank, pattn_last_error(NULL));
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  st = open_comm(use_nccl);
  int ok = st == PATTN_OK, all_ok = 0;
  if (!ok) fprintf(stderr, "[rank %d] comm_create_%s: %s\n", g_rank, use_nccl ? "nccl" : "mpi", pattn_last_error(g_ctx));
  MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (!all_ok) MPI_Abort(MPI_COMM_WORLD, 1);
  if (g_rank == 0)
    printf("ring-mpi: W=%d backend=%s (%s) comm=%s\n", g_size, backend, pattn_context_device(g_ctx), use_nccl ? "nccl" : "mpi");

  ring_tests();
  dilated_tests();
  mismatch_tests();
  nccl_forwarder_tests();

  int fails = 0;
  MPI_Allreduce(&g_fail, &fails, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (g_rank == 0) printf("ring-mpi: W=%d: %d cases per rank, %d failures over all ranks\n", g_size, g_cases, fails);
  pattn_comm_destroy(g_comm);
#ifdef PATTN_TEST_NCCL
  if (g_nccl) ncclCommDestroy(g_nccl);
#endif
  pattn_context_destroy(g_ctx);
  pattn_context_destroy(g_ref);
  MPI_Finalize();
  return fails ? 1 : 0;
}
