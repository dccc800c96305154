/* info.c - what an ONNX file holds without importing it (cfx_onnx_info_load): inputs and
 * outputs with their shapes, op types with counts and whether cfx imports them, parameters. */
#include "engine/onnx/onnx.h"

#include <stdio.h>

static void tensor_info(const Onnx__ValueInfoProto *vi, cfx_onnx_tensor_info *t) {
    t->name = cfx_strdup(vi->name ? vi->name : "");
    if (!cfx__onnx_info_shape(vi, &t->elem_type, &t->ndim, t->shape)) t->ndim = 0;
}

void cfx_onnx_info_free(cfx_onnx_info *info) {
    if (!info) return;
    for (int k = 0; k < info->n_inputs; k++) cfx_free(info->inputs[k].name);
    for (int k = 0; k < info->n_outputs; k++) cfx_free(info->outputs[k].name);
    for (int k = 0; k < info->n_op_types; k++) cfx_free(info->op_types[k]);
    cfx_free(info->inputs);
    cfx_free(info->outputs);
    cfx_free(info->op_types);
    cfx_free(info->op_counts);
    cfx_free(info->op_supported);
    cfx_free(info->producer);
    cfx_free(info);
}

cfx_onnx_info *cfx_onnx_info_load(const char *path) {
    Onnx__ModelProto *m = cfx__onnx_model_read(path);
    if (!m) {
        cfx_error_context(CFX_EFORMAT, "model info");
        return NULL;
    }
    const Onnx__GraphProto *gr = m->graph;
    cfx_onnx_info *in = cfx_calloc(1, sizeof *in);
    if (!in) goto fail;
    in->ir_version = m->ir_version;
    in->opset = cfx__onnx_model_opset(m);
    char prod[256];
    snprintf(prod, sizeof prod, "%s%s%s", m->producer_name ? m->producer_name : "",
             m->producer_version && m->producer_version[0] ? " " : "",
             m->producer_version ? m->producer_version : "");
    in->producer = cfx_strdup(prod);
    in->inputs = cfx_calloc(gr->n_input + 1, sizeof *in->inputs);
    in->outputs = cfx_calloc(gr->n_output + 1, sizeof *in->outputs);
    in->op_types = cfx_calloc(gr->n_node + 1, sizeof *in->op_types);
    in->op_counts = cfx_calloc(gr->n_node + 1, sizeof *in->op_counts);
    in->op_supported = cfx_calloc(gr->n_node + 1, sizeof *in->op_supported);
    if (!in->producer || !in->inputs || !in->outputs || !in->op_types || !in->op_counts ||
        !in->op_supported)
        goto fail;
    for (size_t k = 0; k < gr->n_input; k++)
        if (gr->input[k]->name && !cfx__onnx_is_initializer(gr, gr->input[k]->name))
            tensor_info(gr->input[k], &in->inputs[in->n_inputs++]);
    for (size_t k = 0; k < gr->n_output; k++)
        tensor_info(gr->output[k], &in->outputs[in->n_outputs++]);
    in->n_nodes = (int)gr->n_node;
    for (size_t k = 0; k < gr->n_node; k++) {
        const char *op = gr->node[k]->op_type ? gr->node[k]->op_type : "?";
        int j = 0;
        while (j < in->n_op_types && strcmp(in->op_types[j], op)) j++;
        if (j == in->n_op_types) {
            if (!(in->op_types[j] = cfx_strdup(op))) goto fail;
            in->op_supported[j] = cfx__onnx_find_importer(gr->node[k]) != NULL;
            in->n_op_types++;
        }
        in->op_counts[j]++;
    }
    in->n_initializers = (int)gr->n_initializer;
    for (size_t k = 0; k < gr->n_initializer; k++) {
        int64_t n = cfx__onnx_tensor_numel(gr->initializer[k]);
        if (n > 0) in->n_weights += n;
    }
    cfx__onnx_model_free(m);
    return in;
fail:
    cfx__onnx_model_free(m);
    cfx_onnx_info_free(in);
    cfx_set_error(CFX_ENOMEM, "model info: out of memory");
    return NULL;
}
