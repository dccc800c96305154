/* cmd_counterfactual.c - `cfx counterfactual`: high-competency counterfactuals of low-competency
 * images with the five methods of the competency paper (IGD, FGD, Reco, LGD, LNN) and `best`,
 * written to a run folder that can be resumed.
 *
 * The run folder RUN/:
 *   run.json                    what was run: the bundle's and the images' fingerprints, the
 *                               settings, the methods; "status" is "running" until the end
 *   images.npy                  the images processed (N,C,H,W), in run order
 *   results.jsonl               one line per image and method, appended batch by batch
 *   counterfactuals_<m>.npy     per method (and "best"), N rows, filled batch by batch
 *   strips/<cause>.png          the first examples of each cause: original, then each method
 * Crash safety: a batch's rows are written to the .npy files and flushed to disk before its lines
 * are appended to results.jsonl, so the lines on disk name finished batches only (a torn last
 * line is cut off). --resume checks run.json against the new command, keeps the whole batches
 * of results.jsonl and goes on from there; the methods are deterministic and an image's result
 * does not depend on the other images of its batch, so the files end up with the same bytes as
 * an uninterrupted run's, except the wall-time "seconds" of each line. */
#include "cli.h"
#include "mpi.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const cmd = "counterfactual";

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        cfx_status try_s = (expr);                                                                 \
        if (try_s != CFX_OK) return try_s;                                                         \
    } while (0)
#define MIN(a, b) ((a) < (b) ? (a) : (b))
enum { NOUT = CFX_CF_COUNT + 1, BEST = CFX_CF_COUNT, STRIP_ROWS = 8 };
static const char *const stops[] = {"per-image", "per-batch", NULL};

/* The images to process and what is known about each. */
typedef struct {
    cfx_tensor *x; /* (n, C, H, W) */
    int64_t n;
    char **source; /* n names: "ex/images.npy[3]", "dir/a.png" */
    char **cause;  /* n causes, or NULL when the inputs do not say */
    float *rho;    /* rho(X) of each */
    uint64_t fingerprint;
    int64_t offered; /* images given, before selection */
} inputs;

/* A run's settings as the command gives them. */
typedef struct {
    bool use[NOUT]; /* the methods, and BEST */
    cfx_cf_options o;
    int64_t batch, limit;
    long long seed;
    bool all;
    double lr; /* as given (Adam's option is a float) */
    const char *lpips_model;
    char lpips_fingerprint[17];
    const char *distance_label; /* "LPIPS[classifier]", "L2", ... */
} settings;

static const char *out_name(int k) {
    return k == BEST ? "best" : cfx_cf_method_name((cfx_cf_method)k);
}

static void inputs_free(inputs *in) {
    cfx_tensor_free(in->x);
    for (int64_t i = 0; i < in->n; i++) {
        if (in->source) free(in->source[i]);
        if (in->cause) free(in->cause[i]);
    }
    free(in->source), free(in->cause), free(in->rho);
}

/* "igd,fgd", "all", "best", "lgd,lnn,best" -> s->use. */
static void parse_methods(const char *list, settings *s) {
    char buf[256];
    if (strlen(list) >= sizeof buf) cli_usage_error(cmd, "--method '%s' is too long", list);
    strcpy(buf, list);
    bool any = false;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        cfx_cf_method m;
        if (!strcmp(t, "all"))
            for (int k = 0; k < CFX_CF_COUNT; k++) s->use[k] = true;
        else if (!strcmp(t, "best"))
            s->use[BEST] = true;
        else if (cfx_cf_method_parse(t, &m) == CFX_OK)
            s->use[m] = true;
        else
            cli_usage_error(
                cmd, "--method: unknown method '%s' (igd, fgd, reco, lgd, lnn, all, best)", t);
        any = true;
    }
    if (!any) cli_usage_error(cmd, "--method names no method");
    /* best alone runs all five; with a list, it picks among the listed ones. */
    bool some = false;
    for (int k = 0; k < CFX_CF_COUNT; k++) some = some || s->use[k];
    if (!some)
        for (int k = 0; k < CFX_CF_COUNT; k++) s->use[k] = true;
}

/* ------------------------------------------------------------------------- inputs --- */

/* EX/examples.jsonl's causes, one per image of EX/images.npy (n of them). */
static cfx_status read_causes(const char *ex, int64_t n, char ***out) {
    char path[4200], *text = NULL;
    size_t size;
    snprintf(path, sizeof path, "%s/examples.jsonl", ex);
    TRY(cfx_file_read_all(path, &text, &size));
    char **cause = calloc((size_t)n, sizeof *cause);
    cfx_status s = cause ? CFX_OK : CFX_ENOMEM;
    int64_t line = 0;
    for (char *p = text, *nl; s == CFX_OK && *p; p = nl + 1, line++) {
        nl = strchr(p, '\n');
        if (!nl) nl = p + strlen(p) - 1;
        cJSON *j = cJSON_ParseWithLength(p, (size_t)(nl - p + 1));
        const cJSON *idx = cJSON_GetObjectItemCaseSensitive(j, "index");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "cause");
        if (!cJSON_IsNumber(idx) || !cJSON_IsString(c) || idx->valuedouble < 0 ||
            idx->valuedouble >= (double)n || cause[(int64_t)idx->valuedouble])
            s = cfx_set_error(CFX_EFORMAT,
                              "%s, line %lld: not an example (an index below %lld, seen once, and "
                              "a cause); write the folder with cfx competency examples",
                              path, (long long)line + 1, (long long)n);
        else if (!(cause[(int64_t)idx->valuedouble] = strdup(c->valuestring)))
            s = CFX_ENOMEM;
        cJSON_Delete(j);
        if (!*nl) break;
    }
    for (int64_t i = 0; s == CFX_OK && i < n; i++)
        if (!cause[i])
            s = cfx_set_error(CFX_EFORMAT, "%s: no line for image %lld of images.npy", path,
                              (long long)i);
    cfx_free(text);
    if (s != CFX_OK) {
        for (int64_t i = 0; cause && i < n; i++) free(cause[i]);
        free(cause);
        return s;
    }
    *out = cause;
    return CFX_OK;
}

/* Loads the images offered (the examples folder, or image files), scores them, and keeps the
 * low-competency ones (all with --all), then a seeded sample of --limit of them. */
static cfx_status load_inputs(cfx_bundle *b, const char *examples, const cli_list *files,
                              const settings *st, double threshold, inputs *in) {
    cfx_competency_shape sh;
    cfx_competency_shape_of(b->competency, &sh);
    cfx_tensor *x = NULL;
    char **names = NULL, **cause = NULL;
    if (examples) {
        char path[4200];
        snprintf(path, sizeof path, "%s/images.npy", examples);
        if (!(x = cfx_npy_read(path))) return CFX_EFORMAT;
        if (x->ndim != 4 || x->shape[1] != sh.c || x->shape[2] != sh.h || x->shape[3] != sh.w) {
            char buf[64];
            cfx_tensor_shape_str(x->ndim, x->shape, buf, sizeof buf);
            cfx_tensor_free(x);
            return cfx_set_error(CFX_ESHAPE,
                                 "%s: images %s do not fit the bundle, which takes (N, %d, %d, "
                                 "%d); make the examples with this bundle",
                                 path, buf, sh.c, sh.h, sh.w);
        }
        for (int64_t i = 0; i < x->numel; i++)
            if (!isfinite(x->data[i])) {
                cfx_tensor_free(x);
                return cfx_set_error(CFX_EFORMAT, "%s: value %lld is not finite", path,
                                     (long long)i);
            }
        cfx_status s = read_causes(examples, x->shape[0], &cause);
        if (s == CFX_OK && !(names = calloc((size_t)x->shape[0], sizeof *names))) s = CFX_ENOMEM;
        for (int64_t i = 0; s == CFX_OK && i < x->shape[0]; i++) {
            char nm[4300];
            snprintf(nm, sizeof nm, "%s[%lld]", path, (long long)i);
            if (!(names[i] = strdup(nm))) s = CFX_ENOMEM;
        }
        if (s != CFX_OK) {
            for (int64_t i = 0; i < x->shape[0]; i++) {
                if (cause) free(cause[i]);
                if (names) free(names[i]);
            }
            free(cause), free(names), cfx_tensor_free(x);
            return s;
        }
    } else {
        char **nm = NULL;
        TRY(cfx_images_load(files->items, files->n, sh.c, sh.h, sh.w, &x, &nm));
        /* Owned by malloc here, like the examples' names. */
        names = calloc((size_t)x->shape[0], sizeof *names);
        for (int64_t i = 0; names && i < x->shape[0]; i++) names[i] = strdup(nm[i]);
        cfx_images_names_free(nm, x->shape[0]);
        if (!names) {
            cfx_tensor_free(x);
            return CFX_ENOMEM;
        }
    }
    const int64_t n0 = x->shape[0], img = x->numel / n0;
    float *rho = malloc((size_t)n0 * sizeof *rho);
    int64_t *keep = malloc((size_t)n0 * sizeof *keep);
    cfx_status s = rho && keep ? CFX_OK : CFX_ENOMEM;
    if (s == CFX_OK)
        s = cfx_competency_score(b->competency, x, &(cfx_competency_scores){.rho = rho}, NULL);
    int64_t n = 0;
    for (int64_t i = 0; s == CFX_OK && i < n0; i++)
        if (st->all || rho[i] < threshold) keep[n++] = i;
    if (s == CFX_OK && st->limit > 0 && n > st->limit) {
        cfx_rng r;
        cfx_rng_init(&r, (uint64_t)st->seed);
        cfx_rng_shuffle(&r, keep, n);
        n = st->limit;
        /* Back in input order. */
        for (int64_t i = 1; i < n; i++)
            for (int64_t j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
                int64_t t = keep[j];
                keep[j] = keep[j - 1], keep[j - 1] = t;
            }
    }
    if (s == CFX_OK && n == 0)
        s = cfx_set_error(CFX_EINVAL,
                          "none of the %lld images has rho below the threshold %.3g: nothing to "
                          "do (--all processes every image)",
                          (long long)n0, threshold);
    *in = (inputs){.offered = n0};
    if (s == CFX_OK) {
        in->n = n;
        in->x = cfx_tensor_new(4, (int64_t[]){n, sh.c, sh.h, sh.w});
        in->source = calloc((size_t)n, sizeof *in->source);
        in->cause = cause ? calloc((size_t)n, sizeof *in->cause) : NULL;
        in->rho = malloc((size_t)n * sizeof *in->rho);
        if (!in->x || !in->source || (cause && !in->cause) || !in->rho) s = CFX_ENOMEM;
    }
    uint64_t h = CFX_FNV1A_INIT;
    for (int64_t i = 0; s == CFX_OK && i < n; i++) {
        int64_t k = keep[i];
        memcpy(in->x->data + i * img, x->data + k * img, (size_t)img * sizeof(float));
        in->source[i] = names[k], names[k] = NULL;
        if (cause) in->cause[i] = cause[k], cause[k] = NULL;
        in->rho[i] = rho[k];
    }
    if (s == CFX_OK) {
        h = cfx_fnv1a(h, in->x->data, (size_t)in->x->numel * sizeof(float));
        for (int64_t i = 0; in->cause && i < n; i++)
            h = cfx_fnv1a(h, in->cause[i], strlen(in->cause[i]) + 1);
        in->fingerprint = h;
    }
    for (int64_t i = 0; i < n0; i++) {
        free(names[i]);
        if (cause) free(cause[i]);
    }
    free(names), free(cause), free(rho), free(keep);
    cfx_tensor_free(x);
    if (s != CFX_OK) inputs_free(in);
    return s;
}

/* ------------------------------------------------------------------------ run.json --- */

/* run.json's text. Everything but "status" must match for --resume; the paths are recorded
 * for the reader, and compared by fingerprint only. */
static char *run_json(const settings *st, const cfx_bundle *b, const char *bundle_path,
                      const inputs *in, const cfx_competency_shape *sh, double threshold,
                      bool complete) {
    cJSON *j = cJSON_CreateObject(), *set = cJSON_CreateObject(), *m = cJSON_CreateArray();
    char fp[17];
    cJSON_AddStringToObject(j, "format", "cfx-counterfactual-run");
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddStringToObject(j, "cfx", CFX_VERSION);
    cJSON_AddStringToObject(j, "status", complete ? "complete" : "running");
    char *abs = cli_absolute(bundle_path);
    cJSON_AddStringToObject(j, "bundle", abs ? abs : bundle_path);
    free(abs);
    cJSON_AddStringToObject(j, "bundle_fingerprint", b->fingerprint);
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)in->fingerprint);
    cJSON_AddStringToObject(j, "images_fingerprint", fp);
    cJSON_AddNumberToObject(j, "images", (double)in->n);
    cJSON_AddNumberToObject(j, "images_offered", (double)in->offered);
    cJSON_AddItemToObject(j, "image_shape",
                          cJSON_CreateIntArray((const int[]){sh->c, sh->h, sh->w}, 3));
    for (int k = 0; k < NOUT; k++)
        if (st->use[k]) cJSON_AddItemToArray(m, cJSON_CreateString(out_name(k)));
    cJSON_AddItemToObject(j, "methods", m);
    cJSON_AddBoolToObject(set, "low_competency_only", !st->all);
    cJSON_AddNumberToObject(set, "limit", (double)st->limit);
    cJSON_AddNumberToObject(set, "seed", (double)st->seed);
    cJSON_AddNumberToObject(set, "batch", (double)st->batch);
    cJSON_AddNumberToObject(set, "threshold", threshold);
    cJSON_AddNumberToObject(set, "gamma", st->o.gamma);
    cJSON_AddNumberToObject(set, "lr", st->lr);
    cJSON_AddNumberToObject(set, "max_iter", st->o.max_iter);
    cJSON_AddStringToObject(set, "distance", cfx_cf_distance_name(st->o.distance));
    cJSON_AddStringToObject(set, "distance_label", st->distance_label);
    cJSON_AddStringToObject(set, "vector_distance", cfx_cf_vector_name(st->o.vector));
    if (st->lpips_model) {
        cJSON_AddStringToObject(set, "lpips_model", st->lpips_model);
        cJSON_AddStringToObject(set, "lpips_model_fingerprint", st->lpips_fingerprint);
    }
    cJSON_AddStringToObject(set, "stop", stops[st->o.stop]);
    cJSON_AddBoolToObject(set, "clip", st->o.clip);
    cJSON_AddItemToObject(j, "settings", set);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    return text;
}

/* The first difference between the run.json on disk and the one this command would write, as
 * "the setting 'gamma' (0.1 there, 0.2 here)"; NULL when they agree. */
static char *run_mismatch(const char *old_text, const char *new_text) {
    cJSON *a = cJSON_Parse(old_text), *b = cJSON_Parse(new_text);
    char *why = NULL;
    if (!a || !cJSON_IsObject(a)) {
        why = strdup("run.json is not a cfx run's");
        goto done;
    }
    static const char *const top[] = {"format", "bundle_fingerprint", "images_fingerprint",
                                      "images", "image_shape",        "methods"};
    for (size_t k = 0; !why && k < CLI_LEN(top) + 1; k++) {
        bool in_set = k == CLI_LEN(top);
        const cJSON *sa = in_set ? cJSON_GetObjectItemCaseSensitive(a, "settings") : a;
        const cJSON *sb = in_set ? cJSON_GetObjectItemCaseSensitive(b, "settings") : b;
        for (const cJSON *vb = in_set ? sb->child : cJSON_GetObjectItemCaseSensitive(b, top[k]);
             vb && !why; vb = in_set ? vb->next : NULL) {
            const cJSON *va = cJSON_GetObjectItemCaseSensitive(sa, vb->string);
            if (va && cJSON_Compare(va, vb, 1)) continue;
            char *pa = va ? cJSON_PrintUnformatted(va) : strdup("absent");
            char *pb = cJSON_PrintUnformatted(vb);
            size_t len = strlen(vb->string) + strlen(pa) + strlen(pb) + 64;
            if ((why = malloc(len)))
                snprintf(why, len, "%s '%s' (%s there, %s here)", in_set ? "the setting" : "",
                         vb->string, pa, pb);
            free(pa), free(pb);
        }
    }
done:
    cJSON_Delete(a), cJSON_Delete(b);
    return why;
}

/* ------------------------------------------------------------------- the run folder --- */

static void path_in(char *buf, size_t size, const char *dir, const char *name) {
    snprintf(buf, size, "%s/%s", dir, name);
}

static bool exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* Whether dir is missing or an empty folder. */
/* Whether dir is missing or holds nothing but temporaries ("*.tmp.<pid>", which a killed
 * process leaves and the next write sweeps). */
static bool empty_or_missing(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT;
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(d)))
        empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || strstr(e->d_name, ".tmp.");
    closedir(d);
    return empty;
}

/* Removes a run folder's own files (--force on a run folder). */
static void remove_run(const char *dir) {
    char p[8800];
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        size_t len = strlen(n);
        if (!strcmp(n, "run.json") || !strcmp(n, "results.jsonl") || !strcmp(n, "images.npy") ||
            (!strncmp(n, "counterfactuals_", 16) && len > 4 && !strcmp(n + len - 4, ".npy"))) {
            path_in(p, sizeof p, dir, n);
            unlink(p);
        }
    }
    closedir(d);
    char strips[4300];
    path_in(strips, sizeof strips, dir, "strips");
    if ((d = opendir(strips))) {
        while ((e = readdir(d)))
            if (strlen(e->d_name) > 4 && !strcmp(e->d_name + strlen(e->d_name) - 4, ".png")) {
                path_in(p, sizeof p, strips, e->d_name);
                unlink(p);
            }
        closedir(d);
        rmdir(strips);
    }
}

/* Writes a whole small file atomically. */
static cfx_status write_text(const char *path, const char *text) {
    cfx_file f;
    TRY(cfx_file_create(&f, path));
    fputs(text, f.f);
    fputc('\n', f.f);
    return cfx_file_commit(&f);
}

static cfx_status write_all(int fd, const void *p, size_t n, off_t at, const char *path) {
    const char *c = p;
    while (n) {
        ssize_t w = at >= 0 ? pwrite(fd, c, n, at) : write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return cfx_set_error(CFX_EIO, "write '%s': %s", path, strerror(errno));
        c += w, n -= (size_t)w;
        if (at >= 0) at += w;
    }
    return CFX_OK;
}

/* Opens (creating when new) counterfactuals_<m>.npy with the header of n images; on resume an
 * existing file must have exactly that header and size. */
static cfx_status open_npy(const char *dir, int k, const inputs *in, bool resume, int *fd,
                           size_t *data_at) {
    char path[4300], name[64];
    snprintf(name, sizeof name, "counterfactuals_%s.npy", out_name(k));
    path_in(path, sizeof path, dir, name);
    unsigned char header[640];
    size_t hlen;
    TRY(cfx_npy_header_f32(4, in->x->shape, header, sizeof header, &hlen));
    off_t size = (off_t)(hlen + (size_t)in->x->numel * sizeof(float));
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0) return cfx_set_error(CFX_EIO, "open '%s': %s", path, strerror(errno));
    struct stat st;
    unsigned char old[640];
    if (resume && fstat(*fd, &st) == 0 && st.st_size > 0 &&
        (st.st_size != size || pread(*fd, old, hlen, 0) != (ssize_t)hlen ||
         memcmp(old, header, hlen)))
        return cfx_set_error(CFX_EFORMAT,
                             "%s does not hold %lld images of this run; start again with --force",
                             path, (long long)in->n);
    TRY(write_all(*fd, header, hlen, 0, path));
    if (ftruncate(*fd, size) != 0)
        return cfx_set_error(CFX_EIO, "resize '%s': %s", path, strerror(errno));
    *data_at = hlen;
    return CFX_OK;
}

/* Cuts results.jsonl back to its whole batches; returns the images they cover. */
static cfx_status resume_point(const char *path, const inputs *in, int64_t batch, int nout,
                               int64_t *done) {
    *done = 0;
    char *text = NULL;
    size_t size = 0;
    if (!exists(path)) return CFX_OK;
    TRY(cfx_file_read_all(path, &text, &size));
    size_t keep = 0, at = 0;
    int64_t lines = 0, images = 0;
    for (;;) {
        int64_t m = MIN(batch, in->n - images), want = m * nout;
        if (m <= 0) break;
        /* Does the file hold this batch's lines whole? */
        size_t p = at;
        int64_t got = 0;
        while (got < want) {
            const char *nl = memchr(text + p, '\n', size - p);
            if (!nl) break;
            p = (size_t)(nl - text) + 1, got++;
        }
        if (got < want) break;
        at = keep = p, lines += got, images += m;
    }
    cfx_free(text);
    if (keep != size && truncate(path, (off_t)keep) != 0)
        return cfx_set_error(CFX_EIO, "truncate '%s': %s", path, strerror(errno));
    *done = images;
    return CFX_OK;
}

/* ---------------------------------------------------------------------- the batches --- */

/* Per image, among the methods run, the successful counterfactual nearest to the original
 * (ties to the method listed first); when none succeeded, the one with the highest rho. Its
 * record is the winner's, with the seconds of all the methods (what best cost). */
static void pick_best(const settings *st, int64_t m, int64_t img, float *const *out,
                      cfx_cf_record *const *rec, float *best_out, cfx_cf_record *best,
                      int *winner) {
    for (int64_t i = 0; i < m; i++) {
        int w = -1;
        double secs = 0;
        for (int k = 0; k < CFX_CF_COUNT; k++) {
            if (!st->use[k]) continue;
            const cfx_cf_record *r = &rec[k][i];
            secs += r->seconds;
            if (w < 0) {
                w = k;
                continue;
            }
            const cfx_cf_record *b = &rec[w][i];
            bool better = r->success && b->success   ? r->distance < b->distance
                          : r->success != b->success ? r->success
                                                     : r->rho_after > b->rho_after;
            if (better) w = k;
        }
        best[i] = rec[w][i];
        best[i].seconds = secs;
        winner[i] = w;
        memcpy(best_out + i * img, out[w] + i * img, (size_t)img * sizeof(float));
    }
}

static void put_num(char **p, const char *key, double v, const char *fmt) {
    *p += sprintf(*p, ", \"%s\": ", key);
    if (isfinite(v))
        *p += sprintf(*p, fmt, v);
    else
        *p += sprintf(*p, "null");
}

/* A JSON string into *p (names and causes come from files; escape them). */
static void put_str(char **p, const char *s) {
    *(*p)++ = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            *(*p)++ = '\\', *(*p)++ = (char)c;
        else if (c < 0x20)
            *p += sprintf(*p, "\\u%04x", c);
        else
            *(*p)++ = (char)c;
    }
    *(*p)++ = '"';
}

/* One results.jsonl line. buf must hold 512 bytes plus six times the name and cause. */
static char *format_line(char *p, int64_t index, const inputs *in, int k, const cfx_cf_record *r,
                         int winner) {
    p += sprintf(p, "{\"index\": %lld, \"method\": \"%s\"", (long long)index, out_name(k));
    if (in->cause) {
        p += sprintf(p, ", \"cause\": ");
        put_str(&p, in->cause[index]);
    }
    put_num(&p, "rho_before", r->rho_before, "%.9g");
    put_num(&p, "rho_after", r->rho_after, "%.9g");
    p += sprintf(p, ", \"success\": %s, \"steps\": %d", r->success ? "true" : "false", r->steps);
    put_num(&p, "seconds", r->seconds, "%.6f");
    put_num(&p, "distance", r->distance, "%.9g");
    put_num(&p, "vector_term", r->vector_term, "%.9g");
    if (r->neighbour >= 0) p += sprintf(p, ", \"neighbour\": %lld", (long long)r->neighbour);
    if (k == BEST) p += sprintf(p, ", \"winner\": \"%s\"", out_name(winner));
    if (r->failure[0]) {
        p += sprintf(p, ", \"failure\": ");
        put_str(&p, r->failure);
    }
    p += sprintf(p, ", \"source\": ");
    put_str(&p, in->source[index]);
    p += sprintf(p, "}\n");
    return p;
}

typedef struct {
    cfx_cf *cf[CFX_CF_COUNT];
    int fd[NOUT], results;
    size_t data_at[NOUT];
    float *out[NOUT];
    cfx_cf_record *rec[NOUT];
    int *winner;
    char *lines;
    char paths[NOUT + 1][4300];
} runner;

/* Computes images [first, first + m): every method, then best, into r->out, r->rec and
 * r->winner. */
static cfx_status compute_batch(runner *r, const settings *st, const inputs *in, int64_t first,
                                int64_t m) {
    const int64_t img = in->x->numel / in->n;
    cfx_tensor view = {.data = in->x->data + first * img, .ndim = 4, .numel = m * img};
    memcpy(view.shape, in->x->shape, sizeof view.shape);
    view.shape[0] = m;
    for (int k = 0; k < CFX_CF_COUNT; k++) {
        if (!st->use[k]) continue;
        cfx_tensor out = view;
        out.data = r->out[k];
        TRY(cfx_cf_run(r->cf[k], &view, &out, r->rec[k]));
    }
    if (st->use[BEST]) pick_best(st, m, img, r->out, r->rec, r->out[BEST], r->rec[BEST], r->winner);
    return CFX_OK;
}

/* Writes a computed batch: the rows into the .npy files, synced, then the lines. */
static cfx_status write_batch(runner *r, const settings *st, const inputs *in, int64_t first,
                              int64_t m) {
    const int64_t img = in->x->numel / in->n;
    for (int k = 0; k < NOUT; k++) {
        if (!st->use[k]) continue;
        off_t at = (off_t)(r->data_at[k] + (size_t)(first * img) * sizeof(float));
        TRY(write_all(r->fd[k], r->out[k], (size_t)(m * img) * sizeof(float), at, r->paths[k]));
        if (fdatasync(r->fd[k]) != 0)
            return cfx_set_error(CFX_EIO, "sync '%s': %s", r->paths[k], strerror(errno));
    }
    char *p = r->lines;
    for (int k = 0; k < NOUT; k++)
        for (int64_t i = 0; st->use[k] && i < m; i++)
            p = format_line(p, first + i, in, k, &r->rec[k][i], k == BEST ? r->winner[i] : -1);
    TRY(write_all(r->results, r->lines, (size_t)(p - r->lines), -1, r->paths[NOUT]));
    if (fdatasync(r->results) != 0)
        return cfx_set_error(CFX_EIO, "sync '%s': %s", r->paths[NOUT], strerror(errno));
    return CFX_OK;
}

/* Under mpirun, a batch computed by another rank travels to rank 0 as a header (the rank's
 * status and error message) and, when it succeeded, the rows, records and winners: the same
 * arrays compute_batch fills, so rank 0 writes them with write_batch as if it had computed
 * them. The records go as bytes: every rank runs the same build (checked at start-up). They
 * are posted (cli_mpi_post), so a rank whose batches stop early runs ahead of rank 0's order
 * instead of waiting for rank 0 to take each one. */
typedef struct {
    int32_t status;
    char message[1020];
} batch_header;
enum { TAG_HEADER = 1, TAG_ROWS, TAG_RECORDS, TAG_WINNERS };

static cfx_status send_batch(const runner *r, const settings *st, int64_t m, int64_t img,
                             cfx_status computed) {
    batch_header h = {.status = computed};
    if (computed != CFX_OK) snprintf(h.message, sizeof h.message, "%s", cfx_last_error());
    TRY(cli_mpi_post(0, TAG_HEADER, &h, sizeof h));
    for (int k = 0; computed == CFX_OK && k < NOUT; k++) {
        if (!st->use[k]) continue;
        TRY(cli_mpi_post(0, TAG_ROWS, r->out[k], (size_t)(m * img) * sizeof(float)));
        TRY(cli_mpi_post(0, TAG_RECORDS, r->rec[k], (size_t)m * sizeof(cfx_cf_record)));
    }
    if (computed == CFX_OK && st->use[BEST])
        TRY(cli_mpi_post(0, TAG_WINNERS, r->winner, (size_t)m * sizeof *r->winner));
    return CFX_OK;
}

/* Rank 0's side: the batch, or the rank's error when it failed. */
static cfx_status receive_batch(runner *r, const settings *st, int from, int64_t m, int64_t img) {
    batch_header h;
    TRY(cli_mpi_recv(from, TAG_HEADER, &h, sizeof h));
    if (h.status != CFX_OK) {
        h.message[sizeof h.message - 1] = '\0';
        return cfx_set_error((cfx_status)h.status, "%s", h.message);
    }
    for (int k = 0; k < NOUT; k++) {
        if (!st->use[k]) continue;
        TRY(cli_mpi_recv(from, TAG_ROWS, r->out[k], (size_t)(m * img) * sizeof(float)));
        TRY(cli_mpi_recv(from, TAG_RECORDS, r->rec[k], (size_t)m * sizeof(cfx_cf_record)));
    }
    if (st->use[BEST])
        TRY(cli_mpi_recv(from, TAG_WINNERS, r->winner, (size_t)m * sizeof *r->winner));
    return CFX_OK;
}

/* ------------------------------------------------------------------- the summary --- */

static void print_row(const char *method, const char *cause, const cfx_run_tally *t) {
    if (!t->n) return;
    printf("| %s |%s%s%s %lld | %.1f%% | %.3f | %.3f | %.1f | %.4f |\n", method, cause ? " " : "",
           cause ? cause : "", cause ? " |" : "", (long long)t->n,
           100.0 * (double)t->success / (double)t->n, t->rho_before, t->rho_after, t->steps,
           t->seconds);
}

static void print_summary(const cfx_run *r) {
    const char *cause[64];
    int ncause = cfx_run_causes(r, cause, 64);
    printf("| method | images | success | rho before | rho after | steps | seconds/image |\n");
    printf("|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < CFX_RUN_METHODS; k++) {
        cfx_run_tally t = cfx_run_tally_of(r, k, NULL);
        if (r->has[k]) print_row(cfx_run_method_name(k), NULL, &t);
    }
    if (!ncause) return;
    printf("\n| method | cause | images | success | rho before | rho after | steps | "
           "seconds/image |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < CFX_RUN_METHODS; k++)
        for (int c = 0; r->has[k] && c < ncause; c++) {
            cfx_run_tally t = cfx_run_tally_of(r, k, cause[c]);
            print_row(cfx_run_method_name(k), cause[c], &t);
        }
}

static void json_tally(const cfx_run_tally *t) {
    printf("{\"images\": %lld, \"success\": %lld", (long long)t->n, (long long)t->success);
    const double v[] = {t->rho_before, t->rho_after, t->steps, t->seconds};
    const char *const key[] = {"rho_before", "rho_after", "steps", "seconds_per_image"};
    for (int q = 0; q < 4; q++)
        printf(t->n && isfinite(v[q]) ? ", \"%s\": %.6g" : ", \"%s\": null", key[q], v[q]);
    printf("}");
}

static void print_json(const cfx_run *r, const char *out) {
    const char *cause[64];
    int ncause = cfx_run_causes(r, cause, 64);
    printf("{\"out\": ");
    cli_json_str(stdout, out);
    printf(", \"methods\": {");
    bool first = true;
    for (int k = 0; k < CFX_RUN_METHODS; k++) {
        if (!r->has[k]) continue;
        printf("%s\"%s\": {\"all\": ", first ? "" : ", ", cfx_run_method_name(k));
        first = false;
        cfx_run_tally t = cfx_run_tally_of(r, k, NULL);
        json_tally(&t);
        for (int c = 0; c < ncause; c++) {
            printf(", ");
            cli_json_str(stdout, cause[c]);
            printf(": ");
            t = cfx_run_tally_of(r, k, cause[c]);
            json_tally(&t);
        }
        printf("}");
    }
    printf("}}\n");
}

/* ---------------------------------------------------------------------- the command --- */

static void runner_free(runner *r) {
    for (int k = 0; k < CFX_CF_COUNT; k++) cfx_cf_free(r->cf[k]);
    for (int k = 0; k < NOUT; k++) {
        if (r->fd[k] > 0) close(r->fd[k]);
        free(r->out[k]), free(r->rec[k]);
    }
    if (r->results > 0) close(r->results);
    free(r->winner), free(r->lines);
}

/* Rank 0's part of the start: the run folder new (or replaced with --force) with images.npy and
 * run.json, or resumed (*resume is cleared for a run killed before its run.json, which starts
 * over); the .npy files and results.jsonl opened in r; *done, the images of the whole batches
 * already on disk. */
static cfx_status open_run(runner *r, const char *out, int *resume, bool force,
                           const char *json_text, const inputs *in, const settings *st,
                           int64_t batch, int nout, int64_t *done) {
    char path[4300];
    path_in(path, sizeof path, out, "run.json");
    bool have_run = exists(path);
    *done = 0;
    /* A run killed before its run.json was written has nothing to continue: it starts. */
    if (*resume && !have_run && empty_or_missing(out)) *resume = false;
    if (*resume) {
        if (!have_run)
            return cfx_set_error(CFX_EINVAL, "--resume: '%s' is not a run folder (no run.json)",
                                 out);
        char *old_text = NULL;
        size_t size;
        TRY(cfx_file_read_all(path, &old_text, &size));
        char *why = run_mismatch(old_text, json_text);
        cfx_free(old_text);
        if (why) {
            cfx_status s = cfx_set_error(CFX_EINVAL,
                                         "--resume: '%s' is a run of other inputs or settings: "
                                         "%s; run again with those, or start over with --force",
                                         out, why);
            free(why);
            return s;
        }
    } else if (!empty_or_missing(out)) {
        if (!force || !have_run)
            return cfx_set_error(CFX_EINVAL,
                                 force ? "'%s' is not empty and not a run folder; choose another "
                                         "--out"
                                       : "'%s' exists and is not empty (--resume continues it, "
                                         "--force replaces it)",
                                 out);
        remove_run(out);
    }
    if (mkdir(out, 0755) != 0 && errno != EEXIST)
        return cfx_set_error(CFX_EIO, "mkdir '%s': %s (does its folder exist?)", out,
                             strerror(errno));
    if (!*resume) { /* run.json last: a folder with it has its images */
        char images[4300];
        path_in(images, sizeof images, out, "images.npy");
        TRY(cfx_npy_write(images, in->x));
        TRY(write_text(path, json_text));
    }
    for (int k = 0; k < NOUT; k++) {
        if (!st->use[k]) continue;
        char name[64];
        snprintf(name, sizeof name, "counterfactuals_%s.npy", out_name(k));
        path_in(r->paths[k], sizeof r->paths[k], out, name);
        TRY(open_npy(out, k, in, *resume, &r->fd[k], &r->data_at[k]));
    }
    path_in(r->paths[NOUT], sizeof r->paths[NOUT], out, "results.jsonl");
    if (*resume) TRY(resume_point(r->paths[NOUT], in, batch, nout, done));
    r->results = open(r->paths[NOUT], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (r->results < 0)
        return cfx_set_error(CFX_EIO, "open '%s': %s", r->paths[NOUT], strerror(errno));
    if (!*resume && ftruncate(r->results, 0) != 0)
        return cfx_set_error(CFX_EIO, "truncate '%s': %s", r->paths[NOUT], strerror(errno));
    return CFX_OK;
}

/* The progress note: success so far per method, over the images of this invocation. */
static void note_of(char *buf, size_t size, const settings *st, const int64_t *ok, int64_t n) {
    size_t len = (size_t)snprintf(buf, size, "success");
    for (int k = 0; k < NOUT && len < size; k++)
        if (st->use[k])
            len += (size_t)snprintf(buf + len, size - len, " %s %.0f%%", out_name(k),
                                    n ? 100.0 * (double)ok[k] / (double)n : 0.0);
}

int cmd_counterfactual(int argc, char **argv) {
    const char *bundle = NULL, *examples = NULL, *image = NULL, *out = NULL, *methods = "all",
               *distance = "lpips", *vector = "default", *lpips = NULL;
    cli_list more = {0};
    double gamma = 0.1, lr = 1e-3, threshold = NAN;
    long long max_iter = 100, batch = 50, seed = 0, limit = 0, threads = 0;
    int stop = 0, clip = 0, all = 0, resume = 0, force = 0, json = 0;
    const cli_opt opts[] = {
        {"bundle", "DIR", "a competency bundle written by cfx competency fit", .str = &bundle,
         .required = true, .role = CLI_IN},
        {"examples", "DIR", "a folder written by cfx competency examples (its causes are kept)",
         .str = &examples, .role = CLI_IN},
        {"images", "INPUT",
         "PNG/JPEG files, folders of them, or .npy arrays (N,C,H,W) in [0,1]; "
         "more may follow as bare arguments",
         .str = &image, .role = CLI_IN},
        {"INPUT", NULL, "more image inputs after --images", .list = &more, .positional = true,
         .role = CLI_IN},
        {"method", "LIST",
         "igd, fgd, reco, lgd, lnn, comma-separated, or all; add best to keep per image the "
         "successful counterfactual nearest to the original",
         .str = &methods, .def = "all"},
        /* Checked below: a folder that --resume continues is not empty. */
        {"out", "RUN", "the run folder to write", .str = &out, .required = true},
        {"gamma", "G", "weight of the distance or similarity term", .num = &gamma, .min = 0,
         .max = INFINITY},
        {"lr", "LR", "Adam's learning rate", .num = &lr, .min = 0, .max = INFINITY},
        {"max-iter", "N", "optimisation steps at most (IGD, FGD, LGD)", .i = &max_iter, .lo = 1,
         .hi = 1000000},
        {"threshold", "T", "rho that counts as competent", .num = &threshold, .min = 0, .max = 1,
         .def = "the bundle's (0.9)"},
        {"distance", "D",
         "IGD's image distance, also reported for every method and used by best: lpips (the "
         "reference's; without --lpips-model the LPIPS formula on the classifier's feature maps), "
         "l2, l1 or ssim (1 - SSIM)",
         .str = &distance, .def = "lpips"},
        {"vector-distance", "V",
         "FGD's, LGD's and LNN's vector term: cos, l1 or l2 (default: cosine for FGD and LGD, L1 "
         "for LNN, as the reference)",
         .str = &vector, .def = "default"},
        {"lpips-model", "FILE",
         "an LPIPS network (ONNX: two images in [-1,1], one distance per image) for --distance "
         "lpips",
         .str = &lpips, .def = "the built-in formula on the classifier", .role = CLI_IN},
        {"stop", "RULE",
         "per-image: each image stops when it passes; per-batch: a batch stops when all pass "
         "(the reference code)",
         .pick = &stop, .choices = stops},
        {"batch", "N", "images optimised together", .i = &batch, .lo = 1, .hi = 100000},
        {"clip", NULL, "keep IGD's and FGD's pixels in [0,1] (the reference does not)",
         .flag = &clip},
        {"all", NULL, "process every image, not only those with rho below the threshold",
         .flag = &all},
        {"limit", "N", "process a seeded random sample of N of the images (0: all)", .i = &limit,
         .lo = 0, .hi = 1LL << 40},
        CLI_OPT_SEED(&seed, "seed of --limit's sample"),
        {"resume", NULL, "continue an interrupted run in --out from its last finished batch",
         .flag = &resume},
        CLI_OPT_THREADS(&threads),
        CLI_OPT_FORCE(&force),
        CLI_OPT_JSON(&json),
    };
    cli_parse(cmd,
              "Generates high-competency counterfactuals of low-competency images with the\n"
              "competency paper's methods: IGD and FGD (gradient descent on the pixels, with an\n"
              "image distance or a feature similarity), Reco (the autoencoder's reconstruction),\n"
              "LGD (descent on the latent code) and LNN (the nearest competent calibration code).\n"
              "Writes RUN/: run.json, images.npy, results.jsonl (a line per image and method,\n"
              "streamed), counterfactuals_<method>.npy and strips/<cause>.png, then prints the\n"
              "success table. An interrupted run continues with --resume.\n",
              opts, CLI_LEN(opts), argc, argv);
    if (!examples == !image) cli_usage_error(cmd, "give --examples DIR or --images INPUT...");
    if (examples && more.n) cli_usage_error(cmd, "unexpected argument '%s'", more.items[0]);
    if (resume && force)
        cli_usage_error(cmd, "--resume continues a run, --force replaces it: give one");
    settings st = {
        .batch = batch, .limit = limit, .seed = seed, .all = all, .lr = lr, .lpips_model = lpips};
    parse_methods(methods, &st);
    if (cfx_cf_distance_parse(distance, &st.o.distance) != CFX_OK)
        cli_usage_error(cmd, "--distance: %s", cfx_last_error());
    if (cfx_cf_vector_parse(vector, &st.o.vector) != CFX_OK)
        cli_usage_error(cmd, "--vector-distance: %s", cfx_last_error());
    if (lpips && st.o.distance != CFX_CF_DISTANCE_LPIPS)
        cli_usage_error(cmd, "--lpips-model needs --distance lpips");
    st.o.lpips_model = lpips;
    st.o.gamma = gamma == 0 ? -1 : gamma;
    st.o.adam.lr = lr;
    st.o.max_iter = (int)max_iter;
    st.o.stop = (cfx_cf_stop)stop;
    st.o.clip = clip;
    const char *files[1 + 256];
    int nfiles = 0;
    if (image) {
        if (more.n > 256) cli_usage_error(cmd, "more than 257 inputs: give folders or .npy arrays");
        files[nfiles++] = image;
        for (int k = 0; k < more.n; k++) files[nfiles++] = more.items[k];
    }
    const char *ins[] = {bundle, examples, lpips};
    for (size_t k = 0; k < CLI_LEN(ins); k++)
        if (ins[k] && cli_same_path(out, ins[k]))
            cli_usage_error(cmd, "--out '%s' is one of the inputs", out);
    for (int k = 0; k < nfiles; k++)
        if (cli_same_path(out, files[k]))
            cli_usage_error(cmd, "--out '%s' is one of the inputs", out);
    cli_set_threads(threads);

    /* Everything is checked and loaded before the run folder is touched. */
    cfx_bundle *b = cfx_bundle_load(bundle, batch);
    if (!b) return cli_fail(cmd, NULL);
    const double thr =
        isnan(threshold) ? cfx_competency_parce(b->competency)->threshold : threshold;
    st.o.threshold = thr;
    cfx_competency_shape sh;
    cfx_competency_shape_of(b->competency, &sh);
    inputs in = {0};
    runner r = {0};
    cfx_run *run = NULL;
    char *json_text = NULL;
    cfx_tensor *lat = NULL, *sco = NULL;
    const int rank = cli_mpi_rank(), ranks = cli_mpi_size();
    bool running = false; /* in the batches, under mpirun: a failure ends every rank */
    int rc = 0;
    cfx_status s =
        load_inputs(b, examples, image ? &(cli_list){files, nfiles} : NULL, &st, thr, &in);
    if (s == CFX_OK && st.use[CFX_CF_LNN]) s = cfx_bundle_calibration(b, &lat, &sco);
    for (int k = 0; s == CFX_OK && k < CFX_CF_COUNT; k++)
        if (st.use[k] &&
            !(r.cf[k] = cfx_cf_new(b->competency, (cfx_cf_method)k, &st.o, batch, lat, sco)))
            s = CFX_EINVAL;
    for (int k = 0; s == CFX_OK && !st.distance_label && k < CFX_CF_COUNT; k++)
        if (r.cf[k]) st.distance_label = cfx_cf_distance_label(r.cf[k]);
    if (s == CFX_OK && lpips) {
        char *bytes = NULL;
        size_t size = 0;
        if ((s = cfx_file_read_all(lpips, &bytes, &size)) == CFX_OK)
            snprintf(st.lpips_fingerprint, sizeof st.lpips_fingerprint, "%016llx",
                     (unsigned long long)cfx_fnv1a(CFX_FNV1A_INIT, bytes, size));
        cfx_free(bytes);
    }
    if (s == CFX_OK && !(json_text = run_json(&st, b, bundle, &in, &sh, thr, false)))
        s = CFX_ENOMEM;

    /* Buffers for one batch, on every rank. */
    const int64_t img = in.x ? in.x->numel / in.n : 0;
    size_t longest = 0;
    for (int64_t i = 0; s == CFX_OK && i < in.n; i++) {
        size_t len = strlen(in.source[i]) + (in.cause ? strlen(in.cause[i]) : 0);
        longest = len > longest ? len : longest;
    }
    int nout = 0;
    for (int k = 0; k < NOUT; k++) nout += st.use[k];
    if (s == CFX_OK) {
        r.lines = malloc((size_t)(nout * batch) * (1200 + 6 * longest));
        r.winner = malloc((size_t)batch * sizeof *r.winner);
        if (!r.lines || !r.winner) s = CFX_ENOMEM;
    }
    for (int k = 0; s == CFX_OK && k < NOUT; k++) {
        if (!st.use[k]) continue;
        r.out[k] = malloc((size_t)(batch * img) * sizeof(float));
        r.rec[k] = malloc((size_t)batch * sizeof(cfx_cf_record));
        if (!r.out[k] || !r.rec[k]) s = CFX_ENOMEM;
    }
    /* Under mpirun every rank has loaded and checked the inputs: the lowest rank that failed
     * says why, and the ranks must agree on what they loaded (run.json holds the fingerprints
     * of the bundle and the images, and the settings). */
    int failed = cli_mpi_first_failure(s != CFX_OK);
    if (failed >= 0) {
        if (failed == rank) goto fail;
        goto quiet;
    }
    if (ranks > 1 && !cli_mpi_same(cmd, "inputs or settings (run.json)",
                                   cfx_fnv1a(CFX_FNV1A_INIT, json_text, strlen(json_text))))
        goto quiet;

    /* The run folder, which rank 0 alone touches; the others learn where it resumes. */
    int64_t done = 0;
    if (rank == 0) s = open_run(&r, out, &resume, force, json_text, &in, &st, batch, nout, &done);
    if (ranks > 1 && (failed = cli_mpi_first_failure(s != CFX_OK)) < 0)
        s = cli_mpi_broadcast(&done, sizeof done);
    if (failed >= 0 && failed != rank) goto quiet;
    if (s != CFX_OK) goto fail;
    char note[512];
    if (rank == 0) {
        snprintf(note, sizeof note,
                 "cfx counterfactual: interrupted; the finished batches are in %s: run the same "
                 "command with --resume to continue",
                 out);
        cfx_set_signal_note(note);
        if (resume && done)
            fprintf(stderr, "cfx %s: resuming after %lld of %lld images\n", cmd, (long long)done,
                    (long long)in.n);
    }

    /* The batches: batch j (counted from the resume point) is rank j % ranks's; rank 0 writes
     * every batch in order, its own as it computes them, the others' as they arrive, so the
     * files are those one process writes. */
    const cfx_progress bar = {.fn = json || rank ? NULL : cfx_progress_stderr};
    int64_t ok[NOUT] = {0}, seen = 0, units = 0; /* units: images this rank computed */
    double work = 0, cpu = 0;                    /* wall and CPU seconds this rank computed */
    running = ranks > 1;
    cfx_progress_report(&bar, "counterfactuals", done, in.n, "");
    for (int64_t j = 0, first = done; first < in.n; j++, first += batch) {
        const int64_t m = MIN(batch, in.n - first);
        const int owner = (int)(j % ranks);
        if (rank > 0) {
            if (owner != rank) continue;
            double t0 = cfx_now(), c0 = cli_mpi_cpu();
            cfx_status c = compute_batch(&r, &st, &in, first, m);
            work += cfx_now() - t0, cpu += cli_mpi_cpu() - c0, units += m;
            if ((s = send_batch(&r, &st, m, img, c)) != CFX_OK) goto fail;
            if (c != CFX_OK) {
                cli_mpi_flush(); /* rank 0 takes it and reports it, with the images */
                goto quiet;
            }
            continue;
        }
        double t0 = cfx_now(), c0 = cli_mpi_cpu();
        s = owner == 0 ? compute_batch(&r, &st, &in, first, m)
                       : receive_batch(&r, &st, owner, m, img);
        if (owner == 0) work += cfx_now() - t0, cpu += cli_mpi_cpu() - c0, units += m;
        if (s != CFX_OK) {
            if (ranks > 1)
                cfx_error_context(s, "rank %d of %d, images %lld..%lld (%s ...)", owner, ranks,
                                  (long long)first, (long long)(first + m - 1), in.source[first]);
            else
                cfx_error_context(s, "images %lld..%lld", (long long)first,
                                  (long long)(first + m - 1));
            goto fail;
        }
        if ((s = write_batch(&r, &st, &in, first, m)) != CFX_OK) goto fail;
        seen += m;
        for (int k = 0; k < NOUT; k++)
            for (int64_t i = 0; st.use[k] && i < m; i++) ok[k] += r.rec[k][i].success;
        note_of(note, sizeof note, &st, ok, seen);
        cfx_progress_report(&bar, "counterfactuals", first + m, in.n, note);
    }
    if (rank > 0 && (s = cli_mpi_flush()) != CFX_OK) goto fail;
    running = false;
    cli_mpi_stats(cmd, units, work, cpu);
    if (rank > 0) goto clean_up;
    char path[4300];
    cfx_set_signal_note(NULL);

    /* The tables and strips from the files, as any reader sees them; then the run is
     * complete. */
    if (!(run = cfx_run_open(out))) {
        s = CFX_EFORMAT;
        goto fail;
    }
    path_in(path, sizeof path, out, "strips");
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        s = cfx_set_error(CFX_EIO, "mkdir '%s': %s", path, strerror(errno));
        goto fail;
    }
    if ((s = cfx_figure_run_strips(run, path, STRIP_ROWS)) != CFX_OK) goto fail;
    free(json_text);
    json_text = run_json(&st, b, bundle, &in, &sh, thr, true);
    path_in(path, sizeof path, out, "run.json");
    if (!json_text || (s = write_text(path, json_text)) != CFX_OK) goto fail;
    if (json)
        print_json(run, out);
    else {
        printf("%lld of %lld images processed (%s), threshold %.3g, %s stop, distance %s\n\n",
               (long long)in.n, (long long)in.offered, st.all ? "all" : "rho below the threshold",
               thr, stops[st.o.stop], cfx_cf_distance_name(st.o.distance));
        print_summary(run);
        printf("\nwrote %s/: run.json, images.npy, results.jsonl, counterfactuals_<method>.npy, "
               "strips/\n",
               out);
    }
    if (0) {
    fail:
        if (ranks > 1 && !running && rank > 0)
            rc = cli_fail(cmd, "rank %d of %d: %s", rank, ranks, cfx_last_error());
        else
            rc = cli_fail(cmd, NULL);
        /* A failure during the batches ends every rank; the finished batches stay. */
        if (running) {
            if (rank == 0)
                fprintf(stderr,
                        "cfx %s: the finished batches are in %s: run the same command with "
                        "--resume to continue\n",
                        cmd, out);
            cli_mpi_abort(1);
        }
    }
    if (0) {
    quiet: /* another rank said why */
        rc = 1;
    }
clean_up:
    cfx_set_signal_note(NULL);
    cfx_run_free(run);
    runner_free(&r);
    inputs_free(&in);
    cfx_tensor_free(lat), cfx_tensor_free(sco);
    free(json_text);
    cfx_bundle_free(b);
    return rc;
}
