/* pattn-bench: reproduces the seed benchmark reports (shared/seeds/) with pattn on any
 * backend, and puts peers (bench/peers/) beside them as ratios. See --help. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* ring-scaling runs under mpirun and calls MPI_Init: never part of "all"; neither are the
 * issue suites (fa2, f32acc), which are GPU targets rather than seed reports */
static const suite_def *const g_suites[] = {&suite_quick,   &suite_seed000, &suite_seed001,
                                            &suite_seed002, &suite_seed003, &suite_seed004,
                                            &suite_fa2,     &suite_f32acc,  &suite_ring_scaling};
#define NSUITES ((int)(sizeof(g_suites) / sizeof(g_suites[0])))

static int in_all(const suite_def *s) {
  return s != &suite_ring_scaling && s != &suite_fa2 && s != &suite_f32acc;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: pattn-bench [options]\n"
          "  --suite NAME       quick (default), seed000 .. seed004, all (those), fa2\n"
          "                     (bf16/f16 flash fwd+bwd at FlashAttention's benchmark shapes),\n"
          "                     f32acc (f32 flash exact and TF32, speed and error against\n"
          "                     f64), or ring-scaling (under mpirun -np W: see below)\n"
          "  --backend NAME     cpu | opencl | cuda | auto (default: $PATTN_BACKEND, else auto)\n"
          "  --device SEL       device index or name substring (default: $PATTN_DEVICE)\n"
          "  --threads N        CPU backend threads (default: $PATTN_NUM_THREADS, else all cores;\n"
          "                     quick's fast-vs-reference rows use 2 unless given)\n"
          "  --dtype T          f32 | f16 | bf16: override each suite's dtype\n"
          "  --format F         table (default, the seeds' formats) | csv | json\n"
          "  --out DIR          also write DIR/SUITE.csv and DIR/SUITE.json\n"
          "  --compare FILE     peer rows (JSON from bench/peers/run_peers.py, or another\n"
          "                     pattn-bench --format json): print pattn/peer ratios\n"
          "  --reps N           timed runs per row (default 10; fewer only for runs over 2 s\n"
          "                     or when --max-seconds says so, and the row's note says it)\n"
          "  --max-seconds S    time budget per row (default per suite); rows whose run,\n"
          "                     extrapolated from a smaller size, exceeds it are skipped (✗)\n"
          "  --max-mem MB       skip rows whose memory estimate exceeds MB (default: 75%% of\n"
          "                     RAM on the CPU backend, none elsewhere: the device says OOM)\n"
          "  --flush-mb MB      GPU backends: fill an MB scratch tensor on the queue before\n"
          "                     each timed run (default 256: cold L2, launch latency hidden;\n"
          "                     0: off)\n"
          "  --quiet            no progress lines on stderr\n"
          "  --comm C           ring-scaling: nccl | mpi (default: nccl on cuda where it\n"
          "                     works, else mpi)\n"
          "  --ring-tokens N    ring-scaling: tokens per GPU for weak scaling (default 32768;\n"
          "                     strong scaling uses 4 N in all)\n"
          "  --list             list the suites\n"
          "ring-scaling: mpirun -np P pattn-bench --suite ring-scaling [--backend cuda]\n"
          "  [--comm nccl|mpi]: rings of 1, 2, 4 .. P ranks, rank r on device (local rank %%\n"
          "  device count); only rank 0 prints\n");
}

static int parse_args(int argc, char **argv, bench_opts *o) {
  memset(o, 0, sizeof(*o));
  o->suite = "quick";
  o->reps = 10;
  o->max_seconds = -1;
  o->max_mem_mb = -1;
  o->flush_mb = -1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && (v ? (i++, 1) : (fprintf(stderr, "%s needs a value\n", name), exit(2), 0)))
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
    else if (!strcmp(a, "--list")) {
      for (int s = 0; s < NSUITES; s++) printf("%-12s %s\n", g_suites[s]->name, g_suites[s]->what);
      exit(0);
    }
    else if (!strcmp(a, "--quiet")) o->quiet = 1;
    else if (ARG("--suite")) o->suite = v;
    else if (ARG("--backend")) o->backend = v;
    else if (ARG("--device")) o->device = v;
    else if (ARG("--threads")) o->threads = atoi(v);
    else if (ARG("--dtype")) {
      if (dtype_parse(v, &o->dtype)) { fprintf(stderr, "unknown dtype '%s'\n", v); return -1; }
      o->dtype_set = 1;
    }
    else if (ARG("--format")) {
      if (!strcmp(v, "table")) o->format = FMT_TABLE;
      else if (!strcmp(v, "csv")) o->format = FMT_CSV;
      else if (!strcmp(v, "json")) o->format = FMT_JSON;
      else { fprintf(stderr, "unknown format '%s'\n", v); return -1; }
    }
    else if (ARG("--out")) o->out_dir = v;
    else if (ARG("--compare")) o->compare = v;
    else if (ARG("--reps")) o->reps = atoi(v);
    else if (ARG("--max-seconds")) o->max_seconds = atof(v);
    else if (ARG("--flush-mb")) o->flush_mb = atof(v);
    else if (ARG("--max-mem")) o->max_mem_mb = atof(v);
    else if (ARG("--comm")) o->comm = v;
    else if (ARG("--ring-tokens")) o->ring_tokens = atoll(v);
    else { fprintf(stderr, "unknown option '%s'\n", a); usage(stderr); return -1; }
#undef ARG
  }
  if (o->reps < 1) { fprintf(stderr, "--reps must be at least 1\n"); return -1; }
  if (o->comm && strcmp(o->comm, "nccl") && strcmp(o->comm, "mpi")) {
    fprintf(stderr, "--comm must be nccl or mpi\n");
    return -1;
  }
  if (o->ring_tokens < 0) { fprintf(stderr, "--ring-tokens must be positive\n"); return -1; }
  return 0;
}

pattn_status bench_context(const bench_opts *o, int cpu_reference, int threads,
                           pattn_context **ctx) {
  pattn_options opt;
  pattn_options_default(&opt);
  opt.struct_size = sizeof(opt);
  opt.backend = o->backend;
  opt.device = o->device;
  opt.num_threads = threads;
  opt.cpu_reference = cpu_reference;
  return pattn_context_create(ctx, &opt);
}

void print_header(FILE *f, const bench_env *env, const char *title) {
  char date[64];
  time_t now = time(NULL);
  struct tm tmv;
  gmtime_r(&now, &tmv);
  strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S UTC", &tmv);
  fprintf(f, "%s\n", title);
  fprintf(f, "pattn %s | backend: %s | device: %s | date: %s\n", pattn_version(),
          env->backend_name, env->device_name, date);
  const double flush = bench_flush_mb(env);
  fprintf(f, "timing: warm-up, then median of %d runs (device events on GPU backends, else a "
             "synchronised CLOCK_MONOTONIC)", env->opts->reps);
  if (flush > 0) fprintf(f, ", each after a %.0f MB fill on the same queue (cold L2)", flush);
  fprintf(f, "; memory: peak bytes pattn allocated, inputs included\n\n");
}

void bench_progress(bench_env *env, const bench_row *r) {
  env->done++;
  if (env->opts->quiet) return;
  if (r->status == ROW_OK)
    fprintf(stderr, "[%s %d/%d] %s %s %s: %.3f ms (%d run%s), %.1f MB\n", r->suite, env->done,
            env->total_planned, r->impl, r->key, r->dtype, r->median, r->runs,
            r->runs == 1 ? "" : "s", r->memory_mb);
  else
    fprintf(stderr, "[%s %d/%d] %s %s %s: ✗ %s\n", r->suite, env->done, env->total_planned,
            r->impl, r->key, r->dtype, r->reason);
}

static double default_max_mem_mb(int is_cpu) {
  if (!is_cpu) return 0;
  long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || psz <= 0) return 0;
  return 0.75 * (double)pages * (double)psz / (1024.0 * 1024.0);
}

static int write_files(const bench_env *env, const char *suite) {
  char path[4096];
  if (mkdir(env->opts->out_dir, 0777) != 0) {
    struct stat sb;
    if (stat(env->opts->out_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
      fprintf(stderr, "cannot create %s\n", env->opts->out_dir);
      return -1;
    }
  }
  for (int k = 0; k < 2; k++) {
    snprintf(path, sizeof(path), "%s/%s.%s", env->opts->out_dir, suite, k ? "json" : "csv");
    FILE *f = fopen(path, "w");
    if (!f) {
      fprintf(stderr, "cannot write %s\n", path);
      return -1;
    }
    if (k) report_json(f, env);
    else report_csv(f, env);
    fclose(f);
    if (!env->opts->quiet) fprintf(stderr, "wrote %s\n", path);
  }
  return 0;
}

static int run_suite(const suite_def *s, bench_opts *o, pattn_context *ctx, const peer_row *peers,
                     int npeers) {
  bench_env env;
  bench_opts so = *o;
  memset(&env, 0, sizeof(env));
  if (so.max_seconds < 0) so.max_seconds = s->default_max_seconds;
  env.opts = &so;
  env.ctx = ctx;
  env.backend_name = pattn_context_backend(ctx);
  env.device_name = pattn_context_device(ctx);
  env.is_cpu = env.backend_name && !strcmp(env.backend_name, "cpu");
  if (so.max_mem_mb < 0) so.max_mem_mb = default_max_mem_mb(env.is_cpu);
  s->run(&env);
  ops_release_host();
  if (o->no_output) {
    free(env.rows);
    return 0;
  }
  switch (o->format) {
  case FMT_TABLE:
    s->print(stdout, &env, peers, npeers);
    if (!s->own_ratios) peers_print_ratios(stdout, &env, peers, npeers);
    break;
  case FMT_CSV: report_csv(stdout, &env); break;
  case FMT_JSON: report_json(stdout, &env); break;
  }
  fflush(stdout);
  int rc = o->out_dir ? write_files(&env, s->name) : 0;
  free(env.rows);
  return rc;
}

int main(int argc, char **argv) {
  bench_opts o;
  if (parse_args(argc, argv, &o)) return 2;
  peer_row *peers = NULL;
  int npeers = 0;
  if (o.compare) {
    char err[256];
    if (peers_load(o.compare, &peers, &npeers, err, sizeof(err))) {
      fprintf(stderr, "--compare: %s\n", err);
      return 2;
    }
  }
  int all = !strcmp(o.suite, "all"), found = all, rc = 0;
  int ring = !strcmp(o.suite, suite_ring_scaling.name);
  for (int i = 0; i < NSUITES; i++) found |= !strcmp(o.suite, g_suites[i]->name);
  if (!found) {
    fprintf(stderr, "unknown suite '%s' (--list shows them)\n", o.suite);
    free(peers);
    return 2;
  }
  pattn_context *ctx = NULL;
  pattn_status st = ring ? ring_scaling_init(&o, &ctx) : bench_context(&o, -1, o.threads, &ctx);
  if (st != PATTN_OK) {
    if (!ring) /* ring_scaling_init printed the failing rank's reason */
      fprintf(stderr, "pattn-bench: cannot create a context (backend %s): %s: %s\n",
              o.backend ? o.backend : "default", pattn_status_string(st), pattn_last_error(NULL));
    if (ring) ring_scaling_finalize();
    free(peers);
    return 1;
  }
  for (int i = 0; i < NSUITES; i++) {
    if (all ? !in_all(g_suites[i]) : strcmp(o.suite, g_suites[i]->name)) continue;
    if (run_suite(g_suites[i], &o, ctx, peers, npeers)) rc = 1;
  }
  bench_flush_release();
  pattn_context_destroy(ctx);
  if (ring) ring_scaling_finalize();
  free(peers);
  return rc;
}
