/* Helpers shared by the test programs: deterministic random data, tensors from host
 * arrays, error norms. Every test draws its data from a seed it can print. */
#ifndef PATTN_TEST_UTIL_H
#define PATTN_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "pattn/pattn.h"

/* splitmix64 stream: deterministic on every platform */
typedef struct tu_rng { uint64_t s; } tu_rng;
tu_rng   tu_rng_seed(uint64_t seed);
uint64_t tu_next(tu_rng *r);
double   tu_uniform(tu_rng *r);            /* [0, 1) */
float    tu_normal(tu_rng *r);             /* N(0, 1) */
void     tu_fill_normal(tu_rng *r, float *x, size_t n);

int64_t tu_numel(int ndim, const int64_t *shape);

/* Round every element to what dtype can hold (so host copies equal device contents). */
void tu_round_to(pattn_dtype dt, float *x, size_t n);

/* Create a tensor of dtype dt and shape, write host (converted); NULL host: leave it
 * uninitialised. Fails the running cmocka test on error. */
pattn_tensor *tu_tensor(pattn_context *ctx, pattn_dtype dt, int ndim, const int64_t *shape,
                        const float *host);
/* Write NaN into every element (outputs are poisoned before each run). */
void tu_poison(pattn_tensor *t);
/* Read a tensor as f32 into a fresh malloc'd array of its element count. */
float *tu_read(const pattn_tensor *t);

/* ||a - b|| / ||b||, max |a - b|; NaN/Inf in a where b is finite counts as infinite error. */
double tu_rel_l2(const float *a, const float *b, size_t n);
double tu_max_abs(const float *a, const float *b, size_t n);
int    tu_count_nonfinite(const float *a, const float *b, size_t n);

/* Context from a backend name ("cpu", "opencl", ...); cpu_reference: 1 for the oracle.
 * Returns NULL (and the status in *st) when the backend is not available. */
pattn_context *tu_context(const char *backend, int cpu_reference, pattn_status *st);

#endif
