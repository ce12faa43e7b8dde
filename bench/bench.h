/* pattn-bench: shared types. The program uses only the public API (pattn/pattn.h).
 *
 * A suite builds op_spec descriptions (ops.c knows how to create the tensors of each one and
 * run it), measure.c times each one into a bench_row, and report.c prints the rows in the
 * seed's table format or as CSV/JSON, with peer ratios from --compare. */
#ifndef PATTN_BENCH_H
#define PATTN_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <pattn/pattn.h>

#define BENCH_MAX_SHAPE 10
#define BENCH_MAX_LIST 8

/* ---- what to run ---- */
typedef enum op_kind {
  OP_ATTN,          /* pattn_attention forward */
  OP_ATTN_BWD,      /* pattn_attention_backward (forward run once in setup for out/lse) */
  OP_RING,          /* pattn_ring_attention, one context, ring_size chunks */
  OP_DILATED,       /* pattn_dilated_attention */
  OP_RING_DILATED,  /* pattn_ring_dilated_attention, comm NULL */
  OP_BLOCK_SPARSE,  /* pattn_block_sparse_attention */
  OP_MHA,           /* pattn_mha_forward over mha_core */
  OP_LRPE_FWD,      /* pattn_md_lrpe_cosine_forward */
  OP_LRPE_BWD       /* pattn_md_lrpe_cosine_backward */
} op_kind;

typedef struct op_spec {
  op_kind      kind;
  pattn_dtype  dtype;
  pattn_layout layout;
  int64_t      b, h, nq, nk, d;
  int          causal;
  pattn_algo   algo;
  /* dilated (OP_DILATED, OP_RING_DILATED, OP_MHA with PATTN_MHA_DILATED) */
  int                 nseg;
  int64_t             seg[BENCH_MAX_LIST], rate[BENCH_MAX_LIST];
  pattn_dilated_merge merge;
  int gather; /* dilated: the original gather/scatter method (pattn_dilated_desc.gather) */
  /* ring */
  int ring_size;
  /* block-sparse: local window (blocks) + dilated rates */
  int block_size, local_window, nrates, rates[BENCH_MAX_LIST];
  /* MHA: which core runs inside, and with what (the fields above) */
  pattn_mha_core mha_core;
  /* LRPE: grid of ndims axes, extra tokens, angle cache on/off */
  int     ndims;
  int64_t grid[BENCH_MAX_LIST];
  int64_t extra;
  int     use_cache;
  /* attention: PATTN_PRECISION_TF32 lets f32 GEMMs use TF32 (SPEC.md section 7's TF32 row) */
  pattn_precision precision;
  /* host inputs in f32 (q, k, v, dout), each of the tensor's size; NULL: the shared random
   * buffer (the same values in every input). f32acc passes bench_hash_fill's distinct inputs,
   * the ones run_peers.py makes too, so errors are measured on the same data. */
  const float *src[4];
} op_spec;

/* ---- one measured row ---- */
typedef enum row_status { ROW_OK = 0, ROW_FAIL = 1, ROW_SKIP = 2 } row_status;

typedef struct bench_row {
  char    suite[16];
  char    op[24];     /* what was computed: the peer matching key with shape and dtype */
  char    impl[64];   /* label printed in the table */
  char    dtype[8];
  int     nshape;
  char    shape_name[BENCH_MAX_SHAPE][12];
  int64_t shape_val[BENCH_MAX_SHAPE];
  char    key[160];   /* "b=1 d=64 h=8 ..." sorted by name: the (suite, op, key, dtype) match */
  /* timing, milliseconds */
  double  median, mean, std, min;
  int     runs;
  /* memory, MB: peak over base (inputs included) and peak over inputs (workspace) */
  double  memory_mb, workspace_mb, inputs_mb;
  double  device_inputs_mb; /* the device's own count of what setup took (cudaMemGetInfo); -1: unknown */
  double  flops, bytes; /* per run; 0 where they do not apply */
  double  theory_mb;    /* suite-defined: memory the algorithm needs (seed004) */
  row_status status;
  char    reason[256];
  char    note[64];
  /* accuracy against an f64 reference (f32acc); -1: not measured */
  double  err_max_abs, err_rel_l2, err_ref_norm;
} bench_row;

/* ---- options ---- */
typedef enum out_format { FMT_TABLE, FMT_CSV, FMT_JSON } out_format;

typedef struct bench_opts {
  const char *suite;
  const char *backend;   /* NULL: $PATTN_BACKEND / auto */
  const char *device;
  int         threads;   /* 0: library default */
  int         dtype_set; /* --dtype given */
  pattn_dtype dtype;
  out_format  format;
  const char *out_dir;
  const char *compare;
  int         reps;        /* timed runs per row (>= 10 unless a run is long) */
  double      max_seconds; /* per-row budget */
  double      max_mem_mb;  /* 0: no limit */
  int         quiet;       /* no progress on stderr */
  double      flush_mb;    /* scratch filled before each timed run on GPU backends; <0: default */
  /* ring-scaling (suite_ring_scaling.c) */
  const char *comm;        /* --comm nccl | mpi; NULL: nccl on cuda where it works, else mpi */
  int64_t     ring_tokens; /* --ring-tokens: tokens per GPU (weak scaling); 0: 32768 */
  int         no_output;   /* print and write nothing (MPI ranks other than 0) */
} bench_opts;

/* ---- the run ---- */
typedef struct bench_env {
  const bench_opts *opts;
  pattn_context    *ctx;
  const char       *backend_name;
  const char       *device_name;
  int               is_cpu;
  /* rows of the current suite */
  bench_row        *rows;
  int               nrows, caprows;
  int               total_planned, done; /* for progress */
} bench_env;

/* ops.c */
pattn_status op_setup(pattn_context *ctx, const op_spec *s, void **state);
pattn_status op_run(pattn_context *ctx, const op_spec *s, void *state);
void         op_teardown(void *state);
double       op_flops(const op_spec *s);
double       op_bytes(const op_spec *s);            /* minimum traffic: inputs + outputs */
double       op_inputs_bytes(const op_spec *s);     /* tensors the op is given */
double       op_estimate_bytes(const op_spec *s);   /* for --max-mem: inputs + workspace guess */
size_t       dtype_bytes(pattn_dtype dt);
const char  *dtype_name(pattn_dtype dt);
int          dtype_parse(const char *s, pattn_dtype *dt);
int64_t      lrpe_rows(const op_spec *s);          /* n = extra + prod(grid) */
int          ops_host_oom(void);     /* 1 (once) if the last OOM was the host input buffer */
void         ops_release_host(void); /* frees the host input buffer (end of a suite) */

/* measure.c: fills row (timing, memory, status) for spec on ctx. label_for_estimate groups
 * rows whose run time scales with op_flops/op_bytes (same impl, growing shape). */
void bench_measure(bench_env *env, pattn_context *ctx, const op_spec *s, bench_row *row);
void bench_flush_release(void); /* before the context of the runs is destroyed */
double bench_flush_mb(const bench_env *env); /* MB filled before each timed run (0: none) */
/* the checks bench_measure makes before creating anything (--max-mem, the run time
 * extrapolated from a smaller row of the same suite, op, impl and dtype): 1 and the row
 * marked skipped when the row would be skipped */
int  bench_precheck(const bench_env *env, const op_spec *s, bench_row *row);
void bench_stats(const double *t, int n, double *median, double *mean, double *std, double *min);
double bench_now(void);

/* report.c */
bench_row *row_new(bench_env *env, const char *suite, const char *op, const char *impl,
                   pattn_dtype dt);
void row_shape(bench_row *r, const char *name, int64_t v); /* add a shape field */
void row_finish_key(bench_row *r);
void row_fail(bench_row *r, row_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void report_csv(FILE *f, const bench_env *env);
void report_json(FILE *f, const bench_env *env);
const char *status_mark(const bench_row *r); /* ✓ / ✗ */
void fmt_time(char *buf, size_t n, const bench_row *r, int digits);
double throughput_flops(const bench_env *env, const bench_row *r, const char **unit);

/* table.c: grid tables like python-tabulate's "grid" (seed000/001) and markdown pipes */
typedef struct table table;
table *table_new(int ncols, const char *const *headers, const int *right_align);
void   table_add(table *t, const char *const *cells);
void   table_print_grid(FILE *f, const table *t, int row_separators);
void   table_print_markdown(FILE *f, const table *t);
void   table_free(table *t);

/* compare.c: peer rows from --compare PEERS.json */
typedef struct peer_row {
  char   suite[16], op[24], impl[64], key[160], dtype[8], backend[24];
  double median, min, memory_mb;
  double err_max_abs, err_rel_l2, err_ref_norm; /* -1: not in the row */
  int    ok;
  int    unsupported; /* status "unsupported": the peer refuses this shape/dtype */
  char   reason[208];
} peer_row;
int  peers_load(const char *path, peer_row **out, int *n, char *err, size_t errn);
/* prints "pattn / peer" for every row with a peer of the same suite, op, key and dtype */
void peers_print_ratios(FILE *f, const bench_env *env, const peer_row *p, int np);
/* the peer rows for one pattn row (returns count, fills idx up to max) */
int  peers_match(const bench_row *r, const peer_row *p, int np, int *idx, int max);

/* suite_util.c: the common path of every suite */
op_spec     spec_base(op_kind k, pattn_dtype dt, int64_t b, int64_t h, int64_t nq, int64_t nk,
                      int64_t d);
pattn_dtype suite_dtype(const bench_env *env, pattn_dtype dflt); /* --dtype wins */
void        spec_row_shape(bench_row *r, const op_spec *s);      /* shape fields by op kind */
int64_t     row_shape_of(const bench_row *r, const char *name);  /* a shape field; 0 if absent */
/* new row, shape from the spec, measured on ctx, progress printed */
bench_row  *bench_do(bench_env *env, pattn_context *ctx, const char *suite, const char *op,
                     const char *impl, const op_spec *s);
/* a row that cannot be produced: ✗ with the reason, nothing run */
bench_row  *bench_unavailable(bench_env *env, const char *suite, const char *op,
                              const char *impl, const op_spec *s, const char *reason);
const char *flops_unit(const bench_env *env); /* GFLOP/s on CPU, TFLOP/s elsewhere */
/* a peer's rate in the unit of flops_unit, from the pattn row's FLOP count; 0 if not ok */
double      peer_rate(const bench_env *env, const bench_row *r, const peer_row *q);
/* the peer row of r with this impl (NULL if none) */
const peer_row *peer_find(const bench_row *r, const peer_row *p, int np, const char *impl);
/* counter-based inputs: dst[i] = value of element i of stream `stream` (0 q, 1 k, 2 v,
 * 3 dout), uniform in (-sqrt 3, sqrt 3) (unit variance); run_peers.py's hash_inputs makes
 * the same floats bit for bit. Threaded. */
void        bench_hash_fill(float *dst, size_t n, uint32_t stream);
/* runs fn(i, arg) for i in [0, n) on up to the machine's cores (host work of a suite) */
void        bench_parallel_for(int64_t n, void (*fn)(int64_t i, void *arg), void *arg);
void        fmt_rate(char *buf, size_t n, const bench_env *env, const bench_row *r);
void        fmt_gbs(char *buf, size_t n, const bench_row *r);
void        row_times(bench_row *row, const double *t, int runs); /* stats of run times (s) into ms */
void        print_failures(FILE *f, const bench_env *env); /* footnotes for ✗ rows */
void        print_memory_check(FILE *f, const bench_env *env); /* pattn vs driver memory counts (CUDA) */
/* footnotes for the suite's peer rows that are ✗ (not supported, or failed), one per reason */
void        print_peer_failures(FILE *f, const char *suite, const peer_row *p, int np);

/* suites */
typedef struct suite_def {
  const char *name;
  const char *what;
  void (*run)(bench_env *env);                 /* measure: fills env->rows */
  void (*print)(FILE *f, const bench_env *env, const peer_row *p, int np); /* seed format */
  double default_max_seconds;
  int own_ratios; /* 1: print compares with the peers itself (no generic ratio table) */
} suite_def;
extern const suite_def suite_quick, suite_seed000, suite_seed001, suite_seed002,
    suite_seed003, suite_seed004, suite_fa2, suite_f32acc, suite_ring_scaling;

/* suite_ring_scaling.c: the MPI process around that suite. init calls MPI_Init, picks this
 * rank's device (local rank % device count) and creates its context; every rank returns the
 * same status (a failure on one rank is printed by that rank). Without MPI it is
 * bench_context. finalize: MPI_Finalize if init called MPI_Init. */
pattn_status ring_scaling_init(bench_opts *o, pattn_context **ctx);
void         ring_scaling_finalize(void);

/* main.c helpers shared by suites */
void bench_progress(bench_env *env, const bench_row *r);
/* a second context on the same backend (quick: CPU reference mode) */
pattn_status bench_context(const bench_opts *o, int cpu_reference, int threads,
                           pattn_context **ctx);
void print_header(FILE *f, const bench_env *env, const char *title);

#endif
