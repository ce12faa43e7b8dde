/* LayerNorm over rows (SPEC.md section 5): one work-group of WG work-items per row, two
 * passes (mean, then the biased variance around it) reduced in local memory, f32.
 * y may alias x: every read of a row happens before the barrier that precedes its writes.
 * Defines: DT_X, DT_Y, DT_G, DT_B, HAS_GAMMA, HAS_BETA, WG (a power of two). */

inline float wg_sum(__local float *red, float v) {
  int t = get_local_id(0);
  red[t] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = WG / 2; s > 0; s >>= 1) {
    if (t < s) red[t] += red[t + s];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  float r = red[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return r;
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void layernorm(__global const PT(DT_X) *x, long xoff, __global const PT(DT_G) *g, long goff,
               __global const PT(DT_B) *b, long boff, __global PT(DT_Y) *y, long yoff, long cols, float eps) {
  __local float red[WG];
  long r = get_group_id(0);
  int t = get_local_id(0);
  long base_x = xoff + r * cols, base_y = yoff + r * cols;
  float s = 0.0f;
  for (long c = t; c < cols; c += WG) s += LD(DT_X, x, base_x + c);
  float mean = wg_sum(red, s) / (float)cols;
  float v = 0.0f;
  for (long c = t; c < cols; c += WG) {
    float e = LD(DT_X, x, base_x + c) - mean;
    v += e * e;
  }
  float inv = 1.0f / sqrt(wg_sum(red, v) / (float)cols + eps);
  /* wg_sum ended with a barrier: all reads of this row are done before any write */
  for (long c = t; c < cols; c += WG) {
    float o = (LD(DT_X, x, base_x + c) - mean) * inv;
#if HAS_GAMMA
    o *= LD(DT_G, g, goff + c);
#endif
#if HAS_BETA
    o += LD(DT_B, b, boff + c);
#endif
    ST(DT_Y, y, base_y + c, o);
  }
}
