/* graph.h - the engine's private interface: values, nodes, and how an op plugs in.
 *
 * An op is a cfx__op_def: infer checks input shapes and gives the output shape plus the bytes
 * it needs kept between forward and backward (state) and as temporaries (work); forward writes
 * the output; backward ADDS each input's gradient into din[i] (NULL when that input needs
 * none), which is what makes fan-out correct. Ops never allocate in forward or backward. */
#ifndef CFX_GRAPH_H
#define CFX_GRAPH_H

#include "base/base.h"

#define CFX_OP_MAX_IN 8

typedef struct cfx__node cfx__node;

/* What an op sees when it runs. in[i] is NULL for an absent optional input. */
typedef struct cfx__op_args {
    const cfx_tensor *in[CFX_OP_MAX_IN];
    float *din[CFX_OP_MAX_IN];
    /* Backward of an op whose def sets assigns_grads: din[i] holds garbage and this op is the
     * first to write it in this pass, so it must STORE all of din[i] instead of adding. The
     * graph sets it only for an input that is not also another input of the same node, and
     * skips zeroing that buffer: at batch 64 the zeroing and the extra read of += were a
     * tenth of a training step. */
    bool din_fresh[CFX_OP_MAX_IN];
    int nin;
    cfx_tensor *out;   /* shape valid in prepare, forward, backward */
    const float *dout; /* backward only: gradient of the output */
    const void *attr;
    void *state; /* state_bytes, kept from forward to backward */
    void *work;  /* work_bytes, scratch shared by all nodes */
    void *prim;  /* what prepare made (oneDNN primitives, ...) */
    bool training;
    cfx_rng *rng;
    /* The op's input 0 / its output (and their gradients) are held in NHWC, not NCHW
     * (cfx__op_def.blocked_ok, planned by the graph). A layout-free op inside such a region has
     * both set. c16_in0 / c16_out: that held layout is nChw16c (channels a multiple of 16)
     * instead, in a region that a backward pass goes through (oneDNN's training kernels prefer
     * it). A layout-free op sees it as (N C/16, H, W, 16) NHWC images. */
    bool blocked_in0, blocked_out, c16_in0, c16_out;
    /* prepare and forward (ops with cfx__op_def.fuses_relu): a ReLU that reads only this op's
     * output was fused into it (plan_fusion). Forward writes max(0, result) into out,
     * which is then the ReLU's output; the op's own output is never written. */
    bool relu;
    /* prepare and forward (ops with cfx__op_def.fuses_clip): a Clip that reads only this op's
     * output, and through which no gradient flows, was fused into it (plan_fusion). Forward
     * writes min(max(result, clip_lo), clip_hi) into out, which is then the Clip's output. */
    bool clip;
    float clip_lo, clip_hi;
    /* prepare and forward (ops with cfx__op_def.fuses_sum): an Add that reads this op's output
     * and sum (same shape, NCHW) was fused into it (plan_fusion). Forward writes result + sum
     * (then the ReLU, with relu) into out, which is then the Add's (or its ReLU's) output. */
    const float *sum;
    /* prepare only: input i is a constant (CFX_VALUE_CONST), whose data does not change while
     * the plan stands (cfx_graph_const), so an op may keep a copy of it in its own layout. */
    bool in_const[CFX_OP_MAX_IN];
} cfx__op_args;

/* What infer fills. */
typedef struct cfx__op_shape {
    int ndim;
    int64_t shape[CFX_MAX_DIMS];
    size_t state_bytes;
    size_t work_bytes;
    bool alias; /* the output is a view of input 0 (same data, same gradient) */
} cfx__op_shape;

typedef struct cfx__op_def {
    const char *name; /* ONNX op type: "Conv", "Relu", ... */
    size_t attr_size; /* bytes of the attribute struct, copied into the node */
    /* Checks shapes and attributes (in[] shapes are valid, data not yet); sets s. */
    cfx_status (*infer)(const cfx__op_args *a, cfx__op_shape *s);
    /* Optional: builds per-shape objects once buffers exist; *prim is released by release. */
    cfx_status (*prepare)(const cfx__op_args *a, void **prim);
    void (*release)(void *prim);
    void (*forward)(const cfx__op_args *a);
    /* NULL when the op has no gradient (argmax): its inputs receive none. */
    void (*backward)(const cfx__op_args *a);
    bool assigns_grads; /* backward honours cfx__op_args.din_fresh */
    /* Layout-free: elementwise, so with every input of its output's shape it gives the same
     * result on any order of the elements, and its inputs and output may be held in NHWC
     * together. With blocked_ok as well (MaxPool), blocked_ok(a, true, true) says whether it
     * can run on NHWC input and output for these shapes (it then reads blocked_in0). */
    bool any_layout;
    /* Optional: whether, for these shapes, the op can take input 0 (in0) and/or make its output
     * (out) in NHWC (nChw16c with c16_in0 / c16_out set: it is asked with them), oneDNN's
     * preferred activation layouts on an AVX-512 CPU for inference (training). The plan holds a
     * region of values joined by layout-free ops in NHWC when every op around it can
     * (graph.c, plan_layouts), so no reorder happens between the convolutions at its borders.
     * At batch 64 such layout conversions were about 7% of a training step of the reference
     * classifier. */
    bool (*blocked_ok)(const cfx__op_args *a, bool in0, bool out);
    /* The op can apply a ReLU to its output as it writes it (cfx__op_args.relu), and neither
     * its backward nor its prepare reads its output's data. */
    bool fuses_relu;
    /* This is ReLU, whose backward reads only its output (y > 0), so a fuses_relu op before it
     * may write y directly and never produce the ReLU's input. */
    bool is_relu;
    /* The op can clip its output to bounds as it writes it (cfx__op_args.clip). */
    bool fuses_clip;
    /* This is Clip, with these bounds: y = min(max(x, lo), hi). Its backward reads its input
     * (the bounds count as inside), so it is fused into the op before it only where no
     * gradient flows (inference: mobilenet's ReLU6 was a fifth of its forward pass). */
    void (*clip_bounds)(const void *attr, float *lo, float *hi);
    /* The op can add a same-shaped tensor to its result as it writes it (cfx__op_args.sum),
     * before a fused ReLU; as with fuses_relu, nothing reads its own output's data. */
    bool fuses_sum;
    /* This is Add, whose backward passes the gradient on and reads neither input's data, so a
     * fuses_sum op before it may write its output directly. */
    bool is_add;
    /* Optional: whether this node mixes images of the batch (BatchNormalization's batch
     * statistics, a Softmax over axis 0), so that running slices of the batch apart would
     * change the result (cfx_trainer's lanes). Ops that move or reduce the batch dimension
     * need not say: the lanes' shape check finds them. */
    bool (*couples_batch)(const cfx__op_args *a);
} cfx__op_def;

typedef struct cfx__value {
    char *name;
    cfx_value_kind kind;
    cfx_tensor t;
    float *grad;
    float *own; /* storage this value owns (NULL for params and aliases) */
    float *own_grad;
    size_t cap, grad_cap; /* capacity of own/own_grad in floats */
    int producer;         /* node index, or -1 */
    int alias_of;         /* value whose storage this one views, or -1 */
    bool user_grad;       /* requires_grad asked by the caller */
    bool needs_grad;      /* planned: a gradient flows here */
    bool is_output;
    size_t param_offset;
} cfx__value;

struct cfx__node {
    const cfx__op_def *op;
    int in[CFX_OP_MAX_IN];
    int nin;
    int out;
    void *attr;
    void *state;
    size_t state_bytes, state_cap;
    void *prim;
    bool alias;
    bool fresh[CFX_OP_MAX_IN];     /* backward: din_fresh of this pass */
    bool blocked_in0, blocked_out; /* planned: see cfx__op_args */
    bool c16_in0, c16_out;         /* planned: see cfx__op_args */
    bool relu;                     /* planned: a ReLU is fused into this op (cfx__op_args.relu) */
    bool clip;                     /* planned: a Clip is fused into this op (cfx__op_args.clip) */
    float clip_lo, clip_hi;
    int sum_in;                /* planned: the value an Add fused into this op adds, or -1 */
    int relu_out;              /* planned: the value this op writes instead of its own
                                * output (the fused Add's or ReLU's), or -1 */
    bool fused;                /* planned: this Add or ReLU runs inside an op before it */
    double prof_fwd, prof_bwd; /* CFX_PROFILE: seconds spent in forward and backward */
    long prof_nfwd, prof_nbwd;
    bool prof_warm[2]; /* CFX_PROFILE: the first forward / backward has run (and was not timed) */
};

/* cfx_graph.mark flags, per value, for one backward pass. */
enum {
    CFX__MARK_REACH = 1,   /* the value reaches the output being differentiated */
    CFX__MARK_CLAIMED = 2, /* (storage root) some op of this pass writes its gradient */
    CFX__MARK_FRESH = 4    /* (storage root) and the first writer stores: no zeroing */
};

struct cfx_graph {
    cfx__value *values;
    int nvalues, capvalues;
    cfx__node *nodes;
    int nnodes, capnodes;
    float *params, *param_grads;
    size_t nparams;
    void *work;
    size_t work_cap;
    bool compiled, dirty, training, param_grads_on, broken;
    bool no_fuse;    /* CFX_NO_FUSE or cfx_graph_enable_fusion(g, 0): plan fuses nothing */
    int bn_folded;   /* BatchNormalizations the ONNX import folded into convolutions */
    int clips_fused; /* Conv + Clip fusions of the last plan (plan_fusion) */
    int held_values; /* values the last plan held in NHWC (plan_layouts) */
    cfx_graph_fusions fusions; /* what the last plan fused (bn_into_conv from bn_folded) */
    bool shared_params;        /* params belong to the graph this one was cloned from */
    char error[512];
    cfx_rng rng;
    uint8_t *mark;    /* backward: per value, MARK_* flags */
    bool profile;     /* CFX_PROFILE is set: time each op, print a table when the graph is freed */
    double prof_wall; /* CFX_PROFILE: seconds in cfx_graph_forward and cfx_graph_backward */
};

/* Adds a node: validates ids, copies attr, infers the output's shape now (so a later builder
 * sees it), and returns the output value id or -1. */
int cfx__graph_add(cfx_graph *g, const cfx__op_def *op, const int *in, int nin, const void *attr);
/* Records a builder error in the graph (the first one wins) and returns -1. */
int cfx__graph_fail(cfx_graph *g, const char *op, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A copy of compiled graph g with its own buffers (activations, gradients, parameter gradients,
 * op state and primitives, a generator seeded with seed) that reads g's parameter block: g must
 * outlive it. Inputs and constants are copied. The copy is planned at its first run (or
 * cfx_graph_replan), so it may be given another batch size first. NULL (with a message) when
 * out of memory. */
cfx_graph *cfx__graph_clone(const cfx_graph *g, uint64_t seed);
/* cfx_graph_forward over nodes [0, end) only (a trainer's lanes stop where its head starts). */
cfx_status cfx__graph_forward_until(cfx_graph *g, int end);
/* cfx_graph_backward; with zero_unreached false, the gradients of parameters the pass does not
 * reach are left as they are (a trainer's head writes those elsewhere). */
cfx_status cfx__graph_backward(cfx_graph *g, int out, const float *seed, bool zero_unreached);
/* Whether graph optimisation is off: CFX_NO_FUSE set (and not "0") in the environment. */
bool cfx__no_fuse_env(void);
/* Fills the run-time view of node n: input tensors, gradient slots (with_grads), state. */
void cfx__node_args(cfx_graph *g, const cfx__node *n, cfx__op_args *a, bool with_grads);
/* The node that produces value id, or NULL. */
const cfx__node *cfx__graph_producer(const cfx_graph *g, int id);

/* Shape helpers for infer functions. */
void cfx__shape_copy(cfx__op_shape *s, const cfx_tensor *t);
char *cfx__shape_fmt(const cfx_tensor *t, char *buf, size_t size);

#endif
