/* Fused attention backward on Hopper's warpgroup tensor-core instructions (wgmma, sm_90a) for
 * f16/bf16 inputs: the semantics of flash_mma_bwd.cu (SPEC.md section 1's backward over strided
 * views, GQA, causal with any offset, nq != nk; dQ accumulated into the caller's zeroed f32
 * workspace, dK and dV written per query head or to the gradients) for the case it serves
 * faster on an H100/H200: equal head dims of 64, 128 or 256 and views that a TMA tensor map
 * describes (16-byte aligned rows and strides). Everything else stays with flash_mma_bwd.cu
 * (the host returns cudaErrorNotSupported).
 *
 * A block of three warpgroups owns BN = 128 keys (d=256: 64) of one (unit, query head) and
 * walks the query tiles of BM rows that can see them (BM = 64 at d=128 and 256, 128 at d=64),
 * as FlashAttention-3's backward does:
 *   - Warpgroup 0 is the producer: one thread loads K and V once and then Q and dO per query
 *     tile (ST stages, full and empty mbarriers) as TMA boxes of 64 columns in the 128-byte
 *     swizzle layout (wgmma.cuh); rows past n arrive as zeros. Its registers go to the
 *     consumers (setmaxnreg).
 *   - Warpgroups 1 and 2 each own 64 of the keys and keep their dK and dV (64 x D, f32) in
 *     registers. At d=256 those would take 256 registers a thread, so both own the same 64
 *     keys and each keeps half of the columns of dK and dV (64 x 128 each); see "d=256" below.
 *     Per query tile, with the keys as wgmma's M dimension (the transposed products
 *     keep P^T and dS^T in the accumulator layout that the A operand of the next product needs):
 *       S^T = K_w Q^T and dP^T = V_w dO^T (A and B from shared memory, K-major);
 *       P^T = 2^(S^T * scale * log2 e - lse * log2 e), zero where causally hidden or past nk;
 *       dS^T = P^T * (dP^T - D);
 *       dV_w += P^T dO and dK_w += dS^T Q (A from registers, B = dO or Q as MN-major operands);
 *       dS^T goes to shared memory transposed (stmatrix .trans), as dS [BM][BN] in the K-major
 *       swizzled layout; after a barrier of both consumers, each computes half of
 *       dQ = dS K over all BN keys (d=128 and 256: half of the columns; d=64: 64 of the rows)
 *       and adds it,
 *       times scale, to the f32 dQ workspace with red.global.add.v2.f32.
 *     lse * log2 e (+inf for rows past nq or without a visible key) and D of the next tile are
 *     read from global memory by the consumer threads during the current one and staged in
 *     shared memory (two buffers), published by the same barrier.
 *   - At the end, dK * scale and dV of keys < nk go to the f32 workspaces [nu][hq][nk][d], or
 *     without GQA straight to the gradients (pcu_bwd_grad_row).
 *   - d=256 (both consumers on the same 64 keys): consumer w computes S^T and dP^T for queries
 *     32w .. 32w+31 of the tile only and stores its halves of P^T and dS^T (bf16/f16) to shared
 *     memory as [64 keys][64 queries] (stmatrix). After the barrier both read the whole tiles
 *     as wgmma's A operand from shared memory: dV_w += P^T dO and dK_w += dS^T Q (K-major)
 *     for their 128 columns, and dQ = dS K for their 128 columns with dS^T read MN-major. Both
 *     computing all of S^T and dP^T instead (no exchange) was 1.16-1.23x slower (H200, run 59).
 * Grid: blockIdx.x = (uu*hq + ih)*nkt + kt (the kv tiles of a head are neighbours: they read the
 * same Q and dO through L2). */
#include "mma.cuh"
#include "wgmma.cuh"

namespace pcu_wgb {

#if PCU_WGMMA_DEVICE
using namespace pcu_mma_ops;
using namespace pcu_wgmma_ops;
#endif

/* D: head dim; BM query rows per tile; ST query-tile stages. */
template <int D_, int BM_, int ST_> struct Cfg {
  static constexpr int D = D_, BM = BM_, ST = ST_;
  /* d=256: the dK and dV accumulators of 64 keys (64 x 256 each) do not fit one warpgroup's
   * registers, so both consumers own the same 64 keys and each half of the head dim; each
   * computes S^T and dP^T for half of the tile's queries (NQ), and the two exchange P^T and
   * dS^T through shared memory */
  static constexpr bool SPLIT = D == 256;
  /* a producer and two consumer warpgroups, each of 64 keys (d=256: the same 64) */
  static constexpr int THREADS = 384, BN = SPLIT ? 64 : 128;
  static constexpr int KW = SPLIT ? 0 : 64; /* consumer cw's first key in the block: cw * KW */
  static constexpr int DW = SPLIT ? D / 2 : D; /* dK and dV columns per consumer, from cw * DW */
  static constexpr int NQ = SPLIT ? BM / 2 : BM;
  static constexpr int Q_BYTES = BM * D * 2, KV_BYTES = BN * D * 2, DS_BYTES = BM * BN * 2;
  /* + 1024: the swizzle pattern needs 1024-byte aligned tiles; then K, V, ST x (Q, dO), two dS
   * buffers (d=256: two dS^T and two P^T buffers), two buffers of lse and D */
  static constexpr size_t SMEM =
      1024 + 2 * (size_t)KV_BYTES + 2 * ST * (size_t)Q_BYTES + (SPLIT ? 4 : 2) * (size_t)DS_BYTES + 4 * BM * 4;
  /* dQ = dS K, split over the consumers: d=128 and 256 by columns (QCW each), d=64 by rows */
  static constexpr bool DQ_ROWS = BM == 128;
  static constexpr int QCW = DQ_ROWS ? D : D / 2;
  static_assert((D == 64 && BM == 128) || (D == 128 && BM == 64) || (D == 256 && BM == 64), "tile shape");
  static_assert(2 * BM <= 256, "one consumer thread per lse and per D value");
  static_assert(!SPLIT || (BN == 64 && BM == 64), "exchange: one 128-byte row per key in P^T and dS^T");
};

template <class C, bool BF16>
__global__ void __launch_bounds__(C::THREADS, 1)
    k_flash_wgmma_bwd(PCU_TMAP tq, PCU_TMAP tk, PCU_TMAP tv, PCU_TMAP tdo, pcu_flash_bwd_args a, int nkt, int off) {
#if PCU_WGMMA_DEVICE
  constexpr int D = C::D, BN = C::BN, BM = C::BM, ST = C::ST;
  extern __shared__ __align__(128) uint8_t smem_wgb[];
  __shared__ __align__(8) uint64_t bars[1 + 2 * ST];
  const uint32_t sK = (smem_addr(smem_wgb) + 1023u) & ~1023u, sV = sK + C::KV_BYTES, sQ = sV + C::KV_BYTES,
                 sdO = sQ + ST * C::Q_BYTES, sdS = sdO + ST * C::Q_BYTES;
  const uint32_t sPT = sdS + 2 * C::DS_BYTES; /* d=256: P^T buffers */
  float *LD = (float *)(smem_wgb + (sdS + (C::SPLIT ? 4 : 2) * C::DS_BYTES - smem_addr(smem_wgb))); /* [2][lse BM, D BM] */
  /* barriers: K and V full, then per stage Q/dO full, Q/dO empty */
  const uint32_t bKV = smem_addr(&bars[0]);
  auto bQf = [&](int st) { return bKV + 8u * (uint32_t)(1 + st); };
  auto bQe = [&](int st) { return bKV + 8u * (uint32_t)(1 + ST + st); };
  const int tid = threadIdx.x, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int wg = __shfl_sync(0xffffffffu, tid >> 7, 0); /* warp-uniform for the compiler */
  const int nq = (int)a.q.n, nk = (int)a.k.n, hq = (int)a.q.nh, group = hq / (int)a.k.nh;
  int bid = (int)blockIdx.x;
  const int kt = bid % nkt;
  bid /= nkt;
  const int ih = bid % hq, uu = bid / hq, kh = ih / group;
  const int64_t un = a.u0 + uu;
  const int is = (int)(un % a.q.ns), ib = (int)(un / a.q.ns);
  const int64_t plane = (int64_t)uu * hq + ih; /* (unit, query head) plane of the workspaces */
  const int k0 = kt * BN;
  const bool causal = a.causal != 0;
  /* query i sees key j iff j <= i + off: the first query row that sees key k0 */
  const int qfirst = causal ? max(0, k0 - off) : 0;
  const int nqt = (nq + BM - 1) / BM, qt0 = qfirst / BM;
  const int count = qfirst < nq ? nqt - qt0 : 0;

  if (tid == 0) {
    mbar_init(bKV, 1);
    for (int st = 0; st < ST; st++) {
      mbar_init(bQf(st), 1);
      mbar_init(bQe(st), 256);
    }
    mbar_init_fence();
  }
  __syncthreads();

  if (wg == 0) { /* the producer */
    regs_dec<24>();
    if (tid == 0 && count > 0) {
      mbar_expect_tx(bKV, 2 * C::KV_BYTES);
#pragma unroll
      for (int c = 0; c < D / 64; c++) {
        tma_load5(sK + (uint32_t)(c * BN * 128), &tk, c * 64, k0, kh, is, ib, bKV);
        tma_load5(sV + (uint32_t)(c * BN * 128), &tv, c * 64, k0, kh, is, ib, bKV);
      }
      for (int j = 0; j < count; j++) {
        const int st = j % ST, q0 = (qt0 + j) * BM;
        mbar_wait(bQe(st), ((uint32_t)(j / ST) & 1u) ^ 1u);
        mbar_expect_tx(bQf(st), 2 * C::Q_BYTES);
#pragma unroll
        for (int c = 0; c < D / 64; c++) {
          tma_load5(sQ + (uint32_t)(st * C::Q_BYTES + c * BM * 128), &tq, c * 64, q0, ih, is, ib, bQf(st));
          tma_load5(sdO + (uint32_t)(st * C::Q_BYTES + c * BM * 128), &tdo, c * 64, q0, ih, is, ib, bQf(st));
        }
      }
    }
    return;
  }
  regs_inc<240>();
  const int cw = wg - 1, w4 = (tid >> 5) & 3, ct = tid - 128;
  const float u = a.scale * PCU_LOG2E;
  constexpr int DW = C::DW, QCW = C::QCW;
  float dk[DW / 2], dv[DW / 2];
#pragma unroll
  for (int i = 0; i < DW / 2; i++) dk[i] = dv[i] = 0.0f;

  if (count > 0) {
    /* consumer thread ct < BM: lse * log2 e of row ct of tile j (+inf: P = 0); BM <= ct < 2 BM: D */
    auto lse_or_d = [&](int j) {
      const int r = (qt0 + j) * BM + (ct % BM);
      if (ct >= 2 * BM) return 0.0f;
      if (ct >= BM) return r < nq ? a.delta[plane * nq + r] : 0.0f;
      if (r >= nq) return PCU_INF;
      const float l = pcu_load(a.lse.buf, a.lse.dtype, pcu_row(a.lse, ib, is, ih, r));
      return l == -PCU_INF ? PCU_INF : l * PCU_LOG2E;
    };
    if (ct < 2 * BM) LD[ct] = lse_or_d(0);
    bar_sync(1, 256);

    /* this warpgroup's 64 keys: A of S^T and dP^T (K-major, boxes of BN rows) */
    const uint64_t dKa = desc_sw128(sK + (uint32_t)(cw * C::KW * 128), 16, 1024);
    const uint64_t dVa = desc_sw128(sV + (uint32_t)(cw * C::KW * 128), 16, 1024);
    /* dQ = dS K: this warpgroup's rows of dS (A, K-major, boxes of BM rows) and columns of K
     * (B, MN-major: one 64-column box, a k16 step is 16 rows of 128 bytes) */
    constexpr int QR = C::DQ_ROWS ? 64 : 0, QC = C::DQ_ROWS ? 0 : QCW;
    const uint32_t dsrow = (uint32_t)(cw * QR), dqcol = (uint32_t)(cw * QC);
    const uint64_t dKb = desc_sw128(sK + dqcol / 64 * BN * 128, BN * 128, 1024);
    const int key0 = k0 + cw * C::KW + w4 * 16; /* the warp's first key */
    float *dqp = a.dq + plane * nq * D;
    mbar_wait(bKV, 0);

    for (int j = 0; j < count; j++) {
      const int st = j % ST, q0 = (qt0 + j) * BM;
      const float next = j + 1 < count ? lse_or_d(j + 1) : 0.0f;
      const float *Ls = LD + (j & 1) * 2 * BM, *Dl = Ls + BM;
      /* S^T and dP^T for this consumer's NQ queries of the tile, from row qn of Q and dO */
      constexpr int NQ = C::NQ;
      const int qn = C::SPLIT ? cw * NQ : 0;
      const uint64_t dQb = desc_sw128(sQ + (uint32_t)(st * C::Q_BYTES + qn * 128), 16, 1024);
      const uint64_t dOb = desc_sw128(sdO + (uint32_t)(st * C::Q_BYTES + qn * 128), 16, 1024);
      mbar_wait(bQf(st), (uint32_t)(j / ST) & 1u);

      float s[NQ / 2], dp[NQ / 2];
      fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; kk++)
        mma_ss<NQ, BF16>(s, dKa + (uint64_t)((kk >> 2) * BN * 8 + (kk & 3) * 2), dQb + (uint64_t)((kk >> 2) * BM * 8 + (kk & 3) * 2), kk);
#pragma unroll
      for (int kk = 0; kk < D / 16; kk++)
        mma_ss<NQ, BF16>(dp, dVa + (uint64_t)((kk >> 2) * BN * 8 + (kk & 3) * 2), dOb + (uint64_t)((kk >> 2) * BM * 8 + (kk & 3) * 2), kk);
      commit();
      wait<0>();
      pin(s);
      pin(dp);

      /* P^T and dS^T: row = key key0 + g + 8h, column = query q0 + qn + 8n + 2t + e */
      const bool check = key0 + 15 >= nk || (causal && key0 + 15 > q0 + qn + off);
#pragma unroll
      for (int n = 0; n < NQ / 8; n++) {
        const float2 lq = *(const float2 *)(Ls + qn + 8 * n + 2 * t), dq2 = *(const float2 *)(Dl + qn + 8 * n + 2 * t);
#pragma unroll
        for (int h = 0; h < 2; h++)
#pragma unroll
          for (int e = 0; e < 2; e++) {
            const int x = 4 * n + 2 * h + e;
            float p = ex2(fmaf(s[x], u, -(e ? lq.y : lq.x)));
            if (check) {
              const int key = key0 + g + 8 * h, q = q0 + qn + 8 * n + 2 * t + e;
              if (key >= nk || (causal && key > q + off)) p = 0.0f;
            }
            s[x] = p;
            dp[x] = p * (dp[x] - (e ? dq2.y : dq2.x));
          }
      }
      uint32_t pa[NQ / 16][4], pd[NQ / 16][4];
#pragma unroll
      for (int kk = 0; kk < NQ / 16; kk++)
#pragma unroll
        for (int r = 0; r < 4; r++) {
          pa[kk][r] = pack_rn<BF16>(s[8 * kk + 2 * r], s[8 * kk + 2 * r + 1]);
          pd[kk][r] = pack_rn<BF16>(dp[8 * kk + 2 * r], dp[8 * kk + 2 * r + 1]);
        }
      /* dV += P^T dO, dK += dS^T Q: B = dO, Q as MN-major operands (LBO: the next 64 columns),
       * this consumer's DW columns */
      const uint32_t cols = (uint32_t)(st * C::Q_BYTES + cw * (C::SPLIT ? DW / 64 : 0) * BM * 128);
      const uint64_t dOm = desc_sw128(sdO + cols, BM * 128, 1024);
      const uint64_t dQm = desc_sw128(sQ + cols, BM * 128, 1024);
      const uint32_t dsbuf = sdS + (uint32_t)((j & 1) * C::DS_BYTES);
      if constexpr (!C::SPLIT) {
        pin(dv);
        pin(dk);
        fence();
#pragma unroll
        for (int kk = 0; kk < BM / 16; kk++) mma_rs<DW, BF16>(dv, pa[kk], dOm + (uint64_t)(kk * 128));
#pragma unroll
        for (int kk = 0; kk < BM / 16; kk++) mma_rs<DW, BF16>(dk, pd[kk], dQm + (uint64_t)(kk * 128));
        commit();
        /* dS^T to shared memory as dS [BM][BN] (K-major, boxes of 64 keys, this warpgroup's
         * box): matrix i of k-step kk is queries 16kk + 8(i/2) .. +7 by keys key0 + 8(i%2) .. +7 */
        const uint32_t box = dsbuf + (uint32_t)(cw * BM * 128);
        const int i = lane >> 3, r = lane & 7, kc = 2 * w4 + (i & 1);
#pragma unroll
        for (int kk = 0; kk < BM / 16; kk++) {
          const int q = 16 * kk + 8 * (i >> 1) + r;
          stsm_x4_trans(box + (uint32_t)(q * 128 + ((kc ^ r) << 4)), pd[kk]);
        }
      } else {
        /* this consumer's halves of P^T and dS^T to shared memory as [BN keys][BM queries]
         * (K-major for dV and dK, MN-major A of dQ): matrix i of k-step kk is keys
         * 16 w4 + 8(i%2) .. +7 by queries qn + 16kk + 8(i/2) .. +7 */
        const int i = lane >> 3, r = lane & 7, key = 16 * w4 + 8 * (i & 1) + r;
        const uint32_t prow = (uint32_t)((j & 1) * C::DS_BYTES + key * 128);
#pragma unroll
        for (int kk = 0; kk < NQ / 16; kk++) {
          const uint32_t chunk = (uint32_t)(((qn + 16 * kk + 8 * (i >> 1)) >> 3) ^ r) << 4;
          stsm_x4(sPT + prow + chunk, pa[kk]);
          stsm_x4(sdS + prow + chunk, pd[kk]);
        }
      }
      if (ct < 2 * BM) LD[((j + 1) & 1) * 2 * BM + ct] = next;
      fence_proxy_async();
      bar_sync(1, 256); /* both halves of dS (d=256: and of P^T; and the next tile's lse, D) are in place */

      float dq[QCW / 2];
      if constexpr (!C::SPLIT) {
        const uint64_t dSa = desc_sw128(dsbuf + dsrow * 128, 16, 1024);
        fence();
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++)
          mma_ss_mn<QCW, BF16>(dq, dSa + (uint64_t)((kk >> 2) * BM * 8 + (kk & 3) * 2), dKb + (uint64_t)(kk * 128), kk);
      } else {
        /* dV += P^T dO and dK += dS^T Q with A from shared memory (K-major: a k16 step is 32
         * bytes along the row), dQ = dS K with A = dS^T read MN-major (a k16 step is 16 rows) */
        const uint64_t dPa = desc_sw128(sPT + (uint32_t)((j & 1) * C::DS_BYTES), 16, 1024);
        const uint64_t dSa = desc_sw128(dsbuf, 16, 1024), dSt = desc_sw128(dsbuf, 64 * 128, 1024);
        pin(dv);
        pin(dk);
        fence();
#pragma unroll
        for (int kk = 0; kk < BM / 16; kk++) mma_ss_mn<DW, BF16>(dv, dPa + (uint64_t)(kk * 2), dOm + (uint64_t)(kk * 128), 1);
#pragma unroll
        for (int kk = 0; kk < BM / 16; kk++) mma_ss_mn<DW, BF16>(dk, dSa + (uint64_t)(kk * 2), dQm + (uint64_t)(kk * 128), 1);
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) mma_ss_tt<QCW, BF16>(dq, dSt + (uint64_t)(kk * 128), dKb + (uint64_t)(kk * 128), kk);
      }
      commit();
      wait<0>();
      pin(dq);
      pin(dv);
      pin(dk);
      mbar_arrive(bQe(st)); /* every product that reads this stage's Q and dO has completed */
#pragma unroll
      for (int h = 0; h < 2; h++) {
        const int row = q0 + (int)dsrow + w4 * 16 + g + 8 * h;
        if (row >= nq) continue;
        float *p = dqp + (int64_t)row * D + dqcol + 2 * t;
#pragma unroll
        for (int n = 0; n < QCW / 8; n++) red_add2(p + 8 * n, dq[4 * n + 2 * h] * a.scale, dq[4 * n + 2 * h + 1] * a.scale);
      }
    }
  }

  /* dK * scale and dV of this warp's keys (this consumer's columns), to the workspaces or the
   * gradients */
  const int key0 = k0 + cw * C::KW + w4 * 16, col0 = C::SPLIT ? cw * DW : 0;
#pragma unroll
  for (int h = 0; h < 2; h++) {
    const int key = key0 + g + 8 * h;
    if (key >= nk) continue;
    const pcu_grad_row ok = pcu_bwd_grad_row(a, 0, plane, key), ov = pcu_bwd_grad_row(a, 1, plane, key);
#pragma unroll
    for (int n = 0; n < DW / 8; n++) {
      pcu_store_pair(ok, col0 + 8 * n + 2 * t, dk[4 * n + 2 * h] * a.scale, dk[4 * n + 2 * h + 1] * a.scale);
      pcu_store_pair(ov, col0 + 8 * n + 2 * t, dv[4 * n + 2 * h], dv[4 * n + 2 * h + 1]);
    }
  }
#else
  (void)tq; (void)tk; (void)tv; (void)tdo; (void)a; (void)nkt; (void)off;
#endif
}

} /* namespace pcu_wgb */

/* The variants (D, BM, ST), one per head dim (three Q/dO stages instead of two were within
 * 1.3% either way at FlashAttention's shapes: H200, run 57). One list feeds the host table
 * and, under NVRTC, the explicit instantiations (common.cuh, "Under NVRTC"). */
#define WGB_VARIANTS(X) \
  X(64, 128, 2)         \
  X(128, 64, 2)         \
  X(256, 64, 2)

#ifdef __CUDACC_RTC__
#define RTC_WGB(D, BM, ST)                                                                                                \
  template __global__ void pcu_wgb::k_flash_wgmma_bwd<pcu_wgb::Cfg<D, BM, ST>, false>(PCU_TMAP, PCU_TMAP, PCU_TMAP, PCU_TMAP, \
                                                                                      pcu_flash_bwd_args, int, int);        \
  template __global__ void pcu_wgb::k_flash_wgmma_bwd<pcu_wgb::Cfg<D, BM, ST>, true>(PCU_TMAP, PCU_TMAP, PCU_TMAP, PCU_TMAP,  \
                                                                                     pcu_flash_bwd_args, int, int);
WGB_VARIANTS(RTC_WGB)
#else /* host side */

namespace {

typedef void (*wgb_kernel_fn)(const pcu_tmap, const pcu_tmap, const pcu_tmap, const pcu_tmap, pcu_flash_bwd_args, int, int);

struct wgb_variant {
  int d, bm, bn;
  size_t smem;
  wgb_kernel_fn k[2]; /* [bf16] */
};

#define PCU_WGB_ROW(D, BM, ST)                                                                  \
  {D, BM, pcu_wgb::Cfg<D, BM, ST>::BN, pcu_wgb::Cfg<D, BM, ST>::SMEM,                            \
   {pcu_wgb::k_flash_wgmma_bwd<pcu_wgb::Cfg<D, BM, ST>, false>, pcu_wgb::k_flash_wgmma_bwd<pcu_wgb::Cfg<D, BM, ST>, true>}},
const wgb_variant wgb_variants[] = {WGB_VARIANTS(PCU_WGB_ROW)};

} /* namespace */

/* cudaErrorNotSupported when this path does not apply (the caller then uses flash_mma_bwd.cu):
 * not built with sm_90a code, compute capability other than 9.0 or PATTN_CUDA_WGMMA=0
 * (pcu_wgmma_usable), dtypes
 * other than one of f16/bf16, head dims other than 64, 128 or 256 (all four equal), or a view TMA
 * cannot describe. */
extern "C" int pcu_flash_wgmma_backward(cudaStream_t s, const pcu_flash_bwd_args *a, int cc, size_t smem_optin) {
#ifndef PCU_WGMMA_BUILT
  (void)s; (void)a; (void)cc; (void)smem_optin; (void)wgb_variants;
  return (int)cudaErrorNotSupported;
#else
  const int dt = a->q.dtype;
  const int64_t d = a->q.d;
  if (!pcu_wgmma_usable(cc) || (dt != PCU_F16 && dt != PCU_BF16) || a->k.dtype != dt || a->v.dtype != dt || a->dout.dtype != dt ||
      a->k.d != d || a->v.d != d || a->dout.d != d || pcu_bwd_head_dim(a) == 0)
    return (int)cudaErrorNotSupported;
  const int vi = pcu_pick_variant(wgb_variants, (int)(sizeof wgb_variants / sizeof wgb_variants[0]), (int)d, NULL,
                                  [&](const wgb_variant &w) { return w.smem <= smem_optin; });
  if (vi < 0 || (uintptr_t)a->dq % 8 != 0) return (int)cudaErrorNotSupported;
  const wgb_variant *v = &wgb_variants[vi];
  pcu_tmap tq, tk, tv, tdo;
  if (!pcu_make_tmap(&tq, a->q, v->bm) || !pcu_make_tmap(&tk, a->k, v->bn) || !pcu_make_tmap(&tv, a->v, v->bn) ||
      !pcu_make_tmap(&tdo, a->dout, v->bm))
    return (int)cudaErrorNotSupported;
  const int64_t nkt = (a->k.n + v->bn - 1) / v->bn, blocks = nkt * a->q.nh * a->nu;
  if (blocks <= 0) return 0;
  if (blocks > 0x7fffffffLL) return (int)cudaErrorInvalidConfiguration;
  wgb_kernel_fn kernel = v->k[dt == PCU_BF16];
  const cudaError_t e = pcu_prepare_smem((const void *)kernel, v->smem);
  if (e != cudaSuccess) return (int)e;
  const int64_t off = pcu_clamp_causal(a->causal_offset, a->q.n, a->k.n);
  kernel<<<(unsigned)blocks, 384, v->smem, s>>>(tq, tk, tv, tdo, *a, (int)nkt, (int)off);
  return (int)cudaGetLastError();
#endif
}
#endif /* !__CUDACC_RTC__ */
