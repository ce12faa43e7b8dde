/* Elementwise helpers the core composes with (backend.h: fill, copy, merge) and the bias
 * epilogue of linear. One-dimensional grids, padded to the work-group size (hence the
 * `total` bound): GPUs limit the higher grid dimensions (65535 groups on NVIDIA), and rows
 * of long sequences exceed that. Element idx of a view is (bsh, i, j) with j fastest.
 * Defines: DT_DST, DT_SRC (fill/copy), DT_Y, DT_BIAS, HAS_BIAS (bias_store). */

#ifdef DT_DST
__kernel void fill(__global PT(DT_DST) *dst, long8 vd, long ns, long nh, long n, long d, float value, long total) {
  long idx = get_global_id(0);
  if (idx >= total) return;
  long j = idx % d, row = idx / d, i = row % n, bsh = row / n;
  long ih = bsh % nh, t = bsh / nh;
  ST(DT_DST, dst, vrow(vd, t / ns, t % ns, ih, i) + j, value);
}
#endif

#if defined(DT_DST) && defined(DT_SRC)
/* dst = alpha * src; dst and src never overlap partially (the core's contract) */
__kernel void copy(__global PT(DT_DST) *dst, long8 vd, __global const PT(DT_SRC) *src, long8 vs, long ns, long nh,
                   long n, long d, float alpha, long total) {
  long idx = get_global_id(0);
  if (idx >= total) return;
  long j = idx % d, row = idx / d, i = row % n, bsh = row / n;
  long ih = bsh % nh, t = bsh / nh, ib = t / ns, is = t % ns;
  float x = LD(DT_SRC, src, vrow(vs, ib, is, ih, i) + j);
  ST(DT_DST, dst, vrow(vd, ib, is, ih, i) + j, alpha * x);
}
#endif

/* Online-softmax merge of a partial result into an accumulator (all f32), one work-item per
 * row: lse = logaddexp(acc_lse, part_lse); a -inf side contributes nothing (its out is not
 * even read, so garbage there cannot leak in as NaN). */
__kernel void merge(__global float *ao, long8 vao, __global float *al, long8 val, __global const float *po,
                    long8 vpo, __global const float *pl, long8 vpl, long ns, long nh, long n, int d, long total) {
  long row = get_global_id(0);
  if (row >= total) return;
  long i = row % n, bsh = row / n;
  long ih = bsh % nh, t = bsh / nh, ib = t / ns, is = t % ns;
  long oa = vrow(vao, ib, is, ih, i), op = vrow(vpo, ib, is, ih, i);
  long la_i = vrow(val, ib, is, ih, i);
  float la = al[la_i], lp = pl[vrow(vpl, ib, is, ih, i)];
  if (la == -INFINITY && lp == -INFINITY) {
    for (int c = 0; c < d; c++) ao[oa + c] = 0.0f;
    al[la_i] = -INFINITY;
    return;
  }
  if (lp == -INFINITY) return; /* nothing to add: acc unchanged */
  if (la == -INFINITY) {
    for (int c = 0; c < d; c++) ao[oa + c] = po[op + c];
    al[la_i] = lp;
    return;
  }
  float m = fmax(la, lp);
  float l = m + log(exp(la - m) + exp(lp - m));
  float wa = exp(la - l), wp = exp(lp - l);
  for (int c = 0; c < d; c++) ao[oa + c] = ao[oa + c] * wa + po[op + c] * wp;
  al[la_i] = l;
}

#ifdef DT_Y
/* y[r][c] = src[r][c] + bias[c], rounded to y's dtype; src is f32 (may alias y when y is f32) */
__kernel void bias_store(__global PT(DT_Y) *y, long yoff, __global const float *src, long soff,
                         __global const PT(DT_BIAS) *bias, long boff, long ncols, long total) {
  long idx = get_global_id(0);
  if (idx >= total) return;
  long c = idx % ncols, r = idx / ncols;
  float x = src[soff + r * ncols + c];
#if HAS_BIAS
  x += LD(DT_BIAS, bias, boff + c);
#endif
  ST(DT_Y, y, yoff + r * ncols + c, x);
}
#endif
