/* graph.c - the static graph: values, nodes, buffer planning, forward and reverse-mode backward.
 *
 * Nodes are stored in creation order, and a node can only read values that existed when it
 * was added, so creation order is a topological order. Compile moves the parameters into one
 * block (their gradients into another). Planning (at compile, and again after an input changes
 * shape) re-infers every shape, decides which values carry a gradient, (re)allocates buffers
 * only when they grow, chooses the values held in NHWC between convolutions (plan_layouts) and the
 * ReLUs and Adds fused into the op before them (plan_fusion), and lets each op prepare its
 * primitives; forward and backward then allocate nothing.
 *
 * Backward marks the values that reach the output (CFX__MARK_REACH), seeds the output's
 * gradient, and walks the nodes that reach it in reverse. Each gradient buffer is written first
 * by one op of the pass, which claims it (claim_grads, CFX__MARK_CLAIMED): when that op can
 * store (cfx__op_def.assigns_grads) and the buffer is not also another input of the same node,
 * it stores instead of adding (cfx__op_args.din_fresh) and the buffer is not zeroed
 * (CFX__MARK_FRESH). Only the other buffers are zeroed before the pass: those whose first
 * writer can only add. Every later op adds into what the first wrote, so values read twice sum
 * both paths. Gradients are overwritten, not accumulated: requested input gradients and
 * parameter gradients the pass does not reach are zeroed too (except for a trainer's head,
 * which writes those itself: cfx__graph_backward's zero_unreached). */
#include "engine/graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

cfx_graph *cfx_graph_new(void) {
    cfx_graph *g = cfx_calloc(1, sizeof *g);
    if (!g) return NULL;
    g->param_grads_on = true;
    g->no_fuse = cfx__no_fuse_env();
    const char *prof = getenv("CFX_PROFILE");
    g->profile = prof && *prof && strcmp(prof, "0") != 0;
    cfx_rng_init(&g->rng, 0);
    return g;
}

static void release_prims(cfx_graph *g) {
    for (int i = 0; i < g->nnodes; i++) {
        cfx__node *n = &g->nodes[i];
        if (n->prim && n->op->release) n->op->release(n->prim);
        n->prim = NULL;
    }
}

/* CFX_PROFILE=1: per-op times of this graph on stderr, slowest first, when it is freed. For
 * finding where a step goes; the clock reads add about 50 ns per op. */
static int cmp_prof(const void *a, const void *b) {
    const cfx__node *x = *(const cfx__node *const *)a, *y = *(const cfx__node *const *)b;
    double tx = x->prof_fwd + x->prof_bwd, ty = y->prof_fwd + y->prof_bwd;
    return (tx < ty) - (tx > ty);
}

static void print_profile(const cfx_graph *g) {
    const cfx__node **order = cfx_malloc((size_t)g->nnodes * sizeof *order);
    if (!order) return;
    double total = 0;
    int n = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const cfx__node *nd = &g->nodes[i];
        if (nd->prof_nfwd + nd->prof_nbwd == 0) continue;
        order[n++] = nd;
        total += nd->prof_fwd + nd->prof_bwd;
    }
    if (n == 0) {
        cfx_free(order);
        return;
    }
    qsort(order, (size_t)n, sizeof *order, cmp_prof);
    fprintf(stderr, "cfx profile: %d ops; %.3f ms in ops of %.3f ms in forward and backward\n", n,
            total * 1e3, g->prof_wall * 1e3);
    fprintf(stderr, "%-20s %-22s %10s %10s %6s\n", "op", "output", "fwd us", "bwd us", "share");
    for (int i = 0; i < n; i++) {
        const cfx__node *nd = order[i];
        char shape[64];
        cfx__shape_fmt(&g->values[nd->out].t, shape, sizeof shape);
        fprintf(stderr, "%-20s %-22s %10.2f %10.2f %5.1f%%\n", nd->op->name, shape,
                nd->prof_nfwd ? nd->prof_fwd / (double)nd->prof_nfwd * 1e6 : 0.0,
                nd->prof_nbwd ? nd->prof_bwd / (double)nd->prof_nbwd * 1e6 : 0.0,
                total > 0 ? 100 * (nd->prof_fwd + nd->prof_bwd) / total : 0.0);
    }
    cfx_free(order);
}

void cfx_graph_free(cfx_graph *g) {
    if (!g) return;
    if (g->profile) print_profile(g);
    release_prims(g);
    for (int i = 0; i < g->nvalues; i++) {
        cfx__value *v = &g->values[i];
        cfx_free(v->name);
        cfx_aligned_free(v->own);
        cfx_aligned_free(v->own_grad);
    }
    for (int i = 0; i < g->nnodes; i++) {
        cfx_free(g->nodes[i].attr);
        cfx_aligned_free(g->nodes[i].state);
    }
    cfx_free(g->values);
    cfx_free(g->nodes);
    if (!g->shared_params) cfx_aligned_free(g->params);
    cfx_aligned_free(g->param_grads);
    cfx_aligned_free(g->work);
    cfx_free(g->mark);
    cfx_free(g);
}

int cfx__graph_fail(cfx_graph *g, const char *op, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cfx_set_error(CFX_EINVAL, "%s", msg);
    cfx_error_context(CFX_EINVAL, "%s", op); /* (once: an op's own check may have said it) */
    if (g && !g->broken) {
        g->broken = true;
        snprintf(g->error, sizeof g->error, "%s", cfx_last_error());
    }
    return -1;
}

static bool valid_id(const cfx_graph *g, int id) {
    return g && id >= 0 && id < g->nvalues;
}

/* Grows an aligned float buffer to at least n floats (contents are not kept). */
static cfx_status ensure_floats(float **buf, size_t *cap, size_t n) {
    if (*cap >= n && *buf) return CFX_OK;
    cfx_aligned_free(*buf);
    *buf = cfx_aligned_alloc(n * sizeof(float));
    *cap = *buf ? n : 0;
    if (!*buf) return CFX_ENOMEM;
    memset(*buf, 0, n * sizeof(float));
    return CFX_OK;
}

static int add_value(cfx_graph *g, const char *name, cfx_value_kind kind, int ndim,
                     const int64_t *shape) {
    if (!g) return cfx__graph_fail(NULL, "graph", "graph is NULL");
    if (g->broken) return -1;
    if (g->compiled) return cfx__graph_fail(g, "graph", "cannot add values after compile");
    int64_t numel;
    if (cfx_tensor_check_shape(ndim, shape, &numel) != CFX_OK)
        return cfx__graph_fail(g, name ? name : "value", "%s", cfx_last_error());
    if (name && cfx_graph_find(g, name) >= 0)
        return cfx__graph_fail(g, name, "a value with this name already exists");
    if (g->nvalues == g->capvalues) {
        int cap = g->capvalues ? 2 * g->capvalues : 64;
        cfx__value *nv = cfx_realloc(g->values, (size_t)cap * sizeof *nv);
        if (!nv) return cfx__graph_fail(g, "graph", "out of memory");
        g->values = nv;
        g->capvalues = cap;
    }
    cfx__value *v = &g->values[g->nvalues];
    memset(v, 0, sizeof *v);
    v->kind = kind;
    v->producer = -1;
    v->alias_of = -1;
    v->t.ndim = ndim;
    for (int i = 0; i < ndim; i++) v->t.shape[i] = shape[i];
    v->t.numel = numel;
    if (name && !(v->name = cfx_strdup(name))) return cfx__graph_fail(g, "graph", "out of memory");
    /* Inputs, parameters and constants get storage now so they can be filled before compile. */
    if (kind != CFX_VALUE_NODE) {
        if (ensure_floats(&v->own, &v->cap, (size_t)numel) != CFX_OK) {
            cfx_free(v->name);
            return cfx__graph_fail(g, "graph", "out of memory");
        }
        v->t.data = v->own;
    }
    return g->nvalues++;
}

int cfx_graph_input(cfx_graph *g, const char *name, int ndim, const int64_t *shape) {
    return add_value(g, name, CFX_VALUE_INPUT, ndim, shape);
}

int cfx_graph_param(cfx_graph *g, const char *name, int ndim, const int64_t *shape) {
    return add_value(g, name, CFX_VALUE_PARAM, ndim, shape);
}

int cfx_graph_const(cfx_graph *g, const char *name, int ndim, const int64_t *shape,
                    const float *data) {
    int id = add_value(g, name, CFX_VALUE_CONST, ndim, shape);
    if (id >= 0 && data)
        memcpy(g->values[id].t.data, data, (size_t)g->values[id].t.numel * sizeof(float));
    return id;
}

cfx_status cfx_graph_set_name(cfx_graph *g, int id, const char *name) {
    if (!valid_id(g, id)) return cfx_set_error(CFX_EINVAL, "set name: no value %d", id);
    if (!name) return cfx_set_error(CFX_EINVAL, "set name: name is NULL");
    int other = cfx_graph_find(g, name);
    if (other >= 0 && other != id)
        return cfx_set_error(CFX_EINVAL, "set name: '%s' already names value %d", name, other);
    char *copy = cfx_strdup(name);
    if (!copy) return CFX_ENOMEM;
    cfx_free(g->values[id].name);
    g->values[id].name = copy;
    return CFX_OK;
}

cfx_status cfx_graph_set_output(cfx_graph *g, int id, const char *name) {
    if (!valid_id(g, id)) return cfx_set_error(CFX_EINVAL, "set output: no value %d", id);
    if (name) CFX_TRY(cfx_graph_set_name(g, id, name));
    g->values[id].is_output = true;
    g->dirty = true; /* an output must stay NCHW: replan the blocked chains */
    return CFX_OK;
}

int cfx_graph_find(const cfx_graph *g, const char *name) {
    if (!g || !name) return -1;
    for (int i = 0; i < g->nvalues; i++)
        if (g->values[i].name && strcmp(g->values[i].name, name) == 0) return i;
    return -1;
}

cfx_status cfx_graph_requires_grad(cfx_graph *g, int id, int on) {
    if (!valid_id(g, id)) return cfx_set_error(CFX_EINVAL, "requires grad: no value %d", id);
    if (g->values[id].kind != CFX_VALUE_INPUT)
        return cfx_set_error(CFX_EINVAL, "requires grad: value %d is not an input", id);
    g->values[id].user_grad = on != 0;
    g->dirty = true;
    return CFX_OK;
}

cfx_status cfx_graph_enable_param_grads(cfx_graph *g, int on) {
    if (!g) return cfx_set_error(CFX_EINVAL, "param grads: graph is NULL");
    g->param_grads_on = on != 0;
    g->dirty = true;
    return CFX_OK;
}

bool cfx__no_fuse_env(void) {
    const char *e = getenv("CFX_NO_FUSE");
    return e && *e && strcmp(e, "0") != 0;
}

cfx_status cfx_graph_enable_fusion(cfx_graph *g, int on) {
    if (!g) return cfx_set_error(CFX_EINVAL, "enable fusion: graph is NULL");
    g->no_fuse = on == 0;
    g->dirty = true;
    return CFX_OK;
}

cfx_graph_fusions cfx_graph_fusion_counts(const cfx_graph *g) {
    if (!g) return (cfx_graph_fusions){0};
    cfx_graph_fusions f = g->fusions;
    f.conv_clip = g->clips_fused;
    return f;
}

void cfx_graph_set_training(cfx_graph *g, int on) {
    if (g) g->training = on != 0;
}

void cfx_graph_seed(cfx_graph *g, uint64_t seed) {
    if (g) cfx_rng_init(&g->rng, seed);
}

void cfx__node_args(cfx_graph *g, const cfx__node *n, cfx__op_args *a, bool with_grads) {
    memset(a, 0, sizeof *a);
    a->nin = n->nin;
    for (int i = 0; i < n->nin; i++) {
        if (n->in[i] < 0) continue;
        cfx__value *v = &g->values[n->in[i]];
        a->in[i] = &v->t;
        a->in_const[i] = v->kind == CFX_VALUE_CONST;
        if (with_grads && v->needs_grad) a->din[i] = v->grad;
    }
    a->out = &g->values[n->out].t;
    a->attr = n->attr;
    a->state = n->state;
    a->work = g->work;
    a->prim = n->prim;
    a->training = g->training;
    a->rng = &g->rng;
    a->blocked_in0 = n->blocked_in0;
    a->blocked_out = n->blocked_out;
    a->c16_in0 = n->c16_in0;
    a->c16_out = n->c16_out;
    a->relu = n->relu;
    a->clip = n->clip;
    a->clip_lo = n->clip_lo;
    a->clip_hi = n->clip_hi;
    if (n->sum_in >= 0) a->sum = g->values[n->sum_in].t.data;
}

static cfx_status infer_node(cfx_graph *g, cfx__node *n, cfx__op_shape *s) {
    cfx__op_args a;
    cfx__node_args(g, n, &a, false);
    a.out = NULL;
    memset(s, 0, sizeof *s);
    cfx_status st = n->op->infer(&a, s);
    if (st != CFX_OK) return st;
    int64_t numel;
    if (cfx_tensor_check_shape(s->ndim, s->shape, &numel) != CFX_OK)
        return cfx_error_context(CFX_ESHAPE, "%s", n->op->name);
    cfx__value *o = &g->values[n->out];
    o->t.ndim = s->ndim;
    memcpy(o->t.shape, s->shape, sizeof o->t.shape);
    o->t.numel = numel;
    n->state_bytes = s->state_bytes;
    n->alias = s->alias;
    return CFX_OK;
}

int cfx__graph_add(cfx_graph *g, const cfx__op_def *op, const int *in, int nin, const void *attr) {
    if (!g) return cfx__graph_fail(NULL, op->name, "graph is NULL");
    if (g->broken) return -1;
    if (g->compiled) return cfx__graph_fail(g, op->name, "cannot add ops after compile");
    CFX_ASSERT(nin <= CFX_OP_MAX_IN);
    for (int i = 0; i < nin; i++)
        if (in[i] >= g->nvalues)
            return cfx__graph_fail(g, op->name, "input %d: no value %d", i, in[i]);
    if (g->nnodes == g->capnodes) {
        int cap = g->capnodes ? 2 * g->capnodes : 64;
        cfx__node *nn = cfx_realloc(g->nodes, (size_t)cap * sizeof *nn);
        if (!nn) return cfx__graph_fail(g, op->name, "out of memory");
        g->nodes = nn;
        g->capnodes = cap;
    }
    int out = add_value(g, NULL, CFX_VALUE_NODE, 0, NULL);
    if (out < 0) return -1;
    cfx__node *n = &g->nodes[g->nnodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->nin = nin;
    n->out = out;
    n->relu_out = n->sum_in = -1;
    for (int i = 0; i < nin; i++) n->in[i] = in[i] < 0 ? -1 : in[i];
    if (op->attr_size) {
        n->attr = cfx_malloc(op->attr_size);
        if (!n->attr) {
            g->nvalues--;
            return cfx__graph_fail(g, op->name, "out of memory");
        }
        memcpy(n->attr, attr, op->attr_size);
    }
    cfx__op_shape s;
    if (infer_node(g, n, &s) != CFX_OK) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", cfx_last_error());
        cfx_free(n->attr);
        g->nvalues--;
        return cfx__graph_fail(g, op->name, "%s", msg);
    }
    g->values[out].producer = g->nnodes;
    g->values[out].alias_of = s.alias ? n->in[0] : -1;
    g->nnodes++;
    return out;
}

const cfx__node *cfx__graph_producer(const cfx_graph *g, int id) {
    if (!valid_id(g, id) || g->values[id].producer < 0) return NULL;
    return &g->nodes[g->values[id].producer];
}

void cfx__shape_copy(cfx__op_shape *s, const cfx_tensor *t) {
    s->ndim = t->ndim;
    memcpy(s->shape, t->shape, sizeof s->shape);
}

char *cfx__shape_fmt(const cfx_tensor *t, char *buf, size_t size) {
    cfx_tensor_shape_str(t->ndim, t->shape, buf, size);
    return buf;
}

/* The one node that reads value id, as input 0 and nowhere else; -1 when there is not exactly
 * one such use. */
static int sole_reader(const cfx_graph *g, int id) {
    int who = -1;
    for (int i = 0; i < g->nnodes; i++) {
        const cfx__node *n = &g->nodes[i];
        for (int k = 0; k < n->nin; k++) {
            if (n->in[k] != id) continue;
            if (who >= 0 || k != 0) return -1;
            who = i;
        }
    }
    return who;
}

/* A value the caller may look at keeps NCHW: outputs, inputs, params, anything whose gradient
 * was asked for, and aliases. */
static bool private_value(const cfx_graph *g, int id) {
    const cfx__value *v = &g->values[id];
    return v->kind == CFX_VALUE_NODE && !v->is_output && !v->user_grad && v->alias_of < 0;
}

/* Whether node n computes the same in NHWC as in NCHW when its inputs and output all are
 * (cfx__op_def.any_layout): an elementwise op whose inputs all have its output's 4-D shape
 * (no broadcasting), or an op that says so for these shapes (its blocked_ok, MaxPool). */
static bool layout_free(const cfx_graph *g, const cfx__node *n) {
    if (!n->op->any_layout || n->alias || g->values[n->out].t.ndim != 4) return false;
    if (n->op->blocked_ok) {
        cfx__op_args a;
        cfx__node_args((cfx_graph *)g, n, &a, true);
        return n->nin >= 1 && n->in[0] >= 0 && n->op->blocked_ok(&a, true, true);
    }
    for (int k = 0; k < n->nin; k++)
        if (n->in[k] < 0 || !cfx_tensor_same_shape(&g->values[n->in[k]].t, &g->values[n->out].t))
            return false;
    return n->nin >= 1;
}

static int uf_find(int *parent, int i) {
    while (parent[i] != i) i = parent[i] = parent[parent[i]];
    return i;
}

/* Chooses the values held in NHWC (or nChw16c) instead of NCHW, once per plan: oneDNN's
 * preferred layout on this CPU, so a convolution that reads and writes it runs without a
 * reorder on either side.
 * The layout-free ops (layout_free: ReLU, ReLU6's Clip, a residual Add, MaxPool) join their
 * inputs and output into one region (union-find over values), which is held only as a whole
 * and only when every value in it is private and 4-D, every producer from outside is an op
 * that can write NHWC (blocked_ok(out)) and every reader from outside an op that can take it as
 * its input 0 (blocked_ok(in0)), and every value has a reader. A region may span a value with
 * several readers (resnet's block input, read by its two convolutions and its Add). A value's
 * gradient has its layout. Off with g->no_fuse. The marks (blocked_in0 / blocked_out, both on a
 * layout-free op inside a region) are cleared first: a replan starts over. Returns false when out
 * of memory (nothing held). */
static bool plan_layouts(cfx_graph *g) {
    for (int i = 0; i < g->nnodes; i++) {
        cfx__node *n = &g->nodes[i];
        n->blocked_in0 = n->blocked_out = n->c16_in0 = n->c16_out = false;
    }
    g->held_values = 0;
    if (g->no_fuse || g->nvalues == 0) return true;
    int nv = g->nvalues;
    int *parent = cfx_malloc((size_t)nv * sizeof *parent);
    bool *bad = cfx_calloc((size_t)nv, sizeof *bad), *c16 = cfx_calloc((size_t)nv, sizeof *c16);
    bool *free_op = cfx_calloc((size_t)g->nnodes + 1, 1);
    if (!parent || !bad || !c16 || !free_op) {
        cfx_free(parent), cfx_free(bad), cfx_free(c16), cfx_free(free_op);
        return false;
    }
    for (int i = 0; i < nv; i++) parent[i] = i;
    for (int i = 0; i < g->nnodes; i++) {
        const cfx__node *n = &g->nodes[i];
        if (!(free_op[i] = layout_free(g, n))) continue;
        for (int k = 0; k < n->nin; k++) {
            int a = uf_find(parent, n->in[k]), b = uf_find(parent, n->out);
            if (a != b) parent[a] = b;
        }
    }
    /* A value spoils its region when it is public, not 4-D, or meets an op from outside the
     * region that cannot take or make NHWC there. */
    for (int i = 0; i < nv; i++)
        if (!private_value(g, i) || g->values[i].t.ndim != 4) bad[uf_find(parent, i)] = true;
    /* A value no op reads is what the caller looks at (the one differentiated, even when not
     * marked an output): it stays NCHW. */
    bool *read = c16; /* borrowed until the layouts below */
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i].nin; k++)
            if (g->nodes[i].in[k] >= 0) read[g->nodes[i].in[k]] = true;
    for (int i = 0; i < nv; i++) {
        if (!read[i]) bad[uf_find(parent, i)] = true;
        read[i] = false;
    }
    /* A region a gradient flows through is held in nChw16c, which oneDNN's training kernels
     * pick here (NHWC ones round differently and ran no faster): all its channel counts must
     * then be multiples of 16, so that the blocked tensor has the NCHW one's size. */
    for (int i = 0; i < nv; i++)
        if (g->values[i].needs_grad) c16[uf_find(parent, i)] = true;
    for (int i = 0; i < nv; i++) {
        int r = uf_find(parent, i);
        if (c16[r] && !bad[r] && g->values[i].t.shape[1] % 16) bad[r] = true;
    }
    for (int i = 0; i < g->nnodes; i++) {
        cfx__node *n = &g->nodes[i];
        n->c16_out = c16[uf_find(parent, n->out)];
        n->c16_in0 = n->nin > 0 && n->in[0] >= 0 && c16[uf_find(parent, n->in[0])];
    }
    for (int i = 0; i < g->nnodes; i++) {
        const cfx__node *n = &g->nodes[i];
        if (free_op[i]) continue;
        cfx__op_args a;
        bool have = false;
        int r = uf_find(parent, n->out);
        if (!bad[r]) {
            cfx__node_args(g, n, &a, true);
            have = true;
            if (!n->op->blocked_ok || n->alias || !n->op->blocked_ok(&a, false, true))
                bad[r] = true;
        }
        for (int k = 0; k < n->nin; k++) {
            if (n->in[k] < 0 || bad[r = uf_find(parent, n->in[k])]) continue;
            if (!have) cfx__node_args(g, n, &a, true);
            have = true;
            if (k != 0 || !n->op->blocked_ok || n->alias || !n->op->blocked_ok(&a, true, false))
                bad[r] = true;
        }
    }
    for (int i = 0; i < g->nnodes; i++) {
        cfx__node *n = &g->nodes[i];
        n->blocked_out = !bad[uf_find(parent, n->out)];
        n->blocked_in0 = n->nin > 0 && n->in[0] >= 0 && !bad[uf_find(parent, n->in[0])];
        n->c16_out &= n->blocked_out;
        n->c16_in0 &= n->blocked_in0;
    }
    for (int i = 0; i < nv; i++) g->held_values += !bad[uf_find(parent, i)];
    cfx_free(parent), cfx_free(bad), cfx_free(c16), cfx_free(free_op);
    return true;
}

/* The one node that reads value id, in one input slot (any); -1 when there is not exactly one
 * such use. *slot gets the slot. */
static int only_reader(const cfx_graph *g, int id, int *slot) {
    int who = -1;
    for (int i = 0; i < g->nnodes; i++) {
        const cfx__node *n = &g->nodes[i];
        for (int k = 0; k < n->nin; k++) {
            if (n->in[k] != id) continue;
            if (who >= 0) return -1;
            who = i;
            *slot = k;
        }
    }
    return who;
}

/* The ReLU that alone reads value id and may be fused (not an alias), or -1. */
static int fusable_relu(const cfx_graph *g, int id) {
    int ri = sole_reader(g, id);
    return ri >= 0 && g->nodes[ri].op->is_relu && !g->nodes[ri].alias ? ri : -1;
}

/* The Add at node u may be fused into the op at node i, which makes its input `slot`: both
 * inputs and the output have one shape, and the other input (the sum) is made before node i
 * (a residual branch computed earlier) and is not an alias of i's own output. */
static int fusable_sum(const cfx_graph *g, int i, int u, int slot) {
    const cfx__node *a = &g->nodes[u];
    if (!a->op->is_add || a->alias || a->nin != 2 || !private_value(g, a->out)) return -1;
    int r = a->in[1 - slot];
    const cfx_tensor *x = &g->values[a->in[slot]].t, *y = &g->values[r].t,
                     *o = &g->values[a->out].t;
    if (r == a->in[slot] || x->ndim != y->ndim || x->numel != y->numel || o->numel != x->numel ||
        memcmp(x->shape, y->shape, (size_t)x->ndim * sizeof *x->shape))
        return -1;
    int p = g->values[r].producer;
    return p < i ? r : -1;
}

/* Fuses into an op that can apply them as it writes its output (fuses_relu, fuses_sum): the ReLU
 * after it, or an Add after it and then the ReLU after that Add, when each value between them is
 * private and read by the next op only. The op then writes the last fused op's output, the fused
 * ops' forwards are skipped, and their backwards (a ReLU's reads only its output, an Add's no
 * data) run as before, so every gradient is what the unfused graph gives. A pass over the
 * activations less per ReLU (about 2% of a training step of the reference classifier at batch
 * 64), three per Add. A Clip (ReLU6) is fused likewise into a Conv where no gradient flows
 * through it (fuses_clip, clip_bounds). Nothing with g->no_fuse. Counts what it did in
 * g->fusions (Clips in g->clips_fused); clears every other mark. */
static void plan_fusion(cfx_graph *g) {
    for (int i = 0; i < g->nnodes; i++) {
        g->nodes[i].relu = g->nodes[i].fused = g->nodes[i].clip = false;
        g->nodes[i].relu_out = g->nodes[i].sum_in = -1;
    }
    g->fusions = (cfx_graph_fusions){.bn_into_conv = g->bn_folded};
    g->clips_fused = 0;
    if (g->no_fuse) return;
    for (int i = 0; i < g->nnodes; i++) {
        cfx__node *a = &g->nodes[i];
        if (!a->op->fuses_relu || a->alias || !private_value(g, a->out)) continue;
        bool conv = strcmp(a->op->name, "Conv") == 0;
        int slot = 0, ui = only_reader(g, a->out, &slot), r = -1;
        /* The Add is layout-free, so its summand is held as the op's output is (plan_layouts). */
        if (ui >= 0 && a->op->fuses_sum && (r = fusable_sum(g, i, ui, slot)) >= 0) {
            cfx__node *u = &g->nodes[ui];
            int ri = fusable_relu(g, u->out);
            a->sum_in = r;
            u->fused = true;
            a->relu_out = u->out;
            if (ri >= 0) {
                a->relu = true;
                a->relu_out = g->nodes[ri].out;
                g->nodes[ri].fused = true;
            }
            if (ri >= 0)
                g->fusions.conv_add_relu++;
            else
                g->fusions.conv_add++;
            continue;
        }
        int ri = fusable_relu(g, a->out);
        if (ri < 0) {
            /* A Clip, where no gradient flows through it (its backward would need its input). */
            int ci = sole_reader(g, a->out);
            const cfx__node *c = ci >= 0 ? &g->nodes[ci] : NULL;
            if (!a->op->fuses_clip || !c || !c->op->clip_bounds || c->alias ||
                g->values[a->out].needs_grad)
                continue;
            c->op->clip_bounds(c->attr, &a->clip_lo, &a->clip_hi);
            a->clip = true;
            a->relu_out = c->out;
            g->nodes[ci].fused = true;
            g->clips_fused++;
            continue;
        }
        a->relu = true;
        a->relu_out = g->nodes[ri].out;
        g->nodes[ri].fused = true;
        if (conv)
            g->fusions.conv_relu++;
        else
            g->fusions.gemm_relu++;
    }
}

/* Re-infers shapes, decides gradient flow, and sizes every buffer. */
static cfx_status plan(cfx_graph *g) {
    release_prims(g);
    size_t work = 0;
    for (int i = 0; i < g->nnodes; i++) {
        cfx__op_shape s;
        if (infer_node(g, &g->nodes[i], &s) != CFX_OK)
            return cfx_error_context(CFX_ESHAPE, "node %d", i);
        if (s.work_bytes > work) work = s.work_bytes;
    }
    for (int i = 0; i < g->nvalues; i++) {
        cfx__value *v = &g->values[i];
        switch (v->kind) {
            case CFX_VALUE_INPUT:
                v->needs_grad = v->user_grad;
                break;
            case CFX_VALUE_PARAM:
                v->needs_grad = g->param_grads_on;
                break;
            case CFX_VALUE_CONST:
                v->needs_grad = false;
                break;
            case CFX_VALUE_NODE: {
                const cfx__node *n = &g->nodes[v->producer];
                v->needs_grad = false;
                if (n->op->backward || n->alias)
                    for (int k = 0; k < n->nin; k++)
                        if (n->in[k] >= 0 && g->values[n->in[k]].needs_grad) v->needs_grad = true;
                break;
            }
        }
        size_t numel = (size_t)v->t.numel;
        if (v->kind == CFX_VALUE_PARAM) {
            v->t.data = g->params + v->param_offset;
            v->grad = v->needs_grad ? g->param_grads + v->param_offset : NULL;
            continue;
        }
        if (v->alias_of >= 0) {
            v->t.data = g->values[v->alias_of].t.data;
            v->grad = g->values[v->alias_of].grad;
            continue;
        }
        if (v->kind == CFX_VALUE_INPUT && v->cap < numel) {
            /* A grown input keeps no old data: the caller fills it before the next run. */
            if (ensure_floats(&v->own, &v->cap, numel) != CFX_OK) return CFX_ENOMEM;
        } else if (v->kind == CFX_VALUE_NODE) {
            if (ensure_floats(&v->own, &v->cap, numel) != CFX_OK) return CFX_ENOMEM;
        }
        v->t.data = v->own;
        v->grad = NULL;
        if (v->needs_grad) {
            if (ensure_floats(&v->own_grad, &v->grad_cap, numel) != CFX_OK) return CFX_ENOMEM;
            v->grad = v->own_grad;
        }
    }
    for (int i = 0; i < g->nnodes; i++) {
        cfx__node *n = &g->nodes[i];
        if (n->state_bytes > n->state_cap) {
            cfx_aligned_free(n->state);
            n->state = cfx_aligned_alloc(n->state_bytes);
            if (!n->state) return CFX_ENOMEM;
            memset(n->state, 0, n->state_bytes);
            n->state_cap = n->state_bytes;
        }
    }
    size_t wfloats = (work + sizeof(float) - 1) / sizeof(float);
    if (wfloats && ensure_floats((float **)&g->work, &g->work_cap, wfloats) != CFX_OK)
        return CFX_ENOMEM;
    if (!plan_layouts(g)) return CFX_ENOMEM;
    plan_fusion(g);
    for (int i = 0; i < g->nnodes; i++) {
        cfx__node *n = &g->nodes[i];
        if (!n->op->prepare) continue;
        cfx__op_args a;
        cfx__node_args(g, n, &a, true);
        if (n->op->prepare(&a, &n->prim) != CFX_OK)
            return cfx_error_context(CFX_EUNSUPPORTED, "%s (node %d)", n->op->name, i);
    }
    g->dirty = false;
    return CFX_OK;
}

cfx_status cfx_graph_compile(cfx_graph *g) {
    if (!g) return cfx_set_error(CFX_EINVAL, "compile: graph is NULL");
    if (g->broken) return cfx_set_error(CFX_EINVAL, "%s", g->error);
    if (g->compiled) return cfx_set_error(CFX_EINVAL, "compile: graph is already compiled");
    /* Move every parameter into one block, in creation order. */
    size_t total = 0;
    for (int i = 0; i < g->nvalues; i++)
        if (g->values[i].kind == CFX_VALUE_PARAM) {
            g->values[i].param_offset = total;
            total += (size_t)g->values[i].t.numel;
        }
    g->nparams = total;
    size_t cap = 0, gcap = 0;
    if (ensure_floats(&g->params, &cap, total ? total : 1) != CFX_OK ||
        ensure_floats(&g->param_grads, &gcap, total ? total : 1) != CFX_OK)
        return cfx_error_context(CFX_ENOMEM, "compile");
    for (int i = 0; i < g->nvalues; i++) {
        cfx__value *v = &g->values[i];
        if (v->kind != CFX_VALUE_PARAM) continue;
        memcpy(g->params + v->param_offset, v->own, (size_t)v->t.numel * sizeof(float));
        cfx_aligned_free(v->own);
        v->own = NULL;
        v->cap = 0;
    }
    g->mark = cfx_calloc((size_t)g->nvalues + 1, sizeof *g->mark);
    if (!g->mark) return cfx_error_context(CFX_ENOMEM, "compile");
    g->compiled = true;
    cfx_status s = plan(g);
    if (s != CFX_OK) return cfx_error_context(s, "compile");
    return CFX_OK;
}

cfx_graph *cfx__graph_clone(const cfx_graph *g, uint64_t seed) {
    CFX_ASSERT(g && g->compiled);
    cfx_graph *c = cfx_graph_new();
    if (!c) return NULL;
    c->values = cfx_calloc((size_t)g->nvalues, sizeof *c->values);
    c->nodes = cfx_calloc((size_t)(g->nnodes ? g->nnodes : 1), sizeof *c->nodes);
    c->mark = cfx_calloc((size_t)g->nvalues + 1, sizeof *c->mark);
    c->param_grads = cfx_aligned_alloc((g->nparams ? g->nparams : 1) * sizeof(float));
    if (!c->values || !c->nodes || !c->mark || !c->param_grads) goto fail;
    /* Zeroed entries free cleanly, so the counts can be set before the copies are made. */
    c->nvalues = c->capvalues = g->nvalues;
    c->nnodes = g->nnodes;
    c->capnodes = g->nnodes ? g->nnodes : 1;
    c->params = g->params;
    c->shared_params = true;
    c->nparams = g->nparams;
    c->param_grads_on = g->param_grads_on;
    c->training = g->training;
    c->no_fuse = g->no_fuse;
    c->bn_folded = g->bn_folded;
    c->compiled = c->dirty = true;
    c->profile = g->profile; /* each copy prints its own table */
    cfx_rng_init(&c->rng, seed);
    for (int i = 0; i < g->nvalues; i++) {
        const cfx__value *src = &g->values[i];
        cfx__value *v = &c->values[i];
        *v = *src;
        v->name = NULL;
        v->own = v->own_grad = NULL;
        v->cap = v->grad_cap = 0;
        v->t.data = v->grad = NULL;
        if (src->name && !(v->name = cfx_strdup(src->name))) goto fail;
        if (v->kind != CFX_VALUE_INPUT && v->kind != CFX_VALUE_CONST) continue;
        if (ensure_floats(&v->own, &v->cap, (size_t)v->t.numel) != CFX_OK) goto fail;
        memcpy(v->own, src->t.data, (size_t)v->t.numel * sizeof(float));
        v->t.data = v->own;
    }
    for (int i = 0; i < g->nnodes; i++) {
        const cfx__node *src = &g->nodes[i];
        cfx__node *n = &c->nodes[i];
        *n = *src;
        n->attr = n->state = n->prim = NULL;
        n->state_bytes = n->state_cap = 0;
        n->prof_fwd = n->prof_bwd = 0;
        n->prof_nfwd = n->prof_nbwd = 0;
        n->prof_warm[0] = n->prof_warm[1] = false;
        if (src->op->attr_size) {
            if (!(n->attr = cfx_malloc(src->op->attr_size))) goto fail;
            memcpy(n->attr, src->attr, src->op->attr_size);
        }
    }
    return c;
fail:
    cfx_error_context(CFX_ENOMEM, "graph clone");
    cfx_graph_free(c);
    return NULL;
}

cfx_status cfx_graph_reshape_input(cfx_graph *g, int id, int ndim, const int64_t *shape) {
    if (!valid_id(g, id) || g->values[id].kind != CFX_VALUE_INPUT)
        return cfx_set_error(CFX_EINVAL, "reshape input: value %d is not an input", id);
    int64_t numel;
    CFX_TRY(cfx_tensor_check_shape(ndim, shape, &numel));
    cfx__value *v = &g->values[id];
    cfx_tensor old = v->t;
    v->t.ndim = ndim;
    memcpy(v->t.shape, shape, (size_t)ndim * sizeof *shape);
    v->t.numel = numel;
    if (!g->compiled) {
        /* Before compile the input owns exactly its storage; regrow it now. */
        if (ensure_floats(&v->own, &v->cap, (size_t)numel) != CFX_OK) {
            v->t = old;
            return CFX_ENOMEM;
        }
        v->t.data = v->own;
        return CFX_OK;
    }
    g->dirty = true;
    return CFX_OK;
}

cfx_status cfx_graph_set_batch(cfx_graph *g, int64_t n) {
    if (!g) return cfx_set_error(CFX_EINVAL, "set batch: graph is NULL");
    if (n < 1) return cfx_set_error(CFX_EINVAL, "set batch: batch size %lld is < 1", (long long)n);
    for (int i = 0; i < g->nvalues; i++) {
        cfx__value *v = &g->values[i];
        if (v->kind != CFX_VALUE_INPUT || v->t.ndim < 1 || v->t.shape[0] == n) continue;
        int64_t shape[CFX_MAX_DIMS];
        memcpy(shape, v->t.shape, sizeof shape);
        shape[0] = n;
        CFX_TRY(cfx_graph_reshape_input(g, i, v->t.ndim, shape));
    }
    return CFX_OK;
}

static cfx_status ensure_planned(cfx_graph *g, const char *what) {
    if (!g) return cfx_set_error(CFX_EINVAL, "%s: graph is NULL", what);
    if (!g->compiled) return cfx_set_error(CFX_EINVAL, "%s: compile the graph first", what);
    if (g->dirty) {
        cfx_status s = plan(g);
        if (s != CFX_OK) return cfx_error_context(s, "%s", what);
    }
    return CFX_OK;
}

cfx_status cfx_graph_replan(cfx_graph *g) {
    return ensure_planned(g, "replan");
}

/* Runs one op's forward or backward; with CFX_PROFILE, adds its time to *t and counts it. The
 * first run is not counted (*warm marks it done): oneDNN generates its kernels then, 40 ms for
 * one GEMM shape, which made a 180 us product look like 330 over 300 steps. */
static void run_op(const cfx_graph *g, void (*fn)(const cfx__op_args *), const cfx__op_args *a,
                   double *t, long *count, bool *warm) {
    if (!g->profile) {
        fn(a);
        return;
    }
    double t0 = cfx_now();
    fn(a);
    if (*warm) {
        *t += cfx_now() - t0;
        (*count)++;
    }
    *warm = true;
}

cfx_status cfx_graph_forward(cfx_graph *g) {
    return cfx__graph_forward_until(g, g ? g->nnodes : 0);
}

cfx_status cfx__graph_forward_until(cfx_graph *g, int end) {
    CFX_TRY(ensure_planned(g, "forward"));
    double t0 = g->profile ? cfx_now() : 0;
    for (int i = 0; i < end && i < g->nnodes; i++) {
        cfx__node *n = &g->nodes[i];
        if (n->alias || n->fused) continue;
        cfx__op_args a;
        cfx__node_args(g, n, &a, false);
        if (n->relu_out >= 0) a.out = &g->values[n->relu_out].t;
        run_op(g, n->op->forward, &a, &n->prof_fwd, &n->prof_nfwd, &n->prof_warm[0]);
    }
    if (g->profile) g->prof_wall += cfx_now() - t0;
    return CFX_OK;
}

/* The value whose storage (and gradient) id shares: itself unless it is an alias. */
static int storage_root(const cfx_graph *g, int id) {
    while (g->values[id].alias_of >= 0) id = g->values[id].alias_of;
    return id;
}

/* Whether node n runs in the backward pass whose reachable values are marked CFX__MARK_REACH. */
static bool runs_backward(const cfx_graph *g, const cfx__node *n) {
    return (g->mark[n->out] & CFX__MARK_REACH) && g->values[n->out].needs_grad && !n->alias &&
           n->op->backward;
}

/* Decides, for this backward pass, who writes each gradient buffer first. Walks the nodes in
 * the order backward runs them; the first node to reach a buffer (a storage root: an alias
 * shares its root's gradient) claims it. The claim is fresh (CFX__MARK_FRESH on the root, din_fresh
 * for the node: the op stores, the buffer is not zeroed) when the op can store and the buffer is
 * not also another input of that node; otherwise the buffer is zeroed before the pass as
 * before. The output's own buffer is claimed by the seed. */
static void claim_grads(cfx_graph *g, const cfx__value *o) {
    uint8_t *mark = g->mark;
    int out_root = storage_root(g, (int)(o - g->values));
    mark[out_root] |= CFX__MARK_CLAIMED | CFX__MARK_FRESH;
    for (int i = o->producer; i >= 0; i--) {
        cfx__node *n = &g->nodes[i];
        memset(n->fresh, 0, sizeof n->fresh);
        if (!runs_backward(g, n)) continue;
        int roots[CFX_OP_MAX_IN];
        for (int k = 0; k < n->nin; k++) roots[k] = n->in[k] >= 0 ? storage_root(g, n->in[k]) : -1;
        for (int k = 0; k < n->nin; k++) {
            int r = roots[k];
            if (r < 0 || !g->values[n->in[k]].needs_grad || (mark[r] & CFX__MARK_CLAIMED)) continue;
            mark[r] |= CFX__MARK_CLAIMED;
            bool shared = false;
            for (int j = 0; j < n->nin; j++) shared |= j != k && roots[j] == r;
            if (n->op->assigns_grads && !shared) {
                n->fresh[k] = true;
                mark[r] |= CFX__MARK_FRESH;
            }
        }
    }
}

cfx_status cfx_graph_backward(cfx_graph *g, int out, const float *seed) {
    return cfx__graph_backward(g, out, seed, true);
}

cfx_status cfx__graph_backward(cfx_graph *g, int out, const float *seed, bool zero_unreached) {
    CFX_TRY(ensure_planned(g, "backward"));
    if (!valid_id(g, out)) return cfx_set_error(CFX_EINVAL, "backward: no value %d", out);
    cfx__value *o = &g->values[out];
    if (!o->needs_grad)
        return cfx_set_error(CFX_EINVAL,
                             "backward: value %d does not depend on anything that takes a "
                             "gradient (mark an input with cfx_graph_requires_grad)",
                             out);
    double t0 = g->profile ? cfx_now() : 0;
    /* Mark what reaches `out` (walking producers backwards), then zero only those gradients:
     * at batch 1 zeroing unrelated buffers would cost as much as the ops themselves. */
    uint8_t *mark = g->mark;
    memset(mark, 0, (size_t)g->nvalues * sizeof *mark);
    mark[out] = CFX__MARK_REACH;
    for (int i = o->producer; i >= 0; i--) {
        const cfx__node *n = &g->nodes[i];
        if (!(mark[n->out] & CFX__MARK_REACH) || !g->values[n->out].needs_grad) continue;
        for (int k = 0; k < n->nin; k++)
            if (n->in[k] >= 0) mark[n->in[k]] |= CFX__MARK_REACH;
    }
    claim_grads(g, o);
    for (int i = 0; i < g->nvalues; i++) {
        cfx__value *v = &g->values[i];
        if (!v->needs_grad || v->alias_of >= 0 || (mark[i] & CFX__MARK_FRESH)) continue;
        if (v->kind == CFX_VALUE_PARAM) {
            if (zero_unreached || (mark[i] & (CFX__MARK_REACH | CFX__MARK_CLAIMED)))
                memset(v->grad, 0, (size_t)v->t.numel * sizeof(float));
        } else if (v->own_grad && ((mark[i] & (CFX__MARK_REACH | CFX__MARK_CLAIMED)) ||
                                   v->kind == CFX_VALUE_INPUT))
            memset(v->own_grad, 0, (size_t)v->t.numel * sizeof(float));
    }
    if (seed)
        memcpy(o->grad, seed, (size_t)o->t.numel * sizeof(float));
    else
        for (int64_t i = 0; i < o->t.numel; i++) o->grad[i] = 1.0f;
    for (int i = o->producer; i >= 0; i--) {
        cfx__node *n = &g->nodes[i];
        if (!runs_backward(g, n)) continue;
        cfx__op_args a;
        cfx__node_args(g, n, &a, true);
        memcpy(a.din_fresh, n->fresh, sizeof a.din_fresh);
        a.dout = g->values[n->out].grad;
        run_op(g, n->op->backward, &a, &n->prof_bwd, &n->prof_nbwd, &n->prof_warm[1]);
    }
    if (g->profile) g->prof_wall += cfx_now() - t0;
    return CFX_OK;
}

cfx_tensor *cfx_graph_tensor(cfx_graph *g, int id) {
    return valid_id(g, id) ? &g->values[id].t : NULL;
}

float *cfx_graph_grad(cfx_graph *g, int id) {
    return valid_id(g, id) ? g->values[id].grad : NULL;
}

float *cfx_graph_params(cfx_graph *g, size_t *n) {
    if (n) *n = g ? g->nparams : 0;
    return g ? g->params : NULL;
}

float *cfx_graph_param_grads(cfx_graph *g, size_t *n) {
    if (n) *n = g ? g->nparams : 0;
    return g && g->param_grads_on ? g->param_grads : NULL;
}

size_t cfx_graph_num_params(const cfx_graph *g) {
    size_t n = 0;
    for (int i = 0; g && i < g->nvalues; i++)
        if (g->values[i].kind == CFX_VALUE_PARAM) n += (size_t)g->values[i].t.numel;
    return n;
}

double cfx_graph_forward_macs(const cfx_graph *g) {
    double macs = 0;
    for (int i = 0; g && i < g->nnodes; i++) {
        const cfx__node *n = &g->nodes[i];
        const char *op = n->op->name;
        const cfx_tensor *x = &g->values[n->in[0]].t, *y = &g->values[n->out].t;
        const cfx_tensor *w = n->nin > 1 ? &g->values[n->in[1]].t : NULL;
        if (!x->ndim || !y->ndim) continue;
        if ((!strcmp(op, "Conv") || !strcmp(op, "ConvTranspose")) && w && w->ndim >= 3) {
            /* Each output (Conv) or input (ConvTranspose) element meets w's inner block. */
            double inner = (double)w->numel / (double)w->shape[0];
            macs += (double)(op[4] ? x->numel : y->numel) * inner;
        } else if (!strcmp(op, "MatMul")) {
            macs += (double)y->numel * (double)x->shape[x->ndim - 1];
        } else if (!strcmp(op, "Gemm") || !strcmp(op, "Linear")) {
            macs += (double)x->numel * (double)y->shape[y->ndim - 1];
        }
    }
    return macs;
}

int cfx_graph_num_values(const cfx_graph *g) {
    return g ? g->nvalues : 0;
}

cfx_value_kind cfx_graph_value_kind(const cfx_graph *g, int id) {
    return valid_id(g, id) ? g->values[id].kind : CFX_VALUE_CONST;
}

const char *cfx_graph_value_name(const cfx_graph *g, int id) {
    return valid_id(g, id) ? g->values[id].name : NULL;
}

const char *cfx_graph_value_op(const cfx_graph *g, int id) {
    const cfx__node *n = cfx__graph_producer(g, id);
    return n ? n->op->name : NULL;
}

int cfx_graph_value_input(const cfx_graph *g, int id, int k) {
    const cfx__node *n = cfx__graph_producer(g, id);
    return n && k >= 0 && k < n->nin ? n->in[k] : -1;
}
