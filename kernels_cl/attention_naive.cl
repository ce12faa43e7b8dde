/* NAIVE attention's softmax (SPEC.md section 1, the seeds' "standard" path): the scores
 * S = Q K^T of one (batch, segment) were materialised by CLBlast GEMMs as f32
 * [heads][nq][nk]; this turns each row into probabilities in place (scale, causal, mask,
 * joint softmax) and writes the row's logsumexp. One work-group of WG per row.
 * Defines: WG (power of two), HAS_MASK, HAS_LSE, DT_M. */

inline float wg_reduce(__local float *red, float v, int is_max) {
  int t = get_local_id(0);
  red[t] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = WG / 2; s > 0; s >>= 1) {
    if (t < s) red[t] = is_max ? fmax(red[t], red[t + s]) : red[t] + red[t + s];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  float r = red[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return r;
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void softmax_rows(__global float *S, __global const PT(DT_M) *mask, long8 vm, __global float *lse, long8 vl,
                  long ib, long is, int nq, int nk, float scale, int causal, long coff) {
  __local float red[WG];
  const long i = get_group_id(0), ih = get_group_id(1);
  const int t = get_local_id(0);
  __global float *row = S + (ih * nq + i) * (long)nk;
  long jend = nk;
  if (causal) jend = clamp(i + coff + 1, 0L, (long)nk);
#if HAS_MASK
  const long mrow = vrow(vm, ib, is, ih, i);
#define SCORE(j) (scale * row[j] + LD(DT_M, mask, mrow + (j)))
#else
#define SCORE(j) (scale * row[j])
#endif
  float mx = -INFINITY;
  for (long j = t; j < jend; j += WG) mx = fmax(mx, SCORE(j));
  mx = wg_reduce(red, mx, 1);
  const float muse = mx == -INFINITY ? 0.0f : mx;
  float sum = 0.0f;
  for (long j = t; j < jend; j += WG) sum += exp(SCORE(j) - muse);
  sum = wg_reduce(red, sum, 0);
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  /* every read of the row happened before wg_reduce's last barrier */
  for (long j = t; j < nk; j += WG) row[j] = j < jend ? exp(SCORE(j) - muse) * inv : 0.0f;
#if HAS_LSE
  if (t == 0) lse[vrow(vl, ib, is, ih, i)] = sum > 0.0f ? mx + log(sum) : -INFINITY;
#endif
#undef SCORE
}
