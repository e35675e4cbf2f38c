/* ring.h -- io_uring's two rings, set up and used through raw system
 * calls: the few dozen lines liburing would hide.
 *
 * io_uring_setup() gives a descriptor and the layout of three regions,
 * which we map into our memory (mmap), shared with the kernel:
 *
 *   submission queue (SQ)  we write an entry (SQE: operation, descriptor,
 *                          buffer, user_data), then move the tail; the
 *                          kernel takes entries from the head.
 *   completion queue (CQ)  the kernel writes an entry (CQE: user_data and
 *                          the result, as a system call would return it),
 *                          then moves the tail; we read from the head.
 *
 * Each side writes only its own index and reads the other's, so no lock
 * is needed, only ordering: an index is read with acquire (what the
 * other side wrote before moving it is then visible) and written with
 * release (what we wrote before it is visible to the kernel first), as
 * io_uring_setup(2) and the kernel's io_uring.h describe. The words live
 * in the mapping: we reach them through C11 atomic pointers.
 *
 * io_uring_enter() tells the kernel how many new entries to take, and
 * may sleep until some completions have arrived: one call for a whole
 * batch, both ways. The counters say how well that batching went.
 */
#ifndef RING_H
#define RING_H

#include <linux/io_uring.h>
#include <stdatomic.h>
#include <stdbool.h>

struct ring {
    int fd; /* from io_uring_setup() */
    /* The submission queue: we own the tail, the kernel the head. */
    atomic_uint *sq_head, *sq_tail;
    unsigned sq_mask, sq_entries;
    struct io_uring_sqe *sqes; /* the entries themselves */
    unsigned sq_local_tail;    /* entries written, not yet published */
    /* The completion queue: the kernel owns the tail, we the head. */
    atomic_uint *cq_head, *cq_tail;
    unsigned cq_mask;
    struct io_uring_cqe *cqes;
    /* For the stats line. */
    unsigned long long submitted, completed, enters;
};

/* Creates a ring of at least entries submission slots and maps it.
 * Returns 0, or -1 with errno set: ENOSYS (no io_uring in this kernel),
 * EPERM (disabled by sysctl or refused by seccomp), EINVAL (a kernel
 * older than 5.19, which knows no IORING_SETUP_COOP_TASKRUN), or what
 * mmap said. */
int ring_setup(struct ring *r, unsigned entries);

/* Why ring_setup() failed, in words, for errno err. */
const char *ring_why(int err);

/* The next free submission entry, zeroed; the caller fills it in. When
 * the queue is full it first hands the kernel what is there. Exits
 * through err_sys() if that fails. */
struct io_uring_sqe *ring_sqe(struct ring *r);

/* One io_uring_enter(): submits every entry written since the last call
 * and, with wait set, sleeps until at least one completion is there.
 * Exits through err_sys() on a failure of the ring itself. */
void ring_enter(struct ring *r, bool wait);

/* The oldest unread completion, or NULL when there is none. Copy what
 * you need, then ring_cqe_seen() gives the slot back to the kernel. */
struct io_uring_cqe *ring_cqe(struct ring *r);
void ring_cqe_seen(struct ring *r);

#endif
