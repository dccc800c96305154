/* mpi.h - the CLI's seam to MPI (issue 23): rank and size, the start-up agreement of all ranks,
 * and the collectives the sharded commands use. Compiled with -DCFX_MPI (make mpi: build/cfx-mpi)
 * the calls go to Open MPI; in the plain build they are the calls of a single rank (rank 0 of
 * 1), so a command is written once and runs the same as one process. */
#ifndef CFX_CLI_MPI_H
#define CFX_CLI_MPI_H

#include "cfx.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Starts MPI (the MPI build) and checks that every rank runs the same cfx version with the same
 * command line; on a mismatch rank 0 names the rank and every rank exits 2. The plain build
 * started by mpirun as one of several ranks says it is not the MPI build and exits 2. Registers
 * MPI_Finalize at exit. Call first in main. */
void cli_mpi_init(int *argc, char ***argv);
/* This process's rank (0..size-1) and the number of ranks. */
int cli_mpi_rank(void);
int cli_mpi_size(void);
/* Ranks [lo, hi) of n items in contiguous blocks whose sizes differ by one at most, the larger
 * first: rank r of size ranks. */
void cli_mpi_block(int64_t n, int rank, int size, int64_t *lo, int64_t *hi);
/* The same in whole batches of `batch` items (the last may be short): [lo, hi) starts at a
 * multiple of batch, so each rank runs the batches one process runs. */
void cli_mpi_batches(int64_t n, int64_t batch, int rank, int size, int64_t *lo, int64_t *hi);
/* Which rank does each of n units of work whose estimated costs are cost[0..n), so that the
 * ranks' sums of cost are close: the dearest first, each to the rank with the least so far (the
 * lowest on ties), the same on every rank. With CFX_MPI_BALANCE=count in the environment, the
 * costs are ignored (every unit costs 1: contiguous blocks by count), for measuring the effect. */
void cli_mpi_assign(const double *cost, int64_t n, int size, int *owner);
/* rows holds n rows of row_bytes; each rank has filled its cli_mpi_batches part; afterwards
 * every rank holds all of them (MPI_Allgatherv in place). Collective. */
cfx_status cli_mpi_allgather_rows(void *rows, int64_t n, size_t row_bytes, int64_t batch);
/* Whether every rank computed the same fingerprint of what it loaded (what: "the images"): when
 * not, the lowest rank that differs from rank 0 prints "cfx <cmd>: rank R of N loaded other
 * <what> than rank 0 ..." and all return false. Collective. */
bool cli_mpi_same(const char *cmd, const char *what, uint64_t fingerprint);
/* The lowest rank with failed set, or -1 when none failed. Collective. */
int cli_mpi_first_failure(bool failed);
/* Rank 0 receives every rank's n bytes concatenated in rank order in *all (malloc'd, *total
 * bytes; the caller frees it); the other ranks get NULL.
 * Collective. */
cfx_status cli_mpi_gather(const void *mine, size_t n, char **all, size_t *total);
/* Point to point, for ordered streams of results: a message of n bytes to rank `to` with tag;
 * recv waits for exactly n bytes from rank `from` with tag. */
cfx_status cli_mpi_send(int to, int tag, const void *data, size_t n);
cfx_status cli_mpi_recv(int from, int tag, void *data, size_t n);
/* A copy of n bytes (less than 2 GiB) to rank `to` with tag, sent without waiting for rank
 * `to` to take it (MPI_Isend), so the sender runs ahead of the receiver (by 64 messages at
 * most: then it waits for the oldest); cli_mpi_flush waits until every posted message has gone.
 * recv_any takes one message of any size from rank `from` with tag: *data (malloc'd, n bytes and a
 * NUL after them; the caller frees it). */
cfx_status cli_mpi_post(int to, int tag, const void *data, size_t n);
cfx_status cli_mpi_flush(void);
cfx_status cli_mpi_recv_any(int from, int tag, char **data, size_t *n);
/* rank 0's value of *v on every rank. Collective. */
cfx_status cli_mpi_broadcast(void *v, size_t n);
/* Sums n floats and nd doubles in place over all ranks (MPI_Allreduce): the gradient sum of
 * data-parallel training, as a cfx_train_shard's sum (user unused). Collective. */
cfx_status cli_mpi_sum(void *user, float *f, size_t n, double *d, int nd);
/* With CFX_MPI_STATS=1 in the environment, every rank prints to stderr one line "cfx <cmd>:
 * rank R of N: U units, W s of work (C CPU s), M s in MPI calls (P% of T s)" (under mpirun
 * only): W and C the wall and CPU seconds of the rank's own share, T its wall time since start.
 * cli_mpi_cpu is the process's CPU seconds so far (for C: a difference). */
void cli_mpi_stats(const char *cmd, int64_t units, double work_seconds, double work_cpu);
double cli_mpi_cpu(void);
/* Seconds this rank has spent inside MPI calls since it started (MPI_Wtime around each); 0 in
 * the plain build. For the benchmarks' share of time in communication. */
double cli_mpi_seconds(void);
/* Ends every rank with exit code rc (MPI_Abort); in the plain build, exit(rc). */
_Noreturn void cli_mpi_abort(int rc);

#endif
