/* classify.c - black-box image classifiers for V-CECE's loop, behind one interface
 * (cfx_image_classifier: a function pointer and user data, so an LLM client plugs in later).
 *
 * Two are built in: an ONNX model run by cfx's engine (one image a call, its class scores kept
 * for the built-in planner), and any program, run through the shell with {image} replaced by a
 * PNG of the image, whose stdout is the label. An answer outside the class list is not an error
 * of the run: the label is -1 and the answer is handed back, for the loop to record. */
#include "concepts/concepts.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

void cfx_image_classifier_free(cfx_image_classifier *c) {
    if (!c) return;
    if (c->free) c->free(c->user);
    if (c->classes)
        for (int k = 0; k < c->num_classes; k++) cfx_free(c->classes[k]);
    cfx_free(c->classes);
    cfx_free(c);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = cfx_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* A classifier shell with copies of the class names; NULL on failure. */
static cfx_image_classifier *shell(const char *const *classes, int n) {
    if (!classes || n < 2) {
        cfx_set_error(CFX_EINVAL, "a classifier needs a class list of at least two classes");
        return NULL;
    }
    cfx_image_classifier *c = cfx_calloc(1, sizeof *c);
    if (!c) return NULL;
    c->classes = cfx_calloc((size_t)n, sizeof *c->classes);
    if (!c->classes) {
        cfx_free(c);
        return NULL;
    }
    c->num_classes = n;
    for (int k = 0; k < n; k++)
        if (!(c->classes[k] = dup_str(classes[k]))) {
            cfx_image_classifier_free(c);
            return NULL;
        }
    return c;
}

/* ----------------------------------------------------------------------- ONNX --- */

typedef struct {
    cfx_graph *g;
    int x, y, softmax;
    int64_t c, h, w;
    int num_classes;
} onnx_clf;

static void onnx_free(void *user) {
    onnx_clf *m = user;
    if (!m) return;
    cfx_graph_free(m->g);
    cfx_free(m);
}

static cfx_status onnx_classify(void *user, const cfx_tensor *image, int *label, float *scores,
                                char *answer, size_t cap) {
    onnx_clf *m = user;
    if (image->ndim != 3 || image->shape[0] != m->c || image->shape[1] != m->h ||
        image->shape[2] != m->w)
        return cfx_set_error(CFX_ESHAPE,
                             "the classifier takes (%lld,%lld,%lld) images; this one is "
                             "(%lld,%lld,%lld)",
                             (long long)m->c, (long long)m->h, (long long)m->w,
                             (long long)image->shape[0], (long long)image->shape[1],
                             (long long)image->shape[2]);
    cfx_tensor *x = cfx_graph_tensor(m->g, m->x);
    memcpy(x->data, image->data, (size_t)image->numel * sizeof *x->data);
    CFX_TRY(cfx_graph_forward(m->g));
    const float *y = cfx_graph_tensor(m->g, m->y)->data;
    int K = m->num_classes, best = 0;
    double mx = y[0], sum = 0;
    for (int k = 1; k < K; k++) mx = y[k] > mx ? y[k] : mx;
    float p[1024];
    /* Probabilities: the model's own Softmax output, else softmax of its logits (the maximum
     * subtracted first so that exp cannot overflow). */
    for (int k = 0; k < K; k++) {
        p[k] = m->softmax ? y[k] : (float)exp(y[k] - mx);
        sum += p[k];
    }
    for (int k = 0; k < K; k++) {
        if (!m->softmax) p[k] = (float)(p[k] / sum);
        if (!isfinite(p[k]))
            return cfx_set_error(CFX_EINVAL, "the classifier's output is not finite");
        if (p[k] > p[best]) best = k;
    }
    if (scores) memcpy(scores, p, (size_t)K * sizeof *p);
    *label = best;
    if (cap) answer[0] = '\0';
    return CFX_OK;
}

cfx_image_classifier *cfx_image_classifier_onnx(const char *path, const char *const *classes,
                                                int num_classes) {
    if (num_classes > 1024) {
        cfx_set_error(CFX_EINVAL, "classifier: %d classes (at most 1024)", num_classes);
        return NULL;
    }
    cfx_image_classifier *c = shell(classes, num_classes);
    if (!c) return NULL;
    onnx_clf *m = cfx_calloc(1, sizeof *m);
    cfx_onnx_info *info = cfx_onnx_info_load(path);
    cfx_status st = m && info ? CFX_OK : CFX_EIO;
    if (st == CFX_OK && (info->n_inputs < 1 || info->n_outputs < 1))
        st = cfx_set_error(CFX_EFORMAT, "'%s' has no input or no output", path);
    if (st == CFX_OK && !(m->g = cfx_onnx_load(path, &(cfx_onnx_options){.batch = 1})))
        st = CFX_EFORMAT;
    if (st == CFX_OK) {
        m->x = cfx_graph_find(m->g, info->inputs[0].name);
        m->y = cfx_graph_find(m->g, info->outputs[0].name);
        if (m->x < 0 || m->y < 0)
            st = cfx_set_error(CFX_EFORMAT, "'%s': cannot find its input or output", path);
    }
    if (st == CFX_OK) st = cfx_graph_compile(m->g);
    if (st == CFX_OK) {
        const cfx_tensor *x = cfx_graph_tensor(m->g, m->x), *y = cfx_graph_tensor(m->g, m->y);
        const char *op = cfx_graph_value_op(m->g, m->y);
        m->softmax = op && strcmp(op, "Softmax") == 0;
        if (x->ndim != 4 || x->shape[0] != 1 || y->numel != num_classes)
            st = cfx_set_error(CFX_ESHAPE,
                               "'%s' must take images (N,C,H,W) and give %d class scores (the "
                               "class list); it gives %lld",
                               path, num_classes, (long long)y->numel);
        else
            m->c = x->shape[1], m->h = x->shape[2], m->w = x->shape[3];
    }
    cfx_onnx_info_free(info);
    if (st != CFX_OK) {
        if (st == CFX_EIO && !m) cfx_set_error(CFX_ENOMEM, "out of memory");
        cfx_error_context(st, "classifier '%s'", path);
        onnx_free(m);
        cfx_image_classifier_free(c);
        return NULL;
    }
    m->num_classes = num_classes;
    c->user = m;
    c->free = onnx_free;
    c->classify = onnx_classify;
    c->has_scores = 1;
    return c;
}

/* -------------------------------------------------------------------- command --- */

typedef struct {
    char *command, *tmpdir;
    char **classes;
    int num_classes;
    long calls;
} cmd_clf;

static void cmd_free(void *user) {
    cmd_clf *m = user;
    if (!m) return;
    cfx_free(m->command);
    cfx_free(m->tmpdir);
    cfx_free(m);
}

/* Appends s to buf (of cap bytes) at *at; false when it does not fit. */
static bool append(char *buf, size_t cap, size_t *at, const char *s, size_t n) {
    if (*at + n + 1 > cap) return false;
    memcpy(buf + *at, s, n);
    *at += n;
    buf[*at] = '\0';
    return true;
}

static cfx_status cmd_classify(void *user, const cfx_tensor *image, int *label, float *scores,
                               char *answer, size_t cap) {
    (void)scores;
    cmd_clf *m = user;
    char png[4200];
    snprintf(png, sizeof png, "%s/cfx-classify-%ld-%ld.png", m->tmpdir, (long)getpid(), m->calls++);
    CFX_TRY(cfx_image_write_png(png, image));
    /* The command with {image} replaced by the quoted path ('\'' for a quote inside). */
    char cmd[16384];
    size_t at = 0;
    bool ok = true;
    cmd[0] = '\0';
    for (const char *p = m->command; *p && ok;) {
        const char *hit = strstr(p, "{image}");
        size_t n = hit ? (size_t)(hit - p) : strlen(p);
        ok = append(cmd, sizeof cmd, &at, p, n);
        if (!hit) break;
        ok = ok && append(cmd, sizeof cmd, &at, "'", 1);
        for (const char *q = png; *q && ok; q++)
            ok = *q == '\'' ? append(cmd, sizeof cmd, &at, "'\\''", 4)
                            : append(cmd, sizeof cmd, &at, q, 1);
        ok = ok && append(cmd, sizeof cmd, &at, "'", 1);
        p = hit + 7;
    }
    if (!ok) {
        unlink(png);
        return cfx_set_error(CFX_EINVAL, "classifier command: longer than %zu bytes", sizeof cmd);
    }
    fflush(NULL);
    FILE *f = popen(cmd, "r");
    if (!f) {
        unlink(png);
        return cfx_set_error(CFX_EIO, "classifier command: cannot run '%s': %s", m->command,
                             strerror(errno));
    }
    char out[1024];
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    char sink[4096];
    while (fread(sink, 1, sizeof sink, f) > 0) {
    }
    int rc = pclose(f);
    unlink(png);
    if (rc != 0)
        return cfx_set_error(CFX_EIO, "classifier command '%s' failed (exit status %d)", m->command,
                             WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
    /* The label: stdout without the white space around it. */
    char *s = out, *e = out + n;
    while (*s && isspace((unsigned char)*s)) s++;
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    *label = -1;
    for (int k = 0; k < m->num_classes; k++)
        if (strcasecmp(s, m->classes[k]) == 0) *label = k;
    if (cap) snprintf(answer, cap, "%s", s);
    return CFX_OK;
}

cfx_image_classifier *cfx_image_classifier_command(const char *command, const char *const *classes,
                                                   int num_classes, const char *tmpdir) {
    if (!command || !strstr(command, "{image}")) {
        cfx_set_error(CFX_EINVAL,
                      "classifier command '%s' has no {image} (where the image's path goes)",
                      command ? command : "");
        return NULL;
    }
    cfx_image_classifier *c = shell(classes, num_classes);
    if (!c) return NULL;
    cmd_clf *m = cfx_calloc(1, sizeof *m);
    if (m) m->command = dup_str(command), m->tmpdir = dup_str(tmpdir ? tmpdir : "/tmp");
    if (!m || !m->command || !m->tmpdir) {
        cmd_free(m);
        cfx_image_classifier_free(c);
        cfx_set_error(CFX_ENOMEM, "out of memory");
        return NULL;
    }
    m->classes = c->classes;
    m->num_classes = num_classes;
    c->user = m;
    c->free = cmd_free;
    c->classify = cmd_classify;
    return c;
}
