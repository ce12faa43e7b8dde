/* pattn-bench suite "ring-scaling": distributed ring attention (pattn_ring_attention with a
 * comm) under mpirun, against W times the one-GPU flash throughput.
 *
 * GPU command (4 H200s, device kind nvidia-h200-x4, from the repository root; the modules
 * of a build tree are found through PATTN_BACKEND_DIR):
 *   meson setup /tmp/pattn-rs -Dbuildtype=release -Dcuda-archs=90 -Dcuda=enabled \
 *     -Dmpi=enabled -Dnccl=enabled -Dopencl=disabled -Dtests=false && ninja -C /tmp/pattn-rs &&
 *   mkdir -p $OUT/ring && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
 *     PATTN_BACKEND_DIR=/tmp/pattn-rs/backends/cuda PATTN_CACHE_DIR=/tmp/pattn-cache \
 *     mpirun -np 4 --bind-to none -x PATTN_BACKEND_DIR -x PATTN_CACHE_DIR \
 *     /tmp/pattn-rs/bench/pattn-bench --suite ring-scaling --backend cuda --out $OUT/ring \
 *     | tee $OUT/ring/ring-scaling.md
 * (then copy $OUT/ring/ring-scaling.{md,csv,json} to bench/results/).
 * On a CPU: mpirun --oversubscribe -np 2 build/bench/pattn-bench --suite ring-scaling \
 *     --backend cpu --ring-tokens 256      (about 10 s on 2 cores; --ring-tokens 1024: 2 min)
 *
 * With -np P, rings of W = 1, 2, 4, ... < P and P ranks are the first W ranks (one run gives
 * the whole table); rank r uses device (local rank % device count). Per W: weak scaling
 * (T = --ring-tokens, default 32768, per rank; n = W*T) and strong scaling (n = 4T = 131072
 * by default, n/W per rank), b=1, h=16, d=128, bf16 (--dtype), BHND, for causal zigzag,
 * causal contiguous and non-causal sharding. Timing: warm-up, then the median of --reps
 * runs, each started after pattn_synchronize + a barrier and ended by every rank's
 * pattn_synchronize; the time of a run is the slowest rank's. FLOPs: 4*b*h*n^2*d over the
 * global n, halved for causal (ops.c's count).
 *
 * Efficiency = ring throughput / (W * one-GPU flash throughput), the baseline measured in
 * the same run by rank 0 with pattn_attention(FLASH) on what one GPU would hold: weak, the
 * per-rank n = T (one GPU's share of the work at W = 1); strong, the whole n = 4T. The causal
 * rows compare with causal flash, non-causal with non-causal.
 *
 * Robustness: every step that can fail on one rank (context, comm, tensors, a run) is
 * agreed with an MPI_Allreduce before the next collective, and the failing rank's reason
 * is broadcast, so every rank writes the same ✗ row and none waits forever. Only rank 0
 * prints. Built without MPI, the suite gives one ✗ row. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#ifdef PATTN_BENCH_MPI
#include <mpi.h>

#include <pattn/pattn_mpi.h>
#ifdef PATTN_BENCH_NCCL
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <cuda_runtime_api.h>

#include <pattn/pattn_nccl.h>
#pragma GCC diagnostic pop
#endif
#endif

#define SUITE "ring-scaling"
#define WHY 256
#define B 1
#define H 16
#define D 128

static int64_t tokens(const bench_env *env) {
  return env->opts->ring_tokens > 0 ? env->opts->ring_tokens : 32768;
}

static int64_t shape_of(const bench_row *r, const char *name) {
  for (int k = 0; k < r->nshape; k++)
    if (!strcmp(r->shape_name[k], name)) return r->shape_val[k];
  return -1;
}

/* the row's shape: global n, per-rank n, W and the sharding (the spec's nq is the global n) */
static bench_row *ring_row(bench_env *env, const char *op, const char *impl, const op_spec *s,
                           int W, int zigzag) {
  bench_row *r = row_new(env, SUITE, op, impl, s->dtype);
  static bench_row dummy; /* only when the row array cannot grow */
  if (!r) {
    memset(&dummy, 0, sizeof(dummy));
    r = &dummy;
  }
  row_shape(r, "b", s->b);
  row_shape(r, "h", s->h);
  row_shape(r, "d", s->d);
  row_shape(r, "n", s->nq);
  row_shape(r, "nl", s->nq / W);
  row_shape(r, "W", W);
  row_shape(r, "causal", s->causal);
  row_shape(r, "zigzag", zigzag);
  row_finish_key(r);
  return r;
}

#ifndef PATTN_BENCH_MPI

pattn_status ring_scaling_init(bench_opts *o, pattn_context **ctx) {
  return bench_context(o, -1, o->threads, ctx);
}

void ring_scaling_finalize(void) {}

static void run(bench_env *env) {
  op_spec s = spec_base(OP_RING, suite_dtype(env, PATTN_BF16), B, H, tokens(env), tokens(env), D);
  s.causal = 1;
  env->total_planned = 1;
  bench_row *r = ring_row(env, "ring-weak", "ring causal zigzag", &s, 1, 1);
  row_fail(r, ROW_FAIL, "built without MPI");
  bench_progress(env, r);
}

#else

/* the three shardings of a row */
static const struct variant {
  const char *name;
  int         causal, zigzag;
} k_var[3] = {{"causal zigzag", 1, 1}, {"causal contiguous", 1, 0}, {"non-causal", 0, 0}};

static int g_mpi;                    /* MPI_Init called here */
static int g_rank, g_size, g_local;  /* world rank and size, rank on this node */
static int g_dev = -1;               /* device index of this rank; -1: the backend's choice */
static char g_device[16];

/* Every rank of c learns whether all were ok; if not, why (all ranks) is the first failing
 * rank's reason. Also a barrier. */
static int agree(MPI_Comm c, int ok, char *why) {
  int me, first, minr;
  MPI_Comm_rank(c, &me);
  first = ok ? INT_MAX : me;
  MPI_Allreduce(&first, &minr, 1, MPI_INT, MPI_MIN, c);
  if (minr == INT_MAX) return 1;
  MPI_Bcast(why, WHY, MPI_CHAR, minr, c);
  why[WHY - 1] = '\0';
  return 0;
}

/* A barrier that sleeps: ranks waiting for rank 0's baselines or for a smaller ring must
 * not spin on the cores the CPU backend computes on. */
static void idle_barrier(void) {
  MPI_Request req;
  int done = 0;
  if (MPI_Ibarrier(MPI_COMM_WORLD, &req) != MPI_SUCCESS) {
    MPI_Barrier(MPI_COMM_WORLD);
    return;
  }
  struct timespec ms = {0, 1000000};
  while (MPI_Test(&req, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && !done) nanosleep(&ms, NULL);
}

static void status_why(char *why, pattn_context *ctx, const char *where, pattn_status st) {
  const char *msg = pattn_last_error(ctx);
  snprintf(why, WHY, "rank %d: %s: %s%s%s", g_rank, where, pattn_status_string(st),
           msg && *msg ? ": " : "", msg ? msg : "");
}

/* ---- process set-up: MPI, this rank's device and context ---- */

static pattn_status context_on(bench_opts *o, int dev, pattn_context **ctx) {
  snprintf(g_device, sizeof(g_device), "%d", dev);
  o->device = g_device;
  g_dev = dev;
  return bench_context(o, -1, o->threads, ctx);
}

/* device (local rank % count): the count from CUDA where NCCL brought cudart, else by
 * trying indices below the local rank when the local rank's own index does not exist */
static pattn_status context_local(bench_opts *o, const char *be, pattn_context **ctx) {
#ifdef PATTN_BENCH_NCCL
  int ndev = 0;
  if ((!be || !strcmp(be, "cuda") || !strcmp(be, "auto")) && cudaGetDeviceCount(&ndev) == cudaSuccess &&
      ndev > 0)
    return context_on(o, g_local % ndev, ctx);
#endif
  pattn_status st = context_on(o, g_local, ctx);
  for (int i = g_local - 1; st == PATTN_ERR_NO_DEVICE && i >= 0; i--) {
    st = context_on(o, i, ctx);
    if (st == PATTN_OK && g_local % (i + 1) != i) { /* i + 1 devices: not ours */
      pattn_context_destroy(*ctx);
      *ctx = NULL;
      st = context_on(o, g_local % (i + 1), ctx);
    }
  }
  (void)be;
  return st;
}

pattn_status ring_scaling_init(bench_opts *o, pattn_context **ctx) {
  char why[WHY] = "";
  int inited = 0;
  *ctx = NULL;
  MPI_Initialized(&inited);
  if (!inited) {
    if (MPI_Init(NULL, NULL) != MPI_SUCCESS) {
      fprintf(stderr, "pattn-bench: MPI_Init failed\n");
      return PATTN_ERR_COMM;
    }
    g_mpi = 1;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  MPI_Comm node;
  g_local = g_rank;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node) ==
      MPI_SUCCESS) {
    MPI_Comm_rank(node, &g_local);
    MPI_Comm_free(&node);
  }
  if (g_rank != 0) {
    o->quiet = 1;
    o->no_output = 1;
  }

  /* a device given (--device, $PATTN_DEVICE) or the CPU: as given; else the local rank's */
  const char *be = o->backend ? o->backend : getenv("PATTN_BACKEND");
  const char *dev_env = getenv("PATTN_DEVICE");
  if (be && !*be) be = NULL;
  pattn_status st;
  if (o->device || (dev_env && *dev_env) || (be && !strcmp(be, "cpu"))) {
    st = bench_context(o, -1, o->threads, ctx);
    const char *d = o->device ? o->device : dev_env;
    if (d && d[0] >= '0' && d[0] <= '9') g_dev = atoi(d);
  } else {
    st = context_local(o, be, ctx);
  }
  if (st != PATTN_OK)
    snprintf(why, WHY, "rank %d: cannot create a context (backend %s, device %s): %s: %s", g_rank,
             be ? be : "auto", o->device ? o->device : "default", pattn_status_string(st),
             pattn_last_error(NULL));
  int ok = agree(MPI_COMM_WORLD, st == PATTN_OK, why);
  if (ok) { /* auto may land on different backends on different ranks */
    const char *name = pattn_context_backend(*ctx);
    int id = !strcmp(name, "cpu") ? 0 : !strcmp(name, "opencl") ? 1 : !strcmp(name, "cuda") ? 2 : 3;
    int lo, hi;
    MPI_Allreduce(&id, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&id, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (lo != hi) {
      ok = 0;
      snprintf(why, WHY, "the ranks opened different backends (rank %d: %s); pass --backend",
               g_rank, name);
    }
  }
  if (ok) return PATTN_OK;
  if (g_rank == 0) fprintf(stderr, "pattn-bench: ring-scaling: %s\n", why);
  pattn_context_destroy(*ctx);
  *ctx = NULL;
  return st != PATTN_OK ? st : PATTN_ERR_NO_DEVICE;
}

void ring_scaling_finalize(void) {
  if (g_mpi) MPI_Finalize();
  g_mpi = 0;
}

/* ---- one ring of W ranks: its comm ---- */

typedef struct ring {
  MPI_Comm    mpi;   /* the first W ranks of the world */
  int         W, me;
  pattn_comm *comm;
  const char *kind;  /* "nccl" | "mpi" */
#ifdef PATTN_BENCH_NCCL
  ncclComm_t nccl;
#endif
} ring;

#ifdef PATTN_BENCH_NCCL
/* NCCL needs the cuda backend and one GPU per rank on each node: checked (and agreed)
 * before ncclCommInitRank, which would otherwise wait for ranks that never join. */
static int nccl_open(bench_env *env, ring *r, char *why) {
  int ndev = 0, nlocal = 1;
  MPI_Comm node;
  if (MPI_Comm_split_type(r->mpi, MPI_COMM_TYPE_SHARED, r->me, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
    MPI_Comm_size(node, &nlocal);
    MPI_Comm_free(&node);
  }
  int ok = 1;
  if (strcmp(env->backend_name, "cuda")) {
    ok = 0;
    snprintf(why, WHY, "nccl needs the cuda backend (this is %s)", env->backend_name);
  } else if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev < nlocal) {
    ok = 0;
    snprintf(why, WHY, "rank %d: nccl needs one GPU per rank: %d ranks on this node, %d GPUs",
             g_rank, nlocal, ndev);
  } else if (g_dev >= 0 && cudaSetDevice(g_dev) != cudaSuccess) {
    ok = 0;
    snprintf(why, WHY, "rank %d: cudaSetDevice(%d) failed", g_rank, g_dev);
  }
  if (!agree(r->mpi, ok, why)) return 0;

  struct { int ok; ncclUniqueId id; } msg;
  memset(&msg, 0, sizeof(msg));
  if (r->me == 0) msg.ok = ncclGetUniqueId(&msg.id) == ncclSuccess;
  MPI_Bcast(&msg, (int)sizeof(msg), MPI_BYTE, 0, r->mpi);
  if (!msg.ok) {
    snprintf(why, WHY, "ncclGetUniqueId failed on rank 0");
    return 0;
  }
  ncclResult_t nr = ncclCommInitRank(&r->nccl, r->W, msg.id, r->me);
  pattn_status st = PATTN_OK;
  if (nr != ncclSuccess) {
    r->nccl = NULL;
    snprintf(why, WHY, "rank %d: ncclCommInitRank: %s", g_rank, ncclGetErrorString(nr));
  } else {
    st = pattn_comm_create_nccl(env->ctx, r->nccl, &r->comm);
    if (st != PATTN_OK) status_why(why, env->ctx, "pattn_comm_create_nccl", st);
  }
  if (agree(r->mpi, nr == ncclSuccess && st == PATTN_OK, why)) {
    r->kind = "nccl";
    return 1;
  }
  pattn_comm_destroy(r->comm);
  r->comm = NULL;
  if (r->nccl) ncclCommDestroy(r->nccl);
  r->nccl = NULL;
  return 0;
}
#endif

static int mpi_open(bench_env *env, ring *r, char *why) {
  pattn_status st = pattn_comm_create_mpi(env->ctx, r->mpi, &r->comm);
  if (st != PATTN_OK) status_why(why, env->ctx, "pattn_comm_create_mpi", st);
  if (agree(r->mpi, st == PATTN_OK, why)) {
    r->kind = "mpi";
    return 1;
  }
  pattn_comm_destroy(r->comm);
  r->comm = NULL;
  return 0;
}

/* --comm nccl: NCCL or nothing; --comm mpi: MPI; default: NCCL on cuda when it works */
static int ring_open(bench_env *env, ring *r, char *why) {
  const char *want = env->opts->comm;
#ifdef PATTN_BENCH_NCCL
  if (want ? !strcmp(want, "nccl") : !strcmp(env->backend_name, "cuda")) {
    if (nccl_open(env, r, why)) return 1;
    if (want) return 0;
    if (g_rank == 0 && !env->opts->quiet)
      fprintf(stderr, "[%s W=%d] nccl not used (%s): mpi instead\n", SUITE, r->W, why);
  }
#else
  if (want && !strcmp(want, "nccl")) {
    snprintf(why, WHY, "pattn-bench was built without NCCL (--comm nccl)");
    return 0;
  }
#endif
  return mpi_open(env, r, why);
}

static void ring_close(ring *r) {
  pattn_comm_destroy(r->comm);
#ifdef PATTN_BENCH_NCCL
  if (r->nccl) ncclCommDestroy(r->nccl);
#endif
}

/* ---- one distributed row ---- */

static void fill(float *x, size_t n, uint64_t seed) {
  uint64_t s = 0x9E3779B97F4A7C15ull ^ seed;
  for (size_t i = 0; i < n; i++) {
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    /* uniform in [-sqrt(3), sqrt(3)): unit variance, as ops.c's inputs */
    x[i] = (float)((double)(s >> 11) * (1.0 / 9007199254740992.0) * 3.4641016 - 1.7320508);
  }
}

/* q k v out of this rank's shard [b, h, nl, d] */
static pattn_status shard_setup(pattn_context *ctx, const op_spec *s, int64_t nl, pattn_tensor **t,
                                char *why) {
  int64_t shp[4] = {s->b, s->h, nl, s->d};
  size_t n = (size_t)(s->b * s->h * nl * s->d);
  float *x = malloc(n * sizeof(float));
  if (!x) {
    snprintf(why, WHY, "rank %d: host out of memory for the inputs", g_rank);
    return PATTN_ERR_OUT_OF_MEMORY;
  }
  pattn_status st = PATTN_OK;
  for (int i = 0; i < 4 && st == PATTN_OK; i++) {
    st = pattn_tensor_create(ctx, s->dtype, 4, shp, &t[i]);
    if (st == PATTN_OK && i < 3) {
      fill(x, n, (uint64_t)(g_rank * 4 + i));
      st = pattn_tensor_write_f32(t[i], x, n);
    }
  }
  free(x);
  if (st != PATTN_OK) status_why(why, ctx, "setup", st);
  return st;
}

/* One synchronised run on every rank of the ring: seconds of the slowest rank, or -1 with
 * why (on every rank). */
static double ring_run(pattn_context *ctx, ring *r, const pattn_ring_desc *rd, pattn_tensor **t,
                       char *why) {
  pattn_status st = pattn_synchronize(ctx);
  if (st != PATTN_OK) status_why(why, ctx, "synchronize", st);
  if (!agree(r->mpi, st == PATTN_OK, why)) return -1; /* also the start barrier */
  double t0 = bench_now();
  st = pattn_ring_attention(ctx, rd, r->comm, t[0], t[1], t[2], t[3], NULL);
  if (st == PATTN_OK) st = pattn_synchronize(ctx);
  double mine = bench_now() - t0, slowest = 0;
  if (st != PATTN_OK) status_why(why, ctx, "run", st);
  if (!agree(r->mpi, st == PATTN_OK, why)) return -1;
  MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, r->mpi);
  return slowest;
}

/* Times the ring on shards of n/W rows, as measure.c times one context: warm-up (a second
 * one when the first was short), then --reps runs, fewer for runs over 2 s or the budget.
 * Memory: the largest per-rank peak over the rank's base. */
static void ring_measure(bench_env *env, ring *r, const op_spec *s, int zigzag, bench_row *row) {
  const bench_opts *o = env->opts;
  pattn_context *ctx = env->ctx;
  double budget = o->max_seconds > 0 ? o->max_seconds : 1e30;
  int64_t nl = s->nq / r->W;
  char why[WHY] = "";
  pattn_tensor *t[4] = {NULL, NULL, NULL, NULL};
  pattn_ring_desc rd;
  memset(&rd, 0, sizeof(rd));
  rd.struct_size = sizeof(rd);
  rd.layout = PATTN_LAYOUT_BHND;
  rd.causal = s->causal;
  rd.zigzag = zigzag;
  row->flops = op_flops(s); /* over the global n */
  row->bytes = op_bytes(s);

  size_t base = 0, after = 0, peak = 0, in_use = 0;
  if (pattn_memory_stats(ctx, &base, &peak) != PATTN_OK) base = 0;
  pattn_status st = shard_setup(ctx, s, nl, t, why);
  double *times = NULL;
  if (!agree(r->mpi, st == PATTN_OK, why)) goto fail;
  if (pattn_memory_stats(ctx, &after, &peak) != PATTN_OK) after = base;
  pattn_memory_reset_peak(ctx);

  double t_warm = ring_run(ctx, r, &rd, t, why);
  if (t_warm < 0) goto fail;
  double mem[3] = {0, 0, 0}, mem_max[3];
  if (pattn_memory_stats(ctx, &in_use, &peak) == PATTN_OK) {
    if (peak < after) peak = after;
    mem[0] = (double)(peak - base) / (1024.0 * 1024.0);
    mem[1] = (double)(peak - after) / (1024.0 * 1024.0);
    mem[2] = (double)(after - base) / (1024.0 * 1024.0);
  }
  MPI_Allreduce(mem, mem_max, 3, MPI_DOUBLE, MPI_MAX, r->mpi);
  row->memory_mb = mem_max[0];
  row->workspace_mb = mem_max[1];
  row->inputs_mb = mem_max[2];
  if (t_warm < 1.0 && t_warm < budget / 4 && (t_warm = ring_run(ctx, r, &rd, t, why)) < 0) goto fail;

  /* every rank sees the same t_warm (the slowest rank's), so all take the same runs */
  int runs = o->reps;
  if (t_warm > 2.0 && runs > 3) runs = 3;
  if (t_warm * runs > budget) runs = (int)(budget / t_warm);
  if (runs < 1) runs = 1;
  times = malloc((size_t)runs * sizeof(double));
  int have = times != NULL;
  if (!have) snprintf(why, WHY, "rank %d: host out of memory", g_rank);
  if (!agree(r->mpi, have, why)) goto fail;
  for (int i = 0; i < runs; i++)
    if ((times[i] = ring_run(ctx, r, &rd, t, why)) < 0) goto fail;
  if (runs < o->reps)
    snprintf(row->note, sizeof(row->note), "%d run%s (%s)", runs, runs == 1 ? "" : "s",
             t_warm > 2.0 ? "over 2 s per run" : "--max-seconds");
  row_times(row, times, runs);
  goto done;
fail:
  row_fail(row, ROW_FAIL, "%s", why);
done:
  free(times);
  for (int i = 0; i < 4; i++) pattn_tensor_destroy(t[i]);
}

static void ring_rows(bench_env *env, ring *r, int open_ok, const char *open_why) {
  pattn_dtype dt = suite_dtype(env, PATTN_BF16);
  int64_t T = tokens(env);
  for (int strong = 0; strong < 2; strong++)
    for (int v = 0; v < 3; v++) {
      const struct variant *var = &k_var[v];
      int64_t n = strong ? 4 * T : T * r->W;
      op_spec s = spec_base(OP_RING, dt, B, H, n, n, D);
      s.causal = var->causal;
      s.ring_size = r->W;
      char impl[64];
      snprintf(impl, sizeof(impl), "ring %s (%s)", var->name, open_ok ? r->kind : "no comm");
      bench_row *row = ring_row(env, strong ? "ring-strong" : "ring-weak", impl, &s, r->W, var->zigzag);
      if (!open_ok)
        row_fail(row, ROW_FAIL, "comm: %s", open_why);
      else if (n % r->W || (var->zigzag && (n / r->W) % 2))
        row_fail(row, ROW_FAIL, "n = %lld does not split into %d %s shards", (long long)n, r->W,
                 var->zigzag ? "even (zigzag)" : "equal");
      else
        ring_measure(env, r, &s, var->zigzag, row);
      bench_progress(env, row);
    }
}

/* rings of 1, 2, 4, ... and all ranks */
static int next_w(int w) { return 2 * w < g_size ? 2 * w : w < g_size ? g_size : 0; }

static void run(bench_env *env) {
  pattn_dtype dt = suite_dtype(env, PATTN_BF16);
  int64_t T = tokens(env);
  int nw = 0;
  for (int w = 1; w; w = next_w(w)) nw++;
  env->total_planned = 4 + 6 * nw;

  /* the one-GPU flash baselines, by rank 0 while the others wait */
  if (g_rank == 0)
    for (int strong = 0; strong < 2; strong++)
      for (int causal = 1; causal >= 0; causal--) {
        op_spec s = spec_base(OP_ATTN, dt, B, H, strong ? 4 * T : T, strong ? 4 * T : T, D);
        s.algo = PATTN_ALGO_FLASH;
        s.causal = causal;
        bench_do(env, env->ctx, SUITE, strong ? "flash-strong" : "flash-weak",
                 env->is_cpu ? "flash, one process" : "flash, one GPU", &s);
      }
  idle_barrier();

  for (int w = 1; w; w = next_w(w)) {
    ring r;
    memset(&r, 0, sizeof(r));
    r.W = w;
    MPI_Comm_split(MPI_COMM_WORLD, g_rank < w ? 0 : MPI_UNDEFINED, g_rank, &r.mpi);
    if (r.mpi != MPI_COMM_NULL) {
      char why[WHY] = "";
      MPI_Comm_rank(r.mpi, &r.me);
      int ok = ring_open(env, &r, why);
      ring_rows(env, &r, ok, why);
      ring_close(&r);
      MPI_Comm_free(&r.mpi);
    }
    idle_barrier(); /* the ranks outside this ring wait here */
  }
}

#endif /* PATTN_BENCH_MPI */

/* ---- the table (rank 0) ---- */

/* the baseline of a ring row: flash on one GPU, weak: the per-rank n, strong: the whole n */
static const bench_row *baseline(const bench_env *env, const bench_row *r) {
  int strong = !strcmp(r->op, "ring-strong");
  int64_t n = shape_of(r, strong ? "n" : "nl");
  for (int i = 0; i < env->nrows; i++) {
    const bench_row *b = &env->rows[i];
    if (!strcmp(b->op, strong ? "flash-strong" : "flash-weak") && shape_of(b, "nq") == n &&
        shape_of(b, "causal") == shape_of(r, "causal"))
      return b;
  }
  return NULL;
}

/* efficiency of a ring row, or -1 (and why in buf) */
static double efficiency(const bench_env *env, const bench_row *r, char *buf, size_t n) {
  const char *unit;
  const bench_row *b = baseline(env, r);
  double tr = throughput_flops(env, r, &unit), tb = b ? throughput_flops(env, b, &unit) : 0;
  int64_t W = shape_of(r, "W");
  if (r->status != ROW_OK) snprintf(buf, n, "-");
  else if (!b) snprintf(buf, n, "no baseline");
  else if (b->status != ROW_OK) snprintf(buf, n, "baseline ✗");
  else if (tb <= 0 || W < 1) snprintf(buf, n, "-");
  else {
    snprintf(buf, n, "%.1f%%", 100.0 * tr / (W * tb));
    return tr / (W * tb);
  }
  return -1;
}

static void print(FILE *f, const bench_env *env, const peer_row *p, int np) {
  print_header(f, env, "# Ring attention scaling (pattn-bench ring-scaling)");
  const char *unit = flops_unit(env);
  int64_t T = tokens(env);
  int maxw = 1;
  for (int i = 0; i < env->nrows; i++)
    if (shape_of(&env->rows[i], "W") > maxw) maxw = (int)shape_of(&env->rows[i], "W");
  fprintf(f, "- **shape**: b=%d, h=%d, d=%d, %s, BHND; rings of W = 1 .. %d ranks (the first W "
             "ranks), one device per rank\n"
             "- **weak scaling**: %lld tokens per rank (n = W x %lld); **strong scaling**: n = %lld "
             "in all, n/W per rank\n"
             "- **time**: slowest rank, each run between a barrier (after pattn_synchronize) and "
             "every rank's pattn_synchronize\n"
             "- **%s**: 4*b*h*n^2*d over the global n, halved for causal\n"
             "- **efficiency** = %s / (W x one-GPU flash %s), flash on one GPU measured here by "
             "rank 0: weak on n = %lld, strong on the whole n = %lld (causal rows against causal "
             "flash)\n\n",
          B, H, D, env->nrows ? env->rows[0].dtype : "bf16", maxw, (long long)T, (long long)T,
          (long long)(4 * T), unit, unit, unit, (long long)T, (long long)(4 * T));
  const char *hdr[] = {"Implementation", "Scaling", "W", "n_total", "n_per_rank", "median_ms",
                       "std_ms", "runs", unit, "ideal", "efficiency", "peak_mb_per_rank", "Status"};
  const int right[] = {0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0};
  table *t = table_new(13, hdr, right);
  for (int i = 0; i < env->nrows; i++) {
    const bench_row *r = &env->rows[i];
    int is_ring = !strncmp(r->op, "ring", 4), strong = strstr(r->op, "strong") != NULL;
    char impl[96], w[16], nt[24], nl[24], med[32], sd[32], runs[16], rate[32], ideal[32], ef[32],
        mem[32];
    if (is_ring) snprintf(impl, sizeof(impl), "%s", r->impl);
    else snprintf(impl, sizeof(impl), "%s (%s)", r->impl, shape_of(r, "causal") ? "causal" : "non-causal");
    snprintf(w, sizeof(w), "%lld", is_ring ? (long long)shape_of(r, "W") : 1LL);
    snprintf(nt, sizeof(nt), "%lld", (long long)shape_of(r, is_ring ? "n" : "nq"));
    snprintf(nl, sizeof(nl), "%lld", (long long)shape_of(r, is_ring ? "nl" : "nq"));
    fmt_time(med, sizeof(med), r, 3);
    if (r->status == ROW_OK) {
      snprintf(sd, sizeof(sd), "%.3f", r->std);
      snprintf(runs, sizeof(runs), "%d", r->runs);
      snprintf(mem, sizeof(mem), "%.1f", r->memory_mb);
    } else {
      snprintf(sd, sizeof(sd), "N/A");
      snprintf(runs, sizeof(runs), "0");
      snprintf(mem, sizeof(mem), "N/A");
    }
    fmt_rate(rate, sizeof(rate), env, r);
    snprintf(ideal, sizeof(ideal), "-");
    snprintf(ef, sizeof(ef), "-");
    if (is_ring) {
      const bench_row *b = baseline(env, r);
      const char *u;
      double tb = b ? throughput_flops(env, b, &u) : 0;
      if (tb > 0 && r->status == ROW_OK) snprintf(ideal, sizeof(ideal), env->is_cpu ? "%.1f" : "%.3g", tb * (double)shape_of(r, "W"));
      efficiency(env, r, ef, sizeof(ef));
    }
    const char *c[] = {impl, is_ring ? (strong ? "strong" : "weak") : (strong ? "baseline strong" : "baseline weak"),
                       w, nt, nl, med, sd, runs, rate, ideal, ef, mem, status_mark(r)};
    table_add(t, c);
  }
  table_print_markdown(f, t);
  table_free(t);

  /* the target: causal zigzag weak scaling at the largest W, >= 85% of ideal */
  const bench_row *best = NULL;
  for (int i = 0; i < env->nrows; i++) {
    const bench_row *r = &env->rows[i];
    if (!strcmp(r->op, "ring-weak") && shape_of(r, "zigzag") == 1 &&
        (!best || shape_of(r, "W") >= shape_of(best, "W")))
      best = r;
  }
  fprintf(f, "\n## Summary\n\n");
  if (best) {
    char ef[32];
    double e = efficiency(env, best, ef, sizeof(ef));
    fprintf(f, "- **causal zigzag, weak scaling, W=%lld, %lld tokens per rank**: %s of ideal "
               "(target >= 85%%): %s\n",
            (long long)shape_of(best, "W"), (long long)shape_of(best, "nl"), ef,
            e < 0 ? "not measured" : e >= 0.85 ? "met" : "NOT met");
  } else {
    fprintf(f, "- no causal zigzag weak-scaling row\n");
  }
  print_failures(f, env);
  (void)p, (void)np;
}

const suite_def suite_ring_scaling = {"ring-scaling", "distributed ring attention under mpirun: "
                                      "weak and strong scaling vs W x one-GPU flash, bf16",
                                      run, print, 60.0, 0};
