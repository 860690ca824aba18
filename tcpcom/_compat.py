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

from .diagnostics import excerpt, install_last_resort

PY2 = sys.version_info[0] == 2
JYTHON = sys.platform.startswith("java")
#: shutdown() of a listening socket wakes a thread blocked in its accept() (Linux): no accept
#: timeout is needed as a fallback wake-up (a timeout costs a poll() per accepted connection)
SHUTDOWN_WAKES_ACCEPT = sys.platform.startswith("linux")

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
    if isinstance(data, memoryview):
        return data.tobytes()  # bytes(memoryview) is its repr on Python 2.7 / Jython
    if isinstance(data, bytearray):
        return bytes(data)
    raise TypeError("expected text or bytes, got %s (%s); convert it with str() first"
                    % (type(data).__name__, excerpt(data)))


if PY2:  # pragma: no cover - Python 2.7 / Jython have no logging.lastResort
    install_last_resort("tcpcom")


def script_text(msg):
    """What a TigerJython script means by ``msg``: used by ``sendMessage`` of the tcpcom face.

    Python 3: unchanged (bytes are bytes).  Python 2 / Jython: a byte string
    that is valid UTF-8 (a literal in a file with a UTF-8 coding line, or a
    message from the original tcpcom) is also unchanged -- the original puts
    it on the wire as it is.  One that is not valid UTF-8 is read as Latin-1
    text: that is how Jython stores the characters of a ``str`` literal when a
    program such as TigerJython hands it the source as text (the literal
    ``"Gr\\u00fcezi"`` becomes ``'Gr\\xfcezi'``), so it goes out as UTF-8 and a
    CPython peer reads the same text.
    """
    if PY2 and isinstance(msg, binary_type):
        try:
            msg.decode("utf-8")
        except UnicodeDecodeError:
            return msg.decode("latin-1")
    return msg


#: CPython 3.12.0-3.12.2 start no thread once the script's last line has run, also while
#: non-daemon threads (a server's) still run (gh-113964, fixed in 3.12.3)
NO_THREADS_AFTER_LAST_LINE = (3, 12, 0) <= sys.version_info[:3] < (3, 12, 3)


class _Thread(threading.Thread):
    def start(self):
        try:
            threading.Thread.start(self)
        except RuntimeError as e:
            if NO_THREADS_AFTER_LAST_LINE and "shutdown" in str(e):
                raise RuntimeError(
                    "%s: Python %d.%d.%d starts no thread after the script's last line (CPython "
                    "bug gh-113964). Update to Python 3.12.3 or later, or keep the script running: "
                    "end it with server.loopForever() or a while loop" % ((e,) + sys.version_info[:3]))
            raise


def make_thread(target, name, args=(), daemon=True):
    """A thread, daemon by default (Jython 2.7 has no ``daemon=`` keyword).

    Its ``start()`` says what to do where the interpreter refuses new threads
    after the script's last line (``NO_THREADS_AFTER_LAST_LINE``).
    """
    t = _Thread(target=target, name=name, args=args)
    t.daemon = daemon
    return t


def accepter(listening):
    """A function that accepts the next connection of ``listening``: ``(socket, address)``.

    On CPython 3 it is ``socket.accept()`` without reading the listening
    socket's family and type anew for each connection (each read turns an
    int into an enum: nine Python calls per accepted connection); it makes
    the same socket, blocking as ``accept()`` makes it.  Elsewhere ``listening.accept``.
    """
    raw = getattr(listening, "_accept", None)
    if PY2 or JYTHON or raw is None:
        return listening.accept
    family, kind, proto = int(listening.family), int(listening.type), listening.proto
    make, default_timeout = socket.socket, socket.getdefaulttimeout

    def accept():
        fd, address = raw()
        sock = make(family, kind, proto, fd)
        if default_timeout() is None and listening.gettimeout():
            sock.setblocking(True)  # as accept(): where the new socket inherits non-blocking
        return sock, address
    return accept


def bind_error(exc):
    """The error a failed bind/listen really was.

    Jython reports every ``java.net.BindException`` as errno 98 "Address
    already in use", also "Cannot assign requested address" (an address this
    machine does not have); the Java exception it carries tells them apart.
    Elsewhere ``exc`` itself.
    """
    java = getattr(exc, "java_exception", None)
    if java is not None and getattr(exc, "errno", None) == errno.EADDRINUSE:
        try:
            message = java.getMessage() or ""
        except Exception:  # pragma: no cover
            message = ""
        if message and "in use" not in message.lower():
            code = errno.EADDRNOTAVAIL if "assign" in message.lower() else errno.EINVAL
            return socket.error(code, message)
    return exc


def is_addr_in_use(exc):
    exc = bind_error(exc)
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


# -- Jython's socket layer -----------------------------------------------------
#
# Jython 2.7 implements sockets on Netty.  Three of its differences from C
# sockets matter to the engine (found by running, see README "TigerJython /
# Jython"); the helpers below are no-ops (or plain calls) elsewhere.
#
# - shutdown() does not wake a thread blocked in recv(): it only detaches the
#   socket's read handler; close() wakes it only sometimes (the close
#   completes asynchronously and may drain the queue recv() waits on first).
# - Neither shutdown() nor close() of a listening socket wakes accept().
# - close() of a listening socket completes asynchronously: binding the same
#   port again right after it can fail with EADDRINUSE for tens of ms.

#: seconds Listener retries a bind that failed with EADDRINUSE (a port closed
#: a moment ago by this JVM is freed asynchronously on Jython)
BIND_RETRY = 0.5 if JYTHON else 0.0

if JYTHON:  # pragma: no cover - exercised by tests/jython under Jython
    try:
        import _socket as _jsocket
        _PEER_CLOSED = _jsocket._PEER_CLOSED
    except (ImportError, AttributeError):
        _PEER_CLOSED = None

    def wake_reader(sock):
        """Make a recv() (or poll) blocked in another thread see the end of the stream.

        Queues the end marker Jython's recv() waits for and notifies pollers.
        Returns True if it could.
        """
        real = getattr(sock, "_sock", None)
        incoming = getattr(real, "incoming", None)
        if incoming is None or _PEER_CLOSED is None:
            return False
        try:
            incoming.put(_PEER_CLOSED)
            real._notify_selectors(hangup=True)
        except Exception:
            return False
        return True

    def wake_accept(sock, timeout=1.0):
        """Make accept() blocked in another thread return: connect to the socket once.

        (What the original tcpcom does on every platform.)  The caller's
        accept loop sees its closing flag and drops the connection.
        """
        try:
            host, port = sock.getsockname()[:2]
        except (socket.error, OSError):
            return False
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host in ("::", "0:0:0:0:0:0:0:0"):
            host = "::1"
        try:
            s = socket.create_connection((host, port), timeout)
        except (socket.error, OSError):
            return False
        s.close()
        return True

    def close_listening(sock, timeout=5.0):
        """Close a listening socket and wait (at most ``timeout`` s) until its port is free.

        (Milliseconds normally; the bound is generous for a loaded machine.)
        """
        real = getattr(sock, "_sock", None)
        sock.close()
        ms = int(timeout * 1000)
        try:
            channel = getattr(real, "channel", None)
            if channel is not None:
                channel.closeFuture().awaitUninterruptibly(ms)
            group = getattr(real, "parent_group", None)  # its event loop owns the port
            if group is not None:
                group.terminationFuture().awaitUninterruptibly(ms)
            # Jython stops the accepted connections' event loop only when the
            # last of them closes after the listening socket; when all closed
            # before, its threads would stay for the life of the JVM.
            children = getattr(real, "child_group", None)
            if children is not None and getattr(real, "accepted_children", 1) <= 0:
                children.shutdownGracefully(0, 100, _MILLISECONDS)
        except Exception:  # another Jython version: the bind retry still covers it
            pass

    def _quiet_netty():
        """Silence Netty's 'Failed to submit a listener notification task' line.

        Jython logs it (SEVERE) when an accepted connection closes after its
        listening socket: the close notification finds the event loop that
        Jython has just shut down.  Nothing is lost; the line only alarms.
        """
        try:
            from java.util.logging import Level, Logger
            logger = Logger.getLogger("io.netty.util.concurrent.DefaultPromise.rejectedExecution")
            logger.setLevel(Level.OFF)
            return logger  # keep a reference: the JVM forgets settings of unreferenced loggers
        except Exception:
            return None

    try:
        from java.util.concurrent import TimeUnit as _TimeUnit
        _MILLISECONDS = _TimeUnit.MILLISECONDS
    except ImportError:
        _MILLISECONDS = None
    _netty_logger = _quiet_netty()
else:
    def wake_reader(sock):
        """Nothing to do: shutdown() wakes a blocked recv() on CPython."""
        return False

    def wake_accept(sock, timeout=1.0):
        """Nothing to do: shutdown() wakes accept() on Linux (elsewhere the accept timeout does)."""
        return False

    def close_listening(sock, timeout=5.0):
        """Close a listening socket; the port is free when close() returns."""
        sock.close()
