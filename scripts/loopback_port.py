#!/usr/bin/env python3
"""A loopback TCP port nothing listens on now, for a server started a moment later.

The port comes from below the kernel's ephemeral range, not from bind(0): a port the kernel hands
out is also what it hands out as the local end of the next outgoing connection, so before the
server binds it any client connecting anywhere could take it ("Address already in use"). Below the
range only another listener can take it. Tests do the same (ContactdTestSupport's
freeLoopbackPort).

Usage: scripts/loopback_port.py   (prints one port), or import free_port."""
import random
import socket


def _ephemeral_start():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    low, high = 12000, max(_ephemeral_start(), 14000)
    start = random.randrange(low, high)
    for step in range(high - low):
        port = low + (start - low + step) % (high - low)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise SystemExit("no free loopback port below the ephemeral range")


if __name__ == "__main__":
    print(free_port())
