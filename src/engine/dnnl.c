/* dnnl.c - the process's one oneDNN CPU engine, made on first use (pthread_once) and shared by
 * every oneDNN caller: the GEMM plans of blas.c and the convolution primitives of
 * ops/conv_dnnl.c. It lives here, below both, so that the GEMM layer does not depend on an op. */
#include "engine/dnnl.h"

#include <pthread.h>

static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void engine_init(void) {
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) engine = NULL;
}

dnnl_engine_t cfx__dnnl_engine(void) {
    pthread_once(&engine_once, engine_init);
    return engine;
}
