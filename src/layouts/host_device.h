#pragma once
// QB_HOST_DEVICE marks a layout function callable from CPU code and, under nvcc, from kernels.
#if defined(__CUDACC__)
#define QB_HOST_DEVICE __host__ __device__
#else
#define QB_HOST_DEVICE
#endif
