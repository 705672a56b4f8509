#pragma once
// This machine's measured float32 GEMM rate: the yardstick that AWQ's time projection and the CPU
// benchmarks state their throughput against.
namespace qb {

// GFLOP/s (2mnk per call) of cblas_sgemm C[m, n] = A[m, k] · B[n, k]^T, the forward pass's
// linear(), with the threads OpenBLAS uses now: one untimed call, then the median of `repeats`.
double measured_sgemm_gflops(int m, int n, int k, int repeats = 3);

}  // namespace qb
