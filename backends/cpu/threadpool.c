/* Persistent thread pool of the CPU backend, created once per context.
 *
 * cpu_parallel_for publishes a job (fn, arg, ntasks) under a generation number; workers
 * and the calling thread (thread 0) take task indices from one atomic counter, so uneven
 * tasks (causal attention, sparse layouts) balance on their own. Idle workers sleep on a
 * condition variable after a short spin, so an idle pool costs no CPU. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "cpu.h"

/* Spin iterations before sleeping: long enough to catch back-to-back launches (one op's
 * passes follow each other within microseconds), short enough to be invisible when idle. */
#define POOL_SPIN 4000

struct cpu_pool {
  int             num_threads; /* including the caller */
  int             started;     /* workers actually running */
  pthread_t      *threads;
  pthread_mutex_t lock;
  pthread_cond_t  wake;        /* workers wait for a new generation */
  pthread_cond_t  done;        /* the caller waits for active == 0 */
  pthread_mutex_t call_lock;   /* serialises callers sharing one pool */
  /* the current job */
  cpu_task_fn     fn;
  void           *arg;
  int64_t         ntasks;
  atomic_llong    next;
  atomic_uint     generation;
  int             active;      /* workers still inside the current job (under lock) */
  int             quit;
};

typedef struct worker_arg { cpu_pool *pool; int index; } worker_arg;

static void run_tasks(cpu_pool *p, int thread) {
  for (;;) {
    int64_t t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
    if (t >= p->ntasks) break;
    p->fn(p->arg, t, thread);
  }
}

static void *worker_main(void *argp) {
  worker_arg wa = *(worker_arg *)argp;
  free(argp);
  cpu_pool *p = wa.pool;
  unsigned seen = 0;
  for (;;) {
    /* spin briefly on the generation before taking the lock and sleeping */
    for (int s = 0; s < POOL_SPIN; s++) {
      if (atomic_load_explicit(&p->generation, memory_order_acquire) != seen) break;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    pthread_mutex_lock(&p->lock);
    while (!p->quit && atomic_load_explicit(&p->generation, memory_order_relaxed) == seen)
      pthread_cond_wait(&p->wake, &p->lock);
    if (p->quit) {
      pthread_mutex_unlock(&p->lock);
      return NULL;
    }
    seen = atomic_load_explicit(&p->generation, memory_order_relaxed);
    pthread_mutex_unlock(&p->lock);

    run_tasks(p, wa.index);

    pthread_mutex_lock(&p->lock);
    if (--p->active == 0) pthread_cond_signal(&p->done);
    pthread_mutex_unlock(&p->lock);
  }
}

cpu_pool *cpu_pool_create(int num_threads) {
  if (num_threads <= 1) return NULL;
  cpu_pool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->num_threads = num_threads;
  p->threads = calloc((size_t)num_threads, sizeof *p->threads);
  if (!p->threads) {
    free(p);
    return NULL;
  }
  atomic_init(&p->next, 0);
  atomic_init(&p->generation, 0u);
  if (pthread_mutex_init(&p->lock, NULL) != 0) goto fail_lock;
  if (pthread_mutex_init(&p->call_lock, NULL) != 0) goto fail_call;
  if (pthread_cond_init(&p->wake, NULL) != 0) goto fail_wake;
  if (pthread_cond_init(&p->done, NULL) != 0) goto fail_done;
  for (int i = 1; i < num_threads; i++) {
    worker_arg *wa = malloc(sizeof *wa);
    if (!wa) break;
    wa->pool = p;
    wa->index = i;
    if (pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
      free(wa);
      break;
    }
    p->started++;
  }
  if (p->started == num_threads - 1) return p;
  cpu_pool_destroy(p); /* joins the workers that did start */
  return NULL;
fail_done:
  pthread_cond_destroy(&p->wake);
fail_wake:
  pthread_mutex_destroy(&p->call_lock);
fail_call:
  pthread_mutex_destroy(&p->lock);
fail_lock:
  free(p->threads);
  free(p);
  return NULL;
}

void cpu_pool_destroy(cpu_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->lock);
  p->quit = 1;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);
  for (int i = 1; i <= p->started; i++) pthread_join(p->threads[i], NULL);
  pthread_cond_destroy(&p->done);
  pthread_cond_destroy(&p->wake);
  pthread_mutex_destroy(&p->call_lock);
  pthread_mutex_destroy(&p->lock);
  free(p->threads);
  free(p);
}

void cpu_parallel_for(const cpu_state *st, int64_t ntasks, cpu_task_fn fn, void *arg) {
  if (ntasks <= 0) return;
  cpu_pool *p = st ? st->pool : NULL;
  if (!p || ntasks == 1) {
    for (int64_t t = 0; t < ntasks; t++) fn(arg, t, 0);
    return;
  }
  pthread_mutex_lock(&p->call_lock);
  pthread_mutex_lock(&p->lock);
  p->fn = fn;
  p->arg = arg;
  p->ntasks = ntasks;
  atomic_store_explicit(&p->next, 0, memory_order_relaxed);
  p->active = p->started;
  atomic_fetch_add_explicit(&p->generation, 1u, memory_order_release);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);

  run_tasks(p, 0);

  pthread_mutex_lock(&p->lock);
  while (p->active > 0) pthread_cond_wait(&p->done, &p->lock);
  pthread_mutex_unlock(&p->lock);
  pthread_mutex_unlock(&p->call_lock);
}
