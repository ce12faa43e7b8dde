/* Fused attention backward on tensor cores for f16/bf16 inputs (sm_80 and newer), FlashAttention-2
 * style: SPEC.md section 1's backward (D_i = dout_i . out_i, p = exp(s - lse), dv = p^T dout,
 * dp = dout v^T, ds = p*(dp - D), dq = scale ds k, dk = scale ds^T q) over strided views, GQA,
 * causal with any offset, nq != nk, dk != dv, all five products as mma.sync m16n8k16 (16-bit
 * operands, f32 accumulation). The host side (cuda_attention.c) precomputes D with pcu_rowdot,
 * zeroes the dQ workspace and, after the launch, converts the f32 workspaces to the gradients'
 * views with pcu_scatter (which also sums dK/dV over the query heads of a GQA group).
 *
 * One block owns one (unit, query head, kv tile of BN = 16*NW key rows); warp w owns key rows
 * 16w .. 16w+15 of the tile and keeps their dK and dV (16 x D each, f32) in registers for the
 * whole block. The block walks the query tiles of BM rows that can see its kv tile (causal:
 * from the first that does); per query tile:
 *   - Q, dO (BM x D, 16-bit, zero padded) and the tile's lse and D values stream through shared
 *     memory, 16-byte cp.async where every row start is aligned (else element loads). ST = 2
 *     buffers: tile j+2 is issued once phase 1 of tile j is done with its buffer, so it loads
 *     during phase 2 of j and all of j+1; ST = 1: tile j+1 loads during phase 2 of tile j.
 *     K and V (BN x D) are loaded once per block, with the first query tile.
 *   - Phase 1, per warp, in chunks of QC query columns (registers): S^T = K_w Q^T (16 x QC),
 *     P^T = 2^(S^T*scale*log2e - lse*log2e) (masked to 0), dV_w += P^T dO, dP^T = V_w dO^T,
 *     dS^T = P^T * (dP^T - D), dK_w += dS^T Q, and dS^T (16-bit) into shared memory.
 *     Computing the transposed products keeps P^T and dS^T in the accumulator layout that the
 *     A operand of the next product needs (as the forward does with P): no shared-memory trip
 *     for them. The key rows are the M dimension of S^T, so a warp sees only its own rows.
 *   - Phase 2, after a barrier: dQ (BM x D) = dS K over all BN keys, warps tiled RT x CG
 *     (16-row tiles x column groups), scaled and added to the f32 dQ workspace with
 *     red.global.add.f32 (red.global.add.v2.f32 on sm_90 when dk is even).
 *   - At the end, dK*scale and dV of rows < nk go to the f32 workspaces [nu][hq][nk][d]
 *     (per query head: pcu_scatter sums the group), or without GQA straight to the gradients
 *     (pcu_bwd_grad_row).
 *
 * D = 256 (SPL = 2): 16 key rows x 256 columns of dK and dV would be 256 accumulator registers
 * per thread, so the two warps 2p, 2p+1 of a pair share key rows 16p .. 16p+15 (BN = 8*NW) and
 * split the head dim: warp 2p+h owns columns DW*h .. DW*h+DW-1 (DW = 128) of their dK and dV,
 * the same 128 accumulators as at D = 128 (FlashAttention-2's d=256 backward also tiles dK/dV
 * over warps in both directions). Per chunk, each warp computes S^T and dP^T over its own DW
 * columns of K, Q, V, dO only (partial sums over half the reduction), computing dP^T before P
 * (not after dV), writes both partials to shared memory (float4 per lane and n-tile), meets its
 * partner at a 64-thread named barrier (bar.sync 1 + p, 64) and adds the partner's: both warps
 * then hold the same S^T and dP^T (own + partner's is commutative), compute the same P^T and
 * dS^T, and each applies them to its own columns (dV_w += P^T dO[:, cols], dK_w += dS^T
 * Q[:, cols]). Only warp 2p stores dS^T for the dQ phase. The MMA work per warp is that of
 * D = 128; the exchange adds 2*QC*16 floats out and in per warp and chunk. XB = 2 buffers
 * alternate by chunk (one barrier per chunk); XB = 1 adds a second barrier before the writes
 * (half the shared memory, which lets ST = 2 fit in 227 KB). dQ (64 x 256 per tile) is done in
 * DQP = 2 passes of 64 columns per warp, so its accumulators stay at 32 registers.
 *
 * Fragments (PTX ISA, mma.m16n8k16 .f16/.bf16; g = lane/4, t = lane%4):
 *   A 16x16 row: a0 = A[g][2t,2t+1], a1 = A[g+8][2t,2t+1], a2 = A[g][2t+8,+9], a3 = A[g+8][2t+8,+9]
 *   B 16x8 col:  b0 = B[2t,2t+1][g], b1 = B[2t+8,2t+9][g]
 *   C 16x8 f32:  c0,c1 = C[g][2t,2t+1], c2,c3 = C[g+8][2t,2t+1]
 *   ldmatrix x4: lane l gives the address of row (l%8) of 8x8 matrix l/8; register i of lane l
 *   gets matrix i's row l/4, columns 2(l%4), +1 (.trans: the stored matrix's column l/4, rows
 *   2(l%4), +1).
 *   So, with pitch P (halves) and the per-lane offsets
 *     ALANE = row (l%8) + 8*((l/8)%2), column 8*(l/16)   [matrix i: rows +8*(i%2), columns +8*(i/2)]
 *     BLANE = row (l%8) + 8*(l/16),    column 8*((l/8)%2) [matrix i: rows +8*(i/2), columns +8*(i%2)]
 *   - ldsm(ALANE) of row-major A[m][k] gives a0..a3 (K_w and V_w as A of S^T and dP^T);
 *   - ldsm(BLANE) of B stored as X[n][k] (B = X^T) gives b0,b1 of n-tile 0 then of n-tile 1
 *     (Q and dO as B of S^T = K Q^T and dP^T = V dO^T);
 *   - ldsm.trans(ALANE) of B stored as X[k][n] (B = X) gives b0,b1 of n-tile 0 then n-tile 1
 *     (dO, Q and K as B of P^T dO, dS^T Q and dS K);
 *   - ldsm.trans(BLANE) of A stored as X[k][m] (A = X^T) gives a0..a3: register i = matrix i
 *     transposed = A[8(i%2) + g][8(i/2) + 2t, +1] (dS from the stored dS^T, as A of dS K);
 *   - two C tiles (n-tiles 2kk, 2kk+1) packed pairwise are the A fragment of k-step kk:
 *     a0 = C0[c0,c1], a1 = C0[c2,c3], a2 = C1[c0,c1], a3 = C1[c2,c3] (P^T and dS^T).
 * Shared rows are padded by 16 bytes (pitch D+8, BM+8 halves), so the 8 row addresses of an
 * ldmatrix and the 32-bit dS^T stores of a warp fall on distinct banks.
 *
 * Masking: lse is kept as lse*log2e, +inf for rows past nq or rows with lse = -inf (no visible
 * key), so 2^(s*u - inf) = 0 there (zero-filled Q rows keep s finite); keys past nk and causal
 * (key j > query i + off) are set to P = 0 by a per-score check on the chunks that need it.
 * 32-bit positions: the host requires nq, nk < 2^30 and clamps causal_offset to [-nq, nk].
 * Older architectures compile the kernels empty (the host never launches them below sm_80). */
#ifndef __CUDACC_RTC__
#include <stdlib.h>
#endif

#include "mma.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define PCU_BWD_DEVICE 1
#else
#define PCU_BWD_DEVICE 0
#endif

namespace pcu_mma_bwd {

/* D: padded head dim (dk and dv); NW warps, SPL warps per group of 16 keys (BN = 16*NW/SPL keys
 * per block); BM query rows per tile, processed by each warp in chunks of QC columns; ST
 * query-tile buffers. SPL = 2 (D = 256): the two warps of a pair split the head dim, each
 * owning DW = D/2 columns of the group's dK and dV, and exchange the partial S^T and dP^T
 * through XB buffers of shared memory per warp (see the header). */
template <int D_, int NW_, int BM_, int QC_, int ST_, int MINB_, bool KVR_, int SPL_, int XB_> struct Cfg {
  static constexpr int D = D_, NW = NW_, BM = BM_, QC = QC_, ST = ST_, MINB = MINB_, SPL = SPL_, XB = XB_;
  static constexpr bool KVR = KVR_;
  static constexpr int THREADS = 32 * NW, BN = 16 * NW / SPL, DW = D / SPL;
  static constexpr int P = D + 8;   /* Q, dO, K, V row pitch in halves */
  static constexpr int PS = BM + 8; /* dS^T row pitch in halves */
  static constexpr int KV_EL = BN * P, Q_EL = BM * P, S_EL = BN * PS;
  /* partial S^T and dP^T exchange (SPL 2), floats: per buffer, warp, product, n-tile 32 float4 */
  static constexpr int X_EL = SPL == 1 ? 0 : XB * NW * 2 * (QC / 8) * 128;
  /* dQ phase: RT row tiles of 16 query rows x CG column groups of DC columns, in DQP passes
   * of DC/DQP columns (at most 64: the dQ accumulators share the registers with dK and dV) */
  static constexpr int RT = BM / 16, CG = NW / RT, DC = D / CG, DQP = DC > 64 ? DC / 64 : 1;
  static constexpr size_t SMEM =
      (size_t)(2 * KV_EL + 2 * ST * Q_EL + S_EL) * 2 + (size_t)X_EL * 4 + (size_t)2 * ST * BM * 4;
  static_assert(D % 32 == 0 && BM % 16 == 0 && QC % 16 == 0 && BM % QC == 0 && (ST == 1 || ST == 2), "tile shape");
  static_assert((SPL == 1 || SPL == 2) && NW % SPL == 0 && DW % 16 == 0 && (XB == 1 || XB == 2), "head-dim split");
  static_assert(NW % RT == 0 && D % CG == 0 && DC % (16 * DQP) == 0, "dQ warp tiling");
  static_assert(THREADS % (D / 8) == 0, "whole rows per load pass");
  static_assert(BM <= THREADS, "one thread per query row for lse and D");
};

#if PCU_BWD_DEVICE
using namespace pcu_mma_ops;

/* Barrier of the two warps of a pair (SPL 2): id 1 + pair (0 is __syncthreads'), 64 threads. */
__device__ __forceinline__ void pair_sync(int id) { asm volatile("bar.sync %0, 64;\n" ::"r"(id) : "memory"); }

#endif /* PCU_BWD_DEVICE */

#define PCU_BWD_LOG2E 1.4426950408889634f
#define PCU_BWD_STATIC_SMEM 64 /* planes[] in k_flash_mma_bwd, rounded up */

/* flags: bit 0/1/2/3: q/k/v/dout rows 16-byte aligned (cp.async); bit 4: dk even (float2 red
 * of dQ on sm_90). nkt: kv tiles per (unit, head). off: causal_offset clamped to [-nq, nk].
 * blockIdx.x = (uu*hq + ih)*nkt + kt: the kv tiles of one head are neighbours (they read the
 * same Q and dO, through L2). */
template <class C, bool BF16>
__global__ void __launch_bounds__(C::THREADS, C::MINB) k_flash_mma_bwd(pcu_flash_bwd_args a, int nkt, int off, int flags) {
#if PCU_BWD_DEVICE
  constexpr int BM = C::BM, BN = C::BN, QC = C::QC, ST = C::ST, P = C::P, PS = C::PS;
  constexpr int SPL = C::SPL, DW = C::DW, KT = DW / 16, DT = DW / 8, NC = QC / 8, RT = C::RT, DC = C::DC;
  constexpr int DQP = C::DQP, DN = DC / 8 / DQP;
  extern __shared__ uint4 smem_bwd[];
  uint16_t *Ks = (uint16_t *)smem_bwd, *Vs = Ks + C::KV_EL, *Qs = Vs + C::KV_EL, *dOs = Qs + ST * C::Q_EL;
  uint16_t *dSs = dOs + ST * C::Q_EL;
  float *Xs = (float *)(dSs + C::S_EL);              /* SPL 2: partial S^T, dP^T exchange */
  float *Ls = Xs + C::X_EL, *Dl = Ls + ST * BM; /* per buffer: lse*log2e (or +inf), D */

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  /* the warp's group of 16 keys and its first dK/dV column (SPL 1: the warp, 0) */
  const int kw = warp / SPL, cb = (warp % SPL) * DW;
  const int nq = (int)a.q.n, nk = (int)a.k.n, hq = (int)a.q.nh, group = hq / (int)a.k.nh;
  const int ndk = (int)a.q.d, ndv = (int)a.v.d;
  int bid = (int)blockIdx.x;
  const int kt = bid % nkt;
  bid /= nkt;
  const int ih = bid % hq, uu = bid / hq, kh = ih / group;
  const int64_t un = a.u0 + uu, is = un % a.q.ns, ib = un / a.q.ns;
  const int64_t plane = (int64_t)uu * hq + ih; /* (unit, query head) plane of the workspaces */
  const int k0 = kt * BN, wk = k0 + kw * 16;     /* the block's and the warp's first key */
  const bool causal = a.causal != 0;
  /* query i sees key j iff j <= i + off: the first query row that sees key k0 (and with it every
   * later row); none of the tile's keys is seen by an earlier row */
  const int qfirst = causal ? max(0, k0 - off) : 0;
  const int nqt = (nq + BM - 1) / BM, qt0 = qfirst / BM;
  const int count = qfirst < nq ? nqt - qt0 : 0;
  const float u = a.scale * PCU_BWD_LOG2E;

  float dka[DT][4], dva[DT][4];
#pragma unroll
  for (int n = 0; n < DT; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) dka[n][e] = dva[n][e] = 0.0f;

  if (count > 0) {
    const bool asq = flags & 1, ask = flags & 2, asv = flags & 4, asdo = flags & 8;
    /* The block's plane pointers live in shared memory, read where needed (after a barrier,
     * so never hoisted): registers are what the accumulators need. */
    __shared__ const void *planes[5];
    if (tid == 0) {
      planes[0] = (const uint16_t *)a.q.buf + pcu_row(a.q, ib, is, ih, 0);
      planes[1] = (const uint16_t *)a.dout.buf + pcu_row(a.dout, ib, is, ih, 0);
      planes[2] = (const char *)a.lse.buf + pcu_row(a.lse, ib, is, ih, 0) * (a.lse.dtype == PCU_F32 ? 4 : 2);
      planes[3] = a.delta + plane * nq;
      planes[4] = a.dq + plane * nq * ndk;
    }
    __syncthreads();
    /* per-lane ldmatrix byte offsets (see the header) */
    const uint32_t alane = (uint32_t)(((lane & 7) + ((lane >> 3) & 1) * 8) * P + (lane >> 4) * 8) * 2;
    const uint32_t blane = (uint32_t)(((lane & 7) + (lane >> 4) * 8) * P + ((lane >> 3) & 1) * 8) * 2;
    const uint32_t blaneS = (uint32_t)(((lane & 7) + (lane >> 4) * 8) * PS + ((lane >> 3) & 1) * 8) * 2;
    const uint32_t sK = smem_addr(Ks), sV = smem_addr(Vs), sQ = smem_addr(Qs), sdO = smem_addr(dOs), sdS = smem_addr(dSs);

    /* query tile qt (rows qt*BM ..) into buffer buf: Q and dO (cp.async or element loads) */
    auto load_q = [&](int qt, int buf) {
      const int q0 = qt * BM;
      load_tile<C, BM>(Qs + buf * C::Q_EL, (const uint16_t *)planes[0] + (int64_t)q0 * a.q.sn, a.q.sn, nq - q0, ndk, asq);
      load_tile<C, BM>(dOs + buf * C::Q_EL, (const uint16_t *)planes[1] + (int64_t)q0 * a.dout.sn, a.dout.sn, nq - q0, ndv, asdo);
    };
    /* ... and its lse and D values: thread r < BM loads row r's into registers (fetch_ld), and
     * stores them later (store_ld: lse*log2e, +inf for rows past nq and rows without visible key,
     * so every p = 2^-inf = 0 there; D, 0 past nq), so the loads fly during the dQ phase */
    auto fetch_ld = [&](int qt, float &l, float &dd) {
      const int i = qt * BM + tid;
      l = -PCU_INF;
      dd = 0.0f;
      if (tid < BM && i < nq) {
        l = pcu_load(planes[2], a.lse.dtype, (int64_t)i * a.lse.sn);
        dd = ((const float *)planes[3])[i];
      }
    };
    auto store_ld = [&](int buf, float l, float dd) {
      if (tid < BM) {
        Ls[buf * BM + tid] = l == -PCU_INF ? PCU_INF : l * PCU_BWD_LOG2E;
        Dl[buf * BM + tid] = dd;
      }
    };

    /* prologue. Committed groups at the top of iteration j: ST 1: [tile j] (K, V with tile 0);
     * ST 2: [tile j, tile j+1] (empty groups past the last tile). */
    {
      const int64_t koff = pcu_row(a.k, ib, is, kh, 0) + (int64_t)k0 * a.k.sn;
      const int64_t voff = pcu_row(a.v, ib, is, kh, 0) + (int64_t)k0 * a.v.sn;
      load_tile<C, BN>(Ks, (const uint16_t *)a.k.buf + koff, a.k.sn, nk - k0, ndk, ask);
      load_tile<C, BN>(Vs, (const uint16_t *)a.v.buf + voff, a.v.sn, nk - k0, ndv, asv);
    }
    load_q(qt0, 0);
    pcu_cp_commit();
    float lnext, dnext; /* lse and D of the tile being fetched */
    fetch_ld(qt0, lnext, dnext);
    store_ld(0, lnext, dnext);
    if (ST == 2) {
      if (count > 1) {
        load_q(qt0 + 1, 1);
        fetch_ld(qt0 + 1, lnext, dnext);
        store_ld(1, lnext, dnext);
      }
      pcu_cp_commit();
    }

    /* KVR: the warp's K and V rows as A fragments in registers for the whole block */
    uint32_t kf[C::KVR ? KT : 1][4], vf[C::KVR ? KT : 1][4];
    for (int j = 0; j < count; j++) {
      const int q0 = (qt0 + j) * BM, buf = ST == 2 ? (j & 1) : 0;
      const uint32_t qb = (uint32_t)(buf * C::Q_EL * 2); /* byte offset of the buffer */
      if (ST == 2) pcu_cp_wait<1>(); else pcu_cp_wait<0>(); /* tile j landed (this thread's part) */
      __syncthreads(); /* ... every thread's part; every thread is done with dS^T of tile j-1 */
      if (C::KVR && j == 0) { /* K and V landed with tile 0 */
#pragma unroll
        for (int kk = 0; kk < KT; kk++) {
          ldsm_x4(kf[C::KVR ? kk : 0], sK + (uint32_t)((kw * 16 * P + cb) * 2) + alane + (uint32_t)(kk * 32));
          ldsm_x4(vf[C::KVR ? kk : 0], sV + (uint32_t)((kw * 16 * P + cb) * 2) + alane + (uint32_t)(kk * 32));
        }
      }

      /* ---- phase 1: this warp's 16 keys against the tile's query rows, QC at a time ---- */
#pragma unroll 1
      for (int qr = 0; qr < BM; qr += QC) {
        const int qc0 = q0 + qr; /* first query row of the chunk */
        /* nothing to do (every P = 0): keys past nk, rows past nq, or causal with the warp's
         * first key after the chunk's last row's last visible key; dS^T must still be 0 there.
         * (The same for both warps of a pair; the skipped chunks of a tile are a prefix or a
         * suffix of it, never between two that run.) */
        if (wk >= nk || qc0 >= nq || (causal && wk > qc0 + QC - 1 + off)) {
          if (SPL == 1 || cb == 0) {
#pragma unroll
            for (int n = 0; n < NC; n++)
#pragma unroll
              for (int h = 0; h < 2; h++) *(uint32_t *)(dSs + (kw * 16 + g + 8 * h) * PS + qr + n * 8 + 2 * t) = 0u;
          }
          continue;
        }

        /* S^T (16 keys x QC queries) = K_w Q^T: A = K rows (ldsm ALANE), B = Q rows as X[n][k] (BLANE).
         * SPL 2: over the warp's DW columns only (a partial sum) */
        float s[NC][4];
#pragma unroll
        for (int n = 0; n < NC; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KT; kk++) {
          uint32_t ka[4];
          if (C::KVR) {
#pragma unroll
            for (int e = 0; e < 4; e++) ka[e] = kf[C::KVR ? kk : 0][e];
          } else {
            ldsm_x4(ka, sK + (uint32_t)((kw * 16 * P + cb) * 2) + alane + (uint32_t)(kk * 32));
          }
#pragma unroll
          for (int n2 = 0; n2 < NC / 2; n2++) {
            uint32_t b[4];
            ldsm_x4(b, sQ + qb + blane + (uint32_t)(((qr + n2 * 16) * P + cb + kk * 16) * 2));
            mma16816<BF16>(s[2 * n2], ka, b);
            mma16816<BF16>(s[2 * n2 + 1], ka, b + 2);
          }
        }

        /* dP^T (16 keys x QC queries) = V_w dO^T: A = V rows (ALANE), B = dO rows as X[n][k] (BLANE).
         * SPL 1: after dV (fewer live registers); SPL 2: here, a partial sum like S^T */
        float dp[NC][4];
        if (SPL == 2) {
#pragma unroll
          for (int n = 0; n < NC; n++) dp[n][0] = dp[n][1] = dp[n][2] = dp[n][3] = 0.0f;
#pragma unroll
          for (int kk = 0; kk < KT; kk++) {
            uint32_t va[4];
            if (C::KVR) {
#pragma unroll
              for (int e = 0; e < 4; e++) va[e] = vf[C::KVR ? kk : 0][e];
            } else {
              ldsm_x4(va, sV + (uint32_t)((kw * 16 * P + cb) * 2) + alane + (uint32_t)(kk * 32));
            }
#pragma unroll
            for (int n2 = 0; n2 < NC / 2; n2++) {
              uint32_t b[4];
              ldsm_x4(b, sdO + qb + blane + (uint32_t)(((qr + n2 * 16) * P + cb + kk * 16) * 2));
              mma16816<BF16>(dp[2 * n2], va, b);
              mma16816<BF16>(dp[2 * n2 + 1], va, b + 2);
            }
          }

          /* the pair's exchange: own partial sums out, the partner's in (own + partner's:
           * commutative, so both warps hold the same S^T and dP^T, and compute the same P^T and
           * dS^T). Per warp and product NC x 32 lanes float4, n-tile-major (conflict-free).
           * XB 2: buffer (qr/QC)%2; the partner read chunk c's before its barrier of chunk c+1,
           * which this warp passed before writing chunk c+2's (no skipped chunk between them).
           * XB 1: a second barrier, before the writes. */
          const int xb = C::XB == 2 ? (qr / QC) & 1 : 0;
          float *xo = Xs + ((xb * C::NW + warp) * 2 * NC) * 128 + lane * 4;
          const float *xp = Xs + ((xb * C::NW + (warp ^ 1)) * 2 * NC) * 128 + lane * 4;
          if (C::XB == 1) pair_sync(1 + warp / 2);
#pragma unroll
          for (int n = 0; n < NC; n++) {
            *(float4 *)(xo + n * 128) = make_float4(s[n][0], s[n][1], s[n][2], s[n][3]);
            *(float4 *)(xo + (NC + n) * 128) = make_float4(dp[n][0], dp[n][1], dp[n][2], dp[n][3]);
          }
          pair_sync(1 + warp / 2);
#pragma unroll
          for (int n = 0; n < NC; n++) {
            const float4 x = *(const float4 *)(xp + n * 128), y = *(const float4 *)(xp + (NC + n) * 128);
            s[n][0] += x.x; s[n][1] += x.y; s[n][2] += x.z; s[n][3] += x.w;
            dp[n][0] += y.x; dp[n][1] += y.y; dp[n][2] += y.z; dp[n][3] += y.w;
          }
        }

        /* P^T = 2^(s*u - lse*log2e). Element e of n-tile n: key wk + g + 8*(e/2), query
         * qc0 + 8n + 2t + e%2. Keys past nk and causal-invisible scores: 0. */
        const bool edge = wk + 15 >= nk || (causal && wk + 15 > qc0 + off);
#pragma unroll
        for (int n = 0; n < NC; n++) {
          const float2 lu = *(const float2 *)(Ls + buf * BM + qr + n * 8 + 2 * t);
#pragma unroll
          for (int e = 0; e < 4; e++) {
            float p = ex2(fmaf(s[n][e], u, -((e & 1) ? lu.y : lu.x)));
            if (edge) {
              const int r = wk + g + 8 * (e >> 1), c = qc0 + n * 8 + 2 * t + (e & 1);
              if (r >= nk || (causal && r > c + off)) p = 0.0f;
            }
            s[n][e] = p;
          }
        }

        /* dV_w += P^T dO: A = P^T from the accumulators (k-step kc = queries 16kc..), B = dO rows
         * as X[k][n] (ldsm.trans ALANE) */
#pragma unroll
        for (int kc = 0; kc < QC / 16; kc++) {
          uint32_t pa[4];
          pa[0] = pack_rn<BF16>(s[2 * kc][0], s[2 * kc][1]);
          pa[1] = pack_rn<BF16>(s[2 * kc][2], s[2 * kc][3]);
          pa[2] = pack_rn<BF16>(s[2 * kc + 1][0], s[2 * kc + 1][1]);
          pa[3] = pack_rn<BF16>(s[2 * kc + 1][2], s[2 * kc + 1][3]);
#pragma unroll
          for (int n2 = 0; n2 < DW / 16; n2++) {
            uint32_t b[4];
            ldsm_x4_t(b, sdO + qb + alane + (uint32_t)(((qr + kc * 16) * P + cb + n2 * 16) * 2));
            mma16816<BF16>(dva[2 * n2], pa, b);
            mma16816<BF16>(dva[2 * n2 + 1], pa, b + 2);
          }
        }

        if (SPL == 1) { /* as in the SPL 2 branch (two copies: one shared lambda changed the SPL 1 register allocation) */
#pragma unroll
          for (int n = 0; n < NC; n++) dp[n][0] = dp[n][1] = dp[n][2] = dp[n][3] = 0.0f;
#pragma unroll
          for (int kk = 0; kk < KT; kk++) {
            uint32_t va[4];
            if (C::KVR) {
#pragma unroll
              for (int e = 0; e < 4; e++) va[e] = vf[C::KVR ? kk : 0][e];
            } else {
              ldsm_x4(va, sV + (uint32_t)((kw * 16 * P + cb) * 2) + alane + (uint32_t)(kk * 32));
            }
#pragma unroll
            for (int n2 = 0; n2 < NC / 2; n2++) {
              uint32_t b[4];
              ldsm_x4(b, sdO + qb + blane + (uint32_t)(((qr + n2 * 16) * P + cb + kk * 16) * 2));
              mma16816<BF16>(dp[2 * n2], va, b);
              mma16816<BF16>(dp[2 * n2 + 1], va, b + 2);
            }
          }
        }

        /* dS^T = P^T * (dP^T - D[query]) (in s) */
#pragma unroll
        for (int n = 0; n < NC; n++) {
          const float2 dd = *(const float2 *)(Dl + buf * BM + qr + n * 8 + 2 * t);
#pragma unroll
          for (int e = 0; e < 4; e++) s[n][e] *= dp[n][e] - ((e & 1) ? dd.y : dd.x);
        }

        /* dS^T (rounded as the A operand) to shared memory [key][query] for the dQ phase (SPL 2:
         * the pair's first warp), and dK_w += dS^T Q: B = Q rows as X[k][n] (ldsm.trans ALANE) */
#pragma unroll
        for (int kc = 0; kc < QC / 16; kc++) {
          uint32_t da[4];
          da[0] = pack_rn<BF16>(s[2 * kc][0], s[2 * kc][1]);         /* key g,   queries 16kc + 2t, +1 */
          da[1] = pack_rn<BF16>(s[2 * kc][2], s[2 * kc][3]);         /* key g+8, queries 16kc + 2t, +1 */
          da[2] = pack_rn<BF16>(s[2 * kc + 1][0], s[2 * kc + 1][1]); /* key g,   queries 16kc + 8 + 2t, +1 */
          da[3] = pack_rn<BF16>(s[2 * kc + 1][2], s[2 * kc + 1][3]); /* key g+8, queries 16kc + 8 + 2t, +1 */
          if (SPL == 1 || cb == 0) {
            uint16_t *srow = dSs + (kw * 16 + g) * PS + qr + kc * 16 + 2 * t;
            *(uint32_t *)srow = da[0];
            *(uint32_t *)(srow + 8 * PS) = da[1];
            *(uint32_t *)(srow + 8) = da[2];
            *(uint32_t *)(srow + 8 * PS + 8) = da[3];
          }
#pragma unroll
          for (int n2 = 0; n2 < DW / 16; n2++) {
            uint32_t b[4];
            ldsm_x4_t(b, sQ + qb + alane + (uint32_t)(((qr + kc * 16) * P + cb + n2 * 16) * 2));
            mma16816<BF16>(dka[2 * n2], da, b);
            mma16816<BF16>(dka[2 * n2 + 1], da, b + 2);
          }
        }
      }

      __syncthreads(); /* dS^T complete; every thread is done with this buffer's Q, dO, lse, D */
      /* the next tile into the buffer phase 2 does not read: ST 2: tile j+2 into this one */
      const int jn = ST == 2 ? j + 2 : j + 1, bn = ST == 2 ? buf : 0;
      if (jn < count) {
        load_q(qt0 + jn, bn);
        fetch_ld(qt0 + jn, lnext, dnext);
      }
      if (ST == 2 || jn < count) pcu_cp_commit();

      /* ---- phase 2: dQ (BM x D) += scale * dS K; warp: query rows 16*rt.., columns DC*cg..,
       * DC/DQP at a time ---- */
      {
        const int rt = warp % RT, cg = warp / RT, i0 = q0 + rt * 16;
        /* rows past nq, or (causal) no row of the 16 sees key k0, so all their dS are 0 */
        if (i0 < nq && !(causal && k0 > i0 + 15 + off)) {
#pragma unroll 1
          for (int cp = 0; cp < DQP; cp++) {
            const int cq = cg * DC + cp * (DC / DQP); /* the pass's first column */
            float dq[DN][4];
#pragma unroll
            for (int n = 0; n < DN; n++) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) {
              /* A = dS (queries x keys) from dS^T stored [key][query]: ldsm.trans BLANE */
              uint32_t sa[4];
              ldsm_x4_t(sa, sdS + blaneS + (uint32_t)((kk * 16 * PS + rt * 16) * 2));
#pragma unroll
              for (int n2 = 0; n2 < DN / 2; n2++) {
                /* B = K rows (keys x d) as X[k][n]: ldsm.trans ALANE */
                uint32_t b[4];
                ldsm_x4_t(b, sK + alane + (uint32_t)((kk * 16 * P + cq + n2 * 16) * 2));
                mma16816<BF16>(dq[2 * n2], sa, b);
                mma16816<BF16>(dq[2 * n2 + 1], sa, b + 2);
              }
            }
            const bool vec2 = (flags & 16) != 0;
#pragma unroll
            for (int h = 0; h < 2; h++) {
              const int i = i0 + g + 8 * h;
              if (i >= nq) continue;
              float *row = (float *)planes[4] + (int64_t)i * ndk;
#pragma unroll
              for (int n = 0; n < DN; n++) {
                const int c = cq + n * 8 + 2 * t;
                if (c >= ndk) continue;
                const float x0 = a.scale * dq[n][2 * h], x1 = a.scale * dq[n][2 * h + 1];
#if __CUDA_ARCH__ >= 900
                if (vec2) { /* dk even: c + 1 < dk and the pair 8-byte aligned */
                  red_add2(row + c, x0, x1);
                  continue;
                }
#endif
                (void)vec2;
                red_add(row + c, x0);
                if (c + 1 < ndk) red_add(row + c + 1, x1);
              }
            }
          }
        }
      }
      if (jn < count) store_ld(bn, lnext, dnext); /* read after the next barrier */
    }
    pcu_cp_wait<0>(); /* nothing left in flight (only empty groups can remain) */
  }

  /* dK = scale * dS^T Q and dV of the warp's keys (< nk) (pcu_bwd_grad_row); zeros where no
   * query row sees them. The plane decoded again from a fresh read of ctaid (volatile, so not
   * merged with the first): nothing of it stays live through the loop. */
  int64_t plane2;
  {
    int b2;
    asm volatile("mov.u32 %0, %%ctaid.x;\n" : "=r"(b2));
    plane2 = b2 / nkt;
  }
  const int wk2 = (int)(blockIdx.x % nkt) * BN + kw * 16;
#pragma unroll
  for (int h = 0; h < 2; h++) {
    const int r = wk2 + g + 8 * h;
    if (r >= nk) continue;
    const pcu_grad_row rk = pcu_bwd_grad_row(a, 0, plane2, r), rv = pcu_bwd_grad_row(a, 1, plane2, r);
#pragma unroll
    for (int n = 0; n < DT; n++)
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int c = cb + n * 8 + 2 * t + e;
        if (c < ndk) pcu_store(rk.buf, rk.dt, rk.off + c, a.scale * dka[n][2 * h + e]);
        if (c < ndv) pcu_store(rv.buf, rv.dt, rv.off + c, dva[n][2 * h + e]);
      }
  }
#endif
}

} /* namespace pcu_mma_bwd */

/* The variants: D, NW, BM, QC, ST, MINB (__launch_bounds__' blocks per multiprocessor), KVR,
 * SPL, XB (see bwd_variants below), the preferred one first for each D. At D=64 two blocks per SM
 * (QC=16) beat one with K and V in registers by 1.09-1.16x (H200, FlashAttention's shapes,
 * bf16 and f16, causal and not); at D=128 the two 64-query-row entries were within 1%. The one list feeds the host table and, under NVRTC, the explicit
 * instantiations (common.cuh, "Under NVRTC"). */
#define BWD_VARIANTS(X)                    \
  X(32, 8, 64, 32, 2, 2, true, 1, 1)       \
  X(64, 8, 64, 16, 2, 2, false, 1, 1)      \
  X(64, 8, 64, 32, 2, 1, true, 1, 1)       \
  X(128, 8, 64, 32, 2, 1, false, 1, 1)     \
  X(128, 8, 64, 32, 1, 1, false, 1, 1)     \
  X(128, 4, 32, 32, 2, 1, false, 1, 1)     \
  X(256, 8, 64, 32, 1, 1, false, 2, 2)     \
  X(256, 8, 64, 16, 2, 1, false, 2, 1)     \
  X(256, 8, 64, 16, 1, 1, false, 2, 1)     \
  X(256, 4, 32, 16, 1, 1, false, 2, 2)

#ifdef __CUDACC_RTC__
#define RTC_BWD(D, NW, BM, QC, ST, MINB, KVR, SPL, XB)                                                                  \
  template __global__ void pcu_mma_bwd::k_flash_mma_bwd<pcu_mma_bwd::Cfg<D, NW, BM, QC, ST, MINB, KVR, SPL, XB>, false>( \
      pcu_flash_bwd_args, int, int, int);                                                                               \
  template __global__ void pcu_mma_bwd::k_flash_mma_bwd<pcu_mma_bwd::Cfg<D, NW, BM, QC, ST, MINB, KVR, SPL, XB>, true>(  \
      pcu_flash_bwd_args, int, int, int);
BWD_VARIANTS(RTC_BWD)
#else /* host side */

namespace {

typedef void (*bwd_kernel_fn)(pcu_flash_bwd_args, int, int, int);

struct bwd_variant {
  int d, bn, threads;
  size_t smem;
  bwd_kernel_fn k[2]; /* [bf16] */
};

#define PCU_BWD_ROW(D, NW, BM, QC, ST, MINB, KVR, SPL, XB)                                                 \
  {D, 16 * (NW) / (SPL), 32 * (NW), pcu_mma_bwd::Cfg<D, NW, BM, QC, ST, MINB, KVR, SPL, XB>::SMEM,                 \
   {pcu_mma_bwd::k_flash_mma_bwd<pcu_mma_bwd::Cfg<D, NW, BM, QC, ST, MINB, KVR, SPL, XB>, false>,                  \
    pcu_mma_bwd::k_flash_mma_bwd<pcu_mma_bwd::Cfg<D, NW, BM, QC, ST, MINB, KVR, SPL, XB>, true>}},

/* Per padded head dim, in order of preference; a device takes the first whose shared memory
 * fits. All: 64-row query tiles (but the last), two buffers (but d 128's second). Registers
 * (ptxas, sm_90 / sm_80, no spills) in brackets.
 *   d 32: 8 warps (128 keys), 32-column chunks, K and V fragments in registers, 2 blocks per
 *         multiprocessor: 59 KB [128 / 123].
 *   d 64: 16-column chunks without the K and V fragments in registers, 2 blocks (more
 *         ldmatrix, twice the warps) [127 / 128]; then the d 32 shape at 1 block (the
 *         fragments need more registers): 91 KB [196 / 190].
 *   d 128: 8 warps, 32-column chunks: 155 KB (A100, H100) [243 / 234]; one buffer: 120.5 KB
 *         [242 / 234]; 4 warps (64 keys), 32-row tiles: 73.5 KB (99 KB devices) [243 / 234].
 *   d 256: the head dim split over warp pairs (SPL 2, see the header), dQ in two passes.
 *         8 warps (64 keys), 32-column chunks, one buffer, two exchange buffers: 205.5 KB
 *         (H100, H200) [240 / 240]; 16-column chunks, two buffers, one exchange buffer: 224 KB
 *         [244 / 238]; 16-column chunks, one buffer, one exchange buffer: 157.5 KB (A100)
 *         [238 / 236]; 4 warps (32 keys), 32-row tiles, 16-column chunks, one buffer, two exchange
 *         buffers: 84.8 KB (99 KB devices) [235 / 231]. On the H200 (FlashAttention's d=256
 *         shapes, bf16 and f16, causal and not) the first took 1/1.02-1/1.08 of the second's
 *         time; the third was level with the second, the fourth 1.1-1.3x slower.
 *         (ptxas reports 16 barriers: the pair barrier's id is a register.)
 * PATTN_CUDA_BWD_CFG=k (temporary, for benchmarks) starts the search at the k-th entry of the
 * head dim's list. */
const bwd_variant bwd_variants[] = {BWD_VARIANTS(PCU_BWD_ROW)};

/* The variant for a, or NULL where this path does not apply. */
const bwd_variant *bwd_pick(const pcu_flash_bwd_args *a, int cc, size_t smem_optin) {
  const int dt = a->q.dtype;
  if (cc < 80 || (dt != PCU_F16 && dt != PCU_BF16) || a->k.dtype != dt || a->v.dtype != dt || a->dout.dtype != dt)
    return NULL;
  const int d = pcu_bwd_head_dim(a);
  if (d == 0) return NULL;
  const int i = pcu_pick_variant(bwd_variants, (int)(sizeof bwd_variants / sizeof bwd_variants[0]), d, "PATTN_CUDA_BWD_CFG",
                                 [&](const bwd_variant &v) { return v.smem + PCU_BWD_STATIC_SMEM <= smem_optin; });
  return i < 0 ? NULL : &bwd_variants[i];
}

} /* namespace */

extern "C" int pcu_flash_mma_backward_supported(const pcu_flash_bwd_args *a, int cc, size_t smem_optin) {
  return bwd_pick(a, cc, smem_optin) != NULL;
}

/* cudaErrorNotSupported when this path does not apply (the caller then uses the cuBLAS path). */
extern "C" int pcu_flash_mma_backward(cudaStream_t s, const pcu_flash_bwd_args *a, int cc, size_t smem_optin) {
  const bwd_variant *v = bwd_pick(a, cc, smem_optin);
  if (!v) return (int)cudaErrorNotSupported;
  const int64_t nq = a->q.n, nk = a->k.n;
  const int64_t nkt = (nk + v->bn - 1) / v->bn, blocks = nkt * a->q.nh * a->nu;
  if (blocks <= 0) return 0;
  if (blocks > 0x7fffffffLL) return (int)cudaErrorInvalidConfiguration;
  bwd_kernel_fn kernel = v->k[a->q.dtype == PCU_BF16];
  cudaError_t e = pcu_prepare_smem((const void *)kernel, v->smem);
  if (e != cudaSuccess) return (int)e;
  const int64_t off = pcu_clamp_causal(a->causal_offset, nq, nk);
  const int flags = pcu_rows_aligned(a->q, 2, 16) | pcu_rows_aligned(a->k, 2, 16) << 1 | pcu_rows_aligned(a->v, 2, 16) << 2 |
                    pcu_rows_aligned(a->dout, 2, 16) << 3 |
                    (a->q.d % 2 == 0 && (uintptr_t)a->dq % 8 == 0 ? 16 : 0);
  kernel<<<(unsigned)blocks, v->threads, v->smem, s>>>(*a, (int)nkt, (int)off, flags);
  return (int)cudaGetLastError();
}
#endif /* !__CUDACC_RTC__ */
