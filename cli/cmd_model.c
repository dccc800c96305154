/* cmd_model.c - `cfx model info|check|run|bench|split`: look inside an ONNX model, check that
 * cfx can run and differentiate it, run it on a .npy input (with a vector-Jacobian product for
 * checking cfx against another framework), time it, and split an autoencoder at its latent
 * tensor. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void shape_str(const cfx_onnx_tensor_info *t, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "(");
    for (int k = 0; k < t->ndim && n < size; k++)
        if (t->shape[k] < 0)
            n += (size_t)snprintf(buf + n, size - n, "%s?", k ? ", " : "");
        else
            n += (size_t)snprintf(buf + n, size - n, "%s%lld", k ? ", " : "",
                                  (long long)t->shape[k]);
    if (n < size) snprintf(buf + n, size - n, ")");
}

static void json_tensors(const cfx_onnx_tensor_info *t, int n) {
    printf("[");
    for (int k = 0; k < n; k++) {
        printf("%s{\"name\": ", k ? ", " : "");
        cli_json_str(stdout, t[k].name);
        printf(", \"elem_type\": %d, \"shape\": [", t[k].elem_type);
        for (int d = 0; d < t[k].ndim; d++)
            printf("%s%lld", d ? ", " : "", (long long)t[k].shape[d]);
        printf("]}");
    }
    printf("]");
}

/* The graph optimisation cfx applies to the model when it runs it for inference (imported
 * frozen at batch 1, then planned); false when cfx cannot import or plan it. */
static bool model_fusions(const char *file, cfx_graph_fusions *f) {
    cfx_graph *g = cfx_onnx_load(file, &(cfx_onnx_options){.batch = 1, .frozen = 1});
    bool ok = g && cfx_graph_compile(g) == CFX_OK;
    if (ok) *f = cfx_graph_fusion_counts(g);
    cfx_graph_free(g);
    return ok;
}

static int model_info(int argc, char **argv) {
    const char *file = NULL;
    int json = 0;
    const cli_opt opts[] = {
        {"FILE", NULL, "an ONNX model", .str = &file, .required = true, .positional = true,
         .role = CLI_IN},
        CLI_OPT_JSON(&json),
    };
    cli_parse(
        "model info",
        "Prints an ONNX model's opset, inputs, outputs with shapes (? is symbolic), op counts\n"
        "(ops cfx cannot import are marked) and weight count. Works for models cfx cannot\n"
        "run. For models it can, also the fusions its graph optimisation applies when it\n"
        "runs them for inference (none with CFX_NO_FUSE=1).\n",
        opts, CLI_LEN(opts), argc, argv);
    cfx_onnx_info *in = cfx_onnx_info_load(file);
    if (!in) return cli_fail("model info", NULL);
    cfx_graph_fusions f = {0};
    bool fused = true;
    for (int k = 0; k < in->n_op_types; k++) fused &= in->op_supported[k] != 0;
    fused = fused && model_fusions(file, &f);
    if (json) {
        printf("{\"file\": ");
        cli_json_str(stdout, file);
        printf(", \"ir_version\": %lld, \"opset\": %lld, \"producer\": ", (long long)in->ir_version,
               (long long)in->opset);
        cli_json_str(stdout, in->producer);
        printf(", \"inputs\": ");
        json_tensors(in->inputs, in->n_inputs);
        printf(", \"outputs\": ");
        json_tensors(in->outputs, in->n_outputs);
        printf(", \"nodes\": %d, \"ops\": {", in->n_nodes);
        for (int k = 0; k < in->n_op_types; k++) {
            printf("%s", k ? ", " : "");
            cli_json_str(stdout, in->op_types[k]);
            printf(": %d", in->op_counts[k]);
        }
        printf("}, \"unsupported\": [");
        for (int k = 0, n = 0; k < in->n_op_types; k++)
            if (!in->op_supported[k]) {
                printf("%s", n++ ? ", " : "");
                cli_json_str(stdout, in->op_types[k]);
            }
        printf("], \"initializers\": %d, \"parameters\": %lld, \"fusions\": ", in->n_initializers,
               (long long)in->n_weights);
        if (fused)
            printf("{\"BatchNormalization into Conv\": %d, \"Conv+Add+Relu\": %d, \"Conv+Add\": "
                   "%d, \"Conv+Relu\": %d, \"Gemm+Relu\": %d, \"Conv+Clip\": %d}}\n",
                   f.bn_into_conv, f.conv_add_relu, f.conv_add, f.conv_relu, f.gemm_relu,
                   f.conv_clip);
        else
            printf("null}\n");
    } else {
        char b[128];
        printf("%s: ONNX IR %lld, opset %lld, producer %s\n", file, (long long)in->ir_version,
               (long long)in->opset, in->producer[0] ? in->producer : "unknown");
        for (int k = 0; k < in->n_inputs; k++) {
            shape_str(&in->inputs[k], b, sizeof b);
            printf("  input   %-24s %s\n", in->inputs[k].name, b);
        }
        for (int k = 0; k < in->n_outputs; k++) {
            shape_str(&in->outputs[k], b, sizeof b);
            printf("  output  %-24s %s\n", in->outputs[k].name, b);
        }
        printf("  %d nodes:", in->n_nodes);
        for (int k = 0; k < in->n_op_types; k++)
            printf(" %s %d%s", in->op_types[k], in->op_counts[k],
                   in->op_supported[k] ? "" : " (unsupported)");
        printf("\n  %d initializers, %lld parameters\n", in->n_initializers,
               (long long)in->n_weights);
        if (fused) {
            const char *names[] = {"BatchNormalization into Conv",
                                   "Conv+Add+Relu",
                                   "Conv+Add",
                                   "Conv+Relu",
                                   "Gemm+Relu",
                                   "Conv+Clip"};
            const int counts[] = {f.bn_into_conv, f.conv_add_relu, f.conv_add,
                                  f.conv_relu,    f.gemm_relu,     f.conv_clip};
            int any = 0;
            printf("  fusions:");
            for (int k = 0; k < 6; k++)
                if (counts[k]) printf("%s %d %s", any++ ? "," : "", counts[k], names[k]);
            printf("%s\n", any ? "" : " none");
        }
    }
    cfx_onnx_info_free(in);
    return 0;
}

static int model_check(int argc, char **argv) {
    const char *file = NULL;
    long long batch = 1, seed = 0, threads = 1;
    int json = 0;
    const cli_opt opts[] = {
        {"FILE", NULL, "an ONNX model", .str = &file, .required = true, .positional = true,
         .role = CLI_IN},
        {"batch", "N", "size of a symbolic batch dimension", .i = &batch, .lo = 1, .hi = 1 << 20},
        CLI_OPT_SEED(&seed, "seed of the random input"),
        CLI_OPT_THREADS(&threads),
        CLI_OPT_JSON(&json),
    };
    cli_parse("model check",
              "Loads the model, runs a forward and a backward (gradient of the sum of the first\n"
              "output with respect to every input) on uniform random input in [0, 1], and reports\n"
              "every op cfx does not support.\n",
              opts, CLI_LEN(opts), argc, argv);
    cli_set_threads(threads);
    cfx_onnx_info *info = cfx_onnx_info_load(file);
    if (!info) return cli_fail("model check", NULL);
    /* Every unsupported op type, with its node count, before trying to load. */
    char list[2048] = "";
    size_t n = 0;
    for (int k = 0; k < info->n_op_types; k++)
        if (!info->op_supported[k] && n < sizeof list)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s (%d node%s)", n ? ", " : "",
                                  info->op_types[k], info->op_counts[k],
                                  info->op_counts[k] == 1 ? "" : "s");
    int64_t opset = info->opset;
    cfx_onnx_info_free(info);
    if (n) {
        if (json) {
            printf("{\"file\": ");
            cli_json_str(stdout, file);
            printf(", \"ok\": false, \"unsupported\": ");
            cli_json_str(stdout, list);
            printf("}\n");
        }
        return cli_fail("model check", "%s: unsupported ops at opset %lld: %s", file,
                        (long long)opset, list);
    }
    cfx_onnx_options o = {.batch = batch};
    cfx_graph *g = cfx_onnx_load(file, &o);
    if (!g) return cli_fail("model check", NULL);
    int inputs[64], ni = 0, out = -1;
    for (int i = 0; i < cfx_graph_num_values(g); i++)
        if (cfx_graph_value_kind(g, i) == CFX_VALUE_INPUT && ni < 64) inputs[ni++] = i;
    /* The first output, by its name in the file. */
    cfx_onnx_info *again = cfx_onnx_info_load(file);
    if (again && again->n_outputs > 0) out = cfx_graph_find(g, again->outputs[0].name);
    cfx_onnx_info_free(again);
    int rc = 0;
    for (int k = 0; k < ni; k++) cfx_graph_requires_grad(g, inputs[k], 1);
    cfx_graph_enable_param_grads(g, 1);
    double t0 = cfx_now();
    if (out < 0) {
        rc = cli_fail("model check", "%s: cannot find the first output", file);
        goto done;
    }
    if (cfx_graph_compile(g) != CFX_OK) {
        rc = cli_fail("model check", "%s: %s", file, cfx_last_error());
        goto done;
    }
    cfx_rng rng;
    cfx_rng_init(&rng, (uint64_t)seed);
    for (int k = 0; k < ni; k++)
        cfx_tensor_fill_uniform(cfx_graph_tensor(g, inputs[k]), &rng, 0, 1);
    if (cfx_graph_forward(g) != CFX_OK) {
        rc = cli_fail("model check", "%s: forward: %s", file, cfx_last_error());
        goto done;
    }
    double t1 = cfx_now();
    cfx_status bs = cfx_graph_backward(g, out, NULL);
    double t2 = cfx_now();
    if (bs != CFX_OK) {
        rc = cli_fail("model check", "%s: backward: %s", file, cfx_last_error());
        goto done;
    }
    cfx_tensor *y = cfx_graph_tensor(g, out);
    int64_t bad = cfx_tensor_find_nonfinite(y);
    char shp[128];
    cfx_tensor_shape_str(y->ndim, y->shape, shp, sizeof shp);
    if (json) {
        printf("{\"file\": ");
        cli_json_str(stdout, file);
        printf(", \"ok\": %s, \"output_shape\": ", bad < 0 ? "true" : "false");
        cli_json_str(stdout, shp);
        printf(", \"parameters\": %zu, \"forward_s\": %.6f, \"backward_s\": %.6f}\n",
               cfx_graph_num_params(g), t1 - t0, t2 - t1);
    } else {
        printf("%s: ok: forward and backward ran (output %s, %zu trainable parameters, "
               "forward %.3f s, backward %.3f s)\n",
               file, shp, cfx_graph_num_params(g), t1 - t0, t2 - t1);
    }
    if (bad >= 0) rc = cli_fail("model check", "%s: the output has a non-finite value", file);
done:
    cfx_graph_free(g);
    return rc;
}

static int model_run(int argc, char **argv) {
    const char *file = NULL, *xin = NULL, *yout = NULL, *vjp = NULL, *gout = NULL, *oname = NULL;
    long long threads = 1;
    int json = 0, force = 0;
    const cli_opt opts[] = {
        {"FILE", NULL, "an ONNX model", .str = &file, .required = true, .positional = true,
         .role = CLI_IN},
        {"input", "X.npy", "input array", .str = &xin, .required = true, .role = CLI_IN},
        CLI_OPT_OUT(&yout, "Y.npy", "output array"),
        {"output", "NAME", "any tensor of the model", .str = &oname, .def = "its first output"},
        {"vjp", "W.npy", "weights of the vector-Jacobian product", .str = &vjp, .def = "none",
         .role = CLI_IN},
        {"grad-out", "G.npy", "where the input gradient goes (required with --vjp)", .str = &gout,
         .role = CLI_OUT},
        CLI_OPT_THREADS(&threads),
        CLI_OPT_FORCE(&force),
        CLI_OPT_JSON(&json),
    };
    cli_parse(
        "model run",
        "Runs the model on X (its first input; the batch is X's first dimension) and writes\n"
        "the output. With --vjp, also writes the gradient of sum(output * W) with respect\n"
        "to X, W shaped like one output row (applied to every row) or like the whole output.\n",
        opts, CLI_LEN(opts), argc, argv);
    if (!vjp != !gout) cli_usage_error("model run", "--vjp and --grad-out go together");
    cli_set_threads(threads);
    cfx_tensor *x = cfx_npy_read(xin), *w = NULL;
    if (!x) return cli_fail_status("model run", "read input");
    if (vjp && !(w = cfx_npy_read(vjp))) {
        cfx_tensor_free(x);
        return cli_fail_status("model run", "read --vjp");
    }
    const char *extra[1] = {oname};
    cfx_onnx_options o = {.batch = x->ndim ? x->shape[0] : 1,
                          .extra_outputs = oname ? extra : NULL,
                          .n_extra_outputs = oname ? 1 : 0,
                          .outputs_only = oname != NULL};
    int rc = 0, outs[8], nout = 0, in = -1;
    cfx_graph *g = cfx_graph_new();
    float *seed = NULL;
    cfx_outputs written; /* --out and --grad-out: both or neither */
    cfx_outputs_begin(&written);
    if (cfx_onnx_import(g, file, &o, NULL, 0, outs, 8, &nout) != CFX_OK) {
        rc = cli_fail("model run", NULL);
        goto done;
    }
    for (int i = 0; i < cfx_graph_num_values(g) && in < 0; i++)
        if (cfx_graph_value_kind(g, i) == CFX_VALUE_INPUT) in = i;
    if (in < 0 || nout < 1) {
        rc = cli_fail("model run", "%s has no input or no output", file);
        goto done;
    }
    cfx_tensor *t = cfx_graph_tensor(g, in);
    if (!cfx_tensor_same_shape(t, x)) {
        char a[128], b[128];
        cfx_tensor_shape_str(t->ndim, t->shape, a, sizeof a);
        cfx_tensor_shape_str(x->ndim, x->shape, b, sizeof b);
        rc = cli_fail("model run", "wrong input shape: %s takes '%s' of shape %s, %s is %s", file,
                      cfx_graph_value_name(g, in), a, xin, b);
        goto done;
    }
    if (vjp) cfx_graph_requires_grad(g, in, 1);
    cfx_graph_enable_param_grads(g, 0);
    if (cfx_graph_compile(g) != CFX_OK) {
        rc = cli_fail("model run", "%s: %s", file, cfx_last_error());
        goto done;
    }
    memcpy(cfx_graph_tensor(g, in)->data, x->data, (size_t)x->numel * sizeof(float));
    double t0 = cfx_now();
    if (cfx_graph_forward(g) != CFX_OK) {
        rc = cli_fail_status("model run", "forward");
        goto done;
    }
    double t1 = cfx_now();
    cfx_tensor *y = cfx_graph_tensor(g, outs[0]);
    if (cfx_npy_write(yout, y) != CFX_OK) {
        rc = cli_fail_status("model run", "write output");
        goto done;
    }
    if (vjp) {
        int64_t row = y->ndim > 1 ? y->numel / y->shape[0] : y->numel;
        if (w->numel != row && w->numel != y->numel) {
            char a[128];
            cfx_tensor_shape_str(y->ndim, y->shape, a, sizeof a);
            rc = cli_fail("model run",
                          "--vjp has %lld values; the output %s needs one row "
                          "(%lld) or all (%lld)",
                          (long long)w->numel, a, (long long)row, (long long)y->numel);
            goto done;
        }
        seed = malloc((size_t)y->numel * sizeof *seed);
        if (!seed) {
            rc = cli_fail("model run", "out of memory");
            goto done;
        }
        for (int64_t k = 0; k < y->numel; k++) seed[k] = w->data[k % w->numel];
        if (cfx_graph_backward(g, outs[0], seed) != CFX_OK) {
            rc = cli_fail_status("model run", "backward");
            goto done;
        }
        cfx_tensor gt = *cfx_graph_tensor(g, in);
        gt.data = cfx_graph_grad(g, in);
        if (cfx_npy_write(gout, &gt) != CFX_OK) {
            rc = cli_fail_status("model run", "write gradient");
            goto done;
        }
    }
    if (cfx_outputs_commit(&written) != CFX_OK) {
        rc = cli_fail_status("model run", "write");
        goto done;
    }
    char shp[128];
    cfx_tensor_shape_str(y->ndim, y->shape, shp, sizeof shp);
    if (json) {
        printf("{\"file\": ");
        cli_json_str(stdout, file);
        printf(", \"output\": ");
        cli_json_str(stdout, cfx_graph_value_name(g, outs[0]));
        printf(", \"shape\": ");
        cli_json_str(stdout, shp);
        printf(", \"forward_s\": %.6f, \"out\": ", t1 - t0);
        cli_json_str(stdout, yout);
        printf(", \"grad_out\": ");
        if (gout)
            cli_json_str(stdout, gout);
        else
            printf("null");
        printf("}\n");
    } else {
        printf("%s: %s %s -> %s%s%s (forward %.3f s)\n", file, cfx_graph_value_name(g, outs[0]),
               shp, yout, gout ? ", input gradient -> " : "", gout ? gout : "", t1 - t0);
    }
done:
    if (rc) cfx_outputs_abort(&written);
    free(seed);
    cfx_graph_free(g);
    cfx_tensor_free(x);
    cfx_tensor_free(w);
    return rc;
}

static int model_split(int argc, char **argv) {
    const char *file = NULL, *latent = NULL, *enc = NULL, *dec = NULL;
    int force = 0;
    const cli_opt opts[] = {
        {"FILE", NULL, "an ONNX autoencoder", .str = &file, .required = true, .positional = true,
         .role = CLI_IN},
        {"latent", "NAME", "the tensor to cut at", .str = &latent, .required = true},
        {"encoder", "E.onnx", "where the encoder goes", .str = &enc, .required = true,
         .role = CLI_OUT},
        {"decoder", "D.onnx", "where the decoder goes", .str = &dec, .required = true,
         .role = CLI_OUT},
        CLI_OPT_FORCE(&force),
    };
    cli_parse(
        "model split",
        "Cuts one autoencoder file at the tensor NAME into an encoder (inputs to NAME) and a\n"
        "decoder (NAME to the outputs), keeping nodes, weights and opset.\n",
        opts, CLI_LEN(opts), argc, argv);
    if (cfx_onnx_split(file, latent, enc, dec) != CFX_OK) return cli_fail("model split", NULL);
    printf("%s: encoder -> %s, decoder -> %s (latent '%s')\n", file, enc, dec, latent);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of the sorted v (n >= 1), linearly interpolated. */
static double quantile(const double *v, int n, double q) {
    double at = q * (n - 1);
    int lo = (int)at;
    return lo + 1 < n ? v[lo] + (at - lo) * (v[lo + 1] - v[lo]) : v[n - 1];
}

/* Seconds of CPU this process has used (every thread's). */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int model_bench(int argc, char **argv) {
    const char *file = NULL;
    long long batch = 1, seed = 0, threads = 1, runs = 10, warmup = 2;
    int json = 0, backward = 0;
    const cli_opt opts[] = {
        {"FILE", NULL, "an ONNX model", .str = &file, .required = true, .positional = true,
         .role = CLI_IN},
        {"batch", "N", "size of a symbolic batch dimension", .i = &batch, .lo = 1, .hi = 1 << 20},
        {"runs", "R", "timed passes", .i = &runs, .lo = 1, .hi = 1000000},
        {"warmup", "W", "untimed passes first", .i = &warmup, .lo = 0, .hi = 1000000},
        {"backward", NULL,
         "time forward plus backward to the inputs (the gradient of the sum of "
         "the first output), as a counterfactual search's step runs it",
         .flag = &backward},
        CLI_OPT_SEED(&seed, "seed of the random input"),
        CLI_OPT_THREADS(&threads),
        CLI_OPT_JSON(&json),
    };
    cli_parse("model bench",
              "Loads and plans the model, runs W untimed passes on uniform random input in\n"
              "[0, 1], then times R passes: the median, the spread (fastest, 10th and 90th\n"
              "percentiles, slowest) and GFLOP/s from the multiply-adds of the Conv,\n"
              "ConvTranspose, Gemm and MatMul nodes (2 FLOPs each; a backward to the inputs\n"
              "counted as much again), and the median CPU time of a pass (all threads).\n"
              "Weight gradients are not computed. CFX_PROFILE=1 prints per-op times on stderr.\n",
              opts, CLI_LEN(opts), argc, argv);
    cli_set_threads(threads);
    double t0 = cfx_now();
    /* Frozen: weights are constants (no weight gradients), so the import folds batch norms. */
    cfx_onnx_options o = {.batch = batch, .frozen = 1};
    cfx_graph *g = cfx_onnx_load(file, &o);
    if (!g) return cli_fail("model bench", NULL);
    double t_load = cfx_now() - t0;
    int inputs[64], ni = 0, out = -1, rc = 0;
    double *t = NULL, *cpu = NULL;
    for (int i = 0; i < cfx_graph_num_values(g); i++)
        if (cfx_graph_value_kind(g, i) == CFX_VALUE_INPUT && ni < 64) inputs[ni++] = i;
    cfx_onnx_info *info = cfx_onnx_info_load(file);
    if (info && info->n_outputs > 0) out = cfx_graph_find(g, info->outputs[0].name);
    cfx_onnx_info_free(info);
    if (out < 0) {
        rc = cli_fail("model bench", "%s: cannot find the first output", file);
        goto done;
    }
    for (int k = 0; backward && k < ni; k++) cfx_graph_requires_grad(g, inputs[k], 1);
    t0 = cfx_now();
    if (cfx_graph_compile(g) != CFX_OK) {
        rc = cli_fail("model bench", "%s: %s", file, cfx_last_error());
        goto done;
    }
    double t_plan = cfx_now() - t0;
    cfx_rng rng;
    cfx_rng_init(&rng, (uint64_t)seed);
    for (int k = 0; k < ni; k++)
        cfx_tensor_fill_uniform(cfx_graph_tensor(g, inputs[k]), &rng, 0, 1);
    t = malloc((size_t)runs * sizeof *t);
    cpu = malloc((size_t)runs * sizeof *cpu);
    if (!t || !cpu) {
        rc = cli_fail("model bench", "out of memory");
        goto done;
    }
    for (long long r = -warmup; r < runs; r++) {
        t0 = cfx_now();
        const double c0 = cpu_now();
        cfx_status s = cfx_graph_forward(g);
        if (s == CFX_OK && backward) s = cfx_graph_backward(g, out, NULL);
        if (s != CFX_OK) {
            rc = cli_fail("model bench", "%s: %s: %s", file, backward ? "backward" : "forward",
                          cfx_last_error());
            goto done;
        }
        if (r >= 0) t[r] = cfx_now() - t0, cpu[r] = cpu_now() - c0;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    qsort(cpu, (size_t)runs, sizeof *cpu, cmp_double);
    const int n = (int)runs;
    const double med = quantile(t, n, 0.5),
                 gflop = 2e-9 * cfx_graph_forward_macs(g) * (backward ? 2 : 1);
    if (json) {
        printf("{\"file\": ");
        cli_json_str(stdout, file);
        printf(", \"batch\": %lld, \"threads\": %d, \"backward\": %s, \"runs\": %d, "
               "\"load_s\": %.6f, \"plan_s\": %.6f, \"median_s\": %.6f, \"min_s\": %.6f, "
               "\"p10_s\": %.6f, \"p90_s\": %.6f, \"max_s\": %.6f, \"gflop\": %.6f, "
               "\"gflops\": %.3f, \"cpu_median_s\": %.6f}\n",
               batch, cfx_get_threads(), backward ? "true" : "false", n, t_load, t_plan, med, t[0],
               quantile(t, n, 0.1), quantile(t, n, 0.9), t[n - 1], gflop, gflop / med,
               quantile(cpu, n, 0.5));
    } else {
        printf("%s: batch %lld, %d thread%s, %s\n", file, batch, cfx_get_threads(),
               cfx_get_threads() == 1 ? "" : "s",
               backward ? "forward + backward to the inputs" : "forward");
        printf("  load %.3f s, plan %.3f s, %lld warm-up pass%s\n", t_load, t_plan, warmup,
               warmup == 1 ? "" : "es");
        printf("  median %.3f ms over %d runs (fastest %.3f, 10%% %.3f, 90%% %.3f, slowest "
               "%.3f ms)\n",
               1e3 * med, n, 1e3 * t[0], 1e3 * quantile(t, n, 0.1), 1e3 * quantile(t, n, 0.9),
               1e3 * t[n - 1]);
        printf("  %.3f GFLOP a pass, %.2f GFLOP/s at the median\n", gflop, gflop / med);
        printf("  median CPU time a pass %.3f ms (all threads)\n", 1e3 * quantile(cpu, n, 0.5));
    }
done:
    free(t);
    free(cpu);
    cfx_graph_free(g);
    return rc;
}

int cmd_model(int argc, char **argv) {
    static const cli_command leaves[] = {
        {"info", model_info, "what an ONNX file holds (inputs, outputs, op counts, parameters)"},
        {"check", model_check, "load, forward and backward on random input; name unsupported ops"},
        {"run", model_run, "run on a .npy input; optionally the input gradient of sum(out * W)"},
        {"bench", model_bench, "time forward (or forward + backward) passes on random input"},
        {"split", model_split, "cut an autoencoder at its latent tensor into encoder and decoder"},
    };
    return cli_dispatch("model", "Looks inside, checks, runs, times and splits ONNX models.\n",
                        leaves, CLI_LEN(leaves), argc, argv);
}
