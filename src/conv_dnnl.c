/* conv_dnnl.c - the oneDNN fast path for conv.c (stub until the primitives land). */
#include "conv.h"

bool cfx__conv_dnnl_available(void) {
    return false;
}
cfx__conv_dnnl *cfx__conv_dnnl_new(const conv_geom *g, bool transposed, bool bias, bool need_dx,
                                   bool need_dw) {
    return NULL;
}
void cfx__conv_dnnl_free(cfx__conv_dnnl *d) {}
bool cfx__conv_dnnl_fwd(cfx__conv_dnnl *d, const float *x, const float *w, const float *b,
                        float *y) {
    return false;
}
bool cfx__conv_dnnl_bwd_data(cfx__conv_dnnl *d, const float *dy, const float *w, float *dx) {
    return false;
}
bool cfx__conv_dnnl_bwd_w(cfx__conv_dnnl *d, const float *x, const float *dy, float *dw,
                          float *db) {
    return false;
}
