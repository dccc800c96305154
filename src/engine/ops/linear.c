/* linear.c - matrix products: ONNX Gemm, a fully connected layer, and NumPy matmul.
 *
 * Every product, forward and backward, is one call of cfx_blas_sgemm per matrix: for
 * Y = alpha op(A) op(B) the gradients are dop(A) = alpha G op(B)^T and dop(B) = alpha op(A)^T G,
 * and a transposed operand's gradient is the transpose of that, which sgemm produces by
 * swapping the factors and their transpose flags instead of moving data. Matmul broadcasts
 * its batch dimensions as NumPy does; a broadcast operand's gradient is summed over the
 * batches that shared it, one sgemm with beta = 1 after another, so the sum has a fixed order. */
#include "engine/ops/ops.h"
#include "engine/blas.h"

/* ------------------------------------------------------------------------- gemm --- */

static cfx_status gemm_infer(const cfx__op_args *a, cfx__op_shape *s) {
    const cfx__gemm_attr *at = a->attr;
    const cfx_tensor *A = a->in[0], *B = a->in[1], *C = a->in[2];
    char x[96], y[96];
    if (!A || !B) return cfx_set_error(CFX_EINVAL, "needs inputs A and B");
    if (A->ndim != 2 || B->ndim != 2)
        return cfx_set_error(CFX_ESHAPE, "A %s and B %s must both be matrices",
                             cfx__shape_fmt(A, x, sizeof x), cfx__shape_fmt(B, y, sizeof y));
    int64_t m = at->trans_a ? A->shape[1] : A->shape[0],
            k = at->trans_a ? A->shape[0] : A->shape[1];
    int64_t kb = at->trans_b ? B->shape[1] : B->shape[0],
            n = at->trans_b ? B->shape[0] : B->shape[1];
    if (k != kb)
        return cfx_set_error(
            CFX_ESHAPE, "A %s%s and B %s%s do not multiply (inner sizes %lld and %lld)",
            cfx__shape_fmt(A, x, sizeof x), at->trans_a ? "^T" : "", cfx__shape_fmt(B, y, sizeof y),
            at->trans_b ? "^T" : "", (long long)k, (long long)kb);
    if (C) {
        /* C broadcasts one way only: to (M,N), right-aligned, each dimension 1 or equal. */
        bool ok = C->ndim <= 2;
        for (int i = 0; ok && i < C->ndim; i++) {
            int64_t want = (C->ndim - i == 1) ? n : m;
            ok = C->shape[i] == 1 || C->shape[i] == want;
        }
        if (!ok)
            return cfx_set_error(CFX_ESHAPE, "C %s does not broadcast to the output (%lld, %lld)",
                                 cfx__shape_fmt(C, x, sizeof x), (long long)m, (long long)n);
    }
    s->ndim = 2;
    s->shape[0] = m;
    s->shape[1] = n;
    if (!at->trans_a && at->trans_b) s->work_bytes = cfx__blas_nt_work(m, n, k) * sizeof(float);
    return CFX_OK;
}

/* Strides of C viewed as (M,N): 0 along a broadcast dimension. */
static void gemm_c_strides(const cfx_tensor *C, int64_t *sm, int64_t *sn) {
    *sm = *sn = 0;
    if (C->ndim == 2) {
        *sm = C->shape[0] == 1 ? 0 : C->shape[1];
        *sn = C->shape[1] == 1 ? 0 : 1;
    } else if (C->ndim == 1) {
        *sn = C->shape[0] == 1 ? 0 : 1;
    }
}

// A (M,K) or (K,M), B (K,N) or (N,K), C broadcast to (M,N) or absent -> Y (M,N)
static void gemm_forward(const cfx__op_args *a) {
    const cfx__gemm_attr *at = a->attr;
    const cfx_tensor *A = a->in[0], *B = a->in[1], *C = a->in[2];
    int64_t m = a->out->shape[0], n = a->out->shape[1];
    int64_t k = at->trans_a ? A->shape[0] : A->shape[1];
    float *Y = a->out->data;
    float beta = 0.0f;
    if (C) {
        int64_t sm, sn;
        gemm_c_strides(C, &sm, &sn);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) Y[i * n + j] = at->beta * C->data[i * sm + j * sn];
        beta = 1.0f;
    }
    if (!at->trans_a && at->trans_b) /* PyTorch's fully connected layer */
        cfx__blas_sgemm_nt(m, n, k, at->alpha, A->data, k, B->data, k, beta, Y, n, a->work,
                           a->relu);
    else {
        cfx_blas_sgemm(at->trans_a, at->trans_b, m, n, k, at->alpha, A->data, A->shape[1], B->data,
                       B->shape[1], beta, Y, n);
        if (a->relu) cfx__relu_rows(Y, m, n, n);
    }
}

static void gemm_backward(const cfx__op_args *a) {
    const cfx__gemm_attr *at = a->attr;
    const cfx_tensor *A = a->in[0], *B = a->in[1], *C = a->in[2];
    int64_t m = a->out->shape[0], n = a->out->shape[1];
    int64_t k = at->trans_a ? A->shape[0] : A->shape[1];
    int64_t lda = A->shape[1], ldb = B->shape[1];
    const float *G = a->dout;
    float al = at->alpha;
    if (a->din[0]) {
        if (!at->trans_a) /* dA (M,K) = alpha G op(B)^T */
            cfx_blas_sgemm(0, !at->trans_b, m, k, n, al, G, n, B->data, ldb, 1.0f, a->din[0], k);
        else /* dA (K,M) = alpha op(B) G^T */
            cfx_blas_sgemm(at->trans_b, 1, k, m, n, al, B->data, ldb, G, n, 1.0f, a->din[0], m);
    }
    if (a->din[1]) {
        if (!at->trans_b) /* dB (K,N) = alpha op(A)^T G */
            cfx_blas_sgemm(!at->trans_a, 0, k, n, m, al, A->data, lda, G, n, 1.0f, a->din[1], n);
        else /* dB (N,K) = alpha G^T op(A) */
            cfx_blas_sgemm(1, at->trans_a, n, k, m, al, G, n, A->data, lda, 1.0f, a->din[1], k);
    }
    if (C && a->din[2]) {
        /* dC = beta G summed over the dimensions C was broadcast along. */
        int64_t sm, sn;
        gemm_c_strides(C, &sm, &sn);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) a->din[2][i * sm + j * sn] += at->beta * G[i * n + j];
    }
}

static const cfx__op_def gemm_def = {
    "Gemm", sizeof(cfx__gemm_attr), gemm_infer,    NULL,
    NULL,   gemm_forward,           gemm_backward, .fuses_relu = true};

int cfx_op_gemm(cfx_graph *g, int a, int b, int c, const cfx_gemm_attr *attr) {
    cfx__gemm_attr at = {0, 0, 1.0f, 1.0f};
    if (attr) {
        at.trans_a = attr->trans_a != 0;
        at.trans_b = attr->trans_b != 0;
        at.alpha = attr->alpha != 0.0f ? attr->alpha : 1.0f;
        at.beta = attr->beta != 0.0f ? attr->beta : 1.0f;
    }
    return cfx__graph_add(g, &gemm_def, (int[]){a, b, c}, 3, &at);
}

/* ----------------------------------------------------------------------- linear --- */

static cfx_status linear_infer(const cfx__op_args *a, cfx__op_shape *s) {
    const cfx_tensor *x = a->in[0], *w = a->in[1], *b = a->in[2];
    char p[96], q[96];
    if (!x || !w) return cfx_set_error(CFX_EINVAL, "needs inputs x and w");
    if (x->ndim != 2 || w->ndim != 2 || x->shape[1] != w->shape[1])
        return cfx_set_error(CFX_ESHAPE, "x %s and w %s must be (N,in) and (out,in)",
                             cfx__shape_fmt(x, p, sizeof p), cfx__shape_fmt(w, q, sizeof q));
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return cfx_set_error(CFX_ESHAPE, "bias %s must be (%lld) for w %s",
                             cfx__shape_fmt(b, p, sizeof p), (long long)w->shape[0],
                             cfx__shape_fmt(w, q, sizeof q));
    s->ndim = 2;
    s->shape[0] = x->shape[0];
    s->shape[1] = w->shape[0];
    s->work_bytes = cfx__blas_nt_work(x->shape[0], w->shape[0], x->shape[1]) * sizeof(float);
    return CFX_OK;
}

// x (N,in), w (out,in), b (out) -> y (N,out) = x w^T + b
static void linear_forward(const cfx__op_args *a) {
    const cfx_tensor *x = a->in[0], *w = a->in[1], *b = a->in[2];
    int64_t n = x->shape[0], in = x->shape[1], out = w->shape[0];
    float *Y = a->out->data;
    if (b)
        for (int64_t i = 0; i < n; i++) memcpy(Y + i * out, b->data, (size_t)out * sizeof(float));
    cfx__blas_sgemm_nt(n, out, in, 1.0f, x->data, in, w->data, in, b ? 1.0f : 0.0f, Y, out, a->work,
                       a->relu);
}

static void linear_backward(const cfx__op_args *a) {
    const cfx_tensor *x = a->in[0], *w = a->in[1];
    int64_t n = x->shape[0], in = x->shape[1], out = w->shape[0];
    const float *G = a->dout;
    /* beta 0 stores where the graph says the buffer is fresh (see din_fresh), 1 adds. */
    if (a->din[0]) /* dx (N,in) = G w */
        cfx_blas_sgemm(0, 0, n, in, out, 1.0f, G, out, w->data, in, a->din_fresh[0] ? 0.0f : 1.0f,
                       a->din[0], in);
    if (a->din[1]) /* dw (out,in) = G^T x */
        cfx_blas_sgemm(1, 0, out, in, n, 1.0f, G, out, x->data, in, a->din_fresh[1] ? 0.0f : 1.0f,
                       a->din[1], in);
    if (a->in[2] && a->din[2]) { /* db (out) = column sums of G */
        float *db = a->din[2];
        if (a->din_fresh[2]) memset(db, 0, (size_t)out * sizeof *db);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < out; j++) db[j] += G[i * out + j];
    }
}

static const cfx__op_def linear_def = {"Linear",
                                       0,
                                       linear_infer,
                                       NULL,
                                       NULL,
                                       linear_forward,
                                       linear_backward,
                                       .assigns_grads = true,
                                       .fuses_relu = true};

int cfx_op_linear(cfx_graph *g, int x, int w, int b) {
    return cfx__graph_add(g, &linear_def, (int[]){x, w, b}, 3, NULL);
}

/* ----------------------------------------------------------------------- matmul --- */

/* The shape of a matmul: a 1-D operand is a row (a) or a column (b) vector, as in NumPy, and
 * the batch dimensions (all but the last two) broadcast. */
typedef struct {
    int64_t m, k, n;
    int nb; /* batch dimensions of the output */
    int64_t bshape[CFX_MAX_DIMS];
    int64_t sa[CFX_MAX_DIMS]; /* per batch dimension: a's matrix stride, 0 where broadcast */
    int64_t sb[CFX_MAX_DIMS];
    int64_t batches;
} mm_plan;

static cfx_status mm_make(const cfx_tensor *A, const cfx_tensor *B, mm_plan *p, cfx__op_shape *s) {
    char x[96], y[96];
    if (A->ndim < 1 || B->ndim < 1)
        return cfx_set_error(CFX_ESHAPE, "operands %s and %s must have at least one dimension",
                             cfx__shape_fmt(A, x, sizeof x), cfx__shape_fmt(B, y, sizeof y));
    p->m = A->ndim == 1 ? 1 : A->shape[A->ndim - 2];
    p->k = A->shape[A->ndim - 1];
    int64_t kb = B->ndim == 1 ? B->shape[0] : B->shape[B->ndim - 2];
    p->n = B->ndim == 1 ? 1 : B->shape[B->ndim - 1];
    if (p->k != kb)
        return cfx_set_error(CFX_ESHAPE, "%s and %s do not multiply (inner sizes %lld and %lld)",
                             cfx__shape_fmt(A, x, sizeof x), cfx__shape_fmt(B, y, sizeof y),
                             (long long)p->k, (long long)kb);
    int na = A->ndim > 2 ? A->ndim - 2 : 0, nbb = B->ndim > 2 ? B->ndim - 2 : 0;
    p->nb = CFX_MAX(na, nbb);
    int64_t stra = p->m * p->k, strb = p->k * p->n;
    p->batches = 1;
    for (int i = p->nb - 1; i >= 0; i--) {
        int ia = na - p->nb + i, ib = nbb - p->nb + i;
        int64_t da = ia >= 0 ? A->shape[ia] : 1, db = ib >= 0 ? B->shape[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return cfx_set_error(CFX_ESHAPE, "batch dimensions of %s and %s do not broadcast",
                                 cfx__shape_fmt(A, x, sizeof x), cfx__shape_fmt(B, y, sizeof y));
        p->bshape[i] = da == 1 ? db : da;
        p->sa[i] = da == 1 ? 0 : stra;
        p->sb[i] = db == 1 ? 0 : strb;
        stra *= da;
        strb *= db;
        p->batches *= p->bshape[i];
    }
    if (s) {
        int nd = 0;
        for (int i = 0; i < p->nb; i++) s->shape[nd++] = p->bshape[i];
        if (A->ndim > 1) s->shape[nd++] = p->m;
        if (B->ndim > 1) s->shape[nd++] = p->n;
        s->ndim = nd;
    }
    return CFX_OK;
}

/* Offsets of batch t's matrices in a and b. */
static void mm_offsets(const mm_plan *p, int64_t t, int64_t *oa, int64_t *ob) {
    *oa = *ob = 0;
    for (int i = p->nb - 1; i >= 0; i--) {
        int64_t c = t % p->bshape[i];
        t /= p->bshape[i];
        *oa += c * p->sa[i];
        *ob += c * p->sb[i];
    }
}

static cfx_status matmul_infer(const cfx__op_args *a, cfx__op_shape *s) {
    if (!a->in[0] || !a->in[1]) return cfx_set_error(CFX_EINVAL, "needs two inputs");
    mm_plan p;
    return mm_make(a->in[0], a->in[1], &p, s);
}

// a (...,M,K), b (...,K,N) -> y (broadcast ...,M,N)
static void matmul_forward(const cfx__op_args *a) {
    mm_plan p;
    mm_make(a->in[0], a->in[1], &p, NULL);
    const float *A = a->in[0]->data, *B = a->in[1]->data;
    for (int64_t t = 0; t < p.batches; t++) {
        int64_t oa, ob;
        mm_offsets(&p, t, &oa, &ob);
        cfx_blas_sgemm(0, 0, p.m, p.n, p.k, 1.0f, A + oa, p.k, B + ob, p.n, 0.0f,
                       a->out->data + t * p.m * p.n, p.n);
    }
}

static void matmul_backward(const cfx__op_args *a) {
    mm_plan p;
    mm_make(a->in[0], a->in[1], &p, NULL);
    const float *A = a->in[0]->data, *B = a->in[1]->data;
    for (int64_t t = 0; t < p.batches; t++) {
        int64_t oa, ob;
        mm_offsets(&p, t, &oa, &ob);
        const float *G = a->dout + t * p.m * p.n;
        if (a->din[0]) /* da (M,K) += G b^T */
            cfx_blas_sgemm(0, 1, p.m, p.k, p.n, 1.0f, G, p.n, B + ob, p.n, 1.0f, a->din[0] + oa,
                           p.k);
        if (a->din[1]) /* db (K,N) += a^T G */
            cfx_blas_sgemm(1, 0, p.k, p.n, p.m, 1.0f, A + oa, p.k, G, p.n, 1.0f, a->din[1] + ob,
                           p.n);
    }
}

static const cfx__op_def matmul_def = {"MatMul",       0, matmul_infer, NULL, NULL, matmul_forward,
                                       matmul_backward};

int cfx_op_matmul(cfx_graph *g, int a, int b) {
    return cfx__graph_add(g, &matmul_def, (int[]){a, b}, 2, NULL);
}
