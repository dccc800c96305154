/* tensors.c - the state of one import: every tensor name maps to an entry of a side table,
 * either a graph value or a folded constant (int64 or float data with a shape, possibly an
 * initializer not decoded yet). The importers go through these helpers to read their inputs
 * (as graph values or as constants) and to record their outputs; errors name the node being
 * imported. A float initializer becomes a graph value the first time a float op reads it: a
 * trainable parameter, or a constant when frozen or a batch-norm statistic. */
#include "engine/onnx/onnx.h"

#include <math.h>

#include <stdarg.h>
#include <stdio.h>

cfx__onnx_entry *cfx__onnx_lookup(cfx__onnx_ctx *c, const char *name) {
    int32_t k = cfx__strmap_get(&c->names, name, strlen(name));
    return k < 0 ? NULL : &c->tab[k];
}

static void entry_clear(cfx__onnx_entry *e) {
    cfx_free(e->f);
    cfx_free(e->i);
    cfx_free(e->batch);
    e->f = NULL, e->i = NULL, e->batch = NULL;
}

/* The entry for name, created empty (id -1, nothing known) when new; NULL on no memory. The
 * name is borrowed: it must outlive the table. */
cfx__onnx_entry *cfx__onnx_define(cfx__onnx_ctx *c, const char *name) {
    cfx__onnx_entry *e = cfx__onnx_lookup(c, name);
    if (!e) {
        if (c->n == c->cap) {
            size_t cap = c->cap ? 2 * c->cap : 128;
            cfx__onnx_entry *t = cfx_realloc(c->tab, cap * sizeof *t);
            if (!t) return NULL;
            c->tab = t, c->cap = cap;
        }
        if (c->n > INT32_MAX || cfx__strmap_put(&c->names, name, (int32_t)c->n) != CFX_OK)
            return NULL;
        e = &c->tab[c->n++];
    } else {
        entry_clear(e);
    }
    memset(e, 0, sizeof *e);
    e->id = -1;
    return e;
}

void cfx__onnx_ctx_free(cfx__onnx_ctx *c) {
    for (size_t k = 0; k < c->n; k++) entry_clear(&c->tab[k]);
    cfx_free(c->tab);
    cfx__strmap_deinit(&c->names);
    cfx__strmap_deinit(&c->folded_bn);
}

/* An error about the current node: "node 'conv1' (Conv, opset 13): <msg>". */
cfx_status cfx__onnx_fail(cfx__onnx_ctx *c, cfx_status st, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->node)
        return cfx_set_error(st, "node '%s' (%s, opset %lld): %s",
                             c->node->name && c->node->name[0] ? c->node->name : "(unnamed)",
                             c->node->op_type, (long long)c->opset, msg);
    return cfx_set_error(st, "%s", msg);
}

/* Makes e a folded constant described by tensor t (data read later, on first use). */
cfx_status cfx__onnx_entry_from_tensor(cfx__onnx_ctx *c, cfx__onnx_entry *e,
                                       const Onnx__TensorProto *t, bool is_init) {
    if (t->n_dims > CFX_MAX_DIMS)
        return cfx__onnx_fail(c, CFX_EUNSUPPORTED, "tensor '%s' has %zu dimensions (at most %d)",
                              t->name ? t->name : "", t->n_dims, CFX_MAX_DIMS);
    int64_t n = cfx__onnx_tensor_numel(t);
    if (n < 0)
        return cfx__onnx_fail(c, CFX_EFORMAT, "tensor '%s' has a bad shape",
                              t->name ? t->name : "");
    e->known = true;
    e->init = t;
    e->is_init = is_init;
    e->ndim = (int)t->n_dims;
    for (size_t k = 0; k < t->n_dims; k++) e->shape[k] = t->dims[k];
    e->numel = n;
    e->dtype = cfx__onnx_is_int_type(t->data_type) ? CFX__ONNX_INT64 : CFX__ONNX_FLOAT;
    return CFX_OK;
}

/* Decodes an entry's data if it has not been (ints stay ints, the rest becomes float). */
cfx_status cfx__onnx_entry_decode(cfx__onnx_ctx *c, cfx__onnx_entry *e) {
    if (!e->init) return CFX_OK;
    size_t n = (size_t)(e->numel ? e->numel : 1);
    cfx_status s = cfx__onnx_tensor_check(c->dir, e->init, e->numel);
    if (s != CFX_OK) return s;
    if (e->dtype == CFX__ONNX_INT64) {
        e->i = cfx_calloc(n, sizeof *e->i);
        e->batch = cfx_calloc(n, 1);
        s = !e->i || !e->batch ? CFX_ENOMEM
                               : cfx__onnx_tensor_read(c->dir, e->init, NULL, e->i, e->numel);
    } else {
        e->f = cfx_calloc(n, sizeof *e->f);
        s = !e->f ? CFX_ENOMEM : cfx__onnx_tensor_read(c->dir, e->init, e->f, NULL, e->numel);
    }
    /* A failure leaves the entry undecoded and owning nothing: importers that find no constant
     * try the same tensor another way (Cast falls back to the graph value), which decodes it
     * again. */
    if (s != CFX_OK) {
        entry_clear(e);
        return s;
    }
    e->init = NULL;
    return CFX_OK;
}

/* A fresh folded constant for output name, with room for its data. */
cfx__onnx_entry *cfx__onnx_new_const(cfx__onnx_ctx *c, const char *name, int dtype, int ndim,
                                     const int64_t *shape) {
    cfx__onnx_entry *e = cfx__onnx_define(c, name);
    if (!e) return NULL;
    int64_t n = 1;
    for (int k = 0; k < ndim; k++) n *= shape[k];
    e->known = true;
    e->dtype = dtype;
    e->ndim = ndim;
    memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    e->numel = n;
    size_t cnt = (size_t)(n ? n : 1);
    if (dtype == CFX__ONNX_INT64) {
        e->i = cfx_calloc(cnt, sizeof *e->i);
        e->batch = cfx_calloc(cnt, 1);
        if (!e->i || !e->batch) return NULL;
    } else if (!(e->f = cfx_calloc(cnt, sizeof *e->f))) {
        return NULL;
    }
    return e;
}

double cfx__onnx_cget(const cfx__onnx_entry *e, int64_t k) {
    return e->dtype == CFX__ONNX_INT64 ? (double)e->i[k] : e->f[k];
}

/* The name of input k of the node being imported, or NULL when absent. */
const char *cfx__onnx_input(const cfx__onnx_ctx *c, size_t k) {
    return cfx__onnx_in_name(c->node, k);
}

cfx_status cfx__onnx_graph_error(cfx__onnx_ctx *c) {
    char msg[600];
    snprintf(msg, sizeof msg, "%s", cfx_last_error());
    return cfx__onnx_fail(c, CFX_EINVAL, "%s", msg);
}

/* The prefixed graph name of a tensor, in buf. */
const char *cfx__onnx_gname(cfx__onnx_ctx *c, const char *name, char *buf, size_t size) {
    snprintf(buf, size, "%s%s", c->o->prefix ? c->o->prefix : "", name);
    return buf;
}

/* The graph value of tensor name, making a folded constant into a graph value the first time:
 * a float initializer becomes a parameter unless frozen or stat (batch-norm statistics). */
int cfx__onnx_value_of(cfx__onnx_ctx *c, const char *name, bool stat) {
    cfx__onnx_entry *e = name ? cfx__onnx_lookup(c, name) : NULL;
    if (!e) {
        cfx__onnx_fail(c, CFX_EFORMAT,
                       "input '%s' is not produced by any node, initializer or input",
                       name ? name : "");
        return -1;
    }
    if (e->id >= 0) return e->id;
    if (!e->known) {
        cfx__onnx_fail(c, CFX_EFORMAT, "input '%s' has no value", name);
        return -1;
    }
    char nb[1100];
    cfx__onnx_gname(c, name, nb, sizeof nb);
    int64_t shape[CFX_MAX_DIMS];
    int ndim = e->ndim;
    memcpy(shape, e->shape, sizeof shape);
    if (e->numel == 0) {
        cfx__onnx_fail(c, CFX_EUNSUPPORTED, "tensor '%s' is empty, which cfx graphs cannot hold",
                       name);
        return -1;
    }
    if (e->init && cfx__onnx_tensor_check(c->dir, e->init, e->numel) != CFX_OK) return -1;
    bool param = e->is_init && e->dtype == CFX__ONNX_FLOAT && !stat && !c->o->frozen;
    if (cfx_graph_find(c->g, nb) >= 0)
        snprintf(nb + strlen(nb), 32, ":%d", cfx_graph_num_values(c->g));
    int id = param ? cfx_graph_param(c->g, nb, ndim, shape)
                   : cfx_graph_const(c->g, nb, ndim, shape, NULL);
    if (id < 0) {
        cfx__onnx_graph_error(c);
        return -1;
    }
    float *dst = cfx_graph_tensor(c->g, id)->data;
    if (e->init) {
        if (cfx__onnx_tensor_read(c->dir, e->init, dst, NULL, e->numel) != CFX_OK) return -1;
    } else {
        for (int64_t k = 0; k < e->numel; k++) dst[k] = (float)cfx__onnx_cget(e, k);
    }
    e->id = id;
    return id;
}

/* The folded constant for tensor name (decoded), or NULL when it is a graph value. */
cfx__onnx_entry *cfx__onnx_const_of(cfx__onnx_ctx *c, const char *name) {
    cfx__onnx_entry *e = name ? cfx__onnx_lookup(c, name) : NULL;
    if (!e || !e->known || e->id >= 0) return NULL;
    if (cfx__onnx_entry_decode(c, e) != CFX_OK) return NULL;
    return e;
}

/* Reads a constant input as int64s (at most cap); returns the count, or -1 with a message. */
/* Whether tensor name is a constant whose data could not be decoded (the message says why). */
static bool undecodable(cfx__onnx_ctx *c, const char *name) {
    cfx__onnx_entry *e = name ? cfx__onnx_lookup(c, name) : NULL;
    return e && e->known && e->id < 0 && e->init;
}

int cfx__onnx_const_ints(cfx__onnx_ctx *c, size_t k, int64_t *out, int cap, uint8_t *batch) {
    const char *nm = cfx__onnx_in_name(c->node, k);
    cfx__onnx_entry *e = cfx__onnx_const_of(c, nm);
    if (!e && undecodable(c, nm)) return -1;
    if (!e) {
        cfx__onnx_fail(c, CFX_EUNSUPPORTED,
                       "input %zu ('%s') must be a constant (an initializer or a "
                       "folded shape computation)",
                       k, nm ? nm : "");
        return -1;
    }
    if (e->numel > cap) {
        cfx__onnx_fail(c, CFX_EUNSUPPORTED, "input %zu ('%s') has %lld values, more than %d", k, nm,
                       (long long)e->numel, cap);
        return -1;
    }
    for (int64_t j = 0; j < e->numel; j++) {
        /* (a float constant's value is converted only when int64 holds it: found by fuzzing,
         * a Reshape whose shape was a float inf) */
        if (e->dtype != CFX__ONNX_INT64 && !(fabsf(e->f[j]) < 9.2e18f)) {
            cfx__onnx_fail(c, CFX_EINVAL, "input %zu ('%s') holds %g, which is not an integer", k,
                           nm ? nm : "", (double)e->f[j]);
            return -1;
        }
        out[j] = e->dtype == CFX__ONNX_INT64 ? e->i[j] : (int64_t)e->f[j];
        if (batch) batch[j] = e->dtype == CFX__ONNX_INT64 && e->batch ? e->batch[j] : 0;
    }
    return (int)e->numel;
}

int cfx__onnx_const_floats(cfx__onnx_ctx *c, size_t k, float *out, int cap) {
    const char *nm = cfx__onnx_in_name(c->node, k);
    cfx__onnx_entry *e = cfx__onnx_const_of(c, nm);
    if (!e && undecodable(c, nm)) return -1;
    if (!e) {
        cfx__onnx_fail(c, CFX_EUNSUPPORTED, "input %zu ('%s') must be a constant", k, nm ? nm : "");
        return -1;
    }
    if (e->numel > cap) {
        cfx__onnx_fail(c, CFX_EUNSUPPORTED, "input %zu ('%s') has %lld values, more than %d", k, nm,
                       (long long)e->numel, cap);
        return -1;
    }
    for (int64_t j = 0; j < e->numel; j++) out[j] = (float)cfx__onnx_cget(e, j);
    return (int)e->numel;
}

/* Records graph value id as output k of the current node, naming it after the tensor. */
cfx_status cfx__onnx_set_out(cfx__onnx_ctx *c, size_t k, int id) {
    if (id < 0) return cfx__onnx_graph_error(c);
    const char *nm = cfx__onnx_out_name(c->node, k);
    if (!nm) return CFX_OK;
    cfx__onnx_entry *e = cfx__onnx_define(c, nm);
    if (!e) return CFX_ENOMEM;
    e->id = id;
    if (!cfx_graph_value_name(c->g, id)) {
        char nb[1100];
        cfx__onnx_gname(c, nm, nb, sizeof nb);
        if (cfx_graph_find(c->g, nb) < 0) CFX_TRY(cfx_graph_set_name(c->g, id, nb));
    }
    return CFX_OK;
}

/* Output k of the current node is the same thing as input j (Identity, no-op casts). */
cfx_status cfx__onnx_alias_out(cfx__onnx_ctx *c, size_t k, size_t j) {
    const char *nm = cfx__onnx_out_name(c->node, k), *src = cfx__onnx_in_name(c->node, j);
    if (!nm) return CFX_OK;
    cfx__onnx_entry *s = src ? cfx__onnx_lookup(c, src) : NULL;
    if (!s) return cfx__onnx_fail(c, CFX_EFORMAT, "input '%s' has no value", src ? src : "");
    if (s->id < 0 && s->known) CFX_TRY(cfx__onnx_entry_decode(c, s));
    cfx__onnx_entry copy = *s;
    cfx__onnx_entry *e = cfx__onnx_define(c, nm);
    if (!e) return CFX_ENOMEM;
    s = cfx__onnx_lookup(c, src); /* define may have moved the table */
    e->id = s->id;
    if (s->id < 0) {
        /* Copy the folded data. */
        cfx__onnx_entry *d = cfx__onnx_new_const(c, nm, copy.dtype, copy.ndim, copy.shape);
        if (!d) return CFX_ENOMEM;
        s = cfx__onnx_lookup(c, src);
        for (int64_t q = 0; q < copy.numel; q++) {
            if (copy.dtype == CFX__ONNX_INT64)
                d->i[q] = s->i[q], d->batch[q] = s->batch[q];
            else
                d->f[q] = s->f[q];
        }
        d->is_init = s->is_init;
    }
    return CFX_OK;
}

/* Whether a node being imported or a requested output reads tensor name. */
static bool tensor_used(cfx__onnx_ctx *c, const char *name) {
    const Onnx__GraphProto *gr = c->m->graph;
    for (size_t k = 0; k < gr->n_node; k++) {
        if (!c->needed[k]) continue;
        for (size_t j = 0; j < gr->node[k]->n_input; j++)
            if (gr->node[k]->input[j] && strcmp(gr->node[k]->input[j], name) == 0) return true;
    }
    for (int k = 0; k < c->nwant; k++)
        if (strcmp(c->want[k], name) == 0) return true;
    return false;
}

/* Fails when any output beyond the first is used (MaxPool indices, BN running stats, ...). */
cfx_status cfx__onnx_only_first_output(cfx__onnx_ctx *c) {
    for (size_t k = 1; k < c->node->n_output; k++)
        if (cfx__onnx_out_name(c->node, k) && tensor_used(c, c->node->output[k]))
            return cfx__onnx_fail(c, CFX_EUNSUPPORTED,
                                  "output %zu ('%s') is not supported (only the "
                                  "first output is)",
                                  k, c->node->output[k]);
    return CFX_OK;
}

int cfx__onnx_norm_axis(int64_t axis, int ndim) {
    return (int)(axis < 0 ? axis + ndim : axis);
}

const cfx_tensor *cfx__onnx_tensor(cfx__onnx_ctx *c, int id) {
    return cfx_graph_tensor(c->g, id);
}

/* Axes from an attribute (older opsets) or input 1 (opset 13 on). */
int cfx__onnx_axes_of(cfx__onnx_ctx *c, int64_t *axes, bool from_input) {
    if (from_input)
        return cfx__onnx_input(c, 1) ? cfx__onnx_const_ints(c, 1, axes, CFX_MAX_DIMS, NULL) : 0;
    int n = cfx__onnx_attr_ints(c->node, "axes", axes, CFX_MAX_DIMS);
    return n < 0 ? 0 : n;
}
