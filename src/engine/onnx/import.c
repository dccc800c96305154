/* import.c - reads an ONNX model file into a graph (cfx_onnx_import, cfx_onnx_load).
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
 * The op importers live in import_shape.c, import_math.c and import_nn.c, the tensor table they
 * share in tensors.c. */
#include "engine/onnx/onnx.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* The importer of node n's op, or NULL when cfx lacks it. */
const cfx__onnx_importer *cfx__onnx_find_importer(const Onnx__NodeProto *n) {
    static const cfx__onnx_importer *const families[] = {
        cfx__onnx_shape_importers, cfx__onnx_math_importers, cfx__onnx_nn_importers};
    if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx")) return NULL;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (const cfx__onnx_importer *i = families[f]; i->op; i++)
            if (n->op_type && strcmp(n->op_type, i->op) == 0) return i;
    return NULL;
}

cfx_status cfx__onnx_import_node(cfx__onnx_ctx *c, const cfx__onnx_importer *i) {
    if (i->fn) return i->fn(c);
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false);
    return x < 0 ? CFX_EINVAL : cfx__onnx_set_out(c, 0, i->unary(c->g, x));
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

/* ONNX graphs assign each tensor once (single static assignment; onnx.checker enforces it): a
 * node output that is already a graph input, an initializer or another node's output is
 * refused. The import's tensor table relies on it: a name defined again frees what the old
 * entry held while the node being imported still reads it. */
static cfx_status check_single_assignment(const Onnx__GraphProto *gr) {
    cfx__strmap def = {0}; /* name -> 0 graph input, 1 initializer, 2 + k node k */
    cfx_status st = CFX_OK;
    for (size_t k = 0; st == CFX_OK && k < gr->n_input; k++)
        if (gr->input[k]->name) st = cfx__strmap_put(&def, gr->input[k]->name, 0);
    for (size_t k = 0; st == CFX_OK && k < gr->n_initializer; k++)
        if (gr->initializer[k]->name) st = cfx__strmap_put(&def, gr->initializer[k]->name, 1);
    for (size_t k = 0; st == CFX_OK && k < gr->n_node; k++) {
        const Onnx__NodeProto *n = gr->node[k];
        for (size_t j = 0; st == CFX_OK && j < n->n_output; j++) {
            const char *nm = cfx__onnx_out_name(n, j);
            int32_t was = nm ? cfx__strmap_get(&def, nm, strlen(nm)) : -1;
            if (was < 0 && nm) {
                st = k + 2 > INT32_MAX ? CFX_EUNSUPPORTED
                                       : cfx__strmap_put(&def, nm, (int32_t)k + 2);
            } else if (was >= 0) {
                const Onnx__NodeProto *prev = was >= 2 ? gr->node[was - 2] : NULL;
                char what[300];
                if (was < 2)
                    snprintf(what, sizeof what, "%s", was ? "an initializer" : "a graph input");
                else if (prev == n)
                    snprintf(what, sizeof what, "another of its outputs");
                else
                    snprintf(what, sizeof what, "the output of node '%.200s'",
                             prev->name && prev->name[0] ? prev->name : "(unnamed)");
                st = cfx_set_error(CFX_EFORMAT,
                                   "node '%s' (%s): its output '%s' is already %s (an ONNX graph "
                                   "assigns each tensor once)",
                                   n->name && n->name[0] ? n->name : "(unnamed)",
                                   n->op_type ? n->op_type : "?", nm, what);
            }
        }
    }
    cfx__strmap_deinit(&def);
    return st;
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
    if ((st = check_single_assignment(gr)) != CFX_OK) goto done;
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
        for (int d = 0; d < nd && st == CFX_OK; d++)
            if (shape[d] == 0)
                st = cfx_set_error(CFX_EUNSUPPORTED,
                                   "input '%s': dimension %d is 0; cfx tensors have sizes of at "
                                   "least 1",
                                   vi->name, d);
        for (int d = 0; d < nd && st == CFX_OK; d++)
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
        st = cfx__onnx_import_node(&c, cfx__onnx_find_importer(c.node));
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
