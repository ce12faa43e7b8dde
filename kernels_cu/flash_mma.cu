/* Fused tiled attention on tensor cores for f16/bf16 inputs (sm_80 and newer), FlashAttention-2
 * style: the same semantics as flash.cu (strided views, GQA, causal with any offset, additive
 * mask of any dtype, lse, out_scale, nq != nk, dk/dv up to the padded head dim), with Q K^T and
 * P V as mma.sync m16n8k16 (16-bit operands, f32 accumulation). Older architectures use
 * flash.cu (f32 arithmetic). Parallel to kernels_cl/flash.cl.
 *
 * One block computes BM = 16*MT*NW query rows of one (batch, segment, head); warp w owns the
 * MT m16 tiles of rows 16*MT*w .. 16*MT*w + 16*MT-1 and keeps their scores and output in
 * registers; P goes from the score accumulators straight into the A operand of P V.
 *   - K and V tiles (BN keys) stream through shared memory with 16-byte cp.async (zero fill of
 *     rows beyond nk and columns beyond dk/dv through the src-size operand), ST = 1 (one
 *     buffer each: V(j) loads during S(j) = Q K(j)^T, K(j+1) during softmax and P V(j)) or
 *     ST = 2 (two buffers each: K two tiles ahead, V one tile ahead). Views whose rows are
 *     not 16-byte aligned are loaded with plain element loads at the same places.
 *   - Shared rows are padded by 16 bytes, so ldmatrix (8 rows at one column) and the 16-byte
 *     stores (8 consecutive chunks of one row per phase) are free of bank conflicts.
 *   - Softmax in base 2: p = 2^(s*u - m*u) with u = scale*log2(e) (one FFMA + MUFU.EX2 per
 *     score; with a mask, s = scale*qk + mask first and u = log2(e)); lse converted back to
 *     natural log at the end. A row whose running max is -inf uses 0 as the subtrahend, so
 *     invisible scores give p = 0 and a row with no visible key ends with l = 0: out 0, lse -inf.
 *   - Per-score checks (key range, causal, mask, rows past nq with a mask) only on tiles that
 *     need them, decided per warp; interior tiles skip them. 32-bit positions (the host
 *     requires nq, nk < 2^30 and clamps causal_offset to [-nq, nk], which keeps semantics).
 *   - The row sums l are per-thread partial sums (the 4 lanes of a row share m), reduced once
 *     at the end.
 * Grid: blockIdx.x = ((ib*ns + is)*hq + ih)*nqt + (nqt-1-qt): the longest causal tiles first. */
#ifndef __CUDACC_RTC__
#include <stdlib.h>
#endif

#include "mma.cuh"
#include <cuda_bf16.h>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define PCU_MMA_DEVICE 1
#else
#define PCU_MMA_DEVICE 0
#endif

namespace pcu_mma {

/* D: padded head dim; NW warps of MT m16 tiles each; BN keys per kv tile; ST kv buffers;
 * QREG: the warp's Q fragments stay in registers for the whole kv loop (else re-read from
 * shared memory for every tile). */
template <int D_, int NW_, int MT_, int BN_, int ST_, bool QREG_> struct Cfg {
  static constexpr int D = D_, NW = NW_, MT = MT_, BN = BN_, ST = ST_;
  static constexpr bool QREG = QREG_;
  static constexpr int THREADS = 32 * NW;
  static constexpr int BM = 16 * MT * NW;
  static constexpr int P = D + 8; /* row pitch in halves: +16 bytes keeps ldmatrix rows on distinct banks */
  static constexpr int Q_EL = BM * P, KV_EL = BN * P;
  static constexpr size_t SMEM = (size_t)(Q_EL + 2 * ST * KV_EL) * 2;
  static_assert(D % 32 == 0 && BN % 16 == 0 && (ST == 1 || ST == 2), "tile shape");
  static_assert(THREADS % (D / 8) == 0, "whole rows per load pass");
};

#if PCU_MMA_DEVICE
using namespace pcu_mma_ops;

__device__ __forceinline__ float mask_val(const float *p) { return *p; }
__device__ __forceinline__ float mask_val(const __half *p) { return __half2float(*p); }
__device__ __forceinline__ float mask_val(const __nv_bfloat16 *p) { return __bfloat162float(*p); }

/* With an additive mask: every score of the warp's rows becomes scale*s + mask (natural
 * units), or -inf where invisible (key range, causal, rows past nq, whose mask row must not
 * be read). mrow0: the mask's (ib, ih) plane; rows i at mrow0 + i*msn. */
template <int MT, int NT, typename T>
__device__ __forceinline__ void mask_tile(float (&s)[MT][NT][4], const T *mrow0, int64_t msn, int wrow, int k0, int g, int t,
                                          int nq, int nk, bool causal, int off, float scale) {
#pragma unroll
  for (int mt = 0; mt < MT; mt++)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int i = wrow + mt * 16 + g + 8 * h;
      int last = causal ? min(nk - 1, i + off) : nk - 1;
      if (i >= nq) last = -1;
      const T *mr = mrow0 + (int64_t)i * msn + k0 + 2 * t;
#pragma unroll
      for (int n = 0; n < NT; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          float &x = s[mt][n][2 * h + e];
          x = k0 + n * 8 + 2 * t + e > last ? -PCU_INF : fmaf(x, scale, mask_val(mr + n * 8 + e));
        }
      asm volatile("" ::: "memory"); /* one row's loads at a time (register pressure) */
    }
}
#endif /* PCU_MMA_DEVICE */

#define PCU_MMA_STATIC_SMEM 64 /* plane_off[] in k_flash_mma, rounded up */

/* flags: bit 0/1/2: q/k/v rows 16-byte aligned (cp.async), bit 3: out 16-bit with even
 * row starts (32-bit stores of column pairs). off: causal_offset clamped to [-nq, nk]. */
template <class C, bool BF16, bool MASK>
__global__ void __launch_bounds__(C::THREADS) k_flash_mma(pcu_flash_args a, int nqt, int off, int flags) {
#if PCU_MMA_DEVICE
  constexpr int D = C::D, MT = C::MT, BN = C::BN, BM = C::BM, P = C::P, ST = C::ST;
  constexpr int NT = BN / 8, OT = D / 8, KT = D / 16, PK = BN / 16;
  extern __shared__ uint4 smem_mma[];
  uint16_t *Qs = (uint16_t *)smem_mma, *Ks = Qs + C::Q_EL, *Vs = Ks + ST * C::KV_EL;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const int nq = (int)a.q.n, nk = (int)a.k.n, hq = (int)a.q.nh, group = hq / (int)a.k.nh, ns = (int)a.q.ns;
  int bid = (int)blockIdx.x;
  const int qt = nqt - 1 - bid % nqt;
  bid /= nqt;
  const int ih0 = bid % hq;
  bid /= hq;
  const int is0 = bid % ns, ib0 = bid / ns, kh = ih0 / group;
  const int q0 = qt * BM;
  const bool causal = a.causal != 0, has_mask = MASK; /* the host picks MASK = (a.mask.buf != NULL) */
  const bool asq = flags & 1, ask = flags & 2, asv = flags & 4, vout = flags & 8;
  int kend = nk;
  if (causal) kend = min(nk, max(0, min(q0 + BM, nq) + off));
  const int ntiles = (kend + BN - 1) / BN;
  const int wrow = q0 + warp * (MT * 16); /* the warp's first query row */
  /* scores are kept in units where p = 2^(s*u - m*u): raw q.k (u = scale*log2 e) or, with a
   * mask, scale*q.k + mask (u = log2 e) */
  const float unit = has_mask ? 1.0f : a.scale, u = unit * PCU_LOG2E;

  float o[MT][OT][4], m[MT][2], l[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
    m[mt][0] = m[mt][1] = -PCU_INF;
    l[mt][0] = l[mt][1] = 0.0f;
#pragma unroll
    for (int n = 0; n < OT; n++) o[mt][n][0] = o[mt][n][1] = o[mt][n][2] = o[mt][n][3] = 0.0f;
  }

  if (ntiles > 0) {
    const uint16_t *qg = (const uint16_t *)a.q.buf + pcu_row(a.q, ib0, is0, ih0, q0);
    /* The (ib, is, kh) row offsets of K, V and the mask live in shared memory, read where
     * needed (after a barrier, so never hoisted): registers are what the 32-row warps at
     * d=128 lack. Thread 0 writes them; the first barrier of the loop publishes them. */
    __shared__ int64_t plane_off[3];
    if (tid == 0) {
      plane_off[0] = pcu_row(a.k, ib0, is0, kh, 0);
      plane_off[1] = pcu_row(a.v, ib0, is0, kh, 0);
      plane_off[2] = has_mask ? pcu_row(a.mask, a.mask.nb > 1 ? ib0 : 0, 0, a.mask.nh > 1 ? ih0 : 0, 0) : 0;
    }
    auto ktile = [&](int k, int64_t koff) { return (const uint16_t *)a.k.buf + (koff + (int64_t)k * a.k.sn); };
    auto vtile = [&](int k, int64_t voff) { return (const uint16_t *)a.v.buf + (voff + (int64_t)k * a.v.sn); };
    const int dq = (int)a.q.d, dk = (int)a.k.d, dv = (int)a.v.d;
    /* per-lane ldmatrix offsets (bytes): A (Q) and trans-B (V): rows (lane&7) + 8*bit3,
     * columns 8*bit4; B (K): rows (lane&7) + 8*bit4, columns 8*bit3 */
    const uint32_t alane = (uint32_t)(((lane & 7) + ((lane >> 3) & 1) * 8) * P + (lane >> 4) * 8) * 2;
    const uint32_t blane = (uint32_t)(((lane & 7) + (lane >> 4) * 8) * P + ((lane >> 3) & 1) * 8) * 2;
    const uint32_t sQ = smem_addr(Qs) + (uint32_t)(warp * MT * 16 * P) * 2 + alane;
    const uint32_t sK = smem_addr(Ks) + blane, sV = smem_addr(Vs) + alane;

    /* prologue. Committed groups at the top of iteration j: ST 1: [K(j)] (Q with K(0));
     * ST 2: [K(j), V(j), K(j+1)] (possibly empty groups past the last tile). */
    load_tile<C, BM>(Qs, qg, a.q.sn, nq - q0, dq, asq);
    load_tile<C, BN>(Ks, ktile(0, pcu_row(a.k, ib0, is0, kh, 0)), a.k.sn, nk, dk, ask);
    pcu_cp_commit();
    if (ST == 2) {
      load_tile<C, BN>(Vs, vtile(0, pcu_row(a.v, ib0, is0, kh, 0)), a.v.sn, nk, dv, asv);
      pcu_cp_commit();
      if (ntiles > 1) load_tile<C, BN>(Ks + C::KV_EL, ktile(BN, pcu_row(a.k, ib0, is0, kh, 0)), a.k.sn, nk - BN, dk, ask);
      pcu_cp_commit();
    }
    uint32_t qf[C::QREG ? MT : 1][C::QREG ? KT : 1][4];

    for (int j = 0; j < ntiles; j++) {
      const int k0 = j * BN;
      const uint32_t boff = ST == 2 ? (uint32_t)((j & 1) * C::KV_EL * 2) : 0u;
      if (ST == 2) pcu_cp_wait<2>(); else pcu_cp_wait<0>(); /* K(j) (and Q) landed */
      __syncthreads(); /* ... for every thread; every thread is done with P V(j-1) */
      if (ST == 2) {
        if (j + 1 < ntiles)
          load_tile<C, BN>(Vs + ((j + 1) & 1) * C::KV_EL, vtile(k0 + BN, plane_off[1]), a.v.sn, nk - k0 - BN, dv, asv);
      } else {
        load_tile<C, BN>(Vs, vtile(k0, plane_off[1]), a.v.sn, nk - k0, dv, asv);
      }
      pcu_cp_commit();
      if (C::QREG && j == 0) {
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
          for (int kk = 0; kk < KT; kk++) ldsm_x4(qf[C::QREG ? mt : 0][C::QREG ? kk : 0], sQ + (uint32_t)((mt * 16 * P + kk * 16) * 2));
      }

      /* a warp none of whose rows sees a key of this tile (causal) skips it: its m, l and
       * O would not change. The loads and barriers above and below stay uniform. */
      const bool wskip = causal && k0 > wrow + (MT * 16 - 1) + off;
      uint32_t pa[MT][PK][4];
      if (!wskip) {
        /* S = Q K(j)^T */
        float s[MT][NT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
          for (int n = 0; n < NT; n++) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KT; kk++) {
          uint32_t qa[MT][4];
#pragma unroll
          for (int mt = 0; mt < MT; mt++) {
            if (C::QREG) {
#pragma unroll
              for (int e = 0; e < 4; e++) qa[mt][e] = qf[C::QREG ? mt : 0][C::QREG ? kk : 0][e];
            } else {
              ldsm_x4(qa[mt], sQ + (uint32_t)((mt * 16 * P + kk * 16) * 2));
            }
          }
#pragma unroll
          for (int n2 = 0; n2 < NT / 2; n2++) {
            uint32_t b[4];
            ldsm_x4(b, sK + boff + (uint32_t)((n2 * 16 * P + kk * 16) * 2));
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
              mma16816<BF16>(s[mt][2 * n2], qa[mt], b);
              mma16816<BF16>(s[mt][2 * n2 + 1], qa[mt], b + 2);
            }
          }
        }

        /* per-score checks only where some score of the warp's rows may be invisible */
        if (has_mask) {
          const int64_t mbase = plane_off[2];
          /* one loop per mask dtype (uniform): a generic load per score would predicate the
           * loads of every dtype, with their addresses */
          if (a.mask.dtype == PCU_F32)
            mask_tile<MT, NT>(s, (const float *)a.mask.buf + mbase, a.mask.sn, wrow, k0, g, t, nq, nk, causal, off, a.scale);
          else if (a.mask.dtype == PCU_F16)
            mask_tile<MT, NT>(s, (const __half *)a.mask.buf + mbase, a.mask.sn, wrow, k0, g, t, nq, nk, causal, off, a.scale);
          else
            mask_tile<MT, NT>(s, (const __nv_bfloat16 *)a.mask.buf + mbase, a.mask.sn, wrow, k0, g, t, nq, nk, causal, off,
                              a.scale);
        } else if (k0 + BN > nk || (causal && k0 + BN - 1 > wrow + off)) {
#pragma unroll
          for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
              /* last visible key of row i (below k0: none in this tile) */
              const int i = wrow + mt * 16 + g + 8 * h, last = causal ? min(nk - 1, i + off) : nk - 1;
#pragma unroll
              for (int n = 0; n < NT; n++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                  if (k0 + n * 8 + 2 * t + e > last) s[mt][n][2 * h + e] = -PCU_INF;
            }
        }

        /* online softmax (base 2); P rounded to the input type as the A operand of P V */
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
          for (int h = 0; h < 2; h++) {
            float mx = m[mt][h];
#pragma unroll
            for (int n = 0; n < NT; n++) mx = fmaxf(mx, fmaxf(s[mt][n][2 * h], s[mt][n][2 * h + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float mu = mx == -PCU_INF ? 0.0f : mx * u;
            const float alpha = ex2(fmaf(m[mt][h], u, -mu)); /* 0 while m was -inf */
            m[mt][h] = mx;
            float sum = 0.0f;
#pragma unroll
            for (int n = 0; n < NT; n++) {
              const float p0 = ex2(fmaf(s[mt][n][2 * h], u, -mu)), p1 = ex2(fmaf(s[mt][n][2 * h + 1], u, -mu));
              s[mt][n][2 * h] = p0;
              s[mt][n][2 * h + 1] = p1;
              sum += p0 + p1;
            }
            l[mt][h] = l[mt][h] * alpha + sum;
#pragma unroll
            for (int n = 0; n < OT; n++) {
              o[mt][n][2 * h] *= alpha;
              o[mt][n][2 * h + 1] *= alpha;
            }
          }
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
          for (int kk = 0; kk < PK; kk++) {
            pa[mt][kk][0] = pack_rn<BF16>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
            pa[mt][kk][1] = pack_rn<BF16>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
            pa[mt][kk][2] = pack_rn<BF16>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
            pa[mt][kk][3] = pack_rn<BF16>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
          }
      } /* !wskip */

      if (ST == 2) pcu_cp_wait<2>(); else pcu_cp_wait<0>(); /* V(j) landed */
      __syncthreads(); /* ... for every thread; every thread is done with K(j) */
      if (ST == 2) {
        if (j + 2 < ntiles)
          load_tile<C, BN>(Ks + (j & 1) * C::KV_EL, ktile(k0 + 2 * BN, plane_off[0]), a.k.sn, nk - k0 - 2 * BN, dk, ask);
        pcu_cp_commit();
      } else if (j + 1 < ntiles) {
        load_tile<C, BN>(Ks, ktile(k0 + BN, plane_off[0]), a.k.sn, nk - k0 - BN, dk, ask);
        pcu_cp_commit();
      }

      /* O += P V(j) */
      if (!wskip) {
#pragma unroll
        for (int kk = 0; kk < PK; kk++)
#pragma unroll
          for (int n2 = 0; n2 < OT / 2; n2++) {
            uint32_t b[4];
            ldsm_x4_t(b, sV + boff + (uint32_t)((kk * 16 * P + n2 * 16) * 2));
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
              mma16816<BF16>(o[mt][2 * n2], pa[mt][kk], b);
              mma16816<BF16>(o[mt][2 * n2 + 1], pa[mt][kk], b + 2);
            }
          }
      }
    }
    pcu_cp_wait<0>(); /* nothing left in flight (only empty groups can remain) */
  }

  /* out = out_scale * O / l, lse = ln(sum exp(score)); a row without visible keys: 0, -inf.
   * The block's (ib, is, ih) decoded again from a fresh read of ctaid (volatile, so not merged
   * with the first): nothing of it stays live through the kv loop. */
  const int dv = (int)a.v.d;
  int ib, is, ih;
  {
    int b2;
    asm volatile("mov.u32 %0, %%ctaid.x;\n" : "=r"(b2));
    b2 /= nqt;
    ih = b2 % hq;
    b2 /= hq;
    is = b2 % ns;
    ib = b2 / ns;
  }
#pragma unroll
  for (int mt = 0; mt < MT; mt++)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      float lt = l[mt][h];
      lt += __shfl_xor_sync(0xffffffffu, lt, 1);
      lt += __shfl_xor_sync(0xffffffffu, lt, 2);
      const int i = wrow + mt * 16 + g + 8 * h;
      if (i >= nq) continue;
      const float inv = lt > 0.0f ? a.out_scale / lt : 0.0f;
      const int64_t r = pcu_row(a.out, ib, is, ih, i);
#pragma unroll
      for (int n = 0; n < OT; n++) {
        const int col = n * 8 + 2 * t;
        if (col >= dv) continue;
        const float x0 = o[mt][n][2 * h] * inv, x1 = o[mt][n][2 * h + 1] * inv;
        if (vout && col + 1 < dv) {
          const uint32_t w = a.out.dtype == PCU_BF16 ? (uint32_t)pcu_f32_to_bf16(x0) | ((uint32_t)pcu_f32_to_bf16(x1) << 16)
                                                     : (uint32_t)pcu_f32_to_f16(x0) | ((uint32_t)pcu_f32_to_f16(x1) << 16);
          *(uint32_t *)((uint16_t *)a.out.buf + r + col) = w;
        } else {
          pcu_store(a.out.buf, a.out.dtype, r + col, x0);
          if (col + 1 < dv) pcu_store(a.out.buf, a.out.dtype, r + col + 1, x1);
        }
      }
      if (a.lse.buf && t == 0)
        pcu_store(a.lse.buf, a.lse.dtype, pcu_row(a.lse, ib, is, ih, i), lt > 0.0f ? m[mt][h] * unit + logf(lt) : -PCU_INF);
    }
#endif
}

} /* namespace pcu_mma */

/* The variants (see mma_variants below): D, then (NW, MT, BN, ST, QREG) without a mask, then
 * with one. The one list feeds the host table and, under NVRTC, the explicit instantiations
 * (common.cuh, "Under NVRTC"); a specialization may appear only once. */
#define MMA_VARIANTS(X) \
  X(32, 4, 2, 64, 2, false, 4, 2, 64, 2, false) \
  X(32, 4, 2, 64, 1, false, 4, 2, 64, 1, false) \
  X(64, 4, 2, 64, 2, false, 4, 2, 64, 2, false) \
  X(64, 4, 2, 64, 1, false, 4, 2, 64, 1, false) \
  X(64, 8, 1, 64, 2, true, 4, 1, 64, 2, true) \
  X(128, 4, 2, 64, 2, false, 4, 1, 64, 2, true) \
  X(128, 4, 2, 64, 1, false, 4, 1, 64, 1, true) \
  X(128, 8, 1, 64, 2, true, 8, 1, 64, 2, true) \
  X(256, 8, 1, 64, 2, false, 8, 1, 64, 2, false) \
  X(256, 8, 1, 64, 1, false, 8, 1, 64, 1, false) \
  X(256, 4, 1, 32, 1, false, 4, 1, 32, 1, false)

#ifdef __CUDACC_RTC__
#define RTC_MMA_K(MASK, D, NW, MT, BN, ST, QR) \
  template __global__ void pcu_mma::k_flash_mma<pcu_mma::Cfg<D, NW, MT, BN, ST, QR>, false, MASK>(pcu_flash_args, int, int, int); \
  template __global__ void pcu_mma::k_flash_mma<pcu_mma::Cfg<D, NW, MT, BN, ST, QR>, true, MASK>(pcu_flash_args, int, int, int);
#define RTC_MMA(D, NW, MT, BN, ST, QR, NW2, MT2, BN2, ST2, QR2) \
  RTC_MMA_K(false, D, NW, MT, BN, ST, QR) RTC_MMA_K(true, D, NW2, MT2, BN2, ST2, QR2)
MMA_VARIANTS(RTC_MMA)
#else /* host side */

/* ---- host side ---- */

namespace {

typedef void (*mma_kernel_fn)(pcu_flash_args, int, int, int);

struct mma_kernels {
  int bm, threads;
  size_t smem;
  mma_kernel_fn k[2]; /* [bf16] */
};

/* One choice per padded head dim: the kernels without a mask, and those with one (the mask
 * loads need registers: a lighter shape where the unmasked one has none to spare). */
struct mma_variant {
  int d;
  mma_kernels cfg[2]; /* [mask] */
};

#define PCU_MMA_CFG(D, NW, MT, BN, ST, QR) pcu_mma::Cfg<D, NW, MT, BN, ST, QR>
#define PCU_MMA_KERNELS(MASK, D, NW, MT, BN, ST, QR)                                                     \
  {16 * (MT) * (NW), 32 * (NW), PCU_MMA_CFG(D, NW, MT, BN, ST, QR)::SMEM,                                \
   {pcu_mma::k_flash_mma<PCU_MMA_CFG(D, NW, MT, BN, ST, QR), false, MASK>,                               \
    pcu_mma::k_flash_mma<PCU_MMA_CFG(D, NW, MT, BN, ST, QR), true, MASK>}}
/* arguments: D, then (NW, MT, BN, ST, QREG) without a mask, then with one */
#define PCU_MMA_VARIANT(D, NW, MT, BN, ST, QR, NW2, MT2, BN2, ST2, QR2) \
  {D, {PCU_MMA_KERNELS(false, D, NW, MT, BN, ST, QR), PCU_MMA_KERNELS(true, D, NW2, MT2, BN2, ST2, QR2)}}
#define PCU_MMA_ROW(...) PCU_MMA_VARIANT(__VA_ARGS__),

/* Per padded head dim, in order of preference; a device takes the first whose shared memory
 * fits (the last ones fit 99 KB devices). PATTN_CUDA_MMA_CFG=k (temporary, for benchmarks)
 * starts the search at the k-th entry of the head dim's list instead. Entry 0: 4 warps of 32
 * rows (8 warps of 16 at d=256), two kv buffers (the shared memory that two blocks per
 * multiprocessor leave free anyway); entry 1: the same shapes with single buffers
 * (FlashAttention-2's schedule); entry 2: at d 64 and 128, 8 warps of 16 rows with Q in
 * registers, at d=256 4 warps, 32-key tiles, single buffers (66 KB, for 99 KB devices).
 * With a mask, d=128 uses 4 warps of 16 rows (BM 64): 32-row warps have no registers left
 * for the mask loads. */
const mma_variant mma_variants[] = {MMA_VARIANTS(PCU_MMA_ROW)};

/* PATTN_CUDA_MMA_CFG=k (temporary, for benchmarks) starts the search at the k-th entry of the
 * head dim's list. */
const mma_kernels *mma_pick(int d, int mask, size_t smem_optin) {
  const int i = pcu_pick_variant(mma_variants, (int)(sizeof mma_variants / sizeof mma_variants[0]), d, "PATTN_CUDA_MMA_CFG",
                                 [&](const mma_variant &v) { return v.cfg[mask].smem + PCU_MMA_STATIC_SMEM <= smem_optin; });
  return i < 0 ? NULL : &mma_variants[i].cfg[mask];
}

/* 16-bit output whose row starts are 4-byte aligned. */
int view_vec2(const pcu_view &v) { return (v.dtype == PCU_F16 || v.dtype == PCU_BF16) && pcu_rows_aligned(v, 2, 4); }

} /* namespace */

/* cudaErrorNotSupported when this path does not apply (the caller then uses flash.cu). */
extern "C" int pcu_flash_mma_forward(cudaStream_t s, const pcu_flash_args *a, int cc, size_t smem_optin) {
  if (cc < 80 || !pcu_flash_tc_args(a) || a->q.d > 256 || a->k.d > 256 || a->v.d > 256) return (int)cudaErrorNotSupported;
  const int dt = a->q.dtype;
  const int64_t nq = a->q.n, nk = a->k.n;
  const int64_t dmax = a->q.d > a->v.d ? (a->q.d > a->k.d ? a->q.d : a->k.d) : (a->v.d > a->k.d ? a->v.d : a->k.d);
  const mma_kernels *v = mma_pick(pcu_head_dim_pad(dmax), a->mask.buf != NULL, smem_optin);
  if (!v) return (int)cudaErrorNotSupported;
  mma_kernel_fn kernel = v->k[dt == PCU_BF16];
  const int64_t nqt = (nq + v->bm - 1) / v->bm, blocks = nqt * a->q.nh * a->q.ns * a->q.nb;
  if (blocks <= 0) return 0;
  if (blocks > 0x7fffffffLL) return (int)cudaErrorInvalidConfiguration;
  if (v->smem > 48 * 1024) {
    cudaError_t e = cudaFuncSetAttribute((const void *)kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)v->smem);
    if (e != cudaSuccess) return (int)e;
  }
  const int64_t off = pcu_clamp_causal(a->causal_offset, nq, nk);
  const int flags = pcu_rows_aligned(a->q, 2, 16) | pcu_rows_aligned(a->k, 2, 16) << 1 | pcu_rows_aligned(a->v, 2, 16) << 2 |
                    view_vec2(a->out) << 3;
  kernel<<<(unsigned)blocks, v->threads, v->smem, s>>>(*a, (int)nqt, (int)off, flags);
  return (int)cudaGetLastError();
}
#endif /* !__CUDACC_RTC__ */
