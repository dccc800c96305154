/* onnx.c - ONNX model files: import into a graph, export from one, split, and summarise.
 *
 * Import walks the nodes in file order (ONNX requires a topological order). Every tensor name
 * maps to an entry of a side table: either a graph value, or a folded constant (int64 or float
 * data with a shape). Initializers and Constant nodes start as folded constants; integer shape
 * arithmetic that PyTorch emits for flatten and view (Shape -> Gather -> Unsqueeze -> Concat ->
 * Reshape, with Cast, Slice, Squeeze, ConstantOfShape and Add/Sub/Mul/Div on the way) stays
 * folded, so the engine graph holds only float ops. A constant turns into a graph value the
 * first time a float op reads it: a float initializer becomes a trainable parameter (or a
 * frozen constant with the frozen option; batch-norm statistics are always constants), anything
 * else a constant. Shape reads the current shape of a value, so sizes are baked in at the
 * import batch size; an element that came from the batch dimension is flagged, and a Reshape
 * target that copies it is written as 0 ("keep this dimension") so a later batch change works.
 *
 * Before anything is built, the nodes the requested outputs need are marked (walking back from
 * the outputs and stopping at cut inputs), and every op type among them that cfx lacks is
 * collected, so one error names all of them with their node and the opset.
 *
 * Export writes opset 13 from a graph's nodes and their attribute structs; split cuts the
 * protobuf itself, so both halves keep the original nodes exactly. */
#include "engine/onnx/onnx.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* The importer of node n's op, or NULL when cfx lacks it. */
cfx__onnx_import_fn cfx__onnx_find_importer(const Onnx__NodeProto *n) {
    static const cfx__onnx_importer *const families[] = {
        cfx__onnx_shape_importers, cfx__onnx_math_importers, cfx__onnx_nn_importers};
    if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx")) return NULL;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (const cfx__onnx_importer *i = families[f]; i->op; i++)
            if (n->op_type && strcmp(n->op_type, i->op) == 0) return i->fn;
    return NULL;
}

static const Onnx__ValueInfoProto *find_info(const Onnx__GraphProto *gr, const char *name) {
    for (size_t k = 0; k < gr->n_input; k++)
        if (gr->input[k]->name && strcmp(gr->input[k]->name, name) == 0) return gr->input[k];
    for (size_t k = 0; k < gr->n_value_info; k++)
        if (gr->value_info[k]->name && strcmp(gr->value_info[k]->name, name) == 0)
            return gr->value_info[k];
    for (size_t k = 0; k < gr->n_output; k++)
        if (gr->output[k]->name && strcmp(gr->output[k]->name, name) == 0) return gr->output[k];
    return NULL;
}

static cfx_status import_model(cfx_graph *g, const Onnx__ModelProto *m, const char *path,
                               const cfx_onnx_options *o, const int *bind, int nbind, int *outs,
                               int cap, int *nouts);

/* Shapes of cut tensors that the file does not record: import the part that computes them. */
static cfx_status cut_shapes(const Onnx__ModelProto *m, const char *path, const cfx_onnx_options *o,
                             int *ndim, int64_t (*shape)[CFX_MAX_DIMS]) {
    /* From value_info when the file records them (a symbolic first dimension is the batch). */
    bool all = true;
    for (int k = 0; k < o->n_inputs && all; k++) {
        int elem;
        all = cfx__onnx_info_shape(find_info(m->graph, o->inputs[k]), &elem, &ndim[k], shape[k]);
        for (int d = 0; all && d < ndim[k]; d++)
            if (shape[k][d] < 0) {
                shape[k][d] = o->batch > 0 ? o->batch : 1;
                all = d == 0;
            }
    }
    if (all) return CFX_OK;
    cfx_onnx_options t = {.batch = o->batch,
                          .frozen = 1,
                          .extra_outputs = o->inputs,
                          .n_extra_outputs = o->n_inputs,
                          .outputs_only = 1};
    cfx_graph *g = cfx_graph_new();
    if (!g) return CFX_ENOMEM;
    int ids[64], n = 0;
    cfx_status s = import_model(g, m, path, &t, NULL, 0, ids, 64, &n);
    for (int k = 0; s == CFX_OK && k < n && k < o->n_inputs; k++) {
        const cfx_tensor *tt = cfx_graph_tensor(g, ids[k]);
        ndim[k] = tt->ndim;
        memcpy(shape[k], tt->shape, sizeof shape[k]);
    }
    cfx_graph_free(g);
    return s;
}

static cfx_status import_model(cfx_graph *g, const Onnx__ModelProto *m, const char *path,
                               const cfx_onnx_options *o, const int *bind, int nbind, int *outs,
                               int cap, int *nouts) {
    const Onnx__GraphProto *gr = m->graph;
    cfx__onnx_ctx c = {.g = g, .o = o, .path = path, .m = m, .opset = cfx__onnx_model_opset(m)};
    const char *slash = strrchr(path, '/');
    snprintf(c.dir, sizeof c.dir, "%.*s", slash ? (int)(slash - path + 1) : 0, path);
    cfx_status st = CFX_OK;
    uint8_t *needed = cfx_calloc(gr->n_node + 1, 1);
    const char **want = cfx_calloc(gr->n_output + (size_t)o->n_extra_outputs + 1, sizeof *want);
    cfx__strmap need = {0}; /* names the imported nodes read (values unused) */
    char *list = NULL;
    if (!needed || !want) {
        st = CFX_ENOMEM;
        goto done;
    }
    c.needed = needed;
    c.want = want;
    if (!o->outputs_only)
        for (size_t k = 0; k < gr->n_output; k++)
            if (!cfx__onnx_in_list(o->inputs, o->n_inputs, gr->output[k]->name))
                want[c.nwant++] = gr->output[k]->name;
    for (int k = 0; k < o->n_extra_outputs; k++)
        if (!cfx__onnx_in_list(want, c.nwant, o->extra_outputs[k]))
            want[c.nwant++] = o->extra_outputs[k];
    if (c.nwant == 0) {
        st = cfx_set_error(CFX_EINVAL, "no outputs asked for (outputs_only without extra outputs)");
        goto done;
    }
    /* Mark the nodes the outputs need, walking back and stopping at cut tensors. */
    for (int k = 0; k < c.nwant; k++)
        if (cfx__strmap_put(&need, want[k], 0) != CFX_OK) st = CFX_ENOMEM;
    for (size_t k = gr->n_node; st == CFX_OK && k-- > 0;) {
        const Onnx__NodeProto *n = gr->node[k];
        for (size_t j = 0; j < n->n_output && !needed[k]; j++)
            if (cfx__onnx_out_name(n, j) && cfx__onnx_in_set(&need, n->output[j])) needed[k] = 1;
        if (!needed[k]) continue;
        for (size_t j = 0; j < n->n_input; j++)
            if (cfx__onnx_in_name(n, j) &&
                !cfx__onnx_in_list(o->inputs, o->n_inputs, n->input[j]) &&
                cfx__strmap_put(&need, n->input[j], 0) != CFX_OK)
                st = CFX_ENOMEM;
    }
    if (st != CFX_OK) goto done;
    /* Every op type cfx lacks, named once each with its first node. */
    size_t lcap = 1024, llen = 0;
    int nbad = 0;
    list = cfx_malloc(lcap);
    if (!list) {
        st = CFX_ENOMEM;
        goto done;
    }
    list[0] = 0;
    for (size_t k = 0; k < gr->n_node; k++) {
        const Onnx__NodeProto *n = gr->node[k];
        if (!needed[k] || cfx__onnx_find_importer(n)) continue;
        char item[512];
        snprintf(item, sizeof item, "%s%s%s (node '%s')",
                 n->domain && n->domain[0] ? n->domain : "", n->domain && n->domain[0] ? "." : "",
                 n->op_type ? n->op_type : "?", n->name && n->name[0] ? n->name : "(unnamed)");
        char key[300];
        snprintf(key, sizeof key, "%s (", n->op_type ? n->op_type : "?");
        if (strstr(list, key)) continue;
        size_t il = strlen(item);
        if (llen + il + 3 >= lcap) {
            char *nl = cfx_realloc(list, lcap = 2 * (llen + il + 3));
            if (!nl) {
                st = CFX_ENOMEM;
                goto done;
            }
            list = nl;
        }
        llen += (size_t)sprintf(list + llen, "%s%s", nbad ? ", " : "", item);
        nbad++;
    }
    if (nbad) {
        st = cfx_set_error(CFX_EUNSUPPORTED, "unsupported op%s at opset %lld: %s",
                           nbad > 1 ? "s" : "", (long long)c.opset, list);
        goto done;
    }
    for (size_t k = 0; st == CFX_OK && k < gr->n_initializer; k++) {
        const Onnx__TensorProto *t = gr->initializer[k];
        if (!t->name || !cfx__onnx_in_set(&need, t->name)) continue;
        cfx__onnx_entry *e = cfx__onnx_define(&c, t->name);
        st = e ? cfx__onnx_entry_from_tensor(&c, e, t, true) : CFX_ENOMEM;
    }
    /* The model's inputs (initializers listed as inputs, as old exporters do, are not). */
    int ord = 0;
    char nb[1100];
    for (size_t k = 0; st == CFX_OK && k < gr->n_input; k++) {
        const Onnx__ValueInfoProto *vi = gr->input[k];
        if (!vi->name || cfx__onnx_is_initializer(gr, vi->name)) continue;
        int idx = ord++;
        if (!cfx__onnx_in_set(&need, vi->name) ||
            cfx__onnx_in_list(o->inputs, o->n_inputs, vi->name))
            continue;
        cfx__onnx_entry *e = cfx__onnx_define(&c, vi->name);
        if (!e) {
            st = CFX_ENOMEM;
            break;
        }
        if (idx < nbind && bind && bind[idx] >= 0) {
            e->id = bind[idx];
            continue;
        }
        int elem = 0, nd = 0;
        int64_t shape[CFX_MAX_DIMS];
        if (!cfx__onnx_info_shape(vi, &elem, &nd, shape)) {
            st = cfx_set_error(CFX_EFORMAT, "input '%s' has no tensor shape", vi->name);
            break;
        }
        if (elem != CFX__ONNX_FLOAT && elem != CFX__ONNX_DOUBLE) {
            st = cfx_set_error(CFX_EUNSUPPORTED,
                               "input '%s' has element type %d; cfx models take "
                               "float tensors",
                               vi->name, elem);
            break;
        }
        for (int d = 0; d < nd; d++)
            if (shape[d] < 0) {
                if (d > 0) {
                    st = cfx_set_error(CFX_EUNSUPPORTED,
                                       "input '%s': dimension %d is symbolic; "
                                       "cfx needs fixed sizes except the first (batch)",
                                       vi->name, d);
                    break;
                }
                shape[d] = o->batch > 0 ? o->batch : 1;
            }
        if (st != CFX_OK) break;
        e->id = cfx_graph_input(g, cfx__onnx_gname(&c, vi->name, nb, sizeof nb), nd, shape);
        if (e->id < 0) st = CFX_EINVAL;
    }
    /* Cut tensors become inputs. */
    if (st == CFX_OK && o->n_inputs > 0) {
        int nds[64];
        int64_t shapes[64][CFX_MAX_DIMS];
        if (o->n_inputs > 64) {
            st = cfx_set_error(CFX_EINVAL, "at most 64 cut inputs");
            goto done;
        }
        st = cut_shapes(m, path, o, nds, shapes);
        for (int k = 0; st == CFX_OK && k < o->n_inputs; k++) {
            cfx__onnx_entry *e = cfx__onnx_define(&c, o->inputs[k]);
            if (!e) {
                st = CFX_ENOMEM;
                break;
            }
            int bi = ord + k;
            if (bind && bi < nbind && bind[bi] >= 0)
                e->id = bind[bi];
            else
                e->id = cfx_graph_input(g, cfx__onnx_gname(&c, o->inputs[k], nb, sizeof nb), nds[k],
                                        shapes[k]);
            if (e->id < 0) st = CFX_EINVAL;
        }
    }
    for (size_t k = 0; st == CFX_OK && k < gr->n_node; k++) {
        if (!needed[k]) continue;
        c.node = gr->node[k];
        st = cfx__onnx_find_importer(c.node)(&c);
        if (st != CFX_OK && !strstr(cfx_last_error(), "node '")) {
            char msg[600];
            snprintf(msg, sizeof msg, "%s", cfx_last_error());
            st = cfx__onnx_fail(&c, st, "%s", msg);
        }
    }
    c.node = NULL;
    *nouts = 0;
    for (int k = 0; st == CFX_OK && k < c.nwant; k++) {
        const char *nm = want[k];
        cfx__onnx_entry *e = cfx__onnx_lookup(&c, nm);
        if (!e) {
            st = cfx_set_error(CFX_ENOTFOUND, "no tensor named '%s' in the model", nm);
            break;
        }
        int id = cfx__onnx_value_of(&c, nm, false);
        if (id < 0) {
            st = CFX_EINVAL;
            break;
        }
        cfx__onnx_gname(&c, nm, nb, sizeof nb);
        const char *cur = cfx_graph_value_name(g, id);
        if (cur && strcmp(cur, nb) != 0 && cfx_graph_value_kind(g, id) != CFX_VALUE_NODE) {
            /* An output that is an input or a weight itself: give it its own value. */
            id = cfx_op_affine(g, id, 1.0f, 0.0f);
            if (id < 0) {
                st = CFX_EINVAL;
                break;
            }
        }
        st = cfx_graph_set_output(g, id, nb);
        if (*nouts < cap && outs) outs[*nouts] = id;
        (*nouts)++;
    }
done:
    cfx_free(list);
    cfx_free(needed);
    cfx_free(want);
    cfx__strmap_deinit(&need);
    cfx__onnx_ctx_free(&c);
    return st;
}

cfx_status cfx_onnx_import(cfx_graph *g, const char *path, const cfx_onnx_options *o,
                           const int *bind, int nbind, int *outputs, int cap, int *noutputs) {
    cfx_onnx_options def = {0};
    int dummy;
    if (!g) return cfx_set_error(CFX_EINVAL, "load model: graph is NULL");
    Onnx__ModelProto *m = cfx__onnx_model_read(path);
    if (!m) return cfx_error_context(CFX_EFORMAT, "load model");
    int64_t opset = cfx__onnx_model_opset(m);
    if (opset < 11 || opset > 17)
        cfx_log(CFX_LOG_WARN, "'%s' uses opset %lld; cfx is tested with opsets 11 to 17", path,
                (long long)opset);
    cfx_status s = import_model(g, m, path, o ? o : &def, bind, nbind, outputs, cap,
                                noutputs ? noutputs : &dummy);
    cfx__onnx_model_free(m);
    if (s != CFX_OK) return cfx_error_context(s, "load model '%s'", path);
    return CFX_OK;
}

cfx_graph *cfx_onnx_load(const char *path, const cfx_onnx_options *o) {
    cfx_graph *g = cfx_graph_new();
    if (!g) return NULL;
    if (cfx_onnx_import(g, path, o, NULL, 0, NULL, 0, NULL) != CFX_OK) {
        cfx_graph_free(g);
        return NULL;
    }
    return g;
}

typedef struct exporter {
    cfx_graph *g;
    cfx__onnx_arena a;
    Onnx__NodeProto **nodes;
    size_t nn, ncap;
    Onnx__TensorProto **inits;
    size_t ni, icap;
    Onnx__ValueInfoProto **ins;
    size_t nin, incap;
    uint8_t *emitted;                /* per value: its input or initializer is written */
    int tmp;                         /* counter for names of helper tensors */
    Onnx__TensorProto *const_tensor; /* the value of the next Constant node */
} exporter;

static bool grow(void ***p, size_t *cap, size_t n) {
    if (n < *cap) return true;
    size_t c = *cap ? 2 * *cap : 64;
    void **q = cfx_realloc(*p, c * sizeof *q);
    if (!q) return false;
    *p = q, *cap = c;
    return true;
}

/* The ONNX name of value id: its graph name, else "v<id>" (kept in the arena). */
static const char *vname(exporter *e, int id) {
    const char *n = cfx_graph_value_name(e->g, id);
    if (n) return n;
    char b[32];
    snprintf(b, sizeof b, "v%d", id);
    return cfx__onnx_arena_str(&e->a, b);
}

static const char *tmp_name(exporter *e, const char *base) {
    char b[600];
    snprintf(b, sizeof b, "%s__%d", base, e->tmp++);
    return cfx__onnx_arena_str(&e->a, b);
}

static Onnx__TensorProto *add_init(exporter *e, const char *name, int dtype, int ndim,
                                   const int64_t *shape, const void *data, size_t bytes) {
    Onnx__TensorProto *t = cfx__onnx_arena_alloc(&e->a, sizeof *t);
    int64_t *dims = cfx__onnx_arena_alloc(&e->a, (size_t)(ndim + 1) * sizeof *dims);
    uint8_t *raw = cfx__onnx_arena_alloc(&e->a, bytes);
    if (!t || !dims || !raw || !grow((void ***)&e->inits, &e->icap, e->ni)) return NULL;
    onnx__tensor_proto__init(t);
    if (ndim) memcpy(dims, shape, (size_t)ndim * sizeof *dims); /* a scalar has no shape */
    if (bytes) memcpy(raw, data, bytes);
    t->n_dims = (size_t)ndim;
    t->dims = dims;
    t->has_data_type = 1;
    t->data_type = dtype;
    t->name = (char *)name;
    t->has_raw_data = 1;
    t->raw_data.data = raw;
    t->raw_data.len = bytes;
    e->inits[e->ni++] = t;
    return t;
}

struct xattr;

static cfx_status add_node(exporter *e, const char *op, const char *const *in, int nin,
                           const char *out, const struct xattr *at, int nat);

/* A Constant node holding the tensor (helper values: shapes, exponents, clip bounds), so that
 * re-importing does not turn them into trainable parameters. Returns its output name. */
static const char *const_node(exporter *e, const char *base, int dtype, int ndim,
                              const int64_t *shape, const void *data, size_t bytes) {
    const char *nm = tmp_name(e, base);
    if (!nm || !add_init(e, nm, dtype, ndim, shape, data, bytes)) return NULL;
    Onnx__TensorProto *t = e->inits[--e->ni]; /* taken back out of the initializers */
    e->const_tensor = t;
    return add_node(e, "Constant", NULL, 0, nm, NULL, 0) == CFX_OK ? nm : NULL;
}

static const char *const_ints_init(exporter *e, const char *base, const int64_t *v, int n) {
    int64_t shape[1] = {n};
    return const_node(e, base, CFX__ONNX_INT64, 1, shape, v, (size_t)n * 8);
}

static const char *const_float_init(exporter *e, const char *base, float v) {
    return const_node(e, base, CFX__ONNX_FLOAT, 0, NULL, &v, 4);
}

/* Makes sure value id exists in the file: an input, or an initializer with its data. */
static cfx_status emit_value(exporter *e, int id) {
    if (e->emitted[id]) return CFX_OK;
    e->emitted[id] = 1;
    cfx_value_kind k = cfx_graph_value_kind(e->g, id);
    const cfx_tensor *t = cfx_graph_tensor(e->g, id);
    if (k == CFX_VALUE_NODE) return CFX_OK;
    if (k == CFX_VALUE_INPUT) {
        int64_t shape[CFX_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        if (t->ndim > 0) shape[0] = -1;
        Onnx__ValueInfoProto *vi = cfx__onnx_value_info(&e->a, vname(e, id), t->ndim, shape);
        if (!vi || !grow((void ***)&e->ins, &e->incap, e->nin)) return CFX_ENOMEM;
        e->ins[e->nin++] = vi;
        return CFX_OK;
    }
    return add_init(e, vname(e, id), CFX__ONNX_FLOAT, t->ndim, t->shape, t->data,
                    (size_t)t->numel * sizeof(float))
               ? CFX_OK
               : CFX_ENOMEM;
}

struct xattr {
    const char *name;
    int type; /* 'i', 'f', 's', 'I' (ints) */
    int64_t i;
    float f;
    const char *s;
    const int64_t *ints;
    int n;
};

typedef struct xattr xattr;

/* Adds a node op(inputs) -> outputs with attributes. */
static cfx_status add_node(exporter *e, const char *op, const char *const *in, int nin,
                           const char *out, const struct xattr *at, int nat) {
    Onnx__NodeProto *n = cfx__onnx_arena_alloc(&e->a, sizeof *n);
    char **ins = cfx__onnx_arena_alloc(&e->a, (size_t)(nin + 1) * sizeof *ins);
    char **outs = cfx__onnx_arena_alloc(&e->a, sizeof *outs);
    Onnx__AttributeProto **attrs = cfx__onnx_arena_alloc(&e->a, (size_t)(nat + 1) * sizeof *attrs);
    if (!n || !ins || !outs || !attrs || !grow((void ***)&e->nodes, &e->ncap, e->nn))
        return CFX_ENOMEM;
    onnx__node_proto__init(n);
    for (int k = 0; k < nin; k++) ins[k] = (char *)(in[k] ? in[k] : "");
    outs[0] = (char *)out;
    for (int k = 0; k < nat; k++) {
        Onnx__AttributeProto *p = cfx__onnx_arena_alloc(&e->a, sizeof *p);
        if (!p) return CFX_ENOMEM;
        onnx__attribute_proto__init(p);
        p->name = (char *)at[k].name;
        p->has_type = 1;
        switch (at[k].type) {
            case 'i':
                p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
                p->has_i = 1, p->i = at[k].i;
                break;
            case 'f':
                p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
                p->has_f = 1, p->f = at[k].f;
                break;
            case 's':
                p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
                p->has_s = 1, p->s.data = (uint8_t *)at[k].s, p->s.len = strlen(at[k].s);
                break;
            default:
                p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
                p->n_ints = (size_t)at[k].n;
                p->ints = (int64_t *)at[k].ints;
        }
        attrs[k] = p;
    }
    n->n_input = (size_t)nin, n->input = ins;
    n->n_output = 1, n->output = outs;
    n->n_attribute = (size_t)nat, n->attribute = attrs;
    n->op_type = (char *)op;
    n->name = (char *)out;
    if (!strcmp(op, "Constant")) {
        Onnx__AttributeProto *p = cfx__onnx_arena_alloc(&e->a, sizeof *p);
        Onnx__AttributeProto **pp = cfx__onnx_arena_alloc(&e->a, sizeof *pp);
        if (!p || !pp) return CFX_ENOMEM;
        onnx__attribute_proto__init(p);
        p->name = "value";
        p->has_type = 1;
        p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
        p->t = e->const_tensor;
        p->t->name = NULL;
        pp[0] = p;
        n->n_attribute = 1, n->attribute = pp;
    }
    e->nodes[e->nn++] = n;
    return CFX_OK;
}

#define AI(nm, v)                                                                                  \
    { .name = nm, .type = 'i', .i = (v) }

#define AF(nm, v)                                                                                  \
    { .name = nm, .type = 'f', .f = (v) }

#define AS(nm, v)                                                                                  \
    { .name = nm, .type = 's', .s = (v) }

#define AIS(nm, p, c)                                                                              \
    { .name = nm, .type = 'I', .ints = (p), .n = (c) }

/* How each op is written: a writer gets the node, the names of its inputs (room for extra
 * helper inputs after them) and the name of its output, and adds the ONNX nodes. */
typedef cfx_status (*writer_fn)(exporter *e, const cfx__node *n, const char **in, const char *out);

/* Ops whose ONNX node has the same type, the same inputs and no attributes. */
static cfx_status write_same(exporter *e, const cfx__node *n, const char **in, const char *out) {
    return add_node(e, n->op->name, in, n->nin, out, NULL, 0);
}

/* Pow of two tensors as is; of a tensor and the scalar exponent attribute, with the exponent as a
 * constant input. */
static cfx_status write_pow(exporter *e, const cfx__node *n, const char **in, const char *out) {
    if (n->nin != 1) return write_same(e, n, in, out);
    in[1] = const_float_init(e, out, ((const cfx__unary_attr *)n->attr)->p);
    return add_node(e, "Pow", in, 2, out, NULL, 0);
}

static cfx_status write_leaky_relu(exporter *e, const cfx__node *n, const char **in,
                                   const char *out) {
    xattr a[] = {AF("alpha", ((const cfx__unary_attr *)n->attr)->alpha)};
    return add_node(e, "LeakyRelu", in, 1, out, a, 1);
}

/* Clip's bounds are optional inputs: an infinite one is left out. */
static cfx_status write_clip(exporter *e, const cfx__node *n, const char **in, const char *out) {
    const cfx__unary_attr *u = n->attr;
    in[1] = isinf(u->lo) ? NULL : const_float_init(e, out, u->lo);
    in[2] = isinf(u->hi) ? NULL : const_float_init(e, out, u->hi);
    return add_node(e, "Clip", in, in[2] ? 3 : in[1] ? 2 : 1, out, NULL, 0);
}

/* scale * x + shift as Mul then Add. */
static cfx_status write_affine(exporter *e, const cfx__node *n, const char **in, const char *out) {
    const cfx__unary_attr *u = n->attr;
    const char *m = tmp_name(e, out);
    const char *a1[] = {in[0], const_float_init(e, out, u->scale)};
    CFX_TRY(add_node(e, "Mul", a1, 2, m, NULL, 0));
    const char *a2[] = {m, const_float_init(e, out, u->shift)};
    return add_node(e, "Add", a2, 2, out, NULL, 0);
}

/* Phi(x) = 0.5 (1 + erf(x / sqrt 2)). */
static cfx_status write_normal_cdf(exporter *e, const cfx__node *n, const char **in,
                                   const char *out) {
    const char *t1 = tmp_name(e, out), *t2 = tmp_name(e, out), *t3 = tmp_name(e, out);
    const char *a1[] = {in[0], const_float_init(e, out, 0.70710678118654752f)};
    const char *a2[] = {t1};
    const char *a3[] = {t2, const_float_init(e, out, 1.0f)};
    const char *a4[] = {t3, const_float_init(e, out, 0.5f)};
    CFX_TRY(add_node(e, "Mul", a1, 2, t1, NULL, 0));
    CFX_TRY(add_node(e, "Erf", a2, 1, t2, NULL, 0));
    CFX_TRY(add_node(e, "Add", a3, 2, t3, NULL, 0));
    return add_node(e, "Mul", a4, 2, out, NULL, 0);
}

/* Conv and ConvTranspose; only the transpose has output_padding. */
static cfx_status write_conv_any(exporter *e, const cfx__node *n, const char **in, const char *out,
                                 bool transpose) {
    const cfx_conv2d_attr *c = n->attr;
    const cfx_tensor *w = cfx_graph_tensor(e->g, n->in[1]);
    int64_t *v = cfx__onnx_arena_alloc(&e->a, 16 * sizeof *v);
    if (!v) return CFX_ENOMEM;
    v[0] = w->shape[2], v[1] = w->shape[3];
    v[2] = c->stride[0] ? c->stride[0] : 1, v[3] = c->stride[1] ? c->stride[1] : 1;
    for (int k = 0; k < 4; k++) v[4 + k] = c->pad[k];
    v[8] = c->dilation[0] ? c->dilation[0] : 1, v[9] = c->dilation[1] ? c->dilation[1] : 1;
    v[10] = c->output_padding[0], v[11] = c->output_padding[1];
    xattr a[] = {AIS("kernel_shape", v, 2),
                 AIS("strides", v + 2, 2),
                 AIS("pads", v + 4, 4),
                 AIS("dilations", v + 8, 2),
                 AI("group", c->groups ? c->groups : 1),
                 AIS("output_padding", v + 10, 2)};
    return add_node(e, n->op->name, in, n->in[2] >= 0 ? 3 : 2, out, a, transpose ? 6 : 5);
}

static cfx_status write_conv(exporter *e, const cfx__node *n, const char **in, const char *out) {
    return write_conv_any(e, n, in, out, false);
}

static cfx_status write_conv_transpose(exporter *e, const cfx__node *n, const char **in,
                                       const char *out) {
    return write_conv_any(e, n, in, out, true);
}

/* MaxPool has dilations, AveragePool count_include_pad. */
static cfx_status write_pool_any(exporter *e, const cfx__node *n, const char **in, const char *out,
                                 bool max) {
    const cfx_pool2d_attr *p = n->attr;
    int64_t *v = cfx__onnx_arena_alloc(&e->a, 12 * sizeof *v);
    if (!v) return CFX_ENOMEM;
    v[0] = p->kernel[0], v[1] = p->kernel[1];
    v[2] = p->stride[0] ? p->stride[0] : p->kernel[0];
    v[3] = p->stride[1] ? p->stride[1] : p->kernel[1];
    for (int k = 0; k < 4; k++) v[4 + k] = p->pad[k];
    v[8] = p->dilation[0] ? p->dilation[0] : 1, v[9] = p->dilation[1] ? p->dilation[1] : 1;
    xattr a[] = {AIS("kernel_shape", v, 2), AIS("strides", v + 2, 2), AIS("pads", v + 4, 4),
                 AI("ceil_mode", p->ceil_mode),
                 max ? (xattr)AIS("dilations", v + 8, 2)
                     : (xattr)AI("count_include_pad", p->count_include_pad)};
    return add_node(e, n->op->name, in, 1, out, a, 5);
}

static cfx_status write_max_pool(exporter *e, const cfx__node *n, const char **in,
                                 const char *out) {
    return write_pool_any(e, n, in, out, true);
}

static cfx_status write_avg_pool(exporter *e, const cfx__node *n, const char **in,
                                 const char *out) {
    return write_pool_any(e, n, in, out, false);
}

/* Gemm with its attributes; Linear (x W^T + b) is the Gemm with transB. */
static cfx_status write_gemm_attr(exporter *e, const cfx__node *n, const char **in, const char *out,
                                  cfx__gemm_attr g) {
    xattr a[] = {AI("transA", g.trans_a), AI("transB", g.trans_b),
                 AF("alpha", g.alpha == 0 && g.beta == 0 ? 1 : g.alpha),
                 AF("beta", g.alpha == 0 && g.beta == 0 ? 1 : g.beta)};
    return add_node(e, "Gemm", in, n->in[2] >= 0 ? 3 : 2, out, a, 4);
}

static cfx_status write_gemm(exporter *e, const cfx__node *n, const char **in, const char *out) {
    return write_gemm_attr(e, n, in, out, *(const cfx__gemm_attr *)n->attr);
}

static cfx_status write_linear(exporter *e, const cfx__node *n, const char **in, const char *out) {
    return write_gemm_attr(e, n, in, out, (cfx__gemm_attr){.trans_b = 1, .alpha = 1, .beta = 1});
}

static cfx_status write_batch_norm(exporter *e, const cfx__node *n, const char **in,
                                   const char *out) {
    const cfx__bn_attr *b = n->attr;
    xattr a[] = {AF("epsilon", b->eps ? b->eps : 1e-5f),
                 AF("momentum", 1.0f - (b->momentum ? b->momentum : 0.1f))};
    return add_node(e, "BatchNormalization", in, 5, out, a, 2);
}

static cfx_status write_dropout(exporter *e, const cfx__node *n, const char **in, const char *out) {
    in[1] = const_float_init(e, out, ((const cfx__dropout_attr *)n->attr)->p);
    return add_node(e, "Dropout", in, 2, out, NULL, 0);
}

static cfx_status write_flatten(exporter *e, const cfx__node *n, const char **in, const char *out) {
    xattr a[] = {AI("axis", ((const cfx__flatten_attr *)n->attr)->axis)};
    return add_node(e, "Flatten", in, 1, out, a, 1);
}

static cfx_status write_reshape(exporter *e, const cfx__node *n, const char **in, const char *out) {
    const cfx__reshape_attr *r = n->attr;
    in[1] = const_ints_init(e, out, r->shape, r->ndim);
    return add_node(e, "Reshape", in, 2, out, NULL, 0);
}

static cfx_status write_transpose(exporter *e, const cfx__node *n, const char **in,
                                  const char *out) {
    const cfx__perm_attr *p = n->attr;
    int64_t *v = cfx__onnx_arena_alloc(&e->a, CFX_MAX_DIMS * sizeof *v);
    if (!v) return CFX_ENOMEM;
    for (int k = 0; k < p->ndim; k++) v[k] = p->perm[k];
    xattr a[] = {AIS("perm", v, p->ndim)};
    return add_node(e, "Transpose", in, 1, out, a, 1);
}

static cfx_status write_concat(exporter *e, const cfx__node *n, const char **in, const char *out) {
    xattr a[] = {AI("axis", ((const cfx__concat_attr *)n->attr)->axis)};
    return add_node(e, "Concat", in, n->nin, out, a, 1);
}

/* Slice's starts, ends, axes and steps are constant inputs from opset 10 on. */
static cfx_status write_slice(exporter *e, const cfx__node *n, const char **in, const char *out) {
    const cfx__slice_attr *s = n->attr;
    int64_t ax[CFX_MAX_DIMS];
    for (int k = 0; k < s->naxes; k++) ax[k] = s->axes[k];
    in[1] = const_ints_init(e, out, s->starts, s->naxes);
    in[2] = const_ints_init(e, out, s->ends, s->naxes);
    in[3] = const_ints_init(e, out, ax, s->naxes);
    in[4] = const_ints_init(e, out, s->steps, s->naxes);
    return add_node(e, "Slice", in, 5, out, NULL, 0);
}

static cfx_status write_pad(exporter *e, const cfx__node *n, const char **in, const char *out) {
    const cfx__pad_attr *p = n->attr;
    in[1] = const_ints_init(e, out, p->pads, 2 * p->ndim);
    in[2] = const_float_init(e, out, p->value);
    xattr a[] = {AS("mode", p->mode == CFX_PAD_REFLECT ? "reflect"
                            : p->mode == CFX_PAD_EDGE  ? "edge"
                                                       : "constant")};
    return add_node(e, "Pad", in, 3, out, a, 1);
}

/* ReduceSum takes its axes as an input from opset 13 on; ReduceMean and ReduceMax keep the
 * attribute until opset 18. */
static cfx_status write_reduce(exporter *e, const cfx__node *n, const char **in, const char *out) {
    const cfx__reduce_attr *r = n->attr;
    const char *op = n->op->name;
    int64_t *v = cfx__onnx_arena_alloc(&e->a, CFX_MAX_DIMS * sizeof *v);
    if (!v) return CFX_ENOMEM;
    for (int k = 0; k < r->naxes; k++) v[k] = r->axes[k];
    xattr a[] = {AI("keepdims", r->keepdims), AIS("axes", v, r->naxes)};
    if (!strcmp(op, "ReduceSum")) {
        if (r->naxes) in[1] = const_ints_init(e, out, v, r->naxes);
        return add_node(e, op, in, r->naxes ? 2 : 1, out, a, 1);
    }
    return add_node(e, op, in, 1, out, a, r->naxes ? 2 : 1);
}

/* Softmax and LogSoftmax along one axis (opset 13). */
static cfx_status write_softmax(exporter *e, const cfx__node *n, const char **in, const char *out) {
    xattr a[] = {AI("axis", ((const cfx__axis_attr *)n->attr)->axis)};
    return add_node(e, n->op->name, in, 1, out, a, 1);
}

/* ONNX's ArgMax gives int64; cfx's gives floats, so a Cast follows. */
static cfx_status write_argmax(exporter *e, const cfx__node *n, const char **in, const char *out) {
    const cfx__axis_attr *x = n->attr;
    const char *t = tmp_name(e, out);
    xattr a[] = {AI("axis", x->axis), AI("keepdims", x->keepdims)};
    CFX_TRY(add_node(e, "ArgMax", in, 1, t, a, 2));
    const char *ci[] = {t};
    xattr ca[] = {AI("to", CFX__ONNX_FLOAT)};
    return add_node(e, "Cast", ci, 1, out, ca, 1);
}

/* Resize (opset 13: X, roi, scales, sizes) with either sizes or scales. */
static cfx_status write_resize(exporter *e, const cfx__node *n, const char **in, const char *out) {
    const cfx_resize_attr *r = n->attr;
    const cfx_tensor *x = cfx_graph_tensor(e->g, n->in[0]);
    static const char *coords[] = {"half_pixel", "asymmetric", "align_corners",
                                   "pytorch_half_pixel"};
    static const char *nearest[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    in[1] = "";
    if (r->out_h) {
        int64_t sz[4] = {x->shape[0], x->shape[1], r->out_h, r->out_w};
        in[2] = "";
        in[3] = const_ints_init(e, out, sz, 4);
    } else {
        float sc[4] = {1, 1, r->scale_h, r->scale_w};
        const char *nm = tmp_name(e, out);
        int64_t four = 4;
        if (!nm || !add_init(e, nm, CFX__ONNX_FLOAT, 1, &four, sc, sizeof sc)) return CFX_ENOMEM;
        in[2] = nm;
    }
    xattr a[] = {AS("mode", r->mode == CFX_RESIZE_NEAREST ? "nearest" : "linear"),
                 AS("coordinate_transformation_mode", coords[r->coord]),
                 AS("nearest_mode", nearest[r->nearest])};
    return add_node(e, "Resize", in, r->out_h ? 4 : 3, out, a, 3);
}

/* Every op cfx exports, by its cfx__op_def name. */
static const struct {
    const char *op;
    writer_fn write;
} writers[] = {
    {"Abs", write_same},
    {"Add", write_same},
    {"Affine", write_affine},
    {"ArgMax", write_argmax},
    {"AveragePool", write_avg_pool},
    {"BatchNormalization", write_batch_norm},
    {"Clip", write_clip},
    {"Concat", write_concat},
    {"Conv", write_conv},
    {"ConvTranspose", write_conv_transpose},
    {"Div", write_same},
    {"Dropout", write_dropout},
    {"Erf", write_same},
    {"Exp", write_same},
    {"Flatten", write_flatten},
    {"Gemm", write_gemm},
    {"GlobalAveragePool", write_same},
    {"LeakyRelu", write_leaky_relu},
    {"Linear", write_linear},
    {"Log", write_same},
    {"LogSoftmax", write_softmax},
    {"MatMul", write_same},
    {"MaxPool", write_max_pool},
    {"Mul", write_same},
    {"Neg", write_same},
    {"NormalCdf", write_normal_cdf},
    {"Pad", write_pad},
    {"Pow", write_pow},
    {"ReduceMax", write_reduce},
    {"ReduceMean", write_reduce},
    {"ReduceSum", write_reduce},
    {"Relu", write_same},
    {"Reshape", write_reshape},
    {"Resize", write_resize},
    {"Sigmoid", write_same},
    {"Slice", write_slice},
    {"Softmax", write_softmax},
    {"Sqrt", write_same},
    {"Sub", write_same},
    {"Tanh", write_same},
    {"Transpose", write_transpose},
};

/* Writes one graph node as ONNX nodes. */
static cfx_status export_node(exporter *e, const cfx__node *n) {
    const char *op = n->op->name, *out = vname(e, n->out);
    const char *in[CFX_OP_MAX_IN + 4] = {0};
    for (int k = 0; k < n->nin; k++) {
        if (n->in[k] < 0) continue;
        CFX_TRY(emit_value(e, n->in[k]));
        in[k] = vname(e, n->in[k]);
    }
    for (size_t k = 0; k < sizeof writers / sizeof writers[0]; k++)
        if (!strcmp(op, writers[k].op)) return writers[k].write(e, n, in, out);
    return cfx_set_error(CFX_EUNSUPPORTED, "op '%s' (value '%s') has no ONNX export", op, out);
}

cfx_status cfx_onnx_save(cfx_graph *g, const char *path, const int *outputs, int n) {
    if (!g) return cfx_set_error(CFX_EINVAL, "save model: graph is NULL");
    int nv = cfx_graph_num_values(g);
    exporter e = {.g = g};
    uint8_t *mark = cfx_calloc((size_t)nv + 1, 1);
    int *outs = cfx_calloc((size_t)nv + 1, sizeof *outs);
    e.emitted = cfx_calloc((size_t)nv + 1, 1);
    cfx_status st = CFX_ENOMEM;
    int no = 0;
    if (!mark || !outs || !e.emitted) goto done;
    if (n > 0) {
        for (int k = 0; k < n; k++) {
            if (outputs[k] < 0 || outputs[k] >= nv) {
                st = cfx_set_error(CFX_EINVAL, "save model: no value %d", outputs[k]);
                goto done;
            }
            outs[no++] = outputs[k];
        }
    } else {
        for (int k = 0; k < nv; k++)
            if (g->values[k].is_output) outs[no++] = k;
    }
    if (!no) {
        st = cfx_set_error(CFX_EINVAL,
                           "save model: no outputs (mark some with cfx_graph_set_output)");
        goto done;
    }
    /* Nodes that reach an output, in graph order. */
    for (int k = 0; k < no; k++) mark[outs[k]] = 1;
    for (int k = g->nnodes - 1; k >= 0; k--) {
        const cfx__node *nd = &g->nodes[k];
        if (!mark[nd->out]) continue;
        for (int j = 0; j < nd->nin; j++)
            if (nd->in[j] >= 0) mark[nd->in[j]] = 1;
    }
    for (int k = 0; k < g->nnodes && (st = CFX_OK) == CFX_OK; k++) {
        if (!mark[g->nodes[k].out]) continue;
        st = export_node(&e, &g->nodes[k]);
        if (st != CFX_OK) goto done;
    }
    Onnx__ValueInfoProto **ovi = cfx__onnx_arena_alloc(&e.a, (size_t)no * sizeof *ovi);
    if (!ovi) {
        st = CFX_ENOMEM;
        goto done;
    }
    for (int k = 0; k < no; k++) {
        const cfx_tensor *t = cfx_graph_tensor(g, outs[k]);
        int64_t shape[CFX_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        if (t->ndim > 0) shape[0] = -1;
        if ((st = emit_value(&e, outs[k])) != CFX_OK) goto done;
        if (!(ovi[k] = cfx__onnx_value_info(&e.a, vname(&e, outs[k]), t->ndim, shape))) {
            st = CFX_ENOMEM;
            goto done;
        }
    }
    Onnx__ModelProto m;
    Onnx__GraphProto gr;
    Onnx__OperatorSetIdProto os;
    Onnx__OperatorSetIdProto *osp = &os;
    onnx__model_proto__init(&m);
    onnx__graph_proto__init(&gr);
    onnx__operator_set_id_proto__init(&os);
    os.domain = "";
    os.has_version = 1, os.version = 13;
    m.has_ir_version = 1, m.ir_version = 7;
    m.n_opset_import = 1, m.opset_import = &osp;
    m.producer_name = "cfx";
    m.producer_version = CFX_VERSION;
    m.graph = &gr;
    gr.name = "cfx";
    gr.n_node = e.nn, gr.node = e.nodes;
    gr.n_initializer = e.ni, gr.initializer = e.inits;
    gr.n_input = e.nin, gr.input = e.ins;
    gr.n_output = (size_t)no, gr.output = ovi;
    st = cfx__onnx_model_write(&m, path);
done:
    if (st == CFX_ENOMEM && !strstr(cfx_last_error(), "memory"))
        cfx_set_error(CFX_ENOMEM, "out of memory");
    cfx_free(mark);
    cfx_free(outs);
    cfx_free(e.emitted);
    cfx_free(e.nodes);
    cfx_free(e.inits);
    cfx_free(e.ins);
    cfx__onnx_arena_free(&e.a);
    return st == CFX_OK ? CFX_OK : cfx_error_context(st, "save model '%s'", path);
}
