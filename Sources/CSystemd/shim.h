#ifndef CONTACTD_CSYSTEMD_SHIM_H
#define CONTACTD_CSYSTEMD_SHIM_H

#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <systemd/sd-login.h>
#include <sys/uio.h>

/// sd_notify with unset_environment = 0, as a plain call for Swift.
static inline int contactd_sd_notify(const char *state) {
    return sd_notify(0, state);
}

/// sd_pid_notify_with_fds for this process: a state message carrying descriptors (FDSTORE=1).
static inline int contactd_sd_notify_with_fds(const char *state, const int *fds, unsigned count) {
    return sd_pid_notify_with_fds(0, 0, state, fds, count);
}

/// The real sd_journal_sendv. sd-journal.h turns sd_journal_sendv into a macro that adds this
/// header's own CODE_FILE/CODE_LINE; the Swift handler sends the caller's location itself.
#ifdef sd_journal_sendv
#undef sd_journal_sendv
#endif
static inline int contactd_sd_journal_sendv(const struct iovec *iov, int n) {
    return sd_journal_sendv(iov, n);
}

#endif
