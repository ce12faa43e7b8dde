/* Attention backward (SPEC.md section 1): D_i = dout_i . out_i, p = exp(s - lse),
 * dv = p^T dout, dp = dout v^T, ds = p (dp - D), dq = scale ds k, dk = scale ds^T q.
 * Two passes without atomics, so results are deterministic: bwd_dkdv owns key rows (one
 * work-item per key, GQA: summed over the query heads of the kv head) and streams query
 * tiles through local memory; bwd_dq owns query rows and streams key tiles.
 * Defines: DT_Q DT_K DT_V DT_O DT_DO DT_DQ DT_DK DT_DV, DK DV, DP (>= DK, DV), BT (work-items
 * per group = rows per streamed tile). */

#define LDT DP

/* D[bsh][i] = dot(dout_i, out_i), f32 scratch [nb*ns*nh][nq] */
__kernel void bwd_dot(__global const PT(DT_O) *o, long8 vo, __global const PT(DT_DO) *dout, long8 vdo,
                      __global float *D, int nq, int ns, int nh, long total) {
  long idx = get_global_id(0);
  if (idx >= total) return;
  long i = idx % nq, bsh = idx / nq;
  long ih = bsh % nh, ib = bsh / nh / ns, is = (bsh / nh) % ns;
  long ob = vrow(vo, ib, is, ih, i), db = vrow(vdo, ib, is, ih, i);
  float s = 0.0f;
  for (int c = 0; c < DV; c++) s += LD(DT_DO, dout, db + c) * LD(DT_O, o, ob + c);
  D[bsh * nq + i] = s;
}

__kernel __attribute__((reqd_work_group_size(BT, 1, 1)))
void bwd_dkdv(__global const PT(DT_Q) *q, long8 vq, __global const PT(DT_K) *k, long8 vk,
              __global const PT(DT_V) *v, long8 vv, __global const PT(DT_DO) *dout, long8 vdo,
              __global const float *lse, long8 vl, __global const float *D, __global PT(DT_DK) *dk, long8 vdk,
              __global PT(DT_DV) *dv, long8 vdv, int nq, int nk, int ns, int nh, int nkvh, int group,
              float scale, int causal, long coff, int ntiles) {
  __local float qt[BT * LDT], dot_[BT * LDT], lt[BT], Dt[BT];
  const int t = get_local_id(0);
  /* one grid dimension (GPUs limit the others): group = bkh * ntiles + key tile */
  const long j0 = (long)(get_group_id(0) % ntiles) * BT, j = j0 + t;
  const long bkh = get_group_id(0) / ntiles;
  const long kh = bkh % nkvh, ib = bkh / nkvh / ns, is = (bkh / nkvh) % ns;
  const int valid = j < nk;
  float kj[DK], vj[DV], gk[DK], gv[DV];
  const long kb = vrow(vk, ib, is, kh, j), vb = vrow(vv, ib, is, kh, j);
  for (int c = 0; c < DK; c++) { kj[c] = valid ? LD(DT_K, k, kb + c) : 0.0f; gk[c] = 0.0f; }
  for (int c = 0; c < DV; c++) { vj[c] = valid ? LD(DT_V, v, vb + c) : 0.0f; gv[c] = 0.0f; }
  /* causal: query i sees key j iff j <= i + coff, so queries before j0 - coff see no key here */
  const long i_start = causal ? max(0L, j0 - coff) : 0L;
  for (int g = 0; g < group; g++) {
    const long ih = kh * group + g;
    const long bsh = (ib * ns + is) * nh + ih;
    for (long it = i_start; it < nq; it += BT) {
      barrier(CLK_LOCAL_MEM_FENCE);
      for (int x = t; x < BT * DP; x += BT) {
        int r = x / DP, c = x % DP;
        long i = it + r;
        qt[r * LDT + c] = (i < nq && c < DK) ? LD(DT_Q, q, vrow(vq, ib, is, ih, i) + c) : 0.0f;
        dot_[r * LDT + c] = (i < nq && c < DV) ? LD(DT_DO, dout, vrow(vdo, ib, is, ih, i) + c) : 0.0f;
      }
      {
        long i = it + t;
        lt[t] = i < nq ? lse[vrow(vl, ib, is, ih, i)] : -INFINITY;
        Dt[t] = i < nq ? D[bsh * nq + i] : 0.0f;
      }
      barrier(CLK_LOCAL_MEM_FENCE);
      for (int r = 0; r < BT; r++) {
        const long i = it + r;
        const float L = lt[r];
        if (!valid || i >= nq || L == -INFINITY || (causal && j > i + coff)) continue;
        float s = 0.0f, dp = 0.0f;
        for (int c = 0; c < DK; c++) s += qt[r * LDT + c] * kj[c];
        for (int c = 0; c < DV; c++) dp += dot_[r * LDT + c] * vj[c];
        const float p = exp(scale * s - L);
        const float ds = p * (dp - Dt[r]);
        for (int c = 0; c < DV; c++) gv[c] += p * dot_[r * LDT + c];
        for (int c = 0; c < DK; c++) gk[c] += scale * ds * qt[r * LDT + c];
      }
    }
  }
  if (!valid) return;
  const long gkb = vrow(vdk, ib, is, kh, j), gvb = vrow(vdv, ib, is, kh, j);
  for (int c = 0; c < DK; c++) ST(DT_DK, dk, gkb + c, gk[c]);
  for (int c = 0; c < DV; c++) ST(DT_DV, dv, gvb + c, gv[c]);
}

__kernel __attribute__((reqd_work_group_size(BT, 1, 1)))
void bwd_dq(__global const PT(DT_Q) *q, long8 vq, __global const PT(DT_K) *k, long8 vk,
            __global const PT(DT_V) *v, long8 vv, __global const PT(DT_DO) *dout, long8 vdo,
            __global const float *lse, long8 vl, __global const float *D, __global PT(DT_DQ) *dq, long8 vdq,
            int nq, int nk, int ns, int nh, int group, float scale, int causal, long coff, int ntiles) {
  __local float kt[BT * LDT], vt[BT * LDT];
  const int t = get_local_id(0);
  const long i0 = (long)(get_group_id(0) % ntiles) * BT, i = i0 + t;
  const long bsh = get_group_id(0) / ntiles;
  const long ih = bsh % nh, ib = bsh / nh / ns, is = (bsh / nh) % ns, kh = ih / group;
  const int valid = i < nq;
  float qi[DK], di[DV], g[DK];
  const long qb = vrow(vq, ib, is, ih, i), db = vrow(vdo, ib, is, ih, i);
  for (int c = 0; c < DK; c++) { qi[c] = valid ? LD(DT_Q, q, qb + c) : 0.0f; g[c] = 0.0f; }
  for (int c = 0; c < DV; c++) di[c] = valid ? LD(DT_DO, dout, db + c) : 0.0f;
  const float L = valid ? lse[vrow(vl, ib, is, ih, i)] : -INFINITY;
  const float Di = valid ? D[bsh * nq + i] : 0.0f;
  /* causal: the group's last row sees keys up to i_last + coff */
  long j_end = nk;
  if (causal) j_end = clamp(min(i0 + BT, (long)nq) - 1 + coff + 1, 0L, (long)nk);
  for (long jt = 0; jt < j_end; jt += BT) {
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int x = t; x < BT * DP; x += BT) {
      int r = x / DP, c = x % DP;
      long jj = jt + r;
      kt[r * LDT + c] = (jj < nk && c < DK) ? LD(DT_K, k, vrow(vk, ib, is, kh, jj) + c) : 0.0f;
      vt[r * LDT + c] = (jj < nk && c < DV) ? LD(DT_V, v, vrow(vv, ib, is, kh, jj) + c) : 0.0f;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (!valid || L == -INFINITY) continue;
    for (int r = 0; r < BT; r++) {
      const long jj = jt + r;
      if (jj >= nk || (causal && jj > i + coff)) continue;
      float s = 0.0f, dp = 0.0f;
      for (int c = 0; c < DK; c++) s += qi[c] * kt[r * LDT + c];
      for (int c = 0; c < DV; c++) dp += di[c] * vt[r * LDT + c];
      const float p = exp(scale * s - L);
      const float ds = p * (dp - Di);
      for (int c = 0; c < DK; c++) g[c] += scale * ds * kt[r * LDT + c];
    }
  }
  if (!valid) return;
  const long gb = vrow(vdq, ib, is, ih, i);
  for (int c = 0; c < DK; c++) ST(DT_DQ, dq, gb + c, g[c]);
}
