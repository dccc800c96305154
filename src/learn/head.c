/* head.c - a classifier's fully connected head, trained on the whole batch by every thread at
 * once, each owning rows of every layer's weight.
 *
 * A classifier whose logits come from a chain of fully connected layers (Linear, with or
 * without a ReLU after each, weights used by no other op) trains that chain as the trainer's
 * head: the lanes (src/learn/trainer.c) run the graph only up to the chain's input, the cut,
 * and the head runs on the whole batch, thread q computing the same rows of every layer's
 * output forward and its part of the layer's input gradient backward; the weight gradients
 * are made in chunks shared out among the threads, and thread q updates its own rows. The
 * point is where the data lives: on the machine this was measured on the two cores share no
 * cache, and with plain lanes every core read all of the fully connected weights, half of them
 * last written by the other core, and the update read both lanes' gradients across cores. With
 * the head, the weights, gradients and Adam state of 97% of the reference classifier's
 * parameters stay with one core. cfx__head_step says the order of a step; the same thread
 * count splits every step the same way, so it is deterministic for a thread count. Tested
 * against the one-graph step (tests/test_train.c). */
#include "engine/graph.h"
#include "engine/blas.h"
#include "learn/optim.h"
#include "learn/trainer.h"

#include <float.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>

/* The products of a thread's rows of a head layer: forward, input gradient, and the weight
 * gradient of a chunk of rows (chunks have two sizes, head_chunks). */
enum { PLAN_FWD, PLAN_DX, PLAN_DW, PLAN_DW1, NPLAN };

/* The Linear node that makes value v, when its weight (and bias, if any) are parameters that no
 * other node reads: then the layer's gradient comes from it alone. */
static const cfx__node *head_linear(const cfx_graph *g, int v, const int *uses) {
    const cfx__node *n = cfx__graph_producer(g, v);
    if (!n || strcmp(n->op->name, "Linear") != 0 || n->in[0] < 0) return NULL;
    int w = n->in[1], b = n->nin > 2 ? n->in[2] : -1;
    if (cfx_graph_value_kind(g, w) != CFX_VALUE_PARAM || uses[w] != 1) return NULL;
    if (b >= 0 && (cfx_graph_value_kind(g, b) != CFX_VALUE_PARAM || uses[b] != 1)) return NULL;
    return n;
}

/* Finds the head of a classifier: the chain of fully connected layers, with or without a ReLU
 * after each, that ends in the logits of the loss. The value the chain starts from is the cut:
 * lanes run the graph up to it. Sets t->nhead (0: no head). */
static cfx_status find_head(cfx_trainer *t) {
    cfx_graph *g = t->g;
    const cfx__node *ce = cfx__graph_producer(g, t->loss);
    if (t->target < 0 || !ce || strcmp(ce->op->name, "CrossEntropy") != 0) return CFX_OK;
    int *uses = cfx_calloc((size_t)cfx_graph_num_values(g), sizeof *uses);
    const cfx__node **chain = cfx_calloc((size_t)g->nnodes, sizeof *chain);
    bool *relu = cfx_calloc((size_t)g->nnodes, sizeof *relu);
    cfx_status s = uses && chain && relu ? CFX_OK : CFX_ENOMEM;
    for (int i = 0; s == CFX_OK && i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i].nin; k++)
            if (g->nodes[i].in[k] >= 0) uses[g->nodes[i].in[k]]++;
    int n = 0, cut = -1;
    const cfx__node *l = s == CFX_OK ? head_linear(g, ce->in[0], uses) : NULL;
    bool after = false; /* a ReLU follows the layer l */
    while (l) {
        relu[n] = after;
        chain[n++] = l;
        cut = l->in[0];
        const cfx__node *r = cfx__graph_producer(g, cut);
        after = r && strcmp(r->op->name, "Relu") == 0;
        l = head_linear(g, after ? r->in[0] : cut, uses);
    }
    const cfx_tensor *ct = cut >= 0 ? cfx_graph_tensor(g, cut) : NULL;
    if (s == CFX_OK && n > 0 && ct->ndim == 2 && ct->shape[0] == t->batch) {
        t->hl = cfx_calloc((size_t)n, sizeof *t->hl);
        if (!t->hl) s = CFX_ENOMEM;
        for (int k = 0; s == CFX_OK && k < n; k++) { /* chain runs from the logits back */
            const cfx__node *c = chain[n - 1 - k];
            const cfx__value *w = &g->values[c->in[1]];
            int b = c->nin > 2 ? c->in[2] : -1;
            t->hl[k] =
                (cfx__head_layer){w->param_offset, b >= 0 ? g->values[b].param_offset : SIZE_MAX,
                                  w->t.shape[1], w->t.shape[0], relu[n - 1 - k]};
        }
        if (s == CFX_OK) {
            t->nhead = n;
            t->cut = cut;
            t->cut_end = g->values[cut].producer + 1;
            t->logits = ce->in[0];
            t->cut_grad = t->lane[0]->values[cut].needs_grad;
        }
    }
    cfx_free(uses), cfx_free(chain), cfx_free(relu);
    return s;
}

/* Whether parameter offset o is in the head. */
static bool in_head(const cfx_trainer *t, size_t o) {
    for (int k = 0; k < t->nhead; k++) {
        const cfx__head_layer *h = &t->hl[k];
        if ((o >= h->w && o < h->w + (size_t)(h->in * h->out)) ||
            (h->b != SIZE_MAX && o >= h->b && o < h->b + (size_t)h->out))
            return true;
    }
    return false;
}

/* Features at boundary k of the head: its input (0), or layer k-1's output. */
static int64_t head_dim(const cfx_trainer *t, int k) {
    return k ? t->hl[k - 1].out : t->hl[0].in;
}

/* The head's buffers, and the parameter ranges outside it (the trunk, which the lanes train). */
static cfx_status head_alloc(cfx_trainer *t) {
    const int64_t B = t->batch;
    int64_t rows = t->hl[0].in, maxin = 0;
    for (int k = 0; k < t->nhead; k++) rows += t->hl[k].out, maxin = CFX_MAX(maxin, t->hl[k].in);
    t->part_stride = (maxin * B + 15) / 16 * 16;
    /* H, D (from boundary 1), two sets of parts, and the lanes' seed (B x in) */
    size_t n =
        (size_t)((2 * rows - t->hl[0].in) * B + 2 * t->nlanes * t->part_stride + B * t->hl[0].in);
    t->H = cfx_calloc(2 * ((size_t)t->nhead + 1), sizeof *t->H);
    t->hbuf = cfx_aligned_alloc(n * sizeof(float));
    t->hgrad = cfx_aligned_alloc((t->g->nparams ? t->g->nparams : 1) * sizeof(float));
    t->trunk = cfx_calloc(2 * ((size_t)t->g->nvalues + 1), sizeof *t->trunk);
    t->plan = cfx_calloc(NPLAN * (size_t)t->nlanes * (size_t)t->nhead, sizeof *t->plan);
    t->plan_T = cfx_calloc((size_t)t->nlanes, sizeof *t->plan_T);
    t->claim = cfx_calloc((size_t)t->nlanes, sizeof *t->claim);
    if (!t->H || !t->hbuf || !t->hgrad || !t->trunk || !t->plan || !t->plan_T || !t->claim)
        return CFX_ENOMEM;
    memset(t->hbuf, 0, n * sizeof(float));
    t->D = t->H + t->nhead + 1;
    float *p = t->hbuf;
    for (int k = 0; k <= t->nhead; k++) t->H[k] = p, p += head_dim(t, k) * B;
    for (int k = 1; k <= t->nhead; k++) t->D[k] = p, p += head_dim(t, k) * B;
    t->part = p; /* two sets (layers alternate) of one part per thread */
    t->seed = p + 2 * t->nlanes * t->part_stride;
    /* Parameters lie in value order; runs of those outside the head, merged. */
    t->ntrunk = 0;
    t->trunk_n = 0;
    for (int i = 0; i < t->g->nvalues; i++) {
        const cfx__value *v = &t->g->values[i];
        if (v->kind != CFX_VALUE_PARAM || v->t.numel == 0 || in_head(t, v->param_offset)) continue;
        size_t lo = v->param_offset, hi = lo + (size_t)v->t.numel;
        if (t->ntrunk && t->trunk[2 * t->ntrunk - 1] == lo)
            t->trunk[2 * t->ntrunk - 1] = hi;
        else
            t->trunk[2 * t->ntrunk] = lo, t->trunk[2 * t->ntrunk + 1] = hi, t->ntrunk++;
        t->trunk_n += hi - lo;
    }
    return CFX_OK;
}

cfx_status cfx__head_init(cfx_trainer *t) {
    CFX_TRY(find_head(t));
    return t->nhead ? head_alloc(t) : CFX_OK;
}

/* The loss on the head's logits (thread 0 of a head step): logits^T into g's logits, the loss
 * node's forward and backward there, the logits' gradient back into D[nhead]; the count of
 * right answers. */
static cfx_status head_loss(cfx_trainer *t, int64_t *correct) {
    cfx_graph *g = t->g;
    const int64_t B = t->batch, C = t->hl[t->nhead - 1].out;
    cfx__value *z = &g->values[t->logits];
    const cfx__node *n = cfx__graph_producer(g, t->loss);
    cfx__transpose(C, B, t->H[t->nhead], B, z->t.data, C);
    cfx__op_args a;
    cfx__node_args(g, n, &a, false);
    n->op->forward(&a);
    CFX_TRY(cfx__trainer_check_loss(cfx_graph_tensor(g, t->loss)->data[0]));
    const float one = 1.0f;
    cfx__node_args(g, n, &a, true);
    a.dout = &one;
    memset(z->grad, 0, (size_t)z->t.numel * sizeof(float));
    n->op->backward(&a);
    cfx__transpose(B, C, z->grad, C, t->D[t->nhead], B);
    *correct = cfx__trainer_count_right(z->t.data, B, C, cfx_graph_tensor(g, t->target)->data);
    return CFX_OK;
}

/* Part t of T of n things: [split(n, t, T), split(n, t + 1, T)). */
static int64_t split(int64_t n, int t, int T) {
    return n * t / T;
}

/* Thread me's plan j (PLAN_*) for layer k. */
static const cfx__gemm_plan *head_plan(const cfx_trainer *t, int me, int k, int j) {
    return t->plan[((size_t)me * (size_t)t->nhead + (size_t)k) * NPLAN + (size_t)j];
}

/* The weight gradient of layer k is made in chunks of about 64 rows, the same number within
 * each thread's rows: chunks per thread, and chunk c's rows [split(out, c, n), split(out, c +
 * 1, n)) for n = T * head_chunks. Chunk c is thread c / head_chunks's, but any thread may make
 * it (head_weight_grads); the plans are the same on every thread, so the bits are too. */
static int head_chunks(const cfx_trainer *t, int k, int T) {
    return (int)CFX_MAX(1, (t->hl[k].out / T + 63) / 64);
}

/* Thread me's products for a step on T threads, made by it on its first step and again when T
 * changes (its rows of layer k are [split(out, me, T), split(out, me + 1, T))). */
static cfx_status head_plans(cfx_trainer *t, int me, int T) {
    if (t->plan_T[me] == T) return CFX_OK;
    const int64_t B = t->batch;
    cfx__gemm_plan **pl = t->plan + (size_t)me * (size_t)t->nhead * NPLAN;
    t->plan_T[me] = 0;
    for (int k = 0; k < t->nhead; k++) {
        const cfx__head_layer *h = &t->hl[k];
        const int64_t r = split(h->out, me + 1, T) - split(h->out, me, T);
        const int64_t c = h->out / (T * head_chunks(t, k, T)); /* a chunk's rows, or c + 1 */
        cfx__gemm_plan **p = pl + (size_t)k * NPLAN;
        for (int j = 0; j < NPLAN; j++) cfx__gemm_plan_free(p[j]);
        /* H[k+1] rows (r x B) = W rows (r x in) H[k] (in x B), + the bias already there */
        p[PLAN_FWD] = cfx__gemm_plan_new(0, 0, r, B, h->in, h->in, B, B, h->b != SIZE_MAX);
        /* their part of the input gradient: features x batch, (W rows)^T D[k+1] rows, so that
         * the rows of it each thread sums are one block, read in long runs and not transposed
         * (the sums took 27 against 66 us a step on each thread, the products about 25 us
         * more: a wash in one process, and less code); layer 0's is batch x features, (D[k+1]
         * rows)^T W rows, the layout the lanes' backward takes. */
        if (k > 0)
            p[PLAN_DX] = cfx__gemm_plan_new(1, 0, h->in, B, r, h->in, B, B, false);
        else
            p[PLAN_DX] = cfx__gemm_plan_new(1, 0, B, h->in, r, B, h->in, h->in, false);
        /* a chunk's weight gradient (c x in) = D[k+1] rows (c x B) H[k]^T */
        p[PLAN_DW] = cfx__gemm_plan_new(0, 1, c, h->in, B, B, B, h->in, false);
        p[PLAN_DW1] = cfx__gemm_plan_new(0, 1, c + 1, h->in, B, B, B, h->in, false);
        for (int j = 0; j < NPLAN; j++)
            if (!p[j]) return cfx_set_error(CFX_ENOMEM, "train step: out of memory");
    }
    t->plan_T[me] = T;
    return CFX_OK;
}

/* Thread q's part of the input gradient of layer k (in x B for k > 0, B x in for layer 0; see
 * head_input_grad_rows). Layers alternate between two sets of parts, so a thread can start the
 * next layer while another still sums this one's. */
static float *head_part(const cfx_trainer *t, int k, int q) {
    return t->part + ((size_t)(k & 1) * (size_t)t->nlanes + (size_t)q) * (size_t)t->part_stride;
}

/* Layer k of the head forward, thread me's rows of its output: W[rows] H[k] + b, then ReLU. */
static void head_forward_rows(cfx_trainer *t, int k, int me, int T) {
    const cfx__head_layer *h = &t->hl[k];
    const int64_t B = t->batch, r0 = split(h->out, me, T), r1 = split(h->out, me + 1, T);
    const float *x = t->g->params;
    float *y = t->H[k + 1] + r0 * B;
    if (r1 <= r0) return;
    if (h->b != SIZE_MAX)
        for (int64_t r = r0; r < r1; r++)
            for (int64_t j = 0; j < B; j++) y[(r - r0) * B + j] = x[h->b + r];
    cfx__gemm_plan_run(head_plan(t, me, k, PLAN_FWD), x + h->w + r0 * h->in, t->H[k], y);
    if (h->relu) cfx__relu_rows(y, r1 - r0, B, B);
}

/* Layer k of the head backward, thread me's rows of its output: their part of the input's
 * gradient into head_part(t, k, me): W[rows]^T D[k+1][rows] (features x batch), or for layer 0
 * D[k+1][rows]^T W[rows] (batch x features). */
static void head_input_grad_rows(cfx_trainer *t, int k, int me, int T) {
    const cfx__head_layer *h = &t->hl[k];
    const int64_t B = t->batch, r0 = split(h->out, me, T), r1 = split(h->out, me + 1, T);
    float *p = head_part(t, k, me);
    if (r1 <= r0)
        memset(p, 0, (size_t)(h->in * B) * sizeof(float));
    else if (k > 0)
        cfx__gemm_plan_run(head_plan(t, me, k, PLAN_DX), t->g->params + h->w + r0 * h->in,
                           t->D[k + 1] + r0 * B, p);
    else
        cfx__gemm_plan_run(head_plan(t, me, k, PLAN_DX), t->D[k + 1] + r0 * B,
                           t->g->params + h->w + r0 * h->in, p);
}

/* Chunk c of layer k's weight and bias gradients, made by thread me, into hgrad; checked while
 * they are in cache (dw_bad is set when they are not finite; head_row_checks says where). */
static void head_weight_chunk(cfx_trainer *t, int k, int c, int me, int T) {
    const cfx__head_layer *h = &t->hl[k];
    const int n = T * head_chunks(t, k, T);
    const int64_t B = t->batch, r0 = split(h->out, c, n), r1 = split(h->out, c + 1, n);
    const float *dy = t->D[k + 1] + r0 * B;
    if (r1 <= r0) return;
    cfx__gemm_plan_run(head_plan(t, me, k, r1 - r0 == h->out / n ? PLAN_DW : PLAN_DW1), dy, t->H[k],
                       t->hgrad + h->w + r0 * h->in);
    bool ok = cfx__optim_within(t->hgrad + h->w + r0 * h->in, (r1 - r0) * h->in, FLT_MAX);
    if (h->b != SIZE_MAX) {
        for (int64_t r = r0; r < r1; r++) {
            float sum = 0;
            for (int64_t j = 0; j < B; j++) sum += dy[(r - r0) * B + j];
            t->hgrad[h->b + r] = sum;
        }
        ok = ok && cfx__optim_within(t->hgrad + h->b + r0, r1 - r0, FLT_MAX);
    }
    if (!ok) atomic_store(&t->dw_bad, true);
}

/* Chunk i of thread q's weight gradient chunks (layer 0's first: the largest first), as its
 * layer *k and chunk *c; false past the last. */
static bool head_chunk(const cfx_trainer *t, int q, int T, int i, int *k, int *c) {
    for (*k = 0; *k < t->nhead; (*k)++) {
        const int per = head_chunks(t, *k, T);
        if (i < per) {
            *c = q * per + i;
            return true;
        }
        i -= per;
    }
    return false;
}

/* The head's weight gradients: thread me makes its own chunks, then helps the others with
 * theirs, a chunk at a time, so that the threads reach the update together (the two cores of
 * the machine this was measured on run at different speeds from one moment to the next). */
static void head_weight_grads(cfx_trainer *t, int me, int T) {
    int k, c;
    for (int v = 0; v < T; v++) {
        const int q = (me + v) % T;
        while (head_chunk(t, q, T, atomic_fetch_add_explicit(&t->claim[q], 1, memory_order_relaxed),
                          &k, &c))
            head_weight_chunk(t, k, c, me, T);
    }
}

/* dst[0, n) = the T parts' elements [off, off + n), summed in thread order. */
static void sum_parts(const cfx_trainer *t, int k, int T, int64_t off, int64_t n,
                      float *restrict dst) {
    const float *restrict s = head_part(t, k, 0) + off;
    for (int64_t i = 0; i < n; i++) dst[i] = s[i];
    for (int q = 1; q < T; q++) {
        s = head_part(t, k, q) + off;
        for (int64_t i = 0; i < n; i++) dst[i] += s[i];
    }
}

/* Thread me's rows of D[k], k > 0 (features split(in, me, T) onward, the rows its layer k-1
 * backward reads): the parts' same rows summed, and masked by the ReLU that made H[k] (if any).
 * They are one block of each part, so the other threads' are read in long runs. */
static void head_sum_rows(cfx_trainer *t, int k, int me, int T) {
    const int64_t B = t->batch, in = head_dim(t, k), c0 = split(in, me, T);
    const int64_t n = (split(in, me + 1, T) - c0) * B;
    float *restrict d = t->D[k] + c0 * B;
    sum_parts(t, k, T, c0 * B, n, d);
    if (t->hl[k - 1].relu) {
        const float *restrict h = t->H[k] + c0 * B;
        for (int64_t i = 0; i < n; i++) d[i] = h[i] > 0 ? d[i] : 0.0f;
    }
}

/* Parameter ranges of the trunk's part t of T (by element count), for apply(lo, hi). */
#define TRUNK_PART(t, me, T, apply)                                                                \
    do {                                                                                           \
        size_t a_ = (size_t)split((int64_t)(t)->trunk_n, me, T),                                   \
               b_ = (size_t)split((int64_t)(t)->trunk_n, (me) + 1, T), c_ = 0;                     \
        for (int i_ = 0; i_ < (t)->ntrunk; i_++) {                                                 \
            size_t lo_ = (t)->trunk[2 * i_], len_ = (t)->trunk[2 * i_ + 1] - lo_;                  \
            size_t s_ = CFX_MAX(a_, c_), e_ = CFX_MIN(b_, c_ + len_);                              \
            if (s_ < e_) {                                                                         \
                int64_t lo = (int64_t)(lo_ + s_ - c_), hi = (int64_t)(lo_ + e_ - c_);              \
                apply;                                                                             \
            }                                                                                      \
            c_ += len_;                                                                            \
        }                                                                                          \
    } while (0)

/* This thread's check of its lanes' trunk gradients before the update (they are summed over
 * the lanes later, so each must be within FLT_MAX / lanes). */
static cfx_status trunk_checks(cfx_trainer *t, int me, int T) {
    for (int i = me; i < t->nlanes; i += T)
        for (int r = 0; r < t->ntrunk; r++)
            CFX_TRY(cfx__optim_check_range(t->lane[i]->param_grads, t->trunk[2 * r],
                                           t->trunk[2 * r + 1], FLT_MAX / (float)t->nlanes));
    return CFX_OK;
}

/* After a chunk failed its check (dw_bad): thread me's rows of the head's gradient checked in
 * order, for an error that names the first bad element whichever thread made which chunk. */
static cfx_status head_row_checks(cfx_trainer *t, int me, int T) {
    for (int k = 0; k < t->nhead; k++) {
        const cfx__head_layer *h = &t->hl[k];
        int64_t r0 = split(h->out, me, T), r1 = split(h->out, me + 1, T);
        CFX_TRY(cfx__optim_check_range(t->hgrad, h->w + r0 * h->in, h->w + r1 * h->in, FLT_MAX));
        if (h->b != SIZE_MAX)
            CFX_TRY(cfx__optim_check_range(t->hgrad, h->b + r0, h->b + r1, FLT_MAX));
    }
    return CFX_OK;
}

/* This thread's part of the update: its share of the trunk (the lanes' gradients summed) and
 * its rows of the head, whose gradients it computed and whose weights it read. */
static void head_update(cfx_trainer *t, int me, int T) {
    float *x = t->g->params;
    cfx_graph *const *ln = t->lane;
    TRUNK_PART(t, me, T, {
        if (t->nlanes > 2) cfx__trainer_sum_lane_grads(ln, t->nlanes, lo, hi);
        cfx__optim_apply(t->opt, x, ln[0]->param_grads, ln[1]->param_grads, lo, hi);
    });
    for (int k = 0; k < t->nhead; k++) {
        const cfx__head_layer *h = &t->hl[k];
        int64_t r0 = split(h->out, me, T), r1 = split(h->out, me + 1, T);
        cfx__optim_apply(t->opt, x, t->hgrad, NULL, h->w + r0 * h->in, h->w + r1 * h->in);
        if (h->b != SIZE_MAX) cfx__optim_apply(t->opt, x, t->hgrad, NULL, h->b + r0, h->b + r1);
    }
}

#define HEAD_FAIL(t, me, s)                                                                        \
    do {                                                                                           \
        if ((s) != CFX_OK && (t)->st[me] == CFX_OK) {                                              \
            (t)->st[me] = (s);                                                                     \
            snprintf((t)->msg[me], sizeof(t)->msg[me], "%s", cfx_last_error());                    \
        }                                                                                          \
    } while (0)

/* Whether no thread has failed (read after a barrier, so every thread agrees). */
static bool head_ok(const cfx_trainer *t) {
    for (int i = 0; i < t->nlanes; i++)
        if (t->st[i] != CFX_OK) return false;
    return true;
}

/* A step with a head, in one parallel region of T threads (T = lanes when OpenMP gives them):
 * - each lane gathers its rows and runs the graph up to the cut, and writes its rows of the
 *   cut as columns of H[0] (activations are held features x batch in the head);
 * - the head runs on the whole batch, layer by layer, thread q computing rows
 *   [split(out, q, T), split(out, q + 1, T)) of each layer's output, and in backward its part
 *   of the layer's input gradient from the same rows (head_input_grad_rows). After a barrier,
 *   thread q sums the parts (in thread order) for the rows of D[k] its next layer reads, and
 *   nobody else's: one barrier a layer, as the parts alternate between two sets;
 * - each lane runs backward from its rows of the cut's gradient, the parts of layer 0 summed;
 * - the head's weight gradients, in chunks shared out between the threads and checked as they
 *   are made (head_weight_grads), and the lanes' gradients checked;
 * - then (apply) the update: thread q updates the rows of the head it computed, so
 *   the weights, gradients and Adam state of the fully connected layers (97% of the reference
 *   classifier's parameters) stay with one core. The two cores of the machine this was
 *   measured on share no cache: two threads pass a cache line back and forth in 450 ns.
 * The products are plans (cfx__gemm_plan) each thread makes for its own rows on its first step.
 * Barriers between layers; the same T splits every step, so the result is deterministic. */
cfx_status cfx__head_step(cfx_trainer *t, const cfx_tensor *images, const float *labels,
                          const int64_t *rows, bool apply, double *loss, int64_t *correct) {
    const int L = t->nlanes;
    const int64_t B = t->batch, F = t->hl[0].in;
    float *tin = cfx_graph_tensor(t->g, t->target)->data;
    int64_t right = 0;
    for (int i = 0; i < L; i++) t->st[i] = CFX_OK;
    atomic_store(&t->dw_bad, false);
#pragma omp parallel num_threads(L)
    {
        omp_set_num_threads(1); /* the ops and products of a thread run on it alone */
        const int me = omp_get_thread_num(), T = omp_get_num_threads();
        HEAD_FAIL(t, me, head_plans(t, me, T));
        atomic_store(&t->claim[me], 0); /* read after the barriers below */
        for (int i = me; i < L; i += T) {
            cfx_graph *ln = t->lane[i];
            const int64_t f = t->first[i], n = t->first[i + 1] - f;
            cfx__trainer_gather(images, labels, rows + f, n, cfx_graph_tensor(ln, t->x)->data,
                                tin + f);
            cfx_status s = cfx__graph_forward_until(ln, t->cut_end);
            HEAD_FAIL(t, me, s);
            if (s == CFX_OK)
                cfx__transpose(n, F, cfx_graph_tensor(ln, t->cut)->data, F, t->H[0] + f, B);
        }
#pragma omp barrier
        const bool fwd_ok = head_ok(t);
        for (int k = 0; fwd_ok && k < t->nhead; k++) {
            head_forward_rows(t, k, me, T);
#pragma omp barrier
        }
        if (fwd_ok && me == 0) HEAD_FAIL(t, me, head_loss(t, &right));
#pragma omp barrier
        const bool loss_ok = head_ok(t);
        for (int k = t->nhead - 1; loss_ok && k >= 0; k--) {
            if (k == 0 && !t->cut_grad) break; /* no gradient into the lanes */
            head_input_grad_rows(t, k, me, T);
#pragma omp barrier
            if (k > 0) head_sum_rows(t, k, me, T);
        }
        if (loss_ok && !t->cut_grad) {
#pragma omp barrier /* D[1] complete before another thread's chunks of layer 0 read it */
        }
        for (int i = me; loss_ok && t->cut_grad && i < L; i += T) {
            cfx_graph *ln = t->lane[i];
            const int64_t f = t->first[i], n = t->first[i + 1] - f;
            sum_parts(t, 0, T, f * F, n * F, t->seed + f * F);
            HEAD_FAIL(t, me, cfx__graph_backward(ln, t->cut, t->seed + f * F, false));
        }
        if (loss_ok) {
            head_weight_grads(t, me, T);
            HEAD_FAIL(t, me, trunk_checks(t, me, T));
        }
#pragma omp barrier
        if (loss_ok && atomic_load(&t->dw_bad)) {
            HEAD_FAIL(t, me, head_row_checks(t, me, T));
#pragma omp barrier
        }
        if (apply && head_ok(t)) {
#pragma omp master
            cfx__optim_tick(t->opt);
#pragma omp barrier
            head_update(t, me, T);
        }
    }
    for (int i = 0; i < L; i++)
        if (t->st[i] != CFX_OK) return cfx_set_error(t->st[i], "%s", t->msg[i]);
    *loss = cfx_graph_tensor(t->g, t->loss)->data[0];
    *correct = right;
    return CFX_OK;
}

void cfx__head_gradient(const cfx_trainer *t, float *grad) {
    memcpy(grad, t->hgrad, t->g->nparams * sizeof(float));
    TRUNK_PART(t, 0, 1, {
        for (int64_t i = lo; i < hi; i++) {
            float v = t->lane[0]->param_grads[i];
            for (int k = 1; k < t->nlanes; k++) v += t->lane[k]->param_grads[i];
            grad[i] = v;
        }
    });
}

void cfx__head_free(cfx_trainer *t) {
    cfx_free(t->hl);
    cfx_free(t->H);
    cfx_aligned_free(t->hbuf);
    cfx_aligned_free(t->hgrad);
    for (int i = 0; t->plan && i < NPLAN * t->nlanes * t->nhead; i++)
        cfx__gemm_plan_free(t->plan[i]);
    cfx_free(t->plan);
    cfx_free(t->plan_T);
    cfx_free((void *)t->claim);
    cfx_free(t->trunk);
}
