/* ring.c -- io_uring through syscall(2) and mmap(2); see ring.h. */
#include "ring.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"

/* glibc has no wrappers for these: syscall(2) makes them by number. */
static int io_uring_setup(unsigned entries, struct io_uring_params *p)
{
    return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int io_uring_enter(int fd, unsigned to_submit, unsigned min_complete,
                          unsigned flags)
{
    return (int)syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags,
                        NULL, 0);
}

static void *map(int fd, size_t len, off_t offset)
{
    /* MAP_POPULATE: fault the pages in now, not on the first message. */
    return mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                fd, offset);
}

/* A word of the mapping, at the offset the kernel gave for it. */
#define AT(base, off) ((void *)((char *)(base) + (off)))

int ring_setup(struct ring *r, unsigned entries)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);

    /* COOP_TASKRUN (Linux 5.19): when a socket becomes ready, the kernel
     * finishes the operation the next time we enter it, rather than by
     * interrupting us wherever we run. We enter it once per round, so
     * completions come in batches, and each costs less. Older kernels
     * refuse the flag (EINVAL). They would also lack what the loop takes
     * for granted: a completion that finds the CQ full waits in the
     * kernel instead of being lost (NODROP, 5.5), and an operation on a
     * socket that is not ready waits on the socket's own wait queue, not
     * in a kernel thread blocked in recv() (FAST_POLL, 5.7). */
    p.flags = IORING_SETUP_COOP_TASKRUN;
    r->fd = io_uring_setup(entries, &p);
    if (r->fd == -1)
        return -1;

    /* Three regions: the SQ ring (indexes and the array of slot numbers),
     * the CQ ring (indexes and the completions themselves), and the SQEs.
     * Since 5.4 the two rings share one mapping (FEAT_SINGLE_MMAP). */
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    bool single = p.features & IORING_FEAT_SINGLE_MMAP;
    if (single && cq_len > sq_len)
        sq_len = cq_len;
    void *sq = map(r->fd, sq_len, IORING_OFF_SQ_RING);
    void *cq = single ? sq : map(r->fd, cq_len, IORING_OFF_CQ_RING);
    r->sqes =
        map(r->fd, p.sq_entries * sizeof(struct io_uring_sqe), IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || r->sqes == MAP_FAILED) {
        int saved = errno;
        close(r->fd); /* and the process's exit unmaps */
        errno = saved;
        return -1;
    }

    r->sq_head = AT(sq, p.sq_off.head);
    r->sq_tail = AT(sq, p.sq_off.tail);
    r->sq_mask = *(unsigned *)AT(sq, p.sq_off.ring_mask);
    r->sq_entries = p.sq_entries;
    r->sq_local_tail = atomic_load_explicit(r->sq_tail, memory_order_relaxed);
    /* The SQ ring holds slot numbers, not SQEs: a program may fill SQEs
     * in any order. We fill them in ring order, so slot i always names
     * SQE i, written once here. */
    unsigned *array = AT(sq, p.sq_off.array);
    for (unsigned i = 0; i < p.sq_entries; i++)
        array[i] = i;
    r->cq_head = AT(cq, p.cq_off.head);
    r->cq_tail = AT(cq, p.cq_off.tail);
    r->cq_mask = *(unsigned *)AT(cq, p.cq_off.ring_mask);
    r->cqes = AT(cq, p.cq_off.cqes);
    r->submitted = r->completed = r->enters = 0;
    return 0;
}

const char *ring_why(int err)
{
    switch (err) {
    case ENOSYS:
        return "this kernel was built without it";
    case EPERM:
        return "disabled by sysctl kernel.io_uring_disabled, or refused by "
               "a seccomp filter";
    case EINVAL:
        return "this kernel's is older than Linux 5.19";
    default:
        return "io_uring_setup or mmap failed";
    }
}

struct io_uring_sqe *ring_sqe(struct ring *r)
{
    /* Acquire: once the kernel has moved its head past a slot, it has
     * finished reading that SQE, which we may then overwrite. */
    unsigned head = atomic_load_explicit(r->sq_head, memory_order_acquire);
    if (r->sq_local_tail - head == r->sq_entries)
        ring_enter(r, false); /* full: the kernel takes them all first */
    struct io_uring_sqe *sqe = &r->sqes[r->sq_local_tail & r->sq_mask];
    memset(sqe, 0, sizeof *sqe);
    r->sq_local_tail++;
    return sqe;
}

void ring_enter(struct ring *r, bool wait)
{
    /* Release: every SQE written so far is visible to the kernel before
     * the tail that says they are there. */
    atomic_store_explicit(r->sq_tail, r->sq_local_tail, memory_order_release);
    unsigned head = atomic_load_explicit(r->sq_head, memory_order_acquire);
    unsigned to_submit = r->sq_local_tail - head;
    int n;

    for (;;) {
        n = io_uring_enter(r->fd, to_submit, wait ? 1 : 0,
                           wait ? IORING_ENTER_GETEVENTS : 0);
        r->enters++;
        if (n >= 0)
            break;
        /* SIGINT and SIGTERM are blocked; a tracer attaching may still
         * interrupt the wait. Nothing was submitted then: try again. */
        if (errno != EINTR)
            err_sys("io_uring_enter");
    }
    r->submitted += (unsigned)n;
}

struct io_uring_cqe *ring_cqe(struct ring *r)
{
    unsigned head = atomic_load_explicit(r->cq_head, memory_order_relaxed);
    /* Acquire: the CQE the kernel wrote is visible once its tail is. */
    if (head == atomic_load_explicit(r->cq_tail, memory_order_acquire))
        return NULL;
    return &r->cqes[head & r->cq_mask];
}

void ring_cqe_seen(struct ring *r)
{
    unsigned head = atomic_load_explicit(r->cq_head, memory_order_relaxed);
    /* Release: we are done reading the CQE before the kernel may reuse
     * its slot. */
    atomic_store_explicit(r->cq_head, head + 1, memory_order_release);
    r->completed++;
}
