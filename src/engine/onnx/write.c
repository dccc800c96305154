/* write.c - writing ONNX files: a model serialised and committed atomically, and the arena that
 * holds every protobuf struct built for one file (export and split build a ModelProto out of
 * many small pieces and free them all at once). */
#include "engine/onnx/onnx.h"

#include <errno.h>
#include <stdio.h>

cfx_status cfx__onnx_model_write(const Onnx__ModelProto *m, const char *path) {
    size_t size = onnx__model_proto__get_packed_size(m);
    uint8_t *buf = cfx_malloc(size ? size : 1);
    if (!buf) return cfx_set_error(CFX_ENOMEM, "save model: out of memory (%zu bytes)", size);
    onnx__model_proto__pack(m, buf);
    cfx_file af;
    cfx_status s = cfx_file_create(&af, path);
    if (s == CFX_OK) {
        if (fwrite(buf, 1, size, af.f) != size) {
            cfx_file_abort(&af);
            s = cfx_set_error(CFX_EIO, "cannot write '%s': %s", path, strerror(errno));
        } else {
            s = cfx_file_commit(&af);
        }
    }
    cfx_free(buf);
    return s;
}

void *cfx__onnx_arena_alloc(cfx__onnx_arena *a, size_t size) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 256;
        void **np = cfx_realloc(a->p, cap * sizeof *np);
        if (!np) return NULL;
        a->p = np, a->cap = cap;
    }
    void *q = cfx_calloc(1, size ? size : 1);
    if (q) a->p[a->n++] = q;
    return q;
}

char *cfx__onnx_arena_str(cfx__onnx_arena *a, const char *s) {
    char *d = cfx__onnx_arena_alloc(a, strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

void cfx__onnx_arena_free(cfx__onnx_arena *a) {
    for (size_t k = 0; k < a->n; k++) cfx_free(a->p[k]);
    cfx_free(a->p);
}

/* A float tensor's value_info; shape[0] < 0 writes the symbolic dimension "batch". */
Onnx__ValueInfoProto *cfx__onnx_value_info(cfx__onnx_arena *a, const char *name, int ndim,
                                           const int64_t *shape) {
    Onnx__ValueInfoProto *vi = cfx__onnx_arena_alloc(a, sizeof *vi);
    Onnx__TypeProto *tp = cfx__onnx_arena_alloc(a, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = cfx__onnx_arena_alloc(a, sizeof *tt);
    Onnx__TensorShapeProto *sp = cfx__onnx_arena_alloc(a, sizeof *sp);
    Onnx__TensorShapeProto__Dimension **dims =
        cfx__onnx_arena_alloc(a, (size_t)(ndim + 1) * sizeof *dims);
    if (!vi || !tp || !tt || !sp || !dims) return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sp);
    for (int k = 0; k < ndim; k++) {
        Onnx__TensorShapeProto__Dimension *d = cfx__onnx_arena_alloc(a, sizeof *d);
        if (!d) return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (shape[k] < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = cfx__onnx_arena_str(a, "batch");
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = shape[k];
        }
        dims[k] = d;
    }
    sp->n_dim = (size_t)ndim;
    sp->dim = dims;
    tt->has_elem_type = 1;
    tt->elem_type = CFX__ONNX_FLOAT;
    tt->shape = sp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->name = cfx__onnx_arena_str(a, name);
    vi->type = tp;
    return vi->name ? vi : NULL;
}
