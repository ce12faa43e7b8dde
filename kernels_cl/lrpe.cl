/* md_lrpe_cosine (SPEC.md section 6). One work-item per (head h, row t, column k), looping
 * over the batch so the angle and its sin/cos are computed once per (h, t, k).
 * Angles reach 1e5 rad: full-accuracy sin/cos (never native_*), and the program is built
 * without -cl-fast-relaxed-math. The angle is one f32 multiply, exactly as the reference.
 * Defines: DT_IN, DT_TH, DT_OUT, HAS_CACHE. */

inline long shape_at(long8 s, int i) {
  switch (i) {
  case 0: return s.s0; case 1: return s.s1; case 2: return s.s2; case 3: return s.s3;
  case 4: return s.s4; case 5: return s.s5; case 6: return s.s6; default: return s.s7;
  }
}

inline float lrpe_angle(__global const PT(DT_TH) *theta, long thoff, long hh, long t, long k, long e,
                        int ndims, long8 shape, long extra) {
  if (t < extra) return 0.0f;
  long c = t - extra, axis = k / e, pos = 0;
  for (int i = ndims - 1; i >= 0; i--) {
    long s = shape_at(shape, i);
    long p = c % s;
    c /= s;
    if (i == axis) pos = p;
  }
  float th = LD(DT_TH, theta, thoff + hh * e + k % e);
  return (float)pos * th;
}

__kernel void lrpe_forward(__global const PT(DT_IN) *x, long xoff, __global const PT(DT_TH) *theta, long thoff,
                           __global PT(DT_OUT) *out, long ooff, __global float *cache, long coff, long nbatch,
                           long nh, long n, long d, long e, int ndims, long8 shape, long extra, long total) {
  long idx = get_global_id(0);
  if (idx >= total) return;
  long k = idx % d, t = (idx / d) % n, hh = idx / d / n;
  float ang = lrpe_angle(theta, thoff, hh, t, k, e, ndims, shape, extra);
#if HAS_CACHE
  cache[coff + (hh * n + t) * d + k] = ang;
#endif
  float cs = cos(ang), sn = sin(ang);
  for (long ib = 0; ib < nbatch; ib++) {
    long row = (ib * nh + hh) * n + t;
    float xv = LD(DT_IN, x, xoff + row * d + k);
    ST(DT_OUT, out, ooff + row * 2 * d + k, xv * cs);
    ST(DT_OUT, out, ooff + row * 2 * d + d + k, xv * sn);
  }
}

__kernel void lrpe_backward(__global const PT(DT_IN) *dout, long doff, __global const PT(DT_TH) *theta, long thoff,
                            __global PT(DT_OUT) *dx, long xoff, __global const float *cache, long coff, long nbatch,
                            long nh, long n, long d, long e, int ndims, long8 shape, long extra, long total) {
  long idx = get_global_id(0);
  if (idx >= total) return;
  long k = idx % d, t = (idx / d) % n, hh = idx / d / n;
#if HAS_CACHE
  float ang = cache[coff + (hh * n + t) * d + k];
#else
  float ang = lrpe_angle(theta, thoff, hh, t, k, e, ndims, shape, extra);
#endif
  float cs = cos(ang), sn = sin(ang);
  for (long ib = 0; ib < nbatch; ib++) {
    long row = (ib * nh + hh) * n + t;
    float g = LD(DT_IN, dout, doff + row * 2 * d + k) * cs + LD(DT_IN, dout, doff + row * 2 * d + d + k) * sn;
    ST(DT_OUT, dx, xoff + row * d + k, g);
  }
}
