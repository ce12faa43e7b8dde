/* Fused dense and block-sparse attention forward (SPEC.md sections 1 and 4): tiled in local
 * memory with an online softmax, never n^2 memory. Parallel in name and structure to
 * kernels_cu/attention_flash.cu.
 *
 * A work-group owns BM query rows of one (batch, segment, head) and walks key tiles of BN
 * rows. Work-item (tr, tc), tr < BM/RM, tc < TC, holds RM query rows: the scores of those
 * rows at key columns tc, tc+TC, ... (CN = BN/TC of them) and CD = DP/TC output columns in
 * float4 chunks 4*tc + 4*TC*x (interleaved, so that the TC work-items of a row read
 * consecutive float4s of V: no local-memory bank conflicts). Per key tile:
 *   K -> local; S = (scale*Q) K^T from local (float4 along d); mask/causal/bounds -> -inf;
 *   row max across the TC work-items of a row through local memory; P = exp(S - m) to
 *   local (transposed, so a work-item reads its RM rows of one key as one float4);
 *   V -> local (same buffer as K); acc = acc * alpha + P V.
 * The row sums l stay partial per work-item (their rescaling only needs the shared max)
 * and are added up once at the end.
 *
 * Defines: DT_Q DT_K DT_V DT_O DT_M (dtypes), DK DV (head dims), DP (padded, a multiple of
 * 4*TC), BM BN RM TC (tile), HAS_MASK, HAS_LSE, BLOCK_SPARSE, VEC_Q VEC_K VEC_V (f32
 * operands whose views are 16-byte aligned: float4 global loads), UNROLL_QK UNROLL_PV (1:
 * unroll the S = Q K^T loop over d, resp. the P V loop over the tile's keys, completely;
 * 0: the compiler's choice; the host picks them per head dim, ocl_attention.c). */

#if RM != 4
#error "RM must be 4: a work-item reads its rows of P as one float4"
#endif
#define TR (BM / RM)
#define NT (TR * TC)
#define CN (BN / TC)
#define CD (DP / TC)
#ifndef UNROLL_QK
#define UNROLL_QK 0
#endif
#ifndef UNROLL_PV
#define UNROLL_PV 0
#endif
#define LDQ (DP + 4)
#define LDP (BM + 4)

/* rows [r0, r0+rows) of a (row stride sn) matrix at base, columns [0, dreal), times mul,
 * into dst[rows][LDQ] with zeros beyond rend and dreal */
#define DEFINE_TILE_LOAD(NAME, DT, VEC, DREAL)                                                     \
  inline void NAME(__local float *dst, int rows, __global const PT(DT) *src, long base, long sn, \
                   long r0, long rend, float mul) {                                               \
    if (VEC) {                                                                                    \
      for (int x = get_local_id(0); x < rows * (DP / 4); x += NT) {                               \
        int r = x / (DP / 4), c = (x % (DP / 4)) * 4;                                             \
        long gr = r0 + r;                                                                         \
        float4 val = (float4)(0.0f);                                                              \
        if (gr < rend && c < DREAL)                                                               \
          val = ((__global const float4 *)((__global const float *)src + base + gr * sn))[c / 4] * mul; \
        *(__local float4 *)(dst + r * LDQ + c) = val;                                             \
      }                                                                                           \
    } else {                                                                                      \
      for (int x = get_local_id(0); x < rows * DP; x += NT) {                                     \
        int r = x / DP, c = x % DP;                                                               \
        long gr = r0 + r;                                                                         \
        float val = 0.0f;                                                                         \
        if (gr < rend && c < DREAL) val = LD(DT, src, base + gr * sn + c) * mul;                  \
        dst[r * LDQ + c] = val;                                                                   \
      }                                                                                           \
    }                                                                                             \
  }

#ifndef VEC_Q
#define VEC_Q 0
#endif
#ifndef VEC_K
#define VEC_K 0
#endif
#ifndef VEC_V
#define VEC_V 0
#endif
DEFINE_TILE_LOAD(load_q, DT_Q, VEC_Q, DK)
DEFINE_TILE_LOAD(load_k, DT_K, VEC_K, DK)
DEFINE_TILE_LOAD(load_v, DT_V, VEC_V, DV)

__kernel __attribute__((reqd_work_group_size(NT, 1, 1)))
void attention_flash(__global const PT(DT_Q) *q, long8 vq, __global const PT(DT_K) *k, long8 vk,
                     __global const PT(DT_V) *v, long8 vv, __global PT(DT_O) *o, long8 vo,
                     __global const PT(DT_M) *mask, long8 vm, __global float *lse, long8 vl,
                     int nq, int nk, int ns, int nh, int group, float scale, float out_scale, int causal,
                     long coff, __global const int *rowptr, __global const int *bcols, int nqb, int bsz,
                     int lay_heads, int ntiles) {
  __local float4 qs4[BM * LDQ / 4];
  __local float4 kv4[BN * LDQ / 4];
  __local float4 ps4[BN * LDP / 4];
  __local float red[BM * TC];
  __local float *qs = (__local float *)qs4, *kv = (__local float *)kv4, *ps = (__local float *)ps4;

  const int lid = get_local_id(0), tr = lid / TC, tc = lid % TC;
  /* one grid dimension (GPUs limit the others): group = bsh * ntiles + query tile */
  const int tile = get_group_id(0) % ntiles;
  const long bsh = get_group_id(0) / ntiles;
  const long ih = bsh % nh, ib = bsh / nh / ns, is = (bsh / nh) % ns, kh = ih / group;

#if BLOCK_SPARSE
  const int qtpb = (bsz + BM - 1) / BM, I = tile / qtpb;
  const long row0 = (long)I * bsz + (long)(tile % qtpb) * BM;
  const long row_end = min((long)I * bsz + bsz, (long)nq);
  const int lrow = (lay_heads > 1 ? (int)ih : 0) * (nqb + 1) + I;
  const int p0 = rowptr[lrow];
  /* a tile past the block's rows does nothing; no early return, every work-item meets
   * every barrier */
  const int nseg = row0 < row_end ? rowptr[lrow + 1] - p0 : 0;
#else
  const long row0 = (long)tile * BM, row_end = nq;
  const int nseg = 1;
#endif
  const long last_row = min(row0 + BM, row_end) - 1;

  const long qb = vrow(vq, ib, is, ih, 0), kb = vrow(vk, ib, is, kh, 0), vb = vrow(vv, ib, is, kh, 0);
  load_q(qs, BM, q, qb, vq.s4, row0, row_end, scale);

  float m_i[RM], l_i[RM], acc[RM][CD];
#pragma unroll
  for (int r = 0; r < RM; r++) {
    m_i[r] = -INFINITY;
    l_i[r] = 0.0f;
#pragma unroll
    for (int x = 0; x < CD; x++) acc[r][x] = 0.0f;
  }
#if HAS_MASK
  const long mb = vrow(vm, ib, is, ih, 0);
#endif

  for (int sg = 0; sg < nseg; sg++) {
#if BLOCK_SPARSE
    const long js = (long)bcols[p0 + sg] * bsz;
    long je = min(js + bsz, (long)nk);
#else
    const long js = 0;
    long je = nk;
#endif
    if (causal) je = min(je, last_row + coff + 1);
    for (long jt = js; jt < je; jt += BN) {
      barrier(CLK_LOCAL_MEM_FENCE); /* previous tile's P V (and the Q load) done */
      load_k(kv, BN, k, kb, vk.s4, jt, je, 1.0f);
      barrier(CLK_LOCAL_MEM_FENCE);

      float s[RM][CN];
#pragma unroll
      for (int r = 0; r < RM; r++)
#pragma unroll
        for (int c = 0; c < CN; c++) s[r][c] = 0.0f;
#if UNROLL_QK
#pragma unroll
#endif
      for (int d4 = 0; d4 < DP / 4; d4++) {
        float4 qv[RM];
#pragma unroll
        for (int r = 0; r < RM; r++) qv[r] = qs4[(tr * RM + r) * (LDQ / 4) + d4];
#pragma unroll
        for (int c = 0; c < CN; c++) {
          float4 kk = kv4[(tc + c * TC) * (LDQ / 4) + d4];
#pragma unroll
          for (int r = 0; r < RM; r++)
            s[r][c] = fma(qv[r].w, kk.w, fma(qv[r].z, kk.z, fma(qv[r].y, kk.y, fma(qv[r].x, kk.x, s[r][c]))));
        }
      }

#pragma unroll
      for (int r = 0; r < RM; r++) {
        const long i = row0 + tr * RM + r;
        float mx = -INFINITY;
#pragma unroll
        for (int c = 0; c < CN; c++) {
          const long j = jt + tc + c * TC;
          int ok = i < row_end && j < je && !(causal && j > i + coff);
          float sv = s[r][c];
#if HAS_MASK
          if (ok) sv += LD(DT_M, mask, mb + i * vm.s4 + j);
#endif
          s[r][c] = ok ? sv : -INFINITY;
          mx = fmax(mx, s[r][c]);
        }
        red[(tr * RM + r) * TC + tc] = mx;
      }
      barrier(CLK_LOCAL_MEM_FENCE);

#pragma unroll
      for (int r = 0; r < RM; r++) {
        float mx = -INFINITY;
        for (int t = 0; t < TC; t++) mx = fmax(mx, red[(tr * RM + r) * TC + t]);
        const float mnew = fmax(m_i[r], mx);
        const float muse = mnew == -INFINITY ? 0.0f : mnew; /* all masked so far: keep zeros */
        const float alpha = exp(m_i[r] - muse);
        m_i[r] = mnew;
        float ls = 0.0f;
#pragma unroll
        for (int c = 0; c < CN; c++) {
          float p = exp(s[r][c] - muse);
          ps[(tc + c * TC) * LDP + tr * RM + r] = p;
          ls += p;
        }
        l_i[r] = l_i[r] * alpha + ls;
#pragma unroll
        for (int x = 0; x < CD; x++) acc[r][x] *= alpha;
      }
      barrier(CLK_LOCAL_MEM_FENCE); /* K and red no longer read; P complete */
      load_v(kv, BN, v, vb, vv.s4, jt, je, 1.0f);
      barrier(CLK_LOCAL_MEM_FENCE);

#if UNROLL_PV
#pragma unroll
#endif
      for (int j = 0; j < BN; j++) {
        const float4 p4 = ps4[j * (LDP / 4) + tr];
#pragma unroll
        for (int x4 = 0; x4 < CD / 4; x4++) {
          const float4 w = kv4[j * (LDQ / 4) + x4 * TC + tc];
          acc[0][4 * x4 + 0] = fma(p4.x, w.x, acc[0][4 * x4 + 0]);
          acc[0][4 * x4 + 1] = fma(p4.x, w.y, acc[0][4 * x4 + 1]);
          acc[0][4 * x4 + 2] = fma(p4.x, w.z, acc[0][4 * x4 + 2]);
          acc[0][4 * x4 + 3] = fma(p4.x, w.w, acc[0][4 * x4 + 3]);
          acc[1][4 * x4 + 0] = fma(p4.y, w.x, acc[1][4 * x4 + 0]);
          acc[1][4 * x4 + 1] = fma(p4.y, w.y, acc[1][4 * x4 + 1]);
          acc[1][4 * x4 + 2] = fma(p4.y, w.z, acc[1][4 * x4 + 2]);
          acc[1][4 * x4 + 3] = fma(p4.y, w.w, acc[1][4 * x4 + 3]);
          acc[2][4 * x4 + 0] = fma(p4.z, w.x, acc[2][4 * x4 + 0]);
          acc[2][4 * x4 + 1] = fma(p4.z, w.y, acc[2][4 * x4 + 1]);
          acc[2][4 * x4 + 2] = fma(p4.z, w.z, acc[2][4 * x4 + 2]);
          acc[2][4 * x4 + 3] = fma(p4.z, w.w, acc[2][4 * x4 + 3]);
          acc[3][4 * x4 + 0] = fma(p4.w, w.x, acc[3][4 * x4 + 0]);
          acc[3][4 * x4 + 1] = fma(p4.w, w.y, acc[3][4 * x4 + 1]);
          acc[3][4 * x4 + 2] = fma(p4.w, w.z, acc[3][4 * x4 + 2]);
          acc[3][4 * x4 + 3] = fma(p4.w, w.w, acc[3][4 * x4 + 3]);
        }
      }
    }
  }

  /* the row sums are partial per work-item: add them up */
  barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
  for (int r = 0; r < RM; r++) red[(tr * RM + r) * TC + tc] = l_i[r];
  barrier(CLK_LOCAL_MEM_FENCE);
  const long ob = vrow(vo, ib, is, ih, 0);
#if HAS_LSE
  const long lb = vrow(vl, ib, is, ih, 0);
#endif
  /* if rather than continue: PoCL 3 miscompiled a continue in this unrolled loop */
#pragma unroll
  for (int r = 0; r < RM; r++) {
    const long i = row0 + tr * RM + r;
    if (i < row_end) {
      float l = 0.0f;
      for (int t = 0; t < TC; t++) l += red[(tr * RM + r) * TC + t];
      const float inv = l > 0.0f ? out_scale / l : 0.0f;
#pragma unroll
      for (int x = 0; x < CD; x++) {
        const int c = (x / 4) * (4 * TC) + tc * 4 + x % 4;
        if (c < DV) ST(DT_O, o, ob + i * vo.s4 + c, acc[r][x] * inv);
      }
#if HAS_LSE
      if (tc == 0) lse[lb + i * vl.s4] = l > 0.0f ? m_i[r] + log(l) : -INFINITY;
#endif
    }
  }
}
