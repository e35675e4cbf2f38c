/* tests/tools/no-uring.c -- a library to preload, in which io_uring
 * cannot be set up:
 *
 *   LD_PRELOAD=build/tools/no-uring.so ./11-proactor/server
 *
 * Its syscall() answers io_uring_setup with EPERM, as a container's
 * seccomp filter or sysctl kernel.io_uring_disabled=2 would, and passes
 * every other call on to the C library's syscall(). With it the tests
 * see what lesson 11 does where io_uring is refused, on a machine where
 * it is not, and without a switch in the lesson (tests/11-proactor.bats).
 * Only calls made through syscall(3) are caught: glibc has no wrapper for
 * io_uring_setup, so every caller goes through it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/syscall.h>

/* Declared here, not taken from <unistd.h>, whose name for the number is
 * one reserved to the C library. */
long syscall(long number, ...);

long syscall(long number, ...)
{
    static long (*real_syscall)(long, ...);
    va_list ap;
    long a[6];

    if (number == __NR_io_uring_setup) {
        errno = EPERM;
        return -1;
    }
    /* Six arguments, as many as a system call takes: the real syscall()
     * reads the same six registers whatever the caller passed. */
    va_start(ap, number);
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (real_syscall == NULL)
        *(void **)&real_syscall = dlsym(RTLD_NEXT, "syscall");
    return real_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
