/* proto.c - the protobuf side of ONNX files: reading and freeing a model (through cfx's
 * allocation hook, so that protobuf-c's allocations count and fail like ours), the opset, tensor
 * data in any of its forms (raw little-endian bytes, typed fields, or external data in a file
 * next to the model), node attributes and value_info shapes. Nothing here knows about graphs. */
#include "engine/onnx/onnx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void *pb_alloc(void *opaque, size_t n) {
    (void)opaque;
    return cfx_malloc(n ? n : 1);
}

static void pb_free(void *opaque, void *p) {
    (void)opaque;
    cfx_free(p);
}

static ProtobufCAllocator pb_allocator = {pb_alloc, pb_free, NULL};

void cfx__onnx_model_free(Onnx__ModelProto *m) {
    if (m) onnx__model_proto__free_unpacked(m, &pb_allocator);
}

bool cfx__onnx_is_int_type(int t) {
    return t == CFX__ONNX_UINT8 || t == CFX__ONNX_INT8 || t == CFX__ONNX_INT16 ||
           t == CFX__ONNX_INT32 || t == CFX__ONNX_INT64 || t == CFX__ONNX_BOOL;
}

/* Reads and parses a model file. NULL with a message. */
Onnx__ModelProto *cfx__onnx_model_read(const char *path) {
    char *data;
    size_t size;
    if (!path) {
        cfx_set_error(CFX_EINVAL, "model path is NULL");
        return NULL;
    }
    /* One allocation of the file's size (models are large; growing a buffer costs time). */
    FILE *f = fopen(path, "rb");
    if (!f) {
        cfx_set_error(CFX_EIO, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    long len = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    data = len >= 0 && fseek(f, 0, SEEK_SET) == 0 ? cfx_malloc((size_t)len + 1) : NULL;
    size = data ? fread(data, 1, (size_t)len, f) : 0;
    fclose(f);
    if (!data || size != (size_t)len) {
        cfx_free(data);
        cfx_set_error(CFX_EIO, "cannot read '%s'", path);
        return NULL;
    }
    Onnx__ModelProto *m = onnx__model_proto__unpack(&pb_allocator, size, (const uint8_t *)data);
    cfx_free(data);
    if (!m) {
        cfx_set_error(CFX_EFORMAT,
                      "'%s' is not an ONNX model (the protobuf is truncated or corrupt)", path);
        return NULL;
    }
    if (!m->graph || (m->graph->n_node == 0 && m->graph->n_output == 0)) {
        cfx__onnx_model_free(m);
        cfx_set_error(CFX_EFORMAT, "'%s' is not an ONNX model (it has no graph)", path);
        return NULL;
    }
    /* ONNX requires a name on every graph input, output and initializer; the import, info and
     * split look them up by name (an output without one reached strlen(NULL), found by
     * fuzzing). */
    const Onnx__GraphProto *gr = m->graph;
    const char *what = NULL;
    size_t k = 0;
    for (k = 0; !what && k < gr->n_input; k++)
        if (!gr->input[k]->name) what = "input";
    for (k = what ? k : 0; !what && k < gr->n_output; k++)
        if (!gr->output[k]->name) what = "output";
    for (k = what ? k : 0; !what && k < gr->n_initializer; k++)
        if (!gr->initializer[k]->name) what = "initializer";
    if (what) {
        cfx__onnx_model_free(m);
        cfx_set_error(CFX_EFORMAT, "'%s' is not a valid ONNX model: graph %s %zu has no name", path,
                      what, k - 1);
        return NULL;
    }
    return m;
}

/* The version of the default ("" or "ai.onnx") operator set. */
int64_t cfx__onnx_model_opset(const Onnx__ModelProto *m) {
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        if (!o->domain || !o->domain[0] || strcmp(o->domain, "ai.onnx") == 0)
            return o->has_version ? o->version : 1;
    }
    return 1;
}

/* Whether an external data location stays inside the model's folder: a relative path without a
 * ".." component (as ONNX Runtime requires) that, when the file exists, still names a file under
 * the folder with symbolic links resolved. A model must not read /etc/passwd or ../../secrets
 * into its weights. */
static bool location_inside(const char *dir, const char *loc, const char *full) {
    if (!loc[0] || loc[0] == '/') return false;
    for (const char *p = loc; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') return false;
        p += n;
        while (*p == '/') p++;
    }
    if (access(full, F_OK) != 0) return true; /* missing: the caller says so */
    char *rdir = realpath(dir[0] ? dir : ".", NULL), *rfile = realpath(full, NULL);
    size_t n = rdir ? strlen(rdir) : 0;
    bool inside = rdir && rfile && strncmp(rfile, rdir, n) == 0 &&
                  (rfile[n] == '/' || (n == 1 && rdir[0] == '/'));
    free(rdir); /* realpath's memory is the C library's, not cfx's */
    free(rfile);
    return inside;
}

/* Where external data ("location", "offset", "length") lies: the file (full, size bytes) and
 * offset, checked to hold bytes inside the model's folder. */
static cfx_status external_where(const char *dir, const Onnx__TensorProto *t, size_t bytes,
                                 char *full, size_t size, long long *offset) {
    const char *loc = NULL;
    long long off = 0, len = -1;
    for (size_t k = 0; k < t->n_external_data; k++) {
        const Onnx__StringStringEntryProto *kv = t->external_data[k];
        if (!kv->key || !kv->value) continue;
        if (strcmp(kv->key, "location") == 0)
            loc = kv->value;
        else if (strcmp(kv->key, "offset") == 0)
            off = atoll(kv->value);
        else if (strcmp(kv->key, "length") == 0)
            len = atoll(kv->value);
    }
    if (!loc)
        return cfx_set_error(CFX_EFORMAT, "tensor '%s' has external data without a location",
                             t->name ? t->name : "");
    if (len >= 0 && (size_t)len < bytes)
        return cfx_set_error(CFX_EFORMAT,
                             "tensor '%s': external data length %lld is below %zu bytes", t->name,
                             len, bytes);
    if (off < 0)
        return cfx_set_error(CFX_EFORMAT, "tensor '%s': external data offset %lld is negative",
                             t->name ? t->name : "", off);
    snprintf(full, size, "%s%s", loc[0] == '/' ? "" : dir, loc);
    if (!location_inside(dir, loc, full))
        return cfx_set_error(CFX_EFORMAT,
                             "tensor '%s': external data location '%s' is outside the model's "
                             "folder (only relative paths inside it are read)",
                             t->name ? t->name : "", loc);
    *offset = off;
    return CFX_OK;
}

static cfx_status external_short(const Onnx__TensorProto *t, const char *full, size_t bytes,
                                 long long off) {
    return cfx_set_error(CFX_EFORMAT,
                         "tensor '%s': external data file '%s' is shorter than %zu bytes at "
                         "offset %lld",
                         t->name ? t->name : "", full, bytes, off);
}

static cfx_status external_open_error(const Onnx__TensorProto *t, const char *full) {
    return cfx_set_error(CFX_EIO, "tensor '%s': cannot open external data file '%s': %s",
                         t->name ? t->name : "", full, strerror(errno));
}

/* Reads external data next to the model into buf. */
static cfx_status read_external(const char *dir, const Onnx__TensorProto *t, void *buf,
                                size_t bytes) {
    char full[2048];
    long long off;
    CFX_TRY(external_where(dir, t, bytes, full, sizeof full, &off));
    FILE *f = fopen(full, "rb");
    if (!f) return external_open_error(t, full);
    bool ok = fseek(f, off, SEEK_SET) == 0 && fread(buf, 1, bytes, f) == bytes;
    fclose(f);
    return ok ? CFX_OK : external_short(t, full, bytes, off);
}

static size_t type_size(int t) {
    switch (t) {
        case CFX__ONNX_FLOAT:
        case CFX__ONNX_INT32:
            return 4;
        case CFX__ONNX_DOUBLE:
        case CFX__ONNX_INT64:
            return 8;
        case CFX__ONNX_INT16:
            return 2;
        case CFX__ONNX_UINT8:
        case CFX__ONNX_INT8:
        case CFX__ONNX_BOOL:
            return 1;
        default:
            return 0;
    }
}

int64_t cfx__onnx_tensor_numel(const Onnx__TensorProto *t) {
    int64_t n = 1;
    for (size_t k = 0; k < t->n_dims; k++) {
        if (t->dims[k] < 0 || (t->dims[k] && n > INT64_MAX / t->dims[k])) return -1;
        n *= t->dims[k];
    }
    return n;
}

/* Element k of a raw little-endian buffer of type dt, as double. */
static double raw_get(const uint8_t *p, int dt, int64_t k) {
    switch (dt) {
        case CFX__ONNX_FLOAT: {
            float v;
            memcpy(&v, p + 4 * k, 4);
            return v;
        }
        case CFX__ONNX_DOUBLE: {
            double v;
            memcpy(&v, p + 8 * k, 8);
            return v;
        }
        case CFX__ONNX_INT64: {
            int64_t v;
            memcpy(&v, p + 8 * k, 8);
            return (double)v;
        }
        case CFX__ONNX_INT32: {
            int32_t v;
            memcpy(&v, p + 4 * k, 4);
            return v;
        }
        case CFX__ONNX_INT16: {
            int16_t v;
            memcpy(&v, p + 2 * k, 2);
            return v;
        }
        case CFX__ONNX_INT8:
            return (int8_t)p[k];
        default:
            return p[k];
    }
}

/* Whether t holds the data of n elements (raw bytes, typed values, or an external file that
 * long), without reading it, with cfx__onnx_tensor_read's message when not: callers check
 * before they allocate n elements, so that a small file cannot claim gigabytes (found by
 * fuzzing: a 148-byte model's 2 GB weight, with 48 bytes of external data). */
cfx_status cfx__onnx_tensor_check(const char *dir, const Onnx__TensorProto *t, int64_t n) {
    int dt = t->data_type;
    const char *nm = t->name ? t->name : "";
    size_t es = type_size(dt);
    if (!es)
        return cfx_set_error(CFX_EUNSUPPORTED,
                             "tensor '%s' has data type %d, which cfx does not "
                             "read (float, double and integer tensors only)",
                             nm, dt);
    size_t bytes = (size_t)n * es;
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        char full[2048];
        long long off;
        struct stat st;
        CFX_TRY(external_where(dir, t, bytes, full, sizeof full, &off));
        if (stat(full, &st) != 0) return external_open_error(t, full);
        if (S_ISREG(st.st_mode) && (double)st.st_size < (double)off + (double)bytes)
            return external_short(t, full, bytes, off);
        return CFX_OK;
    }
    if (t->has_raw_data) {
        if (t->raw_data.len != bytes)
            return cfx_set_error(CFX_EFORMAT,
                                 "tensor '%s' holds %zu bytes of data, not the %lld its "
                                 "shape needs (a truncated or corrupt file)",
                                 nm, t->raw_data.len, (long long)bytes);
        return CFX_OK;
    }
    size_t have = dt == CFX__ONNX_FLOAT    ? t->n_float_data
                  : dt == CFX__ONNX_DOUBLE ? t->n_double_data
                  : dt == CFX__ONNX_INT64  ? t->n_int64_data
                                           : t->n_int32_data;
    if ((int64_t)have != n)
        return cfx_set_error(CFX_EFORMAT,
                             "tensor '%s' holds %zu values, not the %lld its shape needs", nm, have,
                             (long long)n);
    return CFX_OK;
}

/* Decodes n elements of t into f (floats) or i (int64s), exactly one of them non-NULL. */
cfx_status cfx__onnx_tensor_read(const char *dir, const Onnx__TensorProto *t, float *f, int64_t *i,
                                 int64_t n) {
    CFX_TRY(cfx__onnx_tensor_check(dir, t, n)); /* the type, and data enough for n */
    int dt = t->data_type;
    size_t es = type_size(dt);
    const uint8_t *raw = NULL;
    uint8_t *ext = NULL;
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        if (dt == CFX__ONNX_FLOAT && f) {
            /* The common case, read straight into place. */
            return read_external(dir, t, f, (size_t)n * 4);
        }
        ext = cfx_malloc((size_t)n * es + 1);
        if (!ext) return CFX_ENOMEM;
        cfx_status s = read_external(dir, t, ext, (size_t)n * es);
        if (s != CFX_OK) {
            cfx_free(ext);
            return s;
        }
        raw = ext;
    } else if (t->has_raw_data) {
        raw = t->raw_data.data;
        if (dt == CFX__ONNX_FLOAT && f) {
            memcpy(f, raw, (size_t)n * 4);
            return CFX_OK;
        }
    }
    if (raw && dt == CFX__ONNX_INT64 && i) { /* exact: a double holds 53 bits */
        memcpy(i, raw, (size_t)n * 8);
        cfx_free(ext);
        return CFX_OK;
    }
    if (raw) {
        for (int64_t k = 0; k < n; k++) {
            double v = raw_get(raw, dt, k);
            if (f)
                f[k] = (float)v;
            else
                i[k] = (int64_t)v;
        }
        cfx_free(ext);
        return CFX_OK;
    }
    /* Typed fields: float_data, double_data, int64_data, or int32_data for the small types. */
    for (int64_t k = 0; k < n; k++) {
        double v = dt == CFX__ONNX_FLOAT    ? t->float_data[k]
                   : dt == CFX__ONNX_DOUBLE ? t->double_data[k]
                   : dt == CFX__ONNX_INT64  ? (double)t->int64_data[k]
                                            : t->int32_data[k];
        if (f)
            f[k] = (float)v;
        else
            i[k] = dt == CFX__ONNX_INT64 ? t->int64_data[k] : (int64_t)v;
    }
    return CFX_OK;
}

/* Input k's name, or NULL when absent (missing or ""). */
const char *cfx__onnx_in_name(const Onnx__NodeProto *n, size_t k) {
    return k < n->n_input && n->input[k] && n->input[k][0] ? n->input[k] : NULL;
}

const char *cfx__onnx_out_name(const Onnx__NodeProto *n, size_t k) {
    return k < n->n_output && n->output[k] && n->output[k][0] ? n->output[k] : NULL;
}

const Onnx__AttributeProto *cfx__onnx_attr(const Onnx__NodeProto *n, const char *name) {
    for (size_t k = 0; k < n->n_attribute; k++)
        if (n->attribute[k]->name && strcmp(n->attribute[k]->name, name) == 0)
            return n->attribute[k];
    return NULL;
}

int64_t cfx__onnx_attr_int(const Onnx__NodeProto *n, const char *name, int64_t def) {
    const Onnx__AttributeProto *a = cfx__onnx_attr(n, name);
    return a && a->has_i ? a->i : def;
}

float cfx__onnx_attr_float(const Onnx__NodeProto *n, const char *name, float def) {
    const Onnx__AttributeProto *a = cfx__onnx_attr(n, name);
    return a && a->has_f ? a->f : def;
}

/* The string attribute copied into buf (NUL-terminated), or def. */
const char *cfx__onnx_attr_str(const Onnx__NodeProto *n, const char *name, const char *def,
                               char *buf, size_t size) {
    const Onnx__AttributeProto *a = cfx__onnx_attr(n, name);
    if (!a || !a->has_s) return def;
    size_t len = a->s.len < size - 1 ? a->s.len : size - 1;
    memcpy(buf, a->s.data, len);
    buf[len] = 0;
    return buf;
}

/* Copies an ints attribute into out (at most cap); returns its length, or -1 when absent. */
int cfx__onnx_attr_ints(const Onnx__NodeProto *n, const char *name, int64_t *out, int cap) {
    const Onnx__AttributeProto *a = cfx__onnx_attr(n, name);
    if (!a || (!a->n_ints && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS)) return -1;
    int cnt = (int)a->n_ints;
    for (int k = 0; k < cnt && k < cap; k++) out[k] = a->ints[k];
    return cnt;
}

/* The shape of a value_info (symbolic dimensions as -1, a size of 0 as 0); false when it has
 * none. */
bool cfx__onnx_info_shape(const Onnx__ValueInfoProto *vi, int *elem, int *ndim, int64_t *shape) {
    const Onnx__TypeProto *tp = vi ? vi->type : NULL;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return false;
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    *elem = tt->has_elem_type ? tt->elem_type : 0;
    if (!tt->shape || tt->shape->n_dim > CFX_MAX_DIMS) return false;
    *ndim = (int)tt->shape->n_dim;
    for (int k = 0; k < *ndim; k++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[k];
        shape[k] = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
                           d->dim_value >= 0
                       ? d->dim_value
                       : -1;
    }
    return true;
}

bool cfx__onnx_is_initializer(const Onnx__GraphProto *gr, const char *name) {
    for (size_t k = 0; k < gr->n_initializer; k++)
        if (gr->initializer[k]->name && strcmp(gr->initializer[k]->name, name) == 0) return true;
    return false;
}

/* Whether name is a key of the string set m. */
bool cfx__onnx_in_set(const cfx__strmap *m, const char *name) {
    return cfx__strmap_get(m, name, strlen(name)) >= 0;
}

bool cfx__onnx_in_list(const char *const *list, int n, const char *name) {
    for (int k = 0; k < n; k++)
        if (list[k] && strcmp(list[k], name) == 0) return true;
    return false;
}
