/* mpi.c - rank, size and the few collectives the sharded commands need (issue 23).
 *
 * With -DCFX_MPI (build/cfx-mpi, `make mpi`) the calls go to Open MPI over MPI_COMM_WORLD; the
 * plain build compiles the same functions as those of one rank: rank 0 of 1, a gather that
 * copies, a send that cannot happen. The plain build needs no MPI, but it knows when mpirun
 * started it as one of several ranks (Open MPI's OMPI_COMM_WORLD_SIZE, PMI's and a Slurm job
 * step's sizes in the environment): then every rank would do the whole work and race on the same
 * files, so it refuses.
 *
 * The start-up check gathers from every rank its cfx version and an FNV-1a fingerprint of its
 * command line (MPI_Allgather of a small record), so rank 0 can name the rank that differs:
 * ranks of different builds, or an MPMD line (`mpirun -n 1 cfx ... : -n 1 cfx ...`) with other
 * arguments, stop before anything is read. What a path names can still differ between nodes
 * (another file behind the same name); the commands check a fingerprint of what they loaded
 * with cli_mpi_same. */
#include "mpi.h"

#include "cli.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef CFX_MPI
#include <mpi.h>
#endif

/* Messages are cut into pieces MPI's int count can carry. */
enum { PIECE = 1 << 30 };

void cli_mpi_block(int64_t n, int rank, int size, int64_t *lo, int64_t *hi) {
    int64_t q = n / size, r = n % size;
    *lo = rank * q + (rank < r ? rank : r);
    *hi = *lo + q + (rank < r);
}

void cli_mpi_batches(int64_t n, int64_t batch, int rank, int size, int64_t *lo, int64_t *hi) {
    cli_mpi_block((n + batch - 1) / batch, rank, size, lo, hi);
    *lo = *lo * batch < n ? *lo * batch : n;
    *hi = *hi * batch < n ? *hi * batch : n;
}

/* Greedy balance (longest processing time first); the order of equal costs is the units'. */
static const double *sort_cost;
static int by_cost(const void *a, const void *b) {
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    if (sort_cost[i] != sort_cost[j]) return sort_cost[i] > sort_cost[j] ? -1 : 1;
    return (i > j) - (i < j);
}

void cli_mpi_assign(const double *cost, int64_t n, int size, int *owner) {
    const char *mode = getenv("CFX_MPI_BALANCE");
    int64_t *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    double *load = calloc((size_t)size, sizeof *load);
    if (!order || !load || (mode && !strcmp(mode, "count"))) { /* blocks by count */
        for (int r = 0; r < size; r++) {
            int64_t lo, hi;
            cli_mpi_block(n, r, size, &lo, &hi);
            for (int64_t i = lo; i < hi; i++) owner[i] = r;
        }
        free(order), free(load);
        return;
    }
    for (int64_t i = 0; i < n; i++) order[i] = i;
    sort_cost = cost;
    qsort(order, (size_t)n, sizeof *order, by_cost);
    for (int64_t k = 0; k < n; k++) {
        int best = 0;
        for (int r = 1; r < size; r++)
            if (load[r] < load[best]) best = r;
        owner[order[k]] = best;
        load[best] += cost[order[k]] > 0 ? cost[order[k]] : 0;
    }
    free(order), free(load);
}

double cli_mpi_cpu(void) {
    struct timespec t;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t) != 0) return 0;
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#ifdef CFX_MPI

static int the_rank, the_size = 1;
static double in_mpi; /* seconds inside MPI calls (cli_mpi_seconds) */

/* Times an MPI call: T(MPI_Send(...)) is the call's return code. The comma operator reads the
 * clock before the call is evaluated (function arguments have no such order). */
static double call_start;
#define T(call) (call_start = MPI_Wtime(), timed_call(call))
static int timed_call(int rc) {
    in_mpi += MPI_Wtime() - call_start;
    return rc;
}

double cli_mpi_seconds(void) {
    return in_mpi;
}

static double started; /* MPI_Wtime at cli_mpi_init */

void cli_mpi_stats(const char *cmd, int64_t units, double work_seconds, double work_cpu) {
    const char *on = getenv("CFX_MPI_STATS");
    if (!on || strcmp(on, "1") || the_size < 2) return;
    double wall = MPI_Wtime() - started;
    fprintf(stderr,
            "cfx %s: rank %d of %d: %lld units, %.3f s of work (%.3f CPU s), %.3f s in MPI calls "
            "(%.1f%% of %.3f s)\n",
            cmd, the_rank, the_size, (long long)units, work_seconds, work_cpu, in_mpi,
            wall > 0 ? 100 * in_mpi / wall : 0.0, wall);
}

static cfx_status mpi_error(const char *what, int code) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, msg, &len);
    return cfx_set_error(CFX_EIO, "MPI %s on rank %d of %d: %s", what, the_rank, the_size, msg);
}

cfx_status cli_mpi_sum(void *user, float *f, size_t n, double *d, int nd) {
    (void)user;
    for (size_t at = 0; at < n;) {
        int c = (int)(n - at < PIECE ? n - at : PIECE);
        int rc = T(MPI_Allreduce(MPI_IN_PLACE, f + at, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
        if (rc != MPI_SUCCESS) return mpi_error("all-reduce", rc);
        at += (size_t)c;
    }
    int rc = nd ? T(MPI_Allreduce(MPI_IN_PLACE, d, nd, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD))
                : MPI_SUCCESS;
    return rc == MPI_SUCCESS ? CFX_OK : mpi_error("all-reduce", rc);
}

static void finalize(void) {
    int done = 0;
    MPI_Finalized(&done);
    if (!done) MPI_Finalize();
}

/* What every rank must agree on before it starts. */
typedef struct {
    char version[24];
    uint64_t args;
} start_record;

void cli_mpi_init(int *argc, char ***argv) {
    MPI_Init(argc, argv);
    started = MPI_Wtime();
    atexit(finalize);
    MPI_Comm_rank(MPI_COMM_WORLD, &the_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &the_size);
    /* Errors come back as codes, which the commands report with the rank. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    start_record me = {.args = CFX_FNV1A_INIT};
    snprintf(me.version, sizeof me.version, "%s", CFX_VERSION);
    for (int i = 1; i < *argc; i++) /* with the terminating NUL: "a b" is not "ab" */
        me.args = cfx_fnv1a(me.args, (*argv)[i], strlen((*argv)[i]) + 1);
    start_record *all = calloc((size_t)the_size, sizeof *all);
    if (!all || MPI_Allgather(&me, sizeof me, MPI_BYTE, all, sizeof me, MPI_BYTE, MPI_COMM_WORLD) !=
                    MPI_SUCCESS) {
        fprintf(stderr, "cfx: rank %d of %d: the start-up check could not run\n", the_rank,
                the_size);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    int bad = -1;
    for (int r = 1; r < the_size && bad < 0; r++)
        if (strcmp(all[r].version, all[0].version) || all[r].args != all[0].args) bad = r;
    if (bad >= 0 && the_rank == 0) {
        if (strcmp(all[bad].version, all[0].version))
            fprintf(stderr,
                    "cfx: rank %d of %d runs cfx %s, rank 0 runs cfx %s: install one build of "
                    "cfx-mpi on every node\n",
                    bad, the_size, all[bad].version, all[0].version);
        else
            fprintf(stderr,
                    "cfx: rank %d of %d was started with other arguments than rank 0: start "
                    "every rank with the same command line\n",
                    bad, the_size);
    }
    free(all);
    if (bad >= 0) exit(2); /* every rank knows; MPI_Finalize at exit */
}

int cli_mpi_rank(void) {
    return the_rank;
}

int cli_mpi_size(void) {
    return the_size;
}

int cli_mpi_first_failure(bool failed) {
    int mine = failed ? the_rank : the_size, first = mine;
    if (T(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD)) != MPI_SUCCESS)
        return failed ? the_rank : 0;
    return first < the_size ? first : -1;
}

bool cli_mpi_same(const char *cmd, const char *what, uint64_t fingerprint) {
    uint64_t *all = calloc((size_t)the_size, sizeof *all);
    bool same = all && T(MPI_Allgather(&fingerprint, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T,
                                       MPI_COMM_WORLD)) == MPI_SUCCESS;
    for (int r = 1; same && r < the_size; r++)
        if (all[r] != all[0]) {
            same = false;
            if (the_rank == 0)
                fprintf(stderr,
                        "cfx %s: rank %d of %d loaded other %s than rank 0 (fingerprint %016llx, "
                        "rank 0's %016llx): every rank must see the same files under the same "
                        "paths\n",
                        cmd, r, the_size, what, (unsigned long long)all[r],
                        (unsigned long long)all[0]);
        }
    free(all);
    return same;
}

cfx_status cli_mpi_gather(const void *mine, size_t n, char **all, size_t *total) {
    *all = NULL, *total = 0;
    if (n > INT_MAX)
        return cfx_set_error(CFX_EINVAL,
                             "rank %d of %d: %zu bytes of results are more than one MPI message "
                             "carries; run more ranks",
                             the_rank, the_size, n);
    int count = (int)n, *counts = NULL, *at = NULL;
    if (the_rank == 0) {
        counts = calloc((size_t)the_size, sizeof *counts);
        at = calloc((size_t)the_size, sizeof *at);
        if (!counts || !at) {
            free(counts), free(at);
            counts = at = NULL;
        }
    }
    int rc = T(MPI_Gather(&count, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD));
    if (rc != MPI_SUCCESS) {
        free(counts), free(at);
        return mpi_error("gather", rc);
    }
    cfx_status s = CFX_OK;
    if (the_rank == 0) {
        size_t sum = 0;
        for (int r = 0; counts && r < the_size; r++) {
            at[r] = (int)sum;
            sum += (size_t)counts[r];
        }
        if (!counts)
            s = CFX_ENOMEM;
        else if (sum > INT_MAX)
            s = cfx_set_error(CFX_EINVAL,
                              "%zu bytes of results are more than one MPI message carries", sum);
        else if (!(*all = malloc(sum ? sum : 1)))
            s = CFX_ENOMEM;
        *total = sum;
    }
    /* Rank 0 that cannot receive still takes part, into nothing, and reports. */
    rc = T(MPI_Gatherv(mine, count, MPI_BYTE, *all, counts, at, MPI_BYTE, 0, MPI_COMM_WORLD));
    if (s == CFX_OK && rc != MPI_SUCCESS) s = mpi_error("gather", rc);
    free(counts), free(at);
    if (s != CFX_OK) free(*all), *all = NULL, *total = 0;
    return s;
}

cfx_status cli_mpi_allgather_rows(void *rows, int64_t n, size_t row_bytes, int64_t batch) {
    if ((size_t)n * row_bytes > INT_MAX)
        return cfx_set_error(CFX_EINVAL,
                             "%lld rows of %zu bytes are more than one MPI message carries",
                             (long long)n, row_bytes);
    int *counts = calloc((size_t)the_size, sizeof *counts);
    int *at = calloc((size_t)the_size, sizeof *at);
    if (!counts || !at) {
        free(counts), free(at);
        return CFX_ENOMEM;
    }
    for (int r = 0; r < the_size; r++) {
        int64_t lo, hi;
        cli_mpi_batches(n, batch, r, the_size, &lo, &hi);
        at[r] = (int)((size_t)lo * row_bytes);
        counts[r] = (int)((size_t)(hi - lo) * row_bytes);
    }
    int rc = T(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, rows, counts, at, MPI_BYTE,
                              MPI_COMM_WORLD));
    free(counts), free(at);
    return rc == MPI_SUCCESS ? CFX_OK : mpi_error("all-gather", rc);
}

cfx_status cli_mpi_send(int to, int tag, const void *data, size_t n) {
    const char *p = data;
    do {
        int c = (int)(n < PIECE ? n : PIECE);
        int rc = T(MPI_Send(p, c, MPI_BYTE, to, tag, MPI_COMM_WORLD));
        if (rc != MPI_SUCCESS) return mpi_error("send", rc);
        p += c, n -= (size_t)c;
    } while (n);
    return CFX_OK;
}

cfx_status cli_mpi_recv(int from, int tag, void *data, size_t n) {
    char *p = data;
    do {
        int c = (int)(n < PIECE ? n : PIECE), got = 0;
        MPI_Status st;
        int rc = T(MPI_Recv(p, c, MPI_BYTE, from, tag, MPI_COMM_WORLD, &st));
        if (rc != MPI_SUCCESS) return mpi_error("receive", rc);
        MPI_Get_count(&st, MPI_BYTE, &got);
        if (got != c)
            return cfx_set_error(CFX_EIO, "rank %d sent %d bytes where %d were due", from, got, c);
        p += c, n -= (size_t)c;
    } while (n);
    return CFX_OK;
}

/* The posted messages not yet known to have gone, with their copies; at most MAX_POSTED, so
 * that a sender far ahead of its receiver holds a bounded memory. */
enum { MAX_POSTED = 64 };
static struct posted {
    MPI_Request req;
    void *copy;
} * posted;
static int nposted, posted_cap;

/* Frees the copies of the posted messages that have gone; all of them when wait. */
static cfx_status reap(bool wait) {
    int kept = 0, rc = MPI_SUCCESS;
    for (int k = 0; k < nposted; k++) {
        int done = 0;
        int r = wait ? T(MPI_Wait(&posted[k].req, MPI_STATUS_IGNORE))
                     : T(MPI_Test(&posted[k].req, &done, MPI_STATUS_IGNORE));
        if (r != MPI_SUCCESS) rc = r, done = 1;
        if (wait || done)
            free(posted[k].copy);
        else
            posted[kept++] = posted[k];
    }
    nposted = kept;
    return rc == MPI_SUCCESS ? CFX_OK : mpi_error("send", rc);
}

cfx_status cli_mpi_post(int to, int tag, const void *data, size_t n) {
    if (n > INT_MAX)
        return cfx_set_error(CFX_EINVAL, "rank %d of %d: a message of %zu bytes is too long",
                             the_rank, the_size, n);
    cfx_status s = reap(false);
    if (s != CFX_OK) return s;
    if (nposted >= MAX_POSTED) { /* the receiver is far behind: wait for the oldest */
        int rc = T(MPI_Wait(&posted[0].req, MPI_STATUS_IGNORE));
        free(posted[0].copy);
        memmove(posted, posted + 1, (size_t)--nposted * sizeof *posted);
        if (rc != MPI_SUCCESS) return mpi_error("send", rc);
    }
    if (nposted == posted_cap) {
        int cap = posted_cap ? 2 * posted_cap : 64;
        struct posted *g = realloc(posted, (size_t)cap * sizeof *g);
        if (!g) return CFX_ENOMEM;
        posted = g, posted_cap = cap;
    }
    void *copy = malloc(n ? n : 1);
    if (!copy) return CFX_ENOMEM;
    memcpy(copy, data, n);
    int rc = T(MPI_Isend(copy, (int)n, MPI_BYTE, to, tag, MPI_COMM_WORLD, &posted[nposted].req));
    if (rc != MPI_SUCCESS) {
        free(copy);
        return mpi_error("send", rc);
    }
    posted[nposted++].copy = copy;
    return CFX_OK;
}

cfx_status cli_mpi_flush(void) {
    cfx_status s = reap(true);
    free(posted);
    posted = NULL, posted_cap = 0;
    return s;
}

cfx_status cli_mpi_recv_any(int from, int tag, char **data, size_t *n) {
    MPI_Status st;
    int count = 0;
    *data = NULL, *n = 0;
    int rc = T(MPI_Probe(from, tag, MPI_COMM_WORLD, &st));
    if (rc == MPI_SUCCESS) MPI_Get_count(&st, MPI_BYTE, &count);
    if (rc != MPI_SUCCESS) return mpi_error("receive", rc);
    if (!(*data = malloc((size_t)count + 1))) return CFX_ENOMEM;
    rc = T(MPI_Recv(*data, count, MPI_BYTE, from, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
    if (rc != MPI_SUCCESS) {
        free(*data), *data = NULL;
        return mpi_error("receive", rc);
    }
    (*data)[count] = '\0';
    *n = (size_t)count;
    return CFX_OK;
}

cfx_status cli_mpi_broadcast(void *v, size_t n) {
    char *p = v;
    do {
        int c = (int)(n < PIECE ? n : PIECE);
        int rc = T(MPI_Bcast(p, c, MPI_BYTE, 0, MPI_COMM_WORLD));
        if (rc != MPI_SUCCESS) return mpi_error("broadcast", rc);
        p += c, n -= (size_t)c;
    } while (n);
    return CFX_OK;
}

_Noreturn void cli_mpi_abort(int rc) {
    fflush(stdout), fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, rc);
    exit(rc); /* MPI_Abort does not return; the compiler does not know */
}

#else /* one rank */

/* The size of the job when mpirun, srun or another PMI launcher started this process, else 1. */
static long launched_size(void) {
    /* Open MPI's mpirun, PMI and PMIx launchers (MPICH, srun --mpi), a Slurm job step. */
    const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE",
                                "SLURM_STEP_NUM_TASKS"};
    for (size_t k = 0; k < sizeof vars / sizeof vars[0]; k++) {
        const char *v = getenv(vars[k]);
        long n = v ? strtol(v, NULL, 10) : 0;
        if (n > 1) return n;
    }
    return 1;
}

void cli_mpi_init(int *argc, char ***argv) {
    long n = launched_size();
    if (n > 1) {
        fprintf(stderr,
                "cfx: this is not the MPI build, and it was started as one of %ld ranks: each "
                "would do the "
                "whole work on the same files; build the MPI one with `make mpi` and run "
                "build/cfx-mpi under mpirun\n",
                n);
        exit(2);
    }
}

int cli_mpi_rank(void) {
    return 0;
}

int cli_mpi_size(void) {
    return 1;
}

int cli_mpi_first_failure(bool failed) {
    return failed ? 0 : -1;
}

bool cli_mpi_same(const char *cmd, const char *what, uint64_t fingerprint) {
    return true;
}

cfx_status cli_mpi_gather(const void *mine, size_t n, char **all, size_t *total) {
    *total = 0;
    if (!(*all = malloc(n ? n : 1))) return CFX_ENOMEM;
    memcpy(*all, mine, n);
    *total = n;
    return CFX_OK;
}

cfx_status cli_mpi_allgather_rows(void *rows, int64_t n, size_t row_bytes, int64_t batch) {
    return CFX_OK; /* one rank holds every row */
}

/* One rank has nobody to talk to: a call is a broken invariant of the command. */
cfx_status cli_mpi_send(int to, int tag, const void *data, size_t n) {
    return cfx_set_error(CFX_EINVAL, "send to rank %d: the plain build has one rank", to);
}

cfx_status cli_mpi_recv(int from, int tag, void *data, size_t n) {
    return cfx_set_error(CFX_EINVAL, "receive from rank %d: the plain build has one rank", from);
}

cfx_status cli_mpi_broadcast(void *v, size_t n) {
    return CFX_OK;
}

cfx_status cli_mpi_post(int to, int tag, const void *data, size_t n) {
    return cfx_set_error(CFX_EINVAL, "send to rank %d: the plain build has one rank", to);
}

cfx_status cli_mpi_flush(void) {
    return CFX_OK;
}

cfx_status cli_mpi_recv_any(int from, int tag, char **data, size_t *n) {
    *data = NULL, *n = 0;
    return cfx_set_error(CFX_EINVAL, "receive from rank %d: the plain build has one rank", from);
}

cfx_status cli_mpi_sum(void *user, float *f, size_t n, double *d, int nd) {
    return CFX_OK; /* the sum over one rank */
}

double cli_mpi_seconds(void) {
    return 0;
}

void cli_mpi_stats(const char *cmd, int64_t units, double work_seconds, double work_cpu) {}

_Noreturn void cli_mpi_abort(int rc) {
    fflush(stdout), fflush(stderr);
    exit(rc);
}

#endif
