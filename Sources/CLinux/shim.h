#ifndef CONTACTD_CLINUX_SHIM_H
#define CONTACTD_CLINUX_SHIM_H

// Linux calls Swift's Glibc module leaves out, for the fast lane's epoll loops,
// the load generator's, and the tests' process spawner.
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

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

#endif
