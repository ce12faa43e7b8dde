/* f32 attention on Hopper's warpgroup tensor-core instructions (wgmma, sm_90a), both precisions
 * of flash_tf32.cu (strided views, GQA, causal with any offset, lse, out_scale, nq != nk) for
 * the case they serve faster on an H100/H200: no mask, equal head dims, f32 q, k, v with
 * 16-byte aligned rows. Everything else stays with flash_tf32.cu (the host returns
 * cudaErrorNotSupported).
 *  - PATTN_PRECISION_TF32, where the scaled f16 copies of flash_wgmma.cu's TF32 path are not
 *    taken (no workspace for them, or PATTN_CUDA_TF32_F16=0): tf32 operands
 *    (k_flash_wgmma_tf32, head dims 64 and 128); at head dim 256, where tf32 Q, K and V^T
 *    stages do not fit, every operand as two bf16 parts and three bf16 products per product
 *    (k_flash_wgmma_x3 with NP = 2, about 2^-16 relative).
 *  - exact, the default (k_flash_wgmma_x3, head dims 64, 128 and 256): every operand as three
 *    bf16 parts, six bf16 products per product (see "exact f32" below).
 *
 * TF32: the block layout of flash_wgmma.cu (three warpgroups, BM = 128 query rows of one
 * (batch, segment, head), persistent blocks without causal masking; for grids of fewer items
 * than SMs, one consumer and BM = 64), with two differences that
 * tf32 operands impose: wgmma reads tf32 from shared memory only K-major, and only the top 19
 * bits of each f32 (truncation), where SPEC.md's TF32 row is met with round-to-nearest.
 *   - Warpgroup 0 loads K and V with ordinary loads, rounds them to tf32 (cvt.rna) and stores
 *     them in the 128-byte swizzle layout (boxes of 32 f32 columns): K as [BN][D], V transposed
 *     as V^T [D][BN] (the K-major B operand of P V). Warps 0-1 fill the K stages, warps 2-3
 *     the V stages; each thread fences its stores to the async proxy and arrives on the
 *     stage's full barrier.
 *   - Warpgroups 1 and 2 each load, round and store their 64 rows of Q per work item, then
 *     run flash_wgmma.cu's loop: S = Q K^T (m64nBNk8), the online softmax, O += P V with P
 *     from registers (m64nDk8).
 *   - P from the accumulator as the A operand: a lane holds scores of keys 8j + 2t and
 *     8j + 2t + 1, where the A fragment wants k-slots t and t + 4. So V^T's keys are permuted
 *     inside each group of 8: key 2s sits at slot s, key 2s + 1 at slot s + 4.
 * Grid: as flash_wgmma.cu. */
#include "mma.cuh"
#include "wgmma.cuh"

namespace pcu_wgt {

#if PCU_WGMMA_DEVICE
using namespace pcu_mma_ops;
using namespace pcu_wgmma_ops;
#endif

/* D: head dim; BN keys per kv tile; two stages each of K and V; NC consumer warpgroups of 64
 * query rows beside the loader. */
template <int D_, int BN_, int NC_ = 2> struct Cfg {
  static constexpr int D = D_, BN = BN_, ST = 2, NC = NC_;
  static constexpr int THREADS = 128 * (1 + NC), BM = 64 * NC;
  static constexpr int Q_BYTES = BM * D * 4, KV_BYTES = BN * D * 4;
  /* + 1024: the swizzle pattern needs 1024-byte aligned tiles */
  static constexpr size_t SMEM = 1024 + (size_t)Q_BYTES + 2 * ST * (size_t)KV_BYTES;
  static_assert(D % 32 == 0 && BN % 32 == 0 && (BN * D / 4) % (64 * 8) == 0, "tile shape");
};

#if PCU_WGMMA_DEVICE
/* Byte offset of element (r, c) of a tile of `rows` rows of ES-byte elements stored as boxes of
 * 128 bytes (32 f32 or 64 bf16 columns) in the 128-byte swizzle layout. */
template <int ES> __device__ __forceinline__ uint32_t sw_off(int r, int c, int rows) {
  static_assert(ES == 2 || ES == 4, "element size");
  constexpr int BS = ES == 4 ? 5 : 6, CS = ES == 4 ? 2 : 3; /* log2 of the columns a box, a 16-byte chunk */
  return (uint32_t)((c >> BS) * rows * 128 + r * 128 + ((((c & ((1 << BS) - 1)) >> CS) ^ (r & 7)) << 4) + (c & ((1 << CS) - 1)) * ES);
}
/* Four 32-bit values (f32 or bf16 pairs) to shared memory, 16-byte aligned. */
__device__ __forceinline__ void st_shared4(uint32_t addr, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(a), "r"(b), "r"(c), "r"(d) : "memory");
}
enum { KF, KE, VF, VE }; /* the barriers of a K/V stage: K full, K empty, V full, V empty */
/* Shared-memory addresses of a block: the Q, K and V tiles, the stage barriers from b0. */
template <int ST> struct wgt_smem {
  uint32_t q, k, v, b0;
  __device__ __forceinline__ uint32_t bar(int kind, int st) const { return b0 + 8u * (uint32_t)(kind * ST + st); }
};
/* The start of both kernels: Q, then ST stages of K, then of V in dynamic shared memory (the
 * first 1024-byte aligned, as the swizzle pattern needs), and each stage's barriers in bars
 * (64 loader threads fill a stage, the consumers' 128 NC threads empty it), initialised and
 * visible to the block. */
template <class C> __device__ __forceinline__ wgt_smem<C::ST> wgt_start(uint64_t *bars) {
  extern __shared__ __align__(128) uint8_t smem_f32[];
  wgt_smem<C::ST> m;
  m.q = (smem_addr(smem_f32) + 1023u) & ~1023u;
  m.k = m.q + C::Q_BYTES;
  m.v = m.k + C::ST * C::KV_BYTES;
  m.b0 = smem_addr(bars);
  if (threadIdx.x == 0) {
    wg_kv_bars_init<C::ST>(m.b0, 64, 128 * C::NC);
    mbar_init_fence();
  }
  __syncthreads();
  return m;
}
/* The end of a work item (wg_forward_store): f32 pairs where vout (out f32 with 8-byte aligned
 * rows), else element by element in out's dtype. */
template <int D>
__device__ __forceinline__ void wgt_store(const pcu_flash_args &a, const float (&o)[D / 2], const float (&m)[2],
                                          const float (&l)[2], int wrow, int nq, int ib, int is, int ih, int g, int t, bool vout) {
  wg_forward_store<D>(a, make_float2(a.scale, a.out_scale), o, m, l, wrow, nq, ib, is, ih, g, t, [&](int64_t at, float x0, float x1) {
    if (vout) {
      *(float2 *)((float *)a.out.buf + at) = make_float2(x0, x1);
    } else {
      pcu_store(a.out.buf, a.out.dtype, at, x0);
      pcu_store(a.out.buf, a.out.dtype, at + 1, x1);
    }
  });
}
/* Row `row` of view v (< n), 4 columns from c (16-byte aligned), or zeros past n. */
__device__ __forceinline__ float4 ld_row4(const pcu_view &v, int64_t base, int row, int n, int c) {
  if (row >= n) return make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  return __ldg((const float4 *)((const float *)v.buf + base + (int64_t)row * v.sn + c));
}
#endif

template <class C>
__global__ void __launch_bounds__(C::THREADS, 1)
    k_flash_wgmma_tf32(pcu_flash_args a, int nqt, int nwork, int off, int flags) {
#if PCU_WGMMA_DEVICE
  constexpr int D = C::D, BN = C::BN, BM = C::BM, ST = C::ST;
  __shared__ __align__(8) uint64_t bars[4 * ST];
  const wgt_smem<ST> sm = wgt_start<C>(bars);
  const uint32_t sQ = sm.q, sK = sm.k, sV = sm.v;
  auto bar = [&](int kind, int st) { return sm.bar(kind, st); };
  const int tid = threadIdx.x, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int wg = __shfl_sync(0xffffffffu, tid >> 7, 0);
  const int nq = (int)a.q.n, nk = (int)a.k.n;
  const bool causal = a.causal != 0;
  auto tiles_of = [&](const pcu_flash_tile_t<int> &tile) { return wg_kv_tiles<BM, BN>(tile.qt * BM, nq, nk, off, causal); };

  if (wg == 0) { /* the loader: warps 0-1 K, warps 2-3 V */
    const bool isv = tid >= 64;
    const int lt = tid & 63;
    const pcu_view &src = isv ? a.v : a.k;
    const uint32_t base = isv ? sV : sK;
    const int full = isv ? VF : KF, empty = isv ? VE : KE;
    /* float4 per row; loads in flight per thread (at most two round trips to L2 a tile) */
    constexpr int C4 = D / 4, U = BN * C4 / 64 < 16 ? BN * C4 / 64 : 16;
    int it = 0;
    for (int w = blockIdx.x; w < nwork; w += gridDim.x) {
      const pcu_flash_tile_t<int> tile = pcu_flash_tile_of<int>(a, nqt, w);
      const int ntiles = tiles_of(tile);
      const int64_t rbase = pcu_row(src, tile.ib, tile.is, tile.kh, 0);
      for (int j = 0; j < ntiles; j++, it++) {
        const int st = it % ST;
        mbar_wait(bar(empty, st), ((uint32_t)(it / ST) & 1u) ^ 1u);
        const uint32_t dst = base + (uint32_t)(st * C::KV_BYTES);
        if (!isv) { /* K: lanes along the row (16-byte stores, one row of each box per warp) */
          for (int i0 = 0; i0 < BN * C4; i0 += 64 * U) {
            float4 x[U];
#pragma unroll
            for (int u = 0; u < U; u++) {
              const int i = i0 + u * 64 + lt;
              x[u] = ld_row4(src, rbase, j * BN + i / C4, nk, (i % C4) * 4);
            }
#pragma unroll
            for (int u = 0; u < U; u++) {
              const int i = i0 + u * 64 + lt, r = i / C4, c = (i % C4) * 4;
              st_shared4(dst + sw_off<4>(r, c, BN), tf32_rna(x[u].x), tf32_rna(x[u].y), tf32_rna(x[u].z), tf32_rna(x[u].w));
            }
          }
        } else {
          /* V^T: a lane loads keys 8kb + p + 2m (m = 0..3) at four columns 4cq.. of V, which
           * are slots 8kb + 4p + m of V^T (the permutation), and stores each column as one
           * 16-byte chunk of row 4cq + e. A warp's task is 32 keys (kb: 4 blocks of 8) by 16
           * columns (cq: 4 quads); the 8 lanes of a quarter-warp store 8 different chunks. */
          const int wv = lt >> 5, p = lane & 1, kq = (lane >> 1) & 3, cl = lane >> 3;
          constexpr int NT = (BN / 32) * (D / 16), TB = NT / 2 < 4 ? NT / 2 : 4; /* tasks; per batch */
          static_assert(NT % (2 * TB) == 0, "V tasks per warp");
          for (int t0 = 0; t0 < NT; t0 += 2 * TB) {
            float4 x[TB][4];
#pragma unroll
            for (int u = 0; u < TB; u++) {
              const int task = t0 + 2 * u + wv, kb = (task % (BN / 32)) * 4 + kq, cq = (task / (BN / 32)) * 4 + cl;
#pragma unroll
              for (int m = 0; m < 4; m++) x[u][m] = ld_row4(src, rbase, j * BN + 8 * kb + 2 * m + p, nk, 4 * cq);
            }
#pragma unroll
            for (int u = 0; u < TB; u++) {
              const int task = t0 + 2 * u + wv, kb = (task % (BN / 32)) * 4 + kq, cq = (task / (BN / 32)) * 4 + cl;
              st_shared4(dst + sw_off<4>(4 * cq + 0, 8 * kb + 4 * p, D), tf32_rna(x[u][0].x), tf32_rna(x[u][1].x), tf32_rna(x[u][2].x), tf32_rna(x[u][3].x));
              st_shared4(dst + sw_off<4>(4 * cq + 1, 8 * kb + 4 * p, D), tf32_rna(x[u][0].y), tf32_rna(x[u][1].y), tf32_rna(x[u][2].y), tf32_rna(x[u][3].y));
              st_shared4(dst + sw_off<4>(4 * cq + 2, 8 * kb + 4 * p, D), tf32_rna(x[u][0].z), tf32_rna(x[u][1].z), tf32_rna(x[u][2].z), tf32_rna(x[u][3].z));
              st_shared4(dst + sw_off<4>(4 * cq + 3, 8 * kb + 4 * p, D), tf32_rna(x[u][0].w), tf32_rna(x[u][1].w), tf32_rna(x[u][2].w), tf32_rna(x[u][3].w));
            }
          }
        }
        fence_proxy_async();
        mbar_arrive(bar(full, st));
      }
    }
    return;
  }

  const int cw = wg - 1, w4 = (tid >> 5) & 3, ct = tid & 127;
  const float u = a.scale * PCU_LOG2E;
  /* Q: this warpgroup's 64 rows of each 32-column box; a k8 step is 32 bytes inside the
   * 128-byte row, then the next box (descriptor units: >> 4) */
  const uint64_t dq = desc_sw128(sQ + (uint32_t)(cw * 64 * 128), 16, 1024);
  int it = 0;
  for (int w = blockIdx.x; w < nwork; w += gridDim.x) {
    const pcu_flash_tile_t<int> tile = pcu_flash_tile_of<int>(a, nqt, w);
    const int ih = tile.ih, is = tile.is, ib = tile.ib;
    const int ntiles = tiles_of(tile);
    const int wrow = tile.qt * BM + cw * 64 + w4 * 16; /* the warp's first row */

    float o[D / 2], m[2], l[2];
    wg_item_start(o, m, l);

    if (ntiles > 0) {
      { /* this warpgroup's Q rows, rounded to tf32 (the previous item's products are done) */
        const int q0 = tile.qt * BM + cw * 64;
        const int64_t qb = pcu_row(a.q, ib, is, ih, 0);
        constexpr int C4 = D / 4, QU = 64 * C4 / 128;
        float4 x[QU];
#pragma unroll
        for (int u = 0; u < QU; u++) x[u] = ld_row4(a.q, qb, q0 + (ct + 128 * u) / C4, nq, ((ct + 128 * u) % C4) * 4);
#pragma unroll
        for (int u = 0; u < QU; u++) {
          const int i = ct + 128 * u, r = i / C4, c = (i % C4) * 4;
          st_shared4(sQ + sw_off<4>(cw * 64 + r, c, BM), tf32_rna(x[u].x), tf32_rna(x[u].y), tf32_rna(x[u].z), tf32_rna(x[u].w));
        }
        fence_proxy_async();
        bar_sync(1 + cw, 128);
      }
      uint32_t pa[BN / 8][4];
      auto full = [&](int kind, int j) { mbar_wait(bar(kind, (it + j) % ST), (uint32_t)((it + j) / ST) & 1u); };
      auto release = [&](int kind, int j) { mbar_arrive(bar(kind, (it + j) % ST)); };
      auto qk = [&](float(&s)[BN / 2], int j) {
        const uint64_t dk = desc_sw128(sK + (uint32_t)(((it + j) % ST) * C::KV_BYTES), 16, 1024);
#pragma unroll
        for (int kk = 0; kk < D / 8; kk++)
          mma_tf32_ss<BN>(s, dq + (uint64_t)((kk >> 2) * BM * 8 + (kk & 3) * 2), dk + (uint64_t)((kk >> 2) * BN * 8 + (kk & 3) * 2), kk);
        commit();
      };
      auto pv = [&](int j) {
        const uint64_t dv = desc_sw128(sV + (uint32_t)(((it + j) % ST) * C::KV_BYTES), 16, 1024);
#pragma unroll
        for (int kk = 0; kk < BN / 8; kk++) mma_tf32_rs<D>(o, pa[kk], dv + (uint64_t)((kk >> 2) * D * 8 + (kk & 3) * 2));
        commit();
      };
      auto softmax = [&](float(&s)[BN / 2], int j, float(&alpha)[2]) {
        wg_softmax<BN>(s, m, l, alpha, j * BN, nk, wrow, off, causal, u, g, t);
      };
      /* k8 step kk: slots t and t + 4 hold keys 8kk + 2t and 8kk + 2t + 1 (V^T's permutation) */
      auto pack = [&](const float(&s)[BN / 2]) {
#pragma unroll
        for (int kk = 0; kk < BN / 8; kk++) {
          pa[kk][0] = tf32_rna(s[4 * kk + 0]);
          pa[kk][1] = tf32_rna(s[4 * kk + 2]);
          pa[kk][2] = tf32_rna(s[4 * kk + 1]);
          pa[kk][3] = tf32_rna(s[4 * kk + 3]);
        }
      };

      wg_forward_tiles<D, BN, KF, KE, VF, VE>(ntiles, o, full, release, qk, pv, softmax, pack, [] {});
      it += ntiles;
      bar_sync(1 + cw, 128); /* every warp's products that read Q are done before the next item's Q */
    }

    wgt_store<D>(a, o, m, l, wrow, nq, ib, is, ih, g, t, flags & 1);
  }
#else
  (void)a; (void)nqt; (void)nwork; (void)off; (void)flags;
#endif
}


/* ---- exact f32 (the default precision): three bf16 parts per operand ----
 * f32 x = h + m + l with h = bf16(x), m = bf16(x - h), l = bf16(x - h - m): each part rounds
 * the remainder of the ones before, so the sum carries x to about 2^-26 relative. A product
 * x y keeps the six part products down to order 2^-18 (h h', h m', m h', h l', m m', l h');
 * the terms left out are below 2^-26 of x y, under f32's own rounding. Six bf16 wgmmas take
 * the time of three tf32 ones (3xTF32's cost); the parts take 6 bytes an element where tf32's
 * hi and lo take 8, which is what lets Q and two stages of K and V fit at d = 128; and bf16
 * operands may be MN-major, so V needs no transpose. Each accumulator takes the small
 * products first, the truncating chains of large ones stay short (see the consumer), and the
 * softmax's alpha is exactly 1 where the max holds (wg_softmax's EXACT).
 * Layout: as flash_wgmma.cu's bf16 tiles (boxes of 64 columns, 128-byte swizzle), three parts
 * a tile; NC consumer warpgroups of 64 query rows (BM = 64 NC) beside the loader, which splits
 * K and V alike ([BN][D] tiles) and loads the next tile into registers before its stage is
 * free. */
template <int D_, int BN_, int ST_, int NC_, int NP_ = 3> struct CfgX {
  static constexpr int D = D_, BN = BN_, ST = ST_, NC = NC_, NP = NP_;
  static constexpr int THREADS = 128 * (1 + NC), BM = 64 * NC;
  static constexpr int QP = BM * D * 2, KVP = BN * D * 2; /* bytes of one part */
  static constexpr int Q_BYTES = NP * QP, KV_BYTES = NP * KVP;
  static_assert(NP == 2 || NP == 3, "parts");
  static constexpr size_t SMEM = 1024 + (size_t)Q_BYTES + 2 * ST * (size_t)KV_BYTES;
  static_assert(D % 64 == 0 && BN % 16 == 0 && KVP % 1024 == 0 && (BN * D / 8) % 64 == 0, "tile shape");
};

#if PCU_WGMMA_DEVICE
/* x0, x1 as NP bf16 pairs h, m (, l) (x0 in the low halves; l untouched where NP = 2). */
template <int NP> __device__ __forceinline__ void split_parts(float x0, float x1, uint32_t &h, uint32_t &m, uint32_t &l) {
  h = pack_rn<true>(x0, x1);
  x0 -= __uint_as_float(h << 16);
  x1 -= __uint_as_float(h & 0xffff0000u);
  m = pack_rn<true>(x0, x1);
  if (NP == 3) {
    x0 -= __uint_as_float(m << 16);
    x1 -= __uint_as_float(m & 0xffff0000u);
    l = pack_rn<true>(x0, x1);
  }
}
/* 8 consecutive f32 (a, b) as one 16-byte chunk of each part: part i at addr + i part. */
template <int NP> __device__ __forceinline__ void st_split8(uint32_t addr, uint32_t part, const float4 &a, const float4 &b) {
  uint32_t h[4], m[4], l[4];
  split_parts<NP>(a.x, a.y, h[0], m[0], l[0]);
  split_parts<NP>(a.z, a.w, h[1], m[1], l[1]);
  split_parts<NP>(b.x, b.y, h[2], m[2], l[2]);
  split_parts<NP>(b.z, b.w, h[3], m[3], l[3]);
  st_shared4(addr, h[0], h[1], h[2], h[3]);
  st_shared4(addr + part, m[0], m[1], m[2], m[3]);
  if (NP == 3) st_shared4(addr + 2 * part, l[0], l[1], l[2], l[3]);
}
/* The part products, smallest first, as (part of the A operand, part of the B operand): six
 * of three parts (h l', m m', l h', h m', m h', h h'), three of two (h m', m h', h h'). */
template <int NP> __device__ __forceinline__ constexpr int xp_count() { return NP == 3 ? 6 : 3; }
template <int NP> __device__ __forceinline__ constexpr int xp_a(int p) {
  return NP == 3 ? (p == 0 ? 0 : p == 1 ? 1 : p == 2 ? 2 : p == 3 ? 0 : p == 4 ? 1 : 0) : (p == 1 ? 1 : 0);
}
template <int NP> __device__ __forceinline__ constexpr int xp_b(int p) {
  return NP == 3 ? (p == 0 ? 2 : p == 1 ? 1 : p == 2 ? 0 : p == 3 ? 1 : p == 4 ? 0 : 0) : (p == 0 ? 1 : 0);
}
#endif

template <class C>
__global__ void __launch_bounds__(C::THREADS, 1)
    k_flash_wgmma_x3(pcu_flash_args a, int nqt, int nwork, int off, int flags) {
#if PCU_WGMMA_DEVICE
  constexpr int D = C::D, BN = C::BN, BM = C::BM, ST = C::ST, NC = C::NC, NP = C::NP, NPROD = xp_count<NP>();
  constexpr bool EXACT = NP == 3;
  __shared__ __align__(8) uint64_t bars[4 * ST];
  const wgt_smem<ST> sm = wgt_start<C>(bars);
  const uint32_t sQ = sm.q, sK = sm.k, sV = sm.v;
  auto bar = [&](int kind, int st) { return sm.bar(kind, st); };
  const int tid = threadIdx.x, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int wg = __shfl_sync(0xffffffffu, tid >> 7, 0);
  const int nq = (int)a.q.n, nk = (int)a.k.n;
  const bool causal = a.causal != 0;
  auto tiles_of = [&](const pcu_flash_tile_t<int> &tile) { return wg_kv_tiles<BM, BN>(tile.qt * BM, nq, nk, off, causal); };

  /* two consumers: registers from the loader to them, within the block's 3 x 168 a thread
   * (setmaxnreg.inc waits for registers the block has; 88 + 2 x 208 = 504) */
  constexpr int LOADER_REGS = 88, CONSUMER_REGS = 208;
  static_assert(NC == 1 || LOADER_REGS + 2 * CONSUMER_REGS <= 504, "register budget");
  if (wg == 0) { /* the loader: warps 0-1 K, warps 2-3 V, the same split of [BN][D] tiles */
    if (NC == 2) regs_dec<LOADER_REGS>();
    const bool isv = tid >= 64;
    const int lt = tid & 63;
    const pcu_view &src = isv ? a.v : a.k;
    const uint32_t base = isv ? sV : sK;
    const int full = isv ? VF : KF, empty = isv ? VE : KE;
    /* a thread's chunks of 8 columns, all loaded before the stage is free (the loads of the
     * next tile are in flight while the consumers still read the last one) */
    constexpr int C8 = D / 8, U = BN * C8 / 64;
    float4 x[U][2];
    int w = blockIdx.x, j = 0, ntiles = 0, it = 0;
    int64_t rbase = 0;
    auto next_item = [&] { /* from w on, the first item with tiles */
      for (; w < nwork; w += gridDim.x) {
        const pcu_flash_tile_t<int> tile = pcu_flash_tile_of<int>(a, nqt, w);
        ntiles = tiles_of(tile);
        if (ntiles > 0) {
          rbase = pcu_row(src, tile.ib, tile.is, tile.kh, 0);
          return;
        }
      }
    };
    auto fetch = [&] {
#pragma unroll
      for (int u = 0; u < U; u++) {
        const int i = u * 64 + lt, r = j * BN + i / C8, c = (i % C8) * 8;
        x[u][0] = ld_row4(src, rbase, r, nk, c);
        x[u][1] = ld_row4(src, rbase, r, nk, c + 4);
      }
    };
    next_item();
    if (w < nwork) fetch();
    while (w < nwork) {
      const int st = it % ST;
      mbar_wait(bar(empty, st), ((uint32_t)(it / ST) & 1u) ^ 1u);
      const uint32_t dst = base + (uint32_t)(st * C::KV_BYTES);
#pragma unroll
      for (int u = 0; u < U; u++) {
        const int i = u * 64 + lt;
        st_split8<NP>(dst + sw_off<2>(i / C8, (i % C8) * 8, BN), C::KVP, x[u][0], x[u][1]);
      }
      fence_proxy_async();
      mbar_arrive(bar(full, st));
      it++;
      if (++j == ntiles) {
        j = 0;
        w += gridDim.x;
        next_item();
      }
      if (w < nwork) fetch();
    }
    return;
  }

  if (NC == 2) regs_inc<CONSUMER_REGS>();
  const int cw = wg - 1, w4 = (tid >> 5) & 3, ct = tid & 127;
  const float u = a.scale * PCU_LOG2E;
  /* this warpgroup's 64 rows of part 0 of Q; part p is p * QP bytes on (descriptor units >> 4) */
  const uint64_t dq = desc_sw128(sQ + (uint32_t)(cw * 64 * 128), 16, 1024);
  int it = 0;
  for (int w = blockIdx.x; w < nwork; w += gridDim.x) {
    const pcu_flash_tile_t<int> tile = pcu_flash_tile_of<int>(a, nqt, w);
    const int ih = tile.ih, is = tile.is, ib = tile.ib;
    const int ntiles = tiles_of(tile);
    const int wrow = tile.qt * BM + cw * 64 + w4 * 16;

    float o[D / 2], m[2], l[2];
    wg_item_start(o, m, l);

    if (ntiles > 0) {
      { /* this warpgroup's Q rows in three parts */
        const int q0 = tile.qt * BM + cw * 64;
        const int64_t qb = pcu_row(a.q, ib, is, ih, 0);
        constexpr int C8 = D / 8, QU = 64 * C8 / 128, B = QU < 4 ? QU : 4;
#pragma unroll
        for (int u0 = 0; u0 < QU; u0 += B) {
          float4 x[B][2];
#pragma unroll
          for (int u = 0; u < B; u++) {
            const int i = ct + 128 * (u0 + u), r = q0 + i / C8, c = (i % C8) * 8;
            x[u][0] = ld_row4(a.q, qb, r, nq, c);
            x[u][1] = ld_row4(a.q, qb, r, nq, c + 4);
          }
#pragma unroll
          for (int u = 0; u < B; u++) {
            const int i = ct + 128 * (u0 + u);
            st_split8<NP>(sQ + sw_off<2>(cw * 64 + i / C8, (i % C8) * 8, BM), C::QP, x[u][0], x[u][1]);
          }
        }
        fence_proxy_async();
        bar_sync(1 + cw, 128);
      }
      uint32_t pa[NP][BN / 16][4];
      /* Tensor cores add into the accumulator with truncation (toward zero), up to an ulp per
       * wgmma: in the exact mode chains of the large products stay short (see flash_tf32.cu).
       * S: the h h' products in runs of 128 dims (sg holds the second run at D = 256); P V:
       * each tile's product in fresh registers ot (DO columns at a time, o alone takes 128
       * registers at D = 256), folded into o with f32 adds. With two parts (TF32 accuracy, a
       * drift of 1e-4 at 16k keys is harmless) P V accumulates in o. */
      constexpr int DO = D > 128 ? 64 : D, HH = EXACT && D > 128 ? 8 : D / 16;
      float sg[BN / 2], ot[DO / 2];
      auto full = [&](int kind, int j) { mbar_wait(bar(kind, (it + j) % ST), (uint32_t)((it + j) / ST) & 1u); };
      auto release = [&](int kind, int j) { mbar_arrive(bar(kind, (it + j) % ST)); };
      auto qk = [&](float(&s)[BN / 2], int j) {
        /* opaque per tile: else the descriptors, invariant where ST = 1, stay in registers */
        uint32_t kb = sK + (uint32_t)(((it + j) % ST) * C::KV_BYTES);
        uint64_t dqt = dq;
        asm volatile("" : "+r"(kb), "+l"(dqt));
        auto prod = [&](float(&acc)[BN / 2], int p, int k0, int k1, bool first) {
          const uint64_t da = dqt + (uint64_t)(xp_a<NP>(p) * (C::QP >> 4)), db = desc_sw128(kb + (uint32_t)(xp_b<NP>(p) * C::KVP), 16, 1024);
#pragma unroll
          for (int kk = k0; kk < k1; kk++)
            mma_ss<BN, true>(acc, da + (uint64_t)((kk >> 2) * BM * 8 + (kk & 3) * 2), db + (uint64_t)((kk >> 2) * BN * 8 + (kk & 3) * 2),
                             !first || kk > k0);
        };
#pragma unroll
        for (int p = 0; p < NPROD - 1; p++) prod(s, p, 0, D / 16, p == 0);
        prod(s, NPROD - 1, 0, HH, false);
        if (HH < D / 16) prod(sg, NPROD - 1, HH, D / 16, true);
        commit();
      };
      /* P V into ot for columns c0 .. c0 + DO */
      auto pv_cols = [&](uint32_t vb, int c0) {
#pragma unroll
        for (int p = 0; p < NPROD; p++) {
          const uint64_t dv = desc_sw128(vb + (uint32_t)(xp_b<NP>(p) * C::KVP + (c0 / 64) * BN * 128), BN * 128, 1024);
#pragma unroll
          for (int kk = 0; kk < BN / 16; kk++) mma_rs<DO, true>(ot, pa[xp_a<NP>(p)][kk], dv + (uint64_t)(kk * 128), p | kk);
        }
        commit();
      };
      /* two parts: P V into o */
      auto pv_o = [&](uint32_t vb) {
#pragma unroll
        for (int p = 0; p < NPROD; p++) {
          const uint64_t dv = desc_sw128(vb + (uint32_t)(xp_b<NP>(p) * C::KVP), BN * 128, 1024);
#pragma unroll
          for (int kk = 0; kk < BN / 16; kk++) mma_rs<D, true>(o, pa[xp_a<NP>(p)][kk], dv + (uint64_t)(kk * 128));
        }
        commit();
      };
      auto add_ot = [&](int c0) {
#pragma unroll
        for (int i = 0; i < DO / 2; i++) o[c0 / 2 + i] += ot[i];
      };
      auto pv = [&](int j) {
        uint32_t vb = sV + (uint32_t)(((it + j) % ST) * C::KV_BYTES);
        asm volatile("" : "+r"(vb));
        if (!EXACT) {
          pv_o(vb);
          return;
        }
        pv_cols(vb, 0);
#pragma unroll
        for (int c0 = DO; c0 < D; c0 += DO) { /* each part folded before the next starts (ot is reused) */
          wait<0>();
          pin(ot);
          add_ot(c0 - DO);
          pin(ot);
          fence();
          pv_cols(vb, c0);
        }
      };
      auto softmax = [&](float(&s)[BN / 2], int j, float(&alpha)[2]) {
        if (HH < D / 16) {
          pin(sg);
#pragma unroll
          for (int i = 0; i < BN / 2; i++) s[i] += sg[i];
        }
        wg_softmax<BN, EXACT>(s, m, l, alpha, j * BN, nk, wrow, off, causal, u, g, t);
      };
      auto pack = [&](const float(&s)[BN / 2]) {
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++)
#pragma unroll
          for (int e = 0; e < 4; e++) split_parts<NP>(s[8 * kk + 2 * e], s[8 * kk + 2 * e + 1], pa[0][kk][e], pa[1][kk][e], pa[NP - 1][kk][e]);
      };
      auto last = [&] {
        if (EXACT) {
          pin(ot);
          add_ot(D - DO);
        }
      };
      auto fold = [&](const float(&alpha)[2]) {
        last();
        wg_rescale<D / 2>(o, alpha);
      };

      wg_forward_tiles<D, BN, KF, KE, VF, VE>(ntiles, o, full, release, qk, pv, softmax, pack, [] {}, fold, last);
      it += ntiles;
      bar_sync(1 + cw, 128);
    }

    wgt_store<D>(a, o, m, l, wrow, nq, ib, is, ih, g, t, flags & 1);
  }
#else
  (void)a; (void)nqt; (void)nwork; (void)off; (void)flags;
#endif
}

} /* namespace pcu_wgt */

/* The variants, per head dim in order of preference: TF32 (D, BN, NC) and exact (D, BN, ST, NC).
 * One list each feeds the host table and, under NVRTC, the explicit instantiations
 * (common.cuh, "Under NVRTC"). */
#define WGT_VARIANTS(X) \
  X(64, 64, 2)          \
  X(64, 64, 1)          \
  X(128, 64, 2)         \
  X(128, 64, 1)
/* TF32 at d = 256 (no room for tf32 Q and K and V^T stages): two bf16 parts an operand, three
 * products, about 2^-16 relative */
#define WGP_VARIANTS(X) \
  X(256, 32, 2, 1)      \
  X(256, 64, 1, 1)
#define WGX_VARIANTS(X) \
  X(64, 64, 2, 2)       \
  X(64, 64, 2, 1)       \
  X(128, 32, 2, 2)      \
  X(128, 32, 2, 1)      \
  X(256, 32, 1, 1)

#ifdef __CUDACC_RTC__
#define RTC_WGT(D, BN, NC) \
  template __global__ void pcu_wgt::k_flash_wgmma_tf32<pcu_wgt::Cfg<D, BN, NC>>(pcu_flash_args, int, int, int, int);
#define RTC_WGX(D, BN, ST, NC) \
  template __global__ void pcu_wgt::k_flash_wgmma_x3<pcu_wgt::CfgX<D, BN, ST, NC>>(pcu_flash_args, int, int, int, int);
#define RTC_WGP(D, BN, ST, NC) \
  template __global__ void pcu_wgt::k_flash_wgmma_x3<pcu_wgt::CfgX<D, BN, ST, NC, 2>>(pcu_flash_args, int, int, int, int);
WGT_VARIANTS(RTC_WGT)
WGP_VARIANTS(RTC_WGP)
WGX_VARIANTS(RTC_WGX)
#else /* host side */

namespace {

typedef void (*wgt_kernel_fn)(pcu_flash_args, int, int, int, int);

struct wgt_variant {
  int d, bm, threads;
  size_t smem;
  wgt_kernel_fn k;
};

#define PCU_WGT_ROW(D, BN, NC)                                                                                 \
  {D, pcu_wgt::Cfg<D, BN, NC>::BM, pcu_wgt::Cfg<D, BN, NC>::THREADS, pcu_wgt::Cfg<D, BN, NC>::SMEM, \
   pcu_wgt::k_flash_wgmma_tf32<pcu_wgt::Cfg<D, BN, NC>>},
#define PCU_WGX_ROW(D, BN, ST, NC)                                                                                         \
  {D, pcu_wgt::CfgX<D, BN, ST, NC>::BM, pcu_wgt::CfgX<D, BN, ST, NC>::THREADS, pcu_wgt::CfgX<D, BN, ST, NC>::SMEM, \
   pcu_wgt::k_flash_wgmma_x3<pcu_wgt::CfgX<D, BN, ST, NC>>},
#define PCU_WGP_ROW(D, BN, ST, NC)                                                                                            \
  {D, pcu_wgt::CfgX<D, BN, ST, NC, 2>::BM, pcu_wgt::CfgX<D, BN, ST, NC, 2>::THREADS, pcu_wgt::CfgX<D, BN, ST, NC, 2>::SMEM, \
   pcu_wgt::k_flash_wgmma_x3<pcu_wgt::CfgX<D, BN, ST, NC, 2>>},
const wgt_variant wgt_variants[] = {WGT_VARIANTS(PCU_WGT_ROW) WGP_VARIANTS(PCU_WGP_ROW)};
const wgt_variant wgx_variants[] = {WGX_VARIANTS(PCU_WGX_ROW)};

} /* namespace */

/* cudaErrorNotSupported when this path does not apply (the caller then uses flash_tf32.cu):
 * not built with sm_90a code, compute capability other than 9.0 or PATTN_CUDA_WGMMA=0
 * (pcu_wgmma_usable), a block-sparse layout or a mask, q, k or v not f32, head dims other than
 * those of the tables (all three equal), rows of q, k or v not 16-byte aligned, GQA groups not
 * whole, or lengths and head counts of 2^30 and beyond. PATTN_CUDA_WGT_CFG and
 * PATTN_CUDA_WGX_CFG (temporary, for benchmarks) pick a TF32 or exact variant of the head dim
 * by its index. */
extern "C" int pcu_flash_wgmma_f32_forward(cudaStream_t s, const pcu_flash_args *a, int cc, size_t smem_optin, int tf32) {
#ifndef PCU_WGMMA_BUILT
  (void)s; (void)a; (void)cc; (void)smem_optin; (void)tf32; (void)wgt_variants; (void)wgx_variants;
  return (int)cudaErrorNotSupported;
#else
  const int64_t nq = a->q.n, nk = a->k.n, d = a->q.d;
  if (!pcu_wgmma_usable(cc) || !pcu_flash_tc_shape(a) || a->mask.buf || a->q.dtype != PCU_F32 || a->k.dtype != PCU_F32 ||
      a->v.dtype != PCU_F32 || a->k.d != d || a->v.d != d || !pcu_rows_aligned(a->q, 4, 16) ||
      !pcu_rows_aligned(a->k, 4, 16) || !pcu_rows_aligned(a->v, 4, 16))
    return (int)cudaErrorNotSupported;
  const wgt_variant *tab = tf32 ? wgt_variants : wgx_variants;
  const int ntab = tf32 ? (int)(sizeof wgt_variants / sizeof wgt_variants[0]) : (int)(sizeof wgx_variants / sizeof wgx_variants[0]);
  const char *knob = tf32 ? "PATTN_CUDA_WGT_CFG" : "PATTN_CUDA_WGX_CFG";
  int vi = pcu_pick_variant(tab, ntab, (int)d, knob,
                                  [&](const wgt_variant &w) { return w.smem <= smem_optin; });
  if (vi < 0) return (int)cudaErrorNotSupported;
  const int64_t units = a->q.nh * a->q.ns * a->q.nb;
  /* a row of 64-row items where those still fit in one wave of blocks (not where a knob picks):
   * with one consumer a block is slower, so it pays only where it fills idle SMs (run 71:
   * TF32 1.6-1.7x and exact 1.1-1.2x slower at b=1 h=12 n=1024, 96 items of 128 rows) */
  if (!getenv(knob) && pcu_small_grid(a, tab[vi].bm))
    for (int i = 0; i < ntab; i++)
      if (tab[i].d == d && tab[i].bm == 64 && tab[i].smem <= smem_optin) vi = i;
  const wgt_variant *v = &tab[vi];
  const int64_t nqt = (nq + v->bm - 1) / v->bm, nwork = nqt * units;
  if (nwork <= 0) return 0;
  if (nwork > 0x7fffffffLL) return (int)cudaErrorInvalidConfiguration;
  /* as flash_wgmma.cu: persistent blocks without causal masking, a block per item with it */
  const int64_t blocks = a->causal || a->num_sms <= 0 || nwork < a->num_sms ? nwork : a->num_sms;
  cudaError_t e = pcu_prepare_smem((const void *)v->k, v->smem);
  if (e != cudaSuccess) return (int)e;
  const int64_t off = pcu_clamp_causal(a->causal_offset, nq, nk);
  const int vout = a->out.dtype == PCU_F32 && pcu_rows_aligned(a->out, 4, 8);
  v->k<<<(unsigned)blocks, (unsigned)v->threads, v->smem, s>>>(*a, (int)nqt, (int)nwork, (int)off, vout);
  return (int)cudaGetLastError();
#endif
}
#endif /* !__CUDACC_RTC__ */
