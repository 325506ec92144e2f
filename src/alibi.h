/* Internal: the standard ALiBi slopes, for host and device code alike. */
#ifndef FAI_ALIBI_H
#define FAI_ALIBI_H

#include <math.h>

#ifdef __CUDACC__
#define FAI_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FAI_HOST_DEVICE static inline
#endif

/* The ALiBi paper's slopes for n heads: with m the largest power of two <= n, heads below m
 * get 2^(-8(h+1)/m) and the rest the odd-indexed slopes of 2m heads, 2^(-8(2(h-m)+1)/(2m)). */
FAI_HOST_DEVICE float fai_alibi_standard_slope(int h, int n)
{
    int m = 1;
    while (m <= n / 2)
        m *= 2;
    float e = h < m ? (float)(h + 1) / (float)m : (float)(2 * (h - m) + 1) / (float)(2 * m);
    return exp2f(-8.0f * e);
}

#endif
