/*
 * Container workaround for the lab and the tests, never used on a real host.
 *
 * sanlock's daemon raises RLIMIT_MEMLOCK (and RLIMIT_RTPRIO) unconditionally
 * and exits when that fails. Restricted containers lack CAP_SYS_RESOURCE, so
 * the call fails and the daemon refuses to start. Preloaded into the daemon
 * only, this setrlimit reports success for those two limits when the real call
 * fails; every other call is passed through untouched.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/resource.h>

typedef int (*setrlimit_fn)(__rlimit_resource_t, const struct rlimit *);

int setrlimit(__rlimit_resource_t resource, const struct rlimit *rlim)
{
    static setrlimit_fn real;
    int rc;

    if (!real)
        real = (setrlimit_fn)dlsym(RTLD_NEXT, "setrlimit");
    rc = real(resource, rlim);
    if (rc != 0 && (resource == RLIMIT_MEMLOCK || resource == RLIMIT_RTPRIO))
        return 0;
    return rc;
}
