"""Differences between CPython 3, CPython 2.7 and Jython 2.7, in one place.

Everything else in the package imports these names instead of testing the
interpreter itself.
"""
from __future__ import absolute_import

import codecs
import errno
import socket
import sys
import threading
import time

PY2 = sys.version_info[0] == 2
JYTHON = sys.platform.startswith("java")

if PY2:  # pragma: no cover - exercised under Jython / Python 2.7
    text_type = unicode  # noqa: F821
    binary_type = str
    string_types = (str, unicode)  # noqa: F821
    integer_types = (int, long)  # noqa: F821
    import Queue as queue  # noqa: F401
else:
    text_type = str
    binary_type = bytes
    string_types = (str,)
    integer_types = (int,)
    import queue  # noqa: F401

try:
    monotonic = time.monotonic
except AttributeError:  # pragma: no cover - Python 2.7 / Jython
    try:
        from java.lang import System as _System  # Jython: a real monotonic clock

        def monotonic():
            return _System.nanoTime() / 1e9
    except ImportError:
        monotonic = time.time

try:
    get_ident = threading.get_ident
except AttributeError:  # pragma: no cover - Python 2.7 / Jython
    import thread as _thread  # noqa: F401

    get_ident = _thread.get_ident


def _lock_takes_timeout():
    lock = threading.Lock()
    try:
        lock.acquire(True, 0)
    except TypeError:  # Python 2.7 / Jython: acquire(blocking) only
        return False
    lock.release()
    return True


#: True where ``Lock.acquire(blocking, timeout)`` exists (CPython 3)
LOCK_TIMEOUT = _lock_takes_timeout()


def _has_error_handler(name):
    try:
        codecs.lookup_error(name)
        return True
    except LookupError:
        return False


#: How bytes that are not valid UTF-8 become text without losing them:
#: ``surrogateescape`` where the interpreter has it (encoding the text back
#: gives the same bytes), else ``replace`` (Python 2.7 / Jython).
LOSSLESS_ERRORS = "surrogateescape" if _has_error_handler("surrogateescape") else "replace"


def to_bytes(data, encoding="utf-8", errors=None):
    """Text is encoded (UTF-8 by default); bytes-like objects pass unchanged.

    ``errors`` defaults to :data:`LOSSLESS_ERRORS`, so text that came from
    :func:`decode` with undecodable bytes turns back into the same bytes.
    """
    if isinstance(data, text_type):
        return data.encode(encoding, errors or LOSSLESS_ERRORS)
    if isinstance(data, binary_type):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError("expected text or bytes, got %s (%r); convert it with str() first"
                    % (type(data).__name__, data))


def make_thread(target, name, args=(), daemon=True):
    """A thread, daemon by default (Jython 2.7 has no ``daemon=`` keyword)."""
    t = threading.Thread(target=target, name=name, args=args)
    t.daemon = daemon
    return t


def is_addr_in_use(exc):
    return getattr(exc, "errno", None) == errno.EADDRINUSE or "in use" in str(exc).lower()


def set_nodelay(sock):
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (socket.error, AttributeError, OSError):  # pragma: no cover - platform dependent
        pass


def set_keepalive(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    except (socket.error, AttributeError, OSError):  # pragma: no cover - platform dependent
        pass
