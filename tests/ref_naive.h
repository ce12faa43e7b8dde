/* Naive double-precision references for the unit tests, written straight from SPEC.md with
 * the simplest loops and sharing no code with the library, plus the per-CPU-mode fixture
 * every unit test program uses. Host arrays are dense and row-major. */
#ifndef PATTN_REF_NAIVE_H
#define PATTN_REF_NAIVE_H

#include <stddef.h>
#include <stdint.h>

#include "pattn/pattn.h"

/* ---- fixture: every unit test runs once per CPU mode ---- */
extern pattn_context *g_ctx; /* the context of the running group */
int ref_setup_fast(void **state);      /* cpu, fast mode */
int ref_setup_reference(void **state); /* cpu, reference mode */
int ref_teardown(void **state);
/* Runs `tests` as group "<name>-cpu-fast" and "<name>-cpu-reference"; returns failures. */
struct CMUnitTest;
int ref_run_both_modes(const char *name, const struct CMUnitTest *tests, size_t count);
#define REF_RUN_BOTH_MODES(name, tests) \
  ref_run_both_modes(name, tests, sizeof(tests) / sizeof((tests)[0]))

/* ---- dense attention (SPEC.md section 1) ---- */
/* One head: q [nq][dk], k [nk][dk], v [nk][dv]; mask NULL or [nq][nk] additive; causal is
 * bottom-right (key j visible to query i iff j <= i + nk - nq). out [nq][dv], lse [nq]
 * (NULL ok); a row with no visible key gives out 0 and lse -inf. */
void ref_head(int64_t nq, int64_t nk, int64_t dk, int64_t dv, const float *q, const float *k,
              const float *v, const float *mask, double scale, int causal, double *out,
              double *lse);

/* Whole BHND tensors with GQA (query head i uses kv head i / (hq/hkv)) and an additive
 * mask [mb][mh][nq][nk] broadcast over b when mb == 1 and over heads when mh == 1.
 * out [b][hq][nq][dv] and lse [b][hq][nq] (NULL ok) in f32. */
void ref_attention(int64_t b, int64_t hq, int64_t hkv, int64_t nq, int64_t nk, int64_t dk,
                   int64_t dv, const float *q, const float *k, const float *v,
                   const float *mask, int64_t mb, int64_t mh, double scale, int causal,
                   float *out, float *lse);

/* The backward formula of SPEC.md section 1 in double, BHND, GQA-summed dk/dv. The
 * probabilities come from this file's own forward (not from the library). */
void ref_attention_backward(int64_t b, int64_t hq, int64_t hkv, int64_t nq, int64_t nk,
                            int64_t dk, int64_t dv, const float *q, const float *k,
                            const float *v, const float *dout, double scale, int causal,
                            float *dq, float *dkk, float *dvv);

/* ---- dilated attention (SPEC.md section 2), BHND ---- */
/* Dense attention (ref_head) applied to the gathered positions of each pattern. */
void ref_dilated(int64_t b, int64_t h, int64_t n, int64_t d, const float *q, const float *k,
                 const float *v, int nseg, const int64_t *seg, const int64_t *rate,
                 int lse_merge, int causal, double scale, float *out);

/* ---- block-sparse attention (SPEC.md section 4), BHND ---- */
/* Dense attention with a -inf mask outside the active blocks; layout [lh][nqb][nkb]. */
void ref_block_sparse(int64_t b, int64_t h, int64_t nq, int64_t nk, int64_t d, const float *q,
                      const float *k, const float *v, int block, int layout_heads,
                      const uint8_t *layout, int causal, double scale, float *out);

/* ---- layouts ---- */
/* [b][h][n][d] -> [b][n][h][d] and back. */
void ref_bhnd_to_bnhd(const float *src, float *dst, int64_t b, int64_t h, int64_t n, int64_t d);
void ref_bnhd_to_bhnd(const float *src, float *dst, int64_t b, int64_t h, int64_t n, int64_t d);
/* A tensor on g_ctx of shape (b, h, n, d) in layout, from a BHND host array (NULL: left
 * unwritten); and a tensor read back into BHND order (caller frees). */
pattn_tensor *ref_upload(pattn_dtype dt, pattn_layout layout, int64_t b, int64_t h, int64_t n, int64_t d,
                         const float *bhnd);
/* Extra device memory of the calls between the two: ref_mem_mark() synchronises, resets
 * the peak and returns the bytes in use; ref_mem_extra(mark) synchronises, asserts that
 * everything the calls allocated was given back, and returns their peak extra bytes. */
size_t ref_mem_mark(void);
size_t ref_mem_extra(size_t mark);
float *ref_download(const pattn_tensor *t, pattn_layout layout, int64_t b, int64_t h, int64_t n, int64_t d);

/* ---- checks ---- */
/* Fails the running test unless got matches ref within SPEC.md section 7 for dtype dt
 * (rel-L2 and max abs); wherever ref is -inf got must be -inf too, and NaN/Inf in got where
 * ref is finite fails. */
void ref_check(const char *what, const float *got, const float *ref, size_t n, pattn_dtype dt);
/* Same with explicit tolerances. */
void ref_check_tol(const char *what, const float *got, const float *ref, size_t n,
                   double rel_l2, double max_abs);

/* Fails the running test if anything wrote into the guard bands around t (the fixture
 * creates every tensor with guard bands). */
void ref_check_guards(const char *what, const pattn_tensor *t);

/* Unit-normal host data rounded to what dt holds (so host copies equal device contents). */
float *ref_randn(uint64_t seed, size_t n, pattn_dtype dt);

#endif
