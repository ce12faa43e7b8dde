/* The elementwise parts of materialised attention (algo NAIVE, and the backward pass):
 * scores live in a dense f32 workspace written by cuBLAS; these kernels apply mask and
 * causal visibility, normalise rows, and form dS. */
#include "common.cuh"

#define THREADS 256

__device__ float block_reduce(float v, float *red, bool is_max) {
  for (int o = 16; o > 0; o >>= 1) {
    float w = __shfl_xor_sync(0xffffffffu, v, o);
    v = is_max ? fmaxf(v, w) : v + w;
  }
  int wi = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0) red[wi] = v;
  __syncthreads();
  float t = red[0];
  for (int i = 1; i < (int)(blockDim.x >> 5); i++) t = is_max ? fmaxf(t, red[i]) : t + red[i];
  return t;
}

/* One block per row of S [nu][H][nq][nk]. */
__global__ void k_softmax_rows(float *S, int64_t u0, int64_t H, int64_t nq, int64_t nk, int64_t ns, pcu_view mask,
                               pcu_view lse, int causal, int64_t coff, int64_t rows) {
  __shared__ float red[THREADS / 32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    int64_t t = r;
    int64_t i = t % nq; t /= nq;
    int64_t ih = t % H; t /= H;
    int64_t u = u0 + t, is = u % ns, ib = u / ns;
    float *row = S + r * nk;
    int64_t mrow = 0;
    if (mask.buf) mrow = pcu_row(mask, mask.nb > 1 ? ib : 0, 0, mask.nh > 1 ? ih : 0, i);
    float m = -PCU_INF;
    for (int64_t j = threadIdx.x; j < nk; j += blockDim.x) {
      float x = row[j];
      if (causal && j > i + coff) x = -PCU_INF;
      else if (mask.buf) x += pcu_load(mask.buf, mask.dtype, mrow + j);
      row[j] = x;
      m = fmaxf(m, x);
    }
    m = block_reduce(m, red, true);
    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < nk; j += blockDim.x) {
      float p = m == -PCU_INF ? 0.0f : expf(row[j] - m);
      row[j] = p;
      sum += p;
    }
    sum = block_reduce(sum, red, false);
    float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int64_t j = threadIdx.x; j < nk; j += blockDim.x) row[j] *= inv;
    if (lse.buf && threadIdx.x == 0)
      pcu_store(lse.buf, lse.dtype, pcu_row(lse, ib, is, ih, i), sum > 0.0f ? m + logf(sum) : -PCU_INF);
  }
}

__global__ void k_softmax_bwd(float *S, float *dP, const float *lse, const float *D, int64_t nq, int64_t nk,
                              float scale, int causal, int64_t coff, int64_t total) {
  PCU_FOR(idx, total) {
    int64_t j = idx % nk, r = idx / nk, i = r % nq;
    float l = lse[r];
    float p = (l == -PCU_INF || (causal && j > i + coff)) ? 0.0f : expf(S[idx] - l);
    S[idx] = p;
    dP[idx] = scale * p * (dP[idx] - D[r]);
  }
}

#ifndef __CUDACC_RTC__ /* host side: launchers (common.cuh, "Under NVRTC") */
extern "C" int pcu_softmax_rows(cudaStream_t s, float *S, int64_t u0, int64_t nu, int64_t H, int64_t nq, int64_t nk,
                                int64_t ns, pcu_view mask, pcu_view lse, int causal, int64_t causal_offset) {
  int64_t rows = nu * H * nq;
  if (rows <= 0) return 0;
  unsigned blocks = rows > 65535 * 16 ? 65535u * 16u : (unsigned)rows;
  k_softmax_rows<<<blocks, THREADS, 0, s>>>(S, u0, H, nq, nk, ns, mask, lse, causal, causal_offset, rows);
  return (int)cudaGetLastError();
}

extern "C" int pcu_softmax_bwd(cudaStream_t s, float *S, float *dP, const float *lse, const float *D, int64_t rows,
                               int64_t nq, int64_t nk, float scale, int causal, int64_t causal_offset) {
  int64_t total = rows * nk;
  if (total <= 0) return 0;
  k_softmax_bwd<<<pcu_blocks(total, THREADS), THREADS, 0, s>>>(S, dP, lse, D, nq, nk, scale, causal, causal_offset, total);
  return (int)cudaGetLastError();
}
#endif /* !__CUDACC_RTC__ */
