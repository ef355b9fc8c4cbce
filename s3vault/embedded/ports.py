"""Free TCP ports on the loopback interface for the local services we start.

Ports are picked *below* the kernel's ephemeral range
(``/proc/sys/net/ipv4/ip_local_port_range``, 32768-60999 on Linux by default). The kernel
hands ephemeral ports out as source ports of outgoing connections: a port taken from
that range can be grabbed by any client connection while a server is stopped, so a
service restarted "on the same ports" (the outage tests do that) would fail to bind.
Below the range only explicit binds compete with us.

A port is only probed, not reserved: another process could still bind it between the
probe and the server's own bind. On a developer machine or CI that window is small;
callers surface the server's "address already in use" if it happens.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

LOOPBACK = "127.0.0.1"

# Ports below this are often used by well-known local services (databases, dev servers).
_LOWEST = 10000
_PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_low() -> int:
    """First port of the kernel's ephemeral range (Linux), or a safe guess elsewhere."""
    try:
        low, _high = _PORT_RANGE_FILE.read_text().split()
        return int(low)
    except (OSError, ValueError):
        # macOS and Windows use 49152-65535 by default.
        return 49152


@contextmanager
def _held(port: int, host: str) -> Iterator[bool]:
    """Try to bind ``host:port``; yield whether it worked, keeping it bound meanwhile."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Servers (Go's net package, werkzeug) set SO_REUSEADDR, so a port whose last
    # connections are still in TIME_WAIT is free for them: probe the same way.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        try:
            sock.bind((host, port))
        except OSError:
            yield False
        else:
            yield True
    finally:
        sock.close()


def free_ports(count: int, *, offset: int | None = None, host: str = LOOPBACK) -> list[int]:
    """Return ``count`` distinct ports that are free on ``host`` right now.

    With ``offset`` (SeaweedFS opens a gRPC port at "HTTP port + 10000"), each returned
    port ``p`` is chosen so that ``p + offset`` is free too and distinct from every other
    returned port and partner, so callers can pin both ``p`` and ``p + offset``.

    Raises ``OSError`` if not enough free ports are found (a nearly full port space).
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    step = offset or 0
    high = _ephemeral_low() - 1 - step
    if high - _LOWEST < count * 4:
        # A very low ephemeral range (unusual tuning): fall back to the whole space.
        high = 65535 - step
    candidates = random.sample(range(_LOWEST, high + 1), k=min(high + 1 - _LOWEST, 4096))
    chosen: list[int] = []
    taken: set[int] = set()
    # Every probe socket stays bound until all ports are chosen, so no candidate is
    # handed out twice and the set is checked as a whole.
    with ExitStack() as stack:
        for port in candidates:
            wanted = [port, port + step] if step else [port]
            if any(p in taken for p in wanted):
                continue
            if all(stack.enter_context(_held(p, host)) for p in wanted):
                chosen.append(port)
                taken.update(wanted)
                if len(chosen) == count:
                    return chosen
    raise OSError(f"could not find {count} free TCP ports on {host}")


def free_port(host: str = LOOPBACK) -> int:
    """One free port on ``host`` (see :func:`free_ports`)."""
    return free_ports(1, host=host)[0]


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether ``host:port`` can be bound right now."""
    with _held(port, host) as ok:
        return ok
