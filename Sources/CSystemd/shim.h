#ifndef CONTACTD_CSYSTEMD_SHIM_H
#define CONTACTD_CSYSTEMD_SHIM_H

#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <sys/uio.h>

/// sd_notify with unset_environment = 0, as a plain (non-variadic) call for Swift.
static inline int contactd_sd_notify(const char *state) {
    return sd_notify(0, state);
}

/// sd_journal_sendv is already non-variadic; re-exported for symmetry.
static inline int contactd_sd_journal_sendv(const struct iovec *iov, int n) {
    return sd_journal_sendv(iov, n);
}

#endif
