/* Fused LayerNorm: one block per row; mean and variance by two block reductions (biased
 * variance, like PyTorch), then one pass that normalises and applies the affine part.
 * Each thread reads element c before writing it, so y may alias x. */
#include "common.cuh"

#define THREADS 256

__device__ float block_sum(float v, float *red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads(); /* red may still be read from the previous reduction */
  if (lane == 0) red[w] = v;
  __syncthreads();
  float t = 0.0f;
  for (int i = 0; i < (int)(blockDim.x >> 5); i++) t += red[i];
  return t;
}

__global__ void k_layernorm(int64_t rows, int64_t cols, float eps, pcu_mat x, pcu_mat gamma, pcu_mat beta, pcu_mat y) {
  __shared__ float red[THREADS / 32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    int64_t base = r * cols;
    float s = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += pcu_load(x.buf, x.dtype, x.offset + base + c);
    float mean = block_sum(s, red) / (float)cols;
    float v = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      float dlt = pcu_load(x.buf, x.dtype, x.offset + base + c) - mean;
      v += dlt * dlt;
    }
    float inv = 1.0f / sqrtf(block_sum(v, red) / (float)cols + eps);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      float g = gamma.buf ? pcu_load(gamma.buf, gamma.dtype, gamma.offset + c) : 1.0f;
      float b = beta.buf ? pcu_load(beta.buf, beta.dtype, beta.offset + c) : 0.0f;
      float xv = pcu_load(x.buf, x.dtype, x.offset + base + c);
      pcu_store(y.buf, y.dtype, y.offset + base + c, (xv - mean) * inv * g + b);
    }
    __syncthreads(); /* the whole row is read before a later row reuses red */
  }
}

#ifndef __CUDACC_RTC__ /* host side: launchers (common.cuh, "Under NVRTC") */
extern "C" int pcu_layernorm(cudaStream_t s, int64_t rows, int64_t cols, float eps, pcu_mat x, pcu_mat gamma,
                             pcu_mat beta, pcu_mat y) {
  if (rows <= 0 || cols <= 0) return 0;
  unsigned blocks = rows > 65535 * 16 ? 65535u * 16u : (unsigned)rows;
  k_layernorm<<<blocks, THREADS, 0, s>>>(rows, cols, eps, x, gamma, beta, y);
  return (int)cudaGetLastError();
}
#endif /* !__CUDACC_RTC__ */
