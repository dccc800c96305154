/* split.c - cuts an autoencoder file at its latent tensor into an encoder and a decoder
 * (cfx_onnx_split). It cuts the protobuf itself, so both halves keep the original nodes,
 * weights and opset exactly; only the latent's shape comes from importing the encoder half. */
#include "engine/onnx/onnx.h"

/* Marks the nodes that outputs need, stopping at stop (may be NULL). */
static cfx_status mark_needed(const Onnx__GraphProto *gr, const char *const *outs, int nouts,
                              const char *stop, uint8_t *needed) {
    cfx__strmap need = {0}; /* names the marked nodes read (values unused) */
    cfx_status st = CFX_OK;
    for (int k = 0; k < nouts; k++)
        if (cfx__strmap_put(&need, outs[k], 0) != CFX_OK) st = CFX_ENOMEM;
    for (size_t k = gr->n_node; st == CFX_OK && k-- > 0;) {
        const Onnx__NodeProto *n = gr->node[k];
        needed[k] = 0;
        for (size_t j = 0; j < n->n_output && !needed[k]; j++)
            if (cfx__onnx_out_name(n, j) && cfx__onnx_in_set(&need, n->output[j])) needed[k] = 1;
        if (!needed[k]) continue;
        for (size_t j = 0; j < n->n_input; j++)
            if (cfx__onnx_in_name(n, j) && (!stop || strcmp(stop, n->input[j])) &&
                cfx__strmap_put(&need, n->input[j], 0) != CFX_OK)
                st = CFX_ENOMEM;
    }
    cfx__strmap_deinit(&need);
    return st;
}

static bool node_reads(const Onnx__GraphProto *gr, const uint8_t *needed, const char *name) {
    for (size_t k = 0; k < gr->n_node; k++)
        if (needed[k])
            for (size_t j = 0; j < gr->node[k]->n_input; j++)
                if (gr->node[k]->input[j] && !strcmp(gr->node[k]->input[j], name)) return true;
    return false;
}

/* Writes the nodes marked in needed, with the initializers and inputs they read, as a copy of
 * m with the given outputs (and latent as an extra input when given). */
static cfx_status write_part(Onnx__ModelProto *m, const uint8_t *needed,
                             Onnx__ValueInfoProto *extra_in, Onnx__ValueInfoProto **outs,
                             size_t nouts, const char *path) {
    Onnx__GraphProto *gr = m->graph, saved = *gr;
    cfx__onnx_arena a = {0};
    cfx_status st = CFX_OK;
    Onnx__NodeProto **nodes = cfx__onnx_arena_alloc(&a, (gr->n_node + 1) * sizeof *nodes);
    Onnx__TensorProto **inits = cfx__onnx_arena_alloc(&a, (gr->n_initializer + 1) * sizeof *inits);
    Onnx__ValueInfoProto **ins = cfx__onnx_arena_alloc(&a, (gr->n_input + 2) * sizeof *ins);
    if (!nodes || !inits || !ins) {
        cfx__onnx_arena_free(&a);
        return cfx_set_error(CFX_ENOMEM, "split: out of memory");
    }
    size_t nn = 0, ni = 0, nin = 0;
    for (size_t k = 0; k < gr->n_node; k++)
        if (needed[k]) nodes[nn++] = gr->node[k];
    for (size_t k = 0; k < gr->n_initializer; k++)
        if (node_reads(gr, needed, gr->initializer[k]->name)) inits[ni++] = gr->initializer[k];
    for (size_t k = 0; k < gr->n_input; k++)
        if (!cfx__onnx_is_initializer(gr, gr->input[k]->name) &&
            node_reads(gr, needed, gr->input[k]->name))
            ins[nin++] = gr->input[k];
    if (extra_in) ins[nin++] = extra_in;
    gr->node = nodes, gr->n_node = nn;
    gr->initializer = inits, gr->n_initializer = ni;
    gr->input = ins, gr->n_input = nin;
    gr->output = outs, gr->n_output = nouts;
    gr->n_value_info = 0;
    st = cfx__onnx_model_write(m, path);
    *gr = saved;
    cfx__onnx_arena_free(&a);
    return st;
}

cfx_status cfx_onnx_split(const char *path, const char *latent, const char *encoder_path,
                          const char *decoder_path) {
    if (!latent || !encoder_path || !decoder_path)
        return cfx_set_error(CFX_EINVAL, "split: latent and both output paths are required");
    /* The latent's shape, from importing the encoder half. */
    const char *lat[] = {latent};
    cfx_onnx_options o = {
        .batch = 1, .frozen = 1, .extra_outputs = lat, .n_extra_outputs = 1, .outputs_only = 1};
    cfx_graph *g = cfx_onnx_load(path, &o);
    if (!g) return cfx_error_context(CFX_EINVAL, "split");
    int id = cfx_graph_find(g, latent);
    int64_t shape[CFX_MAX_DIMS];
    const cfx_tensor *t = cfx_graph_tensor(g, id);
    int ndim = t ? t->ndim : 0;
    if (t) memcpy(shape, t->shape, sizeof shape);
    cfx_graph_free(g);
    if (ndim == 0) return cfx_set_error(CFX_EINVAL, "split: latent '%s' has no shape", latent);
    shape[0] = -1;
    Onnx__ModelProto *m = cfx__onnx_model_read(path);
    if (!m) return cfx_error_context(CFX_EFORMAT, "split");
    cfx__onnx_arena a = {0};
    cfx_outputs both = {0};
    cfx_status st = CFX_ENOMEM;
    Onnx__GraphProto *gr = m->graph;
    uint8_t *needed = cfx_calloc(gr->n_node + 1, 1);
    const char **outs = cfx_calloc(gr->n_output + 1, sizeof *outs);
    Onnx__ValueInfoProto *lvi = cfx__onnx_value_info(&a, latent, ndim, shape);
    if (!needed || !outs || !lvi) goto done;
    Onnx__ValueInfoProto *lvo[] = {lvi};
    /* Both halves or neither: the encoder is renamed into place only once the decoder is
     * written too. */
    cfx_outputs_begin(&both);
    if ((st = mark_needed(gr, lat, 1, NULL, needed)) != CFX_OK) goto done;
    if ((st = write_part(m, needed, NULL, lvo, 1, encoder_path)) != CFX_OK) goto done;
    /* The decoder's outputs are the model's, less the latent when the model returns it too. */
    Onnx__ValueInfoProto **dout = cfx__onnx_arena_alloc(&a, (gr->n_output + 1) * sizeof *dout);
    size_t nd = 0;
    if (!dout) goto done;
    for (size_t k = 0; k < gr->n_output; k++)
        if (strcmp(gr->output[k]->name, latent)) {
            dout[nd] = gr->output[k];
            outs[nd++] = gr->output[k]->name;
        }
    if ((st = mark_needed(gr, outs, (int)nd, latent, needed)) != CFX_OK) goto done;
    st = write_part(m, needed, lvi, dout, nd, decoder_path);
    if (st == CFX_OK) st = cfx_outputs_commit(&both);
done:
    if (st != CFX_OK) cfx_outputs_abort(&both);
    if (st == CFX_ENOMEM && !strstr(cfx_last_error(), "memory"))
        cfx_set_error(CFX_ENOMEM, "split: out of memory");
    cfx_free(needed);
    cfx_free(outs);
    cfx__onnx_arena_free(&a);
    cfx__onnx_model_free(m);
    return st == CFX_OK ? CFX_OK : cfx_error_context(st, "split '%s'", path);
}
