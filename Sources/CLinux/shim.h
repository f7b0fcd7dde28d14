#ifndef CONTACTD_CLINUX_SHIM_H
#define CONTACTD_CLINUX_SHIM_H

// Linux calls Swift's Glibc module leaves out, for the fast lane's epoll loops,
// the load generator's, and the tests' process spawner.
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <fcntl.h>

// accept4 is declared only with _GNU_SOURCE, which Swift's Glibc module is not built with.
int accept4(int fd, struct sockaddr *address, socklen_t *length, int flags);

// glibc 2.34+, declared only with _GNU_SOURCE: the child closes every descriptor from `from` on.
int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);

/// Accepts a connection as a non-blocking, close-on-exec descriptor; -1 and errno on failure.
static inline int contactd_accept(int listener) {
    return accept4(listener, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

/// The descriptor an epoll event was registered with (epoll_data_t is a union).
static inline int contactd_epoll_event_fd(const struct epoll_event *event) {
    return event->data.fd;
}

// memfd_create and file seals (the cache snapshot), declared only with _GNU_SOURCE.
int memfd_create(const char *name, unsigned int flags);
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#endif
#ifndef F_GET_SEALS
#define F_GET_SEALS 1034
#endif

/// A close-on-exec memfd that can be sealed; -1 and errno on failure.
static inline int contactd_memfd_create(const char *name) {
    return memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
}

/// Seals a memfd against any change (shrink, grow, write, further seals); -1 and errno on failure.
static inline int contactd_seal_memfd(int fd) {
    return fcntl(fd, F_ADD_SEALS, 0x0001 | 0x0002 | 0x0004 | 0x0008);
}

/// The seals on a memfd, or -1.
static inline int contactd_memfd_seals(int fd) {
    return fcntl(fd, F_GET_SEALS);
}

#endif
