// How many clusters of S blocks (128 threads, given dynamic smem) can be resident at once.
#include <cstdio>
__global__ void k(int *p) { extern __shared__ int s[]; if (p) p[0] = s[0]; }
int main() {
    int smems[] = {100000, 140000, 200000};
    for (int sm : smems) {
        cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, sm);
        cudaFuncSetAttribute(k, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
        for (int S : {2, 4, 8, 16}) {
            cudaLaunchConfig_t cfg = {};
            cudaLaunchAttribute a = {};
            a.id = cudaLaunchAttributeClusterDimension;
            a.val.clusterDim.x = 1; a.val.clusterDim.y = S; a.val.clusterDim.z = 1;
            cfg.gridDim = dim3(8, S); cfg.blockDim = dim3(128); cfg.dynamicSmemBytes = sm; cfg.attrs = &a; cfg.numAttrs = 1;
            int n = -1;
            cudaError_t e = cudaOccupancyMaxActiveClusters(&n, k, &cfg);
            printf("smem %d cluster %2d: max active clusters %d (%s)\n", sm, S, n, cudaGetErrorString(e));
        }
    }
}
