"""Small socket steps used by every part of the engine, each written once.

Interpreter differences (Jython's) come from :mod:`tcpcom._compat`; this
module is where the engine's own socket conventions live: how to bind a
listening port (and say clearly that it is taken; IPv4 and IPv6 at once by
default), how a peer's address is reported, how to wait for a socket, how
to end the sending side, how to close without raising.
"""
from __future__ import absolute_import

import errno
import logging
import select
import socket
import struct
import threading

from .._compat import BIND_RETRY, JYTHON, bind_error, is_addr_in_use, monotonic
from .errors import PortInUseError


log = logging.getLogger("tcpcom.engine")

_new_socket = socket.socket  # (a test makes IPv6 unavailable here)
_MAPPED = b"\0" * 10 + b"\xff\xff"  # the first 12 bytes of an IPv4-mapped IPv6 address


def family_of(host):
    """AF_INET6 for an IPv6 host such as '::' or '::1', else AF_INET."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def plain_address(address):
    """A peer's IP address as the engine reports it: an IPv4 peer as a plain dotted quad.

    '::ffff:127.0.0.1' (an IPv4 client of a socket listening on '::') ->
    '127.0.0.1'; an IPv6 address in its short form ('0:0:0:0:0:0:0:1', as
    Jython gives it -> '::1'); anything else as it is.
    """
    address = str(address)
    if ":" not in address:
        return address
    ip, percent, zone = address.partition("%")
    try:
        packed = socket.inet_pton(socket.AF_INET6, ip)
    except (socket.error, OSError, ValueError, AttributeError, TypeError):
        return address
    if len(packed) == 4 or packed[:12] == _MAPPED:  # (Jython's inet_pton gives 4 bytes for a mapped one)
        return str(socket.inet_ntoa(packed[-4:]))
    return _short_ipv6(struct.unpack("!8H", packed)) + percent + zone


def _short_ipv6(groups):
    # RFC 5952: lower-case hex, the first longest run of two or more zero groups as '::'
    best, start = (0, 0), None
    for i, g in enumerate(tuple(groups) + (1,)):
        if g == 0:
            if start is None:
                start = i
        elif start is not None:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    parts = ["%x" % g for g in groups]
    if best[1] - best[0] < 2:
        return ":".join(parts)
    return ":".join(parts[:best[0]]) + "::" + ":".join(parts[best[1]:])


def _dual_stack_possible():
    # Jython has no IPV6_V6ONLY; there an AF_INET socket bound to '' takes IPv6
    # clients too (Java's wildcard address), so nothing is needed.
    return socket.has_ipv6 and hasattr(socket, "IPV6_V6ONLY") and not JYTHON


def _bound(family, host, port, kind, reuse_address, backlog, dual=False):
    sock = _new_socket(family, kind)
    try:
        if dual:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        if backlog is not None:
            sock.listen(backlog)
        return sock
    except BaseException:
        sock.close()
        raise


def _bind_once(host, port, kind, reuse_address, backlog, dual_stack):
    if dual_stack and host == "" and _dual_stack_possible():
        try:
            return _bound(socket.AF_INET6, "::", port, kind, reuse_address, backlog, True)
        except (socket.error, OSError) as e:
            if is_addr_in_use(e):  # taken (by either family): not a reason to try IPv4 alone
                raise
            log.debug("no IPv6 socket that takes IPv4 too (%s): listening on IPv4 only", e)
    return _bound(family_of(host), host, port, kind, reuse_address, backlog)


def bind_socket(host, port, kind, what="port", reuse_address=False, backlog=None, dual_stack=False):
    """A socket of ``kind`` bound to ``(host, port)`` (and listening when ``backlog`` is given).

    ``dual_stack``: with ``host == ""`` take IPv4 and IPv6 peers on one
    socket (AF_INET6 bound to '::' with IPV6_V6ONLY off) where the system
    allows it, else IPv4 alone ('' of AF_INET; on Jython that takes both).
    A port in use raises :class:`PortInUseError` whose text says what to
    do; other errors are raised as the system's (Jython's catch-all errno 98
    sorted out).  Where a port closed a moment ago by this program is freed
    asynchronously (Jython), the bind is retried for a short while.
    """
    retry_until = monotonic() + BIND_RETRY
    while True:
        try:
            return _bind_once(host, port, kind, reuse_address, backlog, dual_stack)
        except (socket.error, OSError) as e:
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


def shutdown_both(sock):
    """Send the end of the stream after what was sent and end the reading (a waiting recv()
    returns the end): one system call where shutdown(SHUT_RDWR) sends the FIN."""
    if JYTHON:
        shutdown_write(sock)
    sock.shutdown(socket.SHUT_RDWR)


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


_TCP_CLOSE_WAIT = 8  # Linux's tcp_info.tcpi_state once the peer's FIN has arrived
_TCP_CLOSE = 7  # ... and once the connection is over (after a reset, say)


def _tcp_state(sock):
    """Linux's TCP state of ``sock`` (tcp_info.tcpi_state), or None where it cannot be told."""
    tcp_info = getattr(socket, "TCP_INFO", None)
    if tcp_info is None:
        return None
    try:
        return bytearray(sock.getsockopt(socket.IPPROTO_TCP, tcp_info, 8))[0]
    except Exception:  # not Linux's layout, or the socket is gone
        return None


def peer_sent_end(sock):
    """True if the peer has closed its side, even while data it sent before is still unread
    (Linux: the connection's TCP state is CLOSE_WAIT); False where that cannot be told."""
    return _tcp_state(sock) == _TCP_CLOSE_WAIT


def reset_error(sock):
    """After ``recv()`` returned the end of the stream on a connection whose sending side is
    still open: the error if the connection in fact broke (Linux: its TCP state is CLOSE, where
    a peer's normal end leaves CLOSE_WAIT), else None.  A reset's error is reported once, to
    whichever call on the socket sees it first: when a send on another thread took it, the
    reader sees only an end."""
    if _tcp_state(sock) != _TCP_CLOSE:
        return None
    return socket.error(errno.ECONNRESET, "the connection was reset or broke (a send saw the error first)")


def set_recv_timeout(sock, seconds):
    """Make a blocking ``recv()`` on ``sock`` give up after ``seconds`` (0: never) in the kernel
    (SO_RCVTIMEO): the socket stays in blocking mode, so a read costs one system call, not a
    poll() and a recv().  It then raises an error that :func:`timed_out` recognises."""
    whole = int(seconds)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                    struct.pack("ll", whole, int((seconds - whole) * 1000000)))


def timed_out(error):
    """True if a recv() ``error`` only says that SO_RCVTIMEO passed (see :func:`set_recv_timeout`)."""
    return getattr(error, "errno", None) in (errno.EAGAIN, errno.EWOULDBLOCK)

