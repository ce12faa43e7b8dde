// session 9: does racecheck order accesses across __syncthreads when the kernel also uses
// 64-thread named barriers (bar.sync id, 64)? Pattern of flash_mma_bwd.cu SPL=2: pair exchange
// through shared memory ordered by bar.sync 1+p, 64; block-wide barriers around a write/read.
#include <cstdio>
__global__ void k(int *out, int pairs) {
  __shared__ float x[2][8][32];
  __shared__ int buf[256];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int acc = 0;
  for (int it = 0; it < 4; it++) {
    for (int c = 0; c < 2; c++) {
      if (pairs) {
        x[c][warp][lane] = (float)(it + warp + c);
        asm volatile("bar.sync %0, 64;\n" ::"r"(1 + warp / 2) : "memory");
        acc += (int)x[c][warp ^ 1][lane];
      }
      if (warp % 2 == 0 && c == 1) buf[warp * 32 + lane] = acc; // phase-1 write (even warps)
    }
    __syncthreads();
    acc += buf[((warp / 2 + 1) % 4) * 64 + lane]; // phase-2 read of another pair's row
    __syncthreads();
  }
  out[threadIdx.x] = acc;
}
int main() {
  int *o;
  cudaMalloc(&o, 256 * 4);
  for (int p = 0; p < 2; p++) {
    k<<<1, 256>>>(o, p);
    printf("pairs=%d: %s\n", p, cudaGetErrorString(cudaDeviceSynchronize()));
  }
  return 0;
}
