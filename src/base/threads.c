/* threads.c - one thread count for every kernel (OpenMP loops, OpenBLAS, oneDNN), and a clock. */
#include "base/base.h"

#include <omp.h>
#include <time.h>
#include <unistd.h>

static int nthreads;

void cfx_set_threads(int n) {
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    nthreads = n;
    omp_set_num_threads(n);
    /* OpenBLAS, loaded only when needed, takes this count when it is used (src/engine/blas.c). */
}

int cfx_get_threads(void) {
    return nthreads > 0 ? nthreads : omp_get_max_threads();
}

double cfx_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
