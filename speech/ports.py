"""Free loopback ports for servers a process starts (SIP endpoints, brokers, test servers).

The one implementation for every package, test and benchmark: it lives in ``speech``, the
package all others may import (telephony → speech → live → summaries), because ``live`` must
not import ``telephony`` and test callers ship in the packages themselves.
"""

from __future__ import annotations

import socket

ATTEMPTS = 50


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host`` right now (SIP listens on both)."""
    for _ in range(ATTEMPTS):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port: int = tcp.getsockname()[1]
            if _bindable(host, port, socket.SOCK_DGRAM):
                return port
    raise OSError("no free UDP+TCP port found")


def consecutive_free_ports(n: int, host: str = "127.0.0.1") -> int:
    """A base port with ``n`` consecutive UDP+TCP ports free (workers listen on base + i)."""
    for _ in range(ATTEMPTS):
        base = free_port(host)
        if all(_bindable(host, p, kind) for p in range(base, base + n)
               for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM)):
            return base
    raise OSError(f"no {n} consecutive free UDP+TCP ports found")


def _bindable(host: str, port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
