"""Dialing: opening an outgoing connection, and the occupied verdict.

:func:`connect` opens a socket, optionally watches it for the hang-up with
which a one-client server (tcpcom's ``TCPServer``, the original's) refuses a
second client, and returns a :class:`~tcpcom.engine.Connection`.  Every
failure is one :class:`~tcpcom.engine.ConnectError` whose ``kind`` says
which it was (refused, name not found, timed out, occupied, ...).
"""
from __future__ import absolute_import

import socket

from .._compat import monotonic, string_types
from .checks import check_port
from .connection import Connection
from .errors import LOST_AT_ONCE, connect_error, make_connect_error, occupied_error
from .reading import RECV_SIZE
from .sockets import close_quietly, wait_readable

#: seconds ``connect()`` waits for the handshake by default
DEFAULT_CONNECT_TIMEOUT = 10.0


def open_socket(host, port, timeout=None):
    """Connect a TCP socket; returns ``(sock, seconds the handshake took)``.

    Raises ``socket.gaierror`` for a name that does not resolve and
    ``socket.error`` (e.g. ECONNREFUSED) when nobody listens.
    """
    check_port(port, allow_zero=False)
    if not isinstance(host, string_types):
        raise TypeError("host must be a string such as '127.0.0.1', not %r" % (host,))
    timeout = timeout if timeout and timeout > 0 else None
    error = None
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        start = monotonic()  # after the name lookup: the handshake alone
        try:
            sock.connect(address)
        except (socket.error, OSError) as e:
            sock.close()
            error = e
            continue
        took = monotonic() - start
        sock.settimeout(None)
        return sock, took
    raise error or socket.error("cannot resolve %r" % (host,))


def probe_hangup(sock, wait):
    """Watch a fresh connection for ``wait`` s: did the server close it at once?

    This is how a single-client server (tcpcom's) refuses a second client.
    Returns ``(hung_up, data)``; ``data`` holds any bytes that arrived
    instead, to be fed to the connection first.
    """
    if not wait_readable(sock, wait):
        return False, b""
    try:
        data = sock.recv(RECV_SIZE)
    except (socket.error, OSError):
        return True, b""
    return (not data), data


def connect(host, port, handler=None, timeout=DEFAULT_CONNECT_TIMEOUT, occupied_wait=None, start=True,
            **options):
    """Open an outgoing connection and start it; returns the :class:`Connection`.

    ``timeout`` bounds the handshake (None or 0: the system's own limit).
    ``occupied_wait``: seconds to watch the fresh connection for an
    occupied server's hang-up, or a function of the measured handshake time
    that returns them (None: no watch).  ``start=False`` returns the
    connection unstarted (call its ``start()``).  ``options`` are those of
    :class:`Connection` (framing, encoding, read_timeout, max_message_size,
    dispatcher, ...).  Raises :class:`ConnectError`, whose ``kind`` says why.
    """
    check_port(port, allow_zero=False)
    if not isinstance(host, string_types):
        raise TypeError("host must be a string such as '127.0.0.1', not %r" % (host,))
    try:
        sock, took = open_socket(host, port, timeout)
    except (socket.error, OSError) as e:
        raise connect_error(e, host, port, timeout)
    data = b""
    if occupied_wait is not None:
        wait = occupied_wait(took) if callable(occupied_wait) else occupied_wait
        hung_up, data = probe_hangup(sock, wait)
        if hung_up:
            close_quietly(sock)
            raise occupied_error(host, port, "within %.1f ms" % (wait * 1000))
    try:
        conn = Connection(sock, handler, initial_data=data, **options)
    except (socket.error, OSError) as e:  # reset between the handshake and here
        close_quietly(sock)
        if occupied_wait is not None:
            raise occupied_error(host, port, str(e))
        raise make_connect_error(LOST_AT_ONCE, getattr(e, "errno", None) or 0,
                           "%s:%s closed the connection at once: %s" % (host, port, e), e)
    except Exception:
        close_quietly(sock)
        raise
    return conn.start() if start else conn
