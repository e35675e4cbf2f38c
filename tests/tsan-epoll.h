/* tests/tsan-epoll.h -- what ThreadSanitizer cannot see through the kernel
 * about EPOLL_CTL_MOD. The Makefile's TSan builds (make check) include this
 * file first in every source file (-include); no lesson includes it.
 *
 * TSan models a descriptor as a word of memory: its epoll_ctl() reads it,
 * close() writes it, and only EPOLL_CTL_ADD counts as a release. In
 * 09-leader-follower, a thread re-arms a connection with EPOLL_CTL_MOD, and
 * from that moment the next leader may take the connection's report, serve
 * it and close() it, even before that epoll_ctl() has returned. The kernel
 * makes it safe: the MOD happens before the report, and epoll_ctl() holds
 * its own reference to the file while it runs. TSan would call the close()
 * a race with the re-arm (its interceptor reads the descriptor after the
 * lesson's store-release, which the next thread's load-acquire covers), and
 * a lock around the MOD would be code for the tool, not for the student.
 * A suppression would not do either: matching it starts a symbolizer
 * process, a child and descriptors that the tests then count as leaked.
 *
 * So in TSan builds EPOLL_CTL_MOD goes straight to the system call, past
 * TSan's interceptor: the descriptor is not "read", and nothing else
 * changes (MOD was never a release to TSan). The memory of the connection
 * handed over is still checked: the lesson orders it itself (struct entry's
 * release/acquire pair in 09). ADD and DEL still go through TSan.
 */
#ifndef TSAN_EPOLL_H
#define TSAN_EPOLL_H

#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline int tsan_epoll_ctl(int epfd, int op, int fd,
                                 struct epoll_event *ev)
{
    if (op == EPOLL_CTL_MOD)
        return (int)syscall(SYS_epoll_ctl, epfd, op, fd, ev);
    return epoll_ctl(epfd, op, fd, ev);
}
#define epoll_ctl tsan_epoll_ctl

#endif
