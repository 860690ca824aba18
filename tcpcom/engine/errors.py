"""The engine's exceptions, and the one place that says what a socket error means.

Every face turns the end of a connection, or a failed connect, into its own
numbers and states (tcpcom's ``CONNECTION_FAILED``/``SERVER_OCCUPIED``,
XTension's error numbers) from :func:`end_kind` and :class:`ConnectError`'s
``kind`` -- never by looking at ``errno`` itself.
"""
from __future__ import absolute_import

import errno
import os
import socket

from ..framing import MessageTooLarge


class ConnectionClosedError(socket.error):
    """Sending on a connection that is closed (or closed during the send)."""


class PortInUseError(socket.error):
    """The listener's port is already taken by another socket."""


class ReadTimeout(socket.error):
    """The peer sent nothing for ``read_timeout`` seconds; the connection was closed."""


class DeadlineExceeded(ReadTimeout):
    """The deadline set with :meth:`Connection.set_deadline` passed; the connection was closed."""


class SendTimeout(socket.error):
    """A send made no progress for ``send_timeout`` seconds (the peer stopped reading)."""


# -- why a connect failed ------------------------------------------------------

REFUSED = "refused"            # nobody listens on that port (or a firewall said no)
NOT_FOUND = "not_found"        # the name does not resolve
TIMED_OUT = "timed_out"        # no answer to the handshake in time
OCCUPIED = "occupied"          # accepted, then closed at once: a one-client server is busy
UNREACHABLE = "unreachable"    # no route, network down, an address this machine cannot use
LOST_AT_ONCE = "lost_at_once"  # connected, then reset before it could be used
FAILED = "failed"              # anything else


class ConnectError(socket.error):
    """:func:`~tcpcom.engine.connect` failed; ``kind`` says how.

    ``kind`` is one of ``REFUSED``, ``NOT_FOUND``, ``TIMED_OUT``,
    ``OCCUPIED``, ``UNREACHABLE``, ``LOST_AT_ONCE``, ``FAILED`` (module constants, plain
    strings); ``errno`` is the system's number where there is one;
    ``cause`` the original exception (or None).
    """

    def __init__(self, kind, number, message, cause=None):
        socket.error.__init__(self, number, message)
        self.kind = kind
        self.cause = cause

    def __str__(self):
        return self.strerror or self.kind


try:
    _REFUSED_BUILTIN = ConnectionRefusedError
except NameError:  # Python 2.7 / Jython
    _REFUSED_BUILTIN = None


def _subclass(name, builtin):
    # a ConnectError that is also what the system raised (socket.gaierror,
    # ConnectionRefusedError, socket.timeout): `except` clauses written for
    # those keep working
    return type(name, (ConnectError, builtin), {}) if builtin is not None else ConnectError


_KIND_CLASSES = {
    NOT_FOUND: _subclass("NameNotFoundError", socket.gaierror),
    REFUSED: _subclass("RefusedError", _REFUSED_BUILTIN),
    TIMED_OUT: _subclass("ConnectTimeoutError", socket.timeout),
}


def make_connect_error(kind, number, message, cause=None):
    """A :class:`ConnectError` of ``kind`` (of the matching system class as well, where there is one)."""
    return _KIND_CLASSES.get(kind, ConnectError)(kind, number, message, cause)


_UNREACHABLE = set(getattr(errno, n) for n in ("ENETUNREACH", "EHOSTUNREACH", "ENETDOWN", "EHOSTDOWN",
                                               "EADDRNOTAVAIL", "EAFNOSUPPORT") if hasattr(errno, n))


def connect_error(error, host, port, timeout=None):
    """The :class:`ConnectError` for an exception raised while connecting to ``host:port``."""
    if isinstance(error, ConnectError):
        return error
    where = "%s:%s" % (host, port)
    if isinstance(error, socket.gaierror):
        return make_connect_error(NOT_FOUND, -2, "cannot resolve %r: %s" % (host, error_text(error)), error)
    code = error_number(error)
    if isinstance(error, socket.timeout) or code == errno.ETIMEDOUT:
        return make_connect_error(TIMED_OUT, errno.ETIMEDOUT, "no answer from %s within %g s (%s)"
                            % (where, timeout or 0, os.strerror(errno.ETIMEDOUT)), error)
    if code == errno.ECONNREFUSED or (code is None and "refused" in str(error).lower()):
        return make_connect_error(REFUSED, errno.ECONNREFUSED, "%s refused the connection: nobody listens on "
                            "port %s there" % (where, port), error)
    if code in _UNREACHABLE:
        return make_connect_error(UNREACHABLE, code, "%s cannot be reached: %s" % (where, error_text(error)), error)
    return make_connect_error(FAILED, code or 0, "connecting to %s failed: %s" % (where, error_text(error)), error)


def occupied_error(host, port, detail):
    return make_connect_error(OCCUPIED, errno.ECONNRESET, "%s:%s closed the connection at once (%s): "
                        "the server is occupied" % (host, port, detail))


# -- why a connection ended ----------------------------------------------------

CLOSED = "closed"        # closed normally (by either side)
TOO_LARGE = "too_large"  # a message over max_message_size (or out of memory)
TIMEOUT = "timeout"      # a read, send or deadline timeout of the engine
DROPPED = "dropped"      # reset, broken pipe, unreachable: the network or the peer dropped it
ERROR = "error"          # another system error (see error_number)

_DROPPED = set(getattr(errno, n) for n in ("ECONNRESET", "EPIPE", "ECONNABORTED", "ETIMEDOUT", "ENETDOWN",
                                           "ENETUNREACH", "EHOSTUNREACH", "ENOTCONN", "ESHUTDOWN")
               if hasattr(errno, n))


def error_number(error):
    """The system's error number of an exception, or None."""
    code = getattr(error, "errno", None)
    return code if isinstance(code, int) and not isinstance(code, bool) and code > 0 else None


def error_text(error):
    """The system's words for an exception (its strerror), else its text."""
    return getattr(error, "strerror", None) or str(error)


def end_kind(reason):
    """What a connection's ``close_reason`` means: one of the constants above."""
    if reason is None:
        return CLOSED
    if isinstance(reason, (MessageTooLarge, MemoryError)):
        return TOO_LARGE
    if isinstance(reason, (ReadTimeout, SendTimeout)):
        return TIMEOUT
    if error_number(reason) in _DROPPED:
        return DROPPED
    return ERROR


#: what a failed socket call raises, on every interpreter (catch this, not ``socket.error``)
NETWORK_ERRORS = (socket.error, OSError)


def is_name_error(error):
    """True if ``error`` says a host name did not resolve."""
    return isinstance(error, socket.gaierror)
