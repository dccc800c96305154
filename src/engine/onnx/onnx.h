/* onnx.h - the private interface between the modules of src/engine/onnx/, bottom-up:
 *
 *   proto.c         reading a model file, tensor data (inline or external), node attributes
 *   write.c         writing a model file, the arena of the protobuf structs built for one
 *   tensors.c       the import context: what each tensor name stands for, values, constants
 *   fold.c          constant folding of the integer shape arithmetic exporters emit
 *   import_shape.c  importers of constants and shape ops   } each with its table of ONNX op
 *   import_math.c   importers of elementwise ops, reductions } types, which import.c and info.c
 *   import_nn.c     importers of layers (conv, pool, ...)    } look an op up in
 *   import.c        the import driver: cfx_onnx_import, cfx_onnx_load
 *   info.c          file summaries: cfx_onnx_info_load
 *   split.c         cutting an autoencoder file in two: cfx_onnx_split
 *   export.c        writing a graph as ONNX: cfx_onnx_save
 *
 * A module uses only those above it in this list (scripts/layers.py checks that the symbol
 * graph has no cycle). Not part of the public API. */
#ifndef CFX_ENGINE_ONNX_H
#define CFX_ENGINE_ONNX_H

#include "base/strmap.h"
#include "engine/graph.h"
#include "engine/ops/ops.h"
#include "onnx.pb-c.h"

/* The ONNX element types cfx reads. */
enum {
    CFX__ONNX_FLOAT = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
    CFX__ONNX_UINT8 = ONNX__TENSOR_PROTO__DATA_TYPE__UINT8,
    CFX__ONNX_INT8 = ONNX__TENSOR_PROTO__DATA_TYPE__INT8,
    CFX__ONNX_INT16 = ONNX__TENSOR_PROTO__DATA_TYPE__INT16,
    CFX__ONNX_INT32 = ONNX__TENSOR_PROTO__DATA_TYPE__INT32,
    CFX__ONNX_INT64 = ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
    CFX__ONNX_BOOL = ONNX__TENSOR_PROTO__DATA_TYPE__BOOL,
    CFX__ONNX_DOUBLE = ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE,
};

/* ---------------------------------------------------------------------- proto.c --- */

/* Reads and parses a model file; NULL with a message. Free it with cfx__onnx_model_free. */
Onnx__ModelProto *cfx__onnx_model_read(const char *path);
/* Frees a model that cfx__onnx_model_read returned; NULL is fine. */
void cfx__onnx_model_free(Onnx__ModelProto *m);
/* The version of the default ("" or "ai.onnx") operator set. */
int64_t cfx__onnx_model_opset(const Onnx__ModelProto *m);
/* Whether element type t is an integer (or bool) type, which import keeps as int64. */
bool cfx__onnx_is_int_type(int t);
/* The element count of t from its dims, or -1 when they are negative or overflow. */
int64_t cfx__onnx_tensor_numel(const Onnx__TensorProto *t);
/* Whether t holds n elements' data (without reading it); check before allocating for it. */
cfx_status cfx__onnx_tensor_check(const char *dir, const Onnx__TensorProto *t, int64_t n);
/* Decodes n elements of t into f (floats) or i (int64s), exactly one of them non-NULL; external
 * data is read relative to dir (the model's folder, with its trailing '/'). */
cfx_status cfx__onnx_tensor_read(const char *dir, const Onnx__TensorProto *t, float *f, int64_t *i,
                                 int64_t n);
/* Input or output k's name, or NULL when absent (missing or ""). */
const char *cfx__onnx_in_name(const Onnx__NodeProto *n, size_t k);
const char *cfx__onnx_out_name(const Onnx__NodeProto *n, size_t k);
/* Attribute lookup by name; the typed forms return def when absent. */
const Onnx__AttributeProto *cfx__onnx_attr(const Onnx__NodeProto *n, const char *name);
int64_t cfx__onnx_attr_int(const Onnx__NodeProto *n, const char *name, int64_t def);
float cfx__onnx_attr_float(const Onnx__NodeProto *n, const char *name, float def);
/* The string attribute copied into buf (NUL-terminated), or def. */
const char *cfx__onnx_attr_str(const Onnx__NodeProto *n, const char *name, const char *def,
                               char *buf, size_t size);
/* Copies an ints attribute into out (at most cap); returns its length, or -1 when absent. */
int cfx__onnx_attr_ints(const Onnx__NodeProto *n, const char *name, int64_t *out, int cap);
/* The shape of a value_info (symbolic dimensions as -1, a size of 0 as 0); false when it has
 * none. */
bool cfx__onnx_info_shape(const Onnx__ValueInfoProto *vi, int *elem, int *ndim, int64_t *shape);
/* Whether name is an initializer of gr. */
bool cfx__onnx_is_initializer(const Onnx__GraphProto *gr, const char *name);
/* Whether name is a key of the string set m (a map whose values are unused). */
bool cfx__onnx_in_set(const cfx__strmap *m, const char *name);
/* Whether name is one of the n strings of list (NULL entries are skipped). */
bool cfx__onnx_in_list(const char *const *list, int n, const char *name);

/* ---------------------------------------------------------------------- write.c --- */

/* Serialises m into path (atomically, through cfx_file). */
cfx_status cfx__onnx_model_write(const Onnx__ModelProto *m, const char *path);

/* Allocations of one file being built, freed together. A zeroed struct is empty. */
typedef struct cfx__onnx_arena {
    void **p;
    size_t n, cap;
} cfx__onnx_arena;

/* size zeroed bytes owned by a; NULL when out of memory. */
void *cfx__onnx_arena_alloc(cfx__onnx_arena *a, size_t size);
/* A copy of s owned by a. */
char *cfx__onnx_arena_str(cfx__onnx_arena *a, const char *s);
void cfx__onnx_arena_free(cfx__onnx_arena *a);
/* A float tensor's value_info in a; shape[0] < 0 writes the symbolic dimension "batch". */
Onnx__ValueInfoProto *cfx__onnx_value_info(cfx__onnx_arena *a, const char *name, int ndim,
                                           const int64_t *shape);

/* -------------------------------------------------------------------- tensors.c --- */

/* What a tensor name stands for while importing. */
typedef struct cfx__onnx_entry {
    int id;     /* graph value, or -1 */
    bool known; /* folded constant data below (or an initializer not read yet) */
    int dtype;  /* CFX__ONNX_FLOAT or CFX__ONNX_INT64 once decoded */
    int ndim;
    int64_t shape[CFX_MAX_DIMS];
    int64_t numel;
    float *f;                      /* CFX__ONNX_FLOAT data */
    int64_t *i;                    /* CFX__ONNX_INT64 data */
    uint8_t *batch;                /* ints: element came from a batch dimension (see import.c) */
    const Onnx__TensorProto *init; /* an initializer or Constant tensor not yet decoded */
    bool is_init;                  /* a weight (initializer), not a Constant */
} cfx__onnx_entry;

/* One import. The tensor table: entries in an array, names mapped to their index. Entries move
 * when the array grows, that is when cfx__onnx_define adds a name: a caller that holds an
 * entry * across a call that may define (define, new_const, set_out, alias_out, the folds)
 * copies what it needs first or looks the entry up again. */
typedef struct cfx__onnx_ctx {
    cfx_graph *g;
    const cfx_onnx_options *o;
    const char *path;
    char dir[1024]; /* the model's folder, for external data */
    const Onnx__ModelProto *m;
    int64_t opset;
    const Onnx__NodeProto *node; /* being imported */
    cfx__onnx_entry *tab;        /* (n) */
    size_t n, cap;
    cfx__strmap names;     /* tensor name (borrowed from the model or the options) -> index */
    const uint8_t *needed; /* per node: imported */
    const char **want;     /* output names */
    int nwant;
    cfx__strmap folded_bn; /* output names of BatchNormalizations folded into a Conv */
} cfx__onnx_ctx;

/* The entry of a tensor name, or NULL. */
cfx__onnx_entry *cfx__onnx_lookup(cfx__onnx_ctx *c, const char *name);
/* The entry for name, created empty (id -1, nothing known) when new; NULL on no memory. The
 * name is borrowed: it must outlive the table. */
cfx__onnx_entry *cfx__onnx_define(cfx__onnx_ctx *c, const char *name);
void cfx__onnx_ctx_free(cfx__onnx_ctx *c);
/* An error about the current node: "node 'conv1' (Conv, opset 13): <msg>". */
cfx_status cfx__onnx_fail(cfx__onnx_ctx *c, cfx_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The graph's last error as an error about the current node. */
cfx_status cfx__onnx_graph_error(cfx__onnx_ctx *c);
/* Makes e a folded constant described by tensor t (data read later, on first use). */
cfx_status cfx__onnx_entry_from_tensor(cfx__onnx_ctx *c, cfx__onnx_entry *e,
                                       const Onnx__TensorProto *t, bool is_init);
/* Decodes an entry's data if it has not been (ints stay ints, the rest becomes float). */
cfx_status cfx__onnx_entry_decode(cfx__onnx_ctx *c, cfx__onnx_entry *e);
/* A fresh folded constant for output name, with room for its data. */
cfx__onnx_entry *cfx__onnx_new_const(cfx__onnx_ctx *c, const char *name, int dtype, int ndim,
                                     const int64_t *shape);
/* Element k of a folded constant, as double. */
double cfx__onnx_cget(const cfx__onnx_entry *e, int64_t k);
/* The name of input k of the node being imported, or NULL when absent. */
const char *cfx__onnx_input(const cfx__onnx_ctx *c, size_t k);
/* The prefixed graph name of a tensor, in buf. */
const char *cfx__onnx_gname(cfx__onnx_ctx *c, const char *name, char *buf, size_t size);
/* The graph value of tensor name, making a folded constant into a graph value the first time:
 * a float initializer becomes a parameter unless frozen or stat (batch-norm statistics). -1
 * with a message. */
int cfx__onnx_value_of(cfx__onnx_ctx *c, const char *name, bool stat);
/* The folded constant for tensor name (decoded), or NULL when it is a graph value. */
cfx__onnx_entry *cfx__onnx_const_of(cfx__onnx_ctx *c, const char *name);
/* Reads constant input k as int64s / floats (at most cap); the count, or -1 with a message.
 * batch (may be NULL) flags elements that came from a batch dimension. */
int cfx__onnx_const_ints(cfx__onnx_ctx *c, size_t k, int64_t *out, int cap, uint8_t *batch);
int cfx__onnx_const_floats(cfx__onnx_ctx *c, size_t k, float *out, int cap);
/* Axes from an attribute (older opsets) or input 1 (opset 13 on); the count or -1. */
int cfx__onnx_axes_of(cfx__onnx_ctx *c, int64_t *axes, bool from_input);
/* Records graph value id as output k of the current node, naming it after the tensor. */
cfx_status cfx__onnx_set_out(cfx__onnx_ctx *c, size_t k, int id);
/* Output k of the current node is the same thing as input j (Identity, no-op casts). */
cfx_status cfx__onnx_alias_out(cfx__onnx_ctx *c, size_t k, size_t j);
/* Fails when any output beyond the first is used (MaxPool indices, BN running stats, ...). */
cfx_status cfx__onnx_only_first_output(cfx__onnx_ctx *c);
/* A possibly negative axis counted from the front. */
int cfx__onnx_norm_axis(int64_t axis, int ndim);
/* The tensor of graph value id. */
const cfx_tensor *cfx__onnx_tensor(cfx__onnx_ctx *c, int id);

/* ----------------------------------------------------------------------- fold.c --- */

/* Add/Sub/Mul/Div ('+', '-', '*', '/') of two folded constants into the current node's output,
 * NumPy broadcasting; integer division truncates as ONNX's integer Div. */
cfx_status cfx__onnx_fold_binary(cfx__onnx_ctx *c, cfx__onnx_entry *a, cfx__onnx_entry *b, char op);
/* The output of a shape-only change of a constant (Reshape, Flatten, Squeeze, Unsqueeze). */
cfx_status cfx__onnx_fold_reshape(cfx__onnx_ctx *c, cfx__onnx_entry *src, int ndim,
                                  const int64_t *shape);

/* -------------------------------------------------------------- import_*.c --- */

/* Imports c->node: adds its graph ops, or folds it into constants. */
typedef cfx_status (*cfx__onnx_import_fn)(cfx__onnx_ctx *c);
typedef struct cfx__onnx_importer {
    const char *op; /* ONNX op type */
    cfx__onnx_import_fn fn;
    /* Instead of fn, for an op of one input and no attributes: the graph builder. */
    int (*unary)(cfx_graph *g, int x);
} cfx__onnx_importer;

/* Each family's importers, ending with {NULL, NULL}. */
extern const cfx__onnx_importer cfx__onnx_shape_importers[];
extern const cfx__onnx_importer cfx__onnx_math_importers[];
extern const cfx__onnx_importer cfx__onnx_nn_importers[];

/* --------------------------------------------------------------------- import.c --- */

/* The importer of node n's op, or NULL when cfx lacks it. */
const cfx__onnx_importer *cfx__onnx_find_importer(const Onnx__NodeProto *n);
/* Imports c->node with importer i (its fn, or its unary builder on input 0). */
cfx_status cfx__onnx_import_node(cfx__onnx_ctx *c, const cfx__onnx_importer *i);

#endif
