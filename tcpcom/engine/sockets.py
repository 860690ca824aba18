"""Small socket steps used by every part of the engine, each written once.

Interpreter differences (Jython's) come from :mod:`tcpcom._compat`; this
module is where the engine's own socket conventions live: how to bind a
listening port (and say clearly that it is taken), how to wait for a
socket, how to end the sending side, how to close without raising.
"""
from __future__ import absolute_import

import errno
import select
import socket
import threading

from .._compat import BIND_RETRY, JYTHON, bind_error, is_addr_in_use, monotonic
from .errors import PortInUseError


def family_of(host):
    """AF_INET6 for an IPv6 host such as '::' or '::1', else AF_INET."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_socket(host, port, kind, what="port", reuse_address=False, backlog=None):
    """A socket of ``kind`` bound to ``(host, port)`` (and listening when ``backlog`` is given).

    A port in use raises :class:`PortInUseError` whose text says what to
    do; other errors are raised as the system's (Jython's catch-all errno 98
    sorted out).  Where a port closed a moment ago by this program is freed
    asynchronously (Jython), the bind is retried for a short while.
    """
    retry_until = monotonic() + BIND_RETRY
    while True:
        sock = socket.socket(family_of(host), kind)
        try:
            if reuse_address:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            if backlog is not None:
                sock.listen(backlog)
            return sock
        except (socket.error, OSError) as e:
            sock.close()
            if not is_addr_in_use(e):
                raise bind_error(e)  # Jython: its errno 98 may mean another error
            if port and monotonic() < retry_until:
                threading.Event().wait(0.01)
                continue
            raise PortInUseError(errno.EADDRINUSE, "%s %d is already in use: stop the other program or "
                                 "choose another port" % (what, port))


def wait_readable(sock, timeout):
    """Wait up to ``timeout`` s for ``sock`` to be readable (or hung up)."""
    poll = getattr(select, "poll", None)
    if poll is not None:
        p = poll()
        # POLLIN only: C's poll() reports hang-up and errors anyway; Jython's
        # makes a hung-up socket readable and fires a spurious POLLERR after
        # connect (the connect future passed as the "exception").
        p.register(sock, select.POLLIN)
        try:
            return bool(p.poll(max(0, int(timeout * 1000 + 0.999))))
        finally:
            p.unregister(sock)  # Jython: else the socket keeps notifying this poll object
    r, _, _ = select.select([sock], [], [], max(0.0, timeout))
    return bool(r)


def writable_now(sock):
    """True if ``sock`` can take a short send at once (a few hundred bytes)."""
    try:
        poll = getattr(select, "poll", None)
        if poll is not None:
            p = poll()
            p.register(sock, select.POLLOUT)
            return bool(p.poll(0))
        _, w, _ = select.select([], [sock], [], 0)
        return bool(w)
    except Exception:  # e.g. a select() that refuses blocking sockets: skip the send
        return False


def shutdown_write(sock):
    """Send the end of the stream (FIN) after what was sent; reading goes on."""
    if JYTHON:  # there shutdown(SHUT_WR) sends no FIN
        sock._sock.channel.shutdownOutput()
    else:
        sock.shutdown(socket.SHUT_WR)


def shutdown_quietly(sock, how=socket.SHUT_RDWR):
    """shutdown() that ignores a socket already closed or never connected."""
    try:
        sock.shutdown(how)
    except (socket.error, OSError):
        pass


def close_quietly(sock):
    try:
        sock.close()
    except (socket.error, OSError):
        pass


def peer_has_closed(sock):
    """True if the peer has closed its side and nothing unread is left (a look; nothing is read).

    Safe while another thread reads the socket: data that is there stays there.
    """
    try:
        return wait_readable(sock, 0) and sock.recv(1, socket.MSG_PEEK) == b""
    except (socket.error, OSError):
        return True  # reset
    except Exception:  # an interpreter without MSG_PEEK: we cannot tell
        return False
