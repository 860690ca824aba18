"""A connection: its socket's reading, delivery and sending (its life: lifecycle.py).

See :mod:`tcpcom.engine` for the handler protocols and
:mod:`tcpcom.engine.lifecycle` for a connection's states.
"""
from __future__ import absolute_import

import itertools
import logging

from .._compat import LOSSLESS_ERRORS, monotonic, set_keepalive, set_nodelay, to_bytes
from ..diagnostics import excerpt
from ..dispatch import SerialExecutor, call_logged, call_text, callable_name
from ..framing import DEFAULT_MAX_MESSAGE_SIZE, MessageTooLarge, make_framer
from .checks import check_options
from .deadlines import watchdog
from .errors import NETWORK_ERRORS, ConnectionClosedError, ReadTimeout
from .inbound import Inbound
from .lifecycle import CLOSED, CLOSING, DELIVERING, LOST, OPEN, SENDING, ConnectionLife, always
from .outbound import Outbound
from .reading import RECV_SIZE, ReaderThread, Waiter, current_reader, set_current_reader
from .sockets import plain_address, wait_readable

log = logging.getLogger("tcpcom.engine")

DEFAULT_SEND_TIMEOUT = 30.0
_ids = itertools.count(1)


class Handler(object):
    """Base class for connection handlers; override what you need."""

    def __init__(self, conn=None):
        self.conn = conn

    def connection_made(self, conn):
        pass

    def message_received(self, conn, message):
        pass

    def connection_lost(self, conn, reason):
        pass


class FunctionHandler(object):
    """Adapts a Q-SYS style ``fn(conn, event, data)`` to the handler methods."""

    def __init__(self, fn):
        self.fn = fn

    def connection_made(self, conn):
        self._call(conn, Connection.CONNECTED, None)

    def message_received(self, conn, message):
        self._call(conn, Connection.DATA, message)

    def connection_lost(self, conn, reason):
        if reason is None:
            self._call(conn, Connection.CLOSED, None)
        elif isinstance(reason, ReadTimeout):
            self._call(conn, Connection.TIMEOUT, reason)
        else:
            self._call(conn, Connection.ERROR, reason)

    def _call(self, conn, event, data):
        try:
            self.fn(conn, event, data)
        except Exception:  # named as the program wrote it: on_event(conn, 'data', 'hello')
            log.exception("%s raised; the engine goes on", call_text(callable_name(self.fn), (conn, event, data)))


def as_handler(handler):
    """A handler object for what the program gave: an object, a Q-SYS style function, or None."""
    if handler is None:
        return Handler()
    if hasattr(handler, "message_received") or hasattr(handler, "connection_lost") \
            or hasattr(handler, "connection_made"):
        return handler
    if callable(handler):
        return FunctionHandler(handler)
    raise TypeError("a handler must be a function fn(conn, event, data) or an object with "
                    "connection_made/message_received/connection_lost, not %r" % (handler,))


def handler_property(convert):
    """A settable ``handler`` attribute that keeps ``convert(value)`` (an object with the handler
    methods) in ``_handler``: a connection, a reconnecting connection and a UDP endpoint each
    take what the program gives (an object or a function) and convert it their own way."""
    def set_handler(self, handler):
        self._handler = convert(handler)
    return property(lambda self: self._handler, set_handler, doc="The handler (settable at any time).")


class Connection(ConnectionLife):

    """One TCP connection, accepted by a :class:`Listener` or made by :func:`connect`.

    Attributes: ``id`` (unique string), ``remote_address``, ``remote_port``,
    ``local_address``, ``local_port``, ``listener`` (or None), ``handler``
    (settable at any time), ``read_timeout`` (settable; None or <= 0: never),
    ``state`` (see :class:`State`), ``close_reason`` (once it ended: None for
    a normal close, or the exception that ended it).
    """

    CONNECTED = "connected"
    DATA = "data"
    CLOSED = "closed"
    ERROR = "error"
    TIMEOUT = "timeout"

    def __init__(self, sock, handler=None, framing=b"\0", max_message_size=DEFAULT_MAX_MESSAGE_SIZE,
                 encoding="utf-8", errors=None, read_timeout=None, send_timeout=DEFAULT_SEND_TIMEOUT,
                 executor=None, dispatcher=None, listener=None, initial_data=b"", daemon=True, peer=None):
        check_options(max_message_size, read_timeout, send_timeout)
        self.sock = sock
        self.daemon = daemon
        if sock.gettimeout() is not None:
            sock.settimeout(None)
        set_nodelay(sock)
        set_keepalive(sock)
        if peer is None:  # a listener passes the address accept() returned: one system call less
            peer = sock.getpeername()
        local = sock.getsockname()
        self.remote_address, self.remote_port = plain_address(peer[0]), int(peer[1])  # IPv4: a dotted quad
        self.local_address, self.local_port = plain_address(local[0]), int(local[1])
        self.id = "c%d" % next(_ids)
        self.listener = listener
        self.framer = make_framer(framing, max_message_size)
        self.encoding = encoding
        self.errors = errors or LOSSLESS_ERRORS
        self._inbound = Inbound(self.framer, encoding, self.errors)
        self._handler = as_handler(handler)
        self.executor = executor or SerialExecutor(dispatcher)
        self.send_timeout = send_timeout if send_timeout and send_timeout > 0 else None
        ConnectionLife.__init__(self, read_timeout)
        self._out = Outbound(sock, self.framer, encoding, self._check_open, self._send_failed)
        self._eof = None  # set by a nested read (request() inside a callback): (reason,)
        self._initial = initial_data

    def __repr__(self):
        return "<Connection %s %s:%d %s>" % (self.id, self.remote_address, self.remote_port, self._state)

    # -- handler and options -------------------------------------------------

    handler = handler_property(as_handler)

    @property
    def info(self):
        """A dict describing the connection (for logs and the faces)."""
        return {"id": self.id, "remote_address": self.remote_address, "remote_port": self.remote_port,
                "local_address": self.local_address, "local_port": self.local_port}

    # -- life cycle ------------------------------------------------------------

    def start(self):
        """Start the reader thread; the handler gets ``connection_made`` first."""
        reader = ReaderThread(self._read_loop)
        with self._lock:
            if self._reader is not None or self._state is CLOSED:
                return self
            self._reader = reader
        # accepted connections take a spare thread of their listener's pool if one waits
        pool = self.listener.spares if self.listener is not None else None
        reader.start("tcpcom-conn-%s" % self.id, self.daemon, pool)
        deadlines = [d for d in (self._read_timeout, self.send_timeout) if d]
        if self._deadline is not None:
            deadlines.append(max(0.0, self._deadline[0] - monotonic()))
        if deadlines:
            watchdog.watch(self, monotonic() + min(deadlines))
        return self

    def close_write(self):
        """Shut down the sending side after what was sent (the peer reads the end of
        the stream); reading goes on until the peer closes or the connection is closed."""
        self._out.close_write()

    # -- receiving -------------------------------------------------------------

    def _read_loop(self):
        set_current_reader(self)
        reason = None
        try:
            self.executor.post(self._made, (), True, self.is_done)
            if not self._move(OPEN):  # closed during connection_made: its closing event is ours to post
                self._post_closing_event(True)
            if self._initial:
                reason = self._received(self._initial)
                self._initial = b""
            recv = self.sock.recv
            while reason is None and self._eof is None:
                try:
                    data = recv(RECV_SIZE)
                except NETWORK_ERRORS as e:
                    reason = e
                    break
                if not data:
                    break
                self._last_activity = monotonic()
                if self._state is not CLOSING:  # closing: lingering, what comes is discarded
                    reason = self._received(data)
        except Exception as e:  # a bug in the engine: never die silently
            log.exception("reader of %r failed", self)
            reason = e
        finally:
            if self._eof is not None and reason is None:
                reason = self._eof[0]
            self._ended(reason)

    def _ended(self, reason):
        # the read loop is over: the peer ended it (lost), or the linger of a close is (closed)
        if self._state is CLOSING or not self._move(LOST, reason):
            self._move(CLOSED)
            return
        if reason is not None and not isinstance(reason, MessageTooLarge):
            log.debug("%r ended: %s", self, reason)
        tail = self._inbound.finish(self)
        if tail:
            self.executor.post(self._deliver, ([tail],), True, always)
        self._post_closing_event(True)

    def _received(self, data):
        """Frame, decode and post one chunk; returns an exception that ends the connection."""
        messages, error = self._inbound.feed(data)
        if error is not None:
            log.error("%r: %s; closing the connection", self, error)
        if messages:
            if self._waiters:
                self._hand_to_waiters(messages)
            self.executor.post(self._deliver, (messages,), True, self.is_done)
        return error

    def _hand_to_waiters(self, messages):
        with self._lock:
            for m in messages:
                if not self._waiters:
                    break
                self._waiters.pop(0).set(m)

    def _made(self):
        call_logged(self._handler.connection_made, (self,), None, log)

    def _deliver(self, messages):
        if self._state not in DELIVERING:
            return
        h = self._handler
        batch = getattr(h, "messages_received", None)
        if batch is not None:  # the handler takes the whole batch (it logs its own errors)
            try:
                batch(self, messages)
            except Exception:
                log.exception("%s raised (%r, %d messages); the engine goes on", callable_name(batch), self,
                              len(messages))
            return
        cb = h.message_received
        for m in messages:
            try:
                cb(self, m)
            except Exception:
                log.exception("%s raised (%r, %s); the engine goes on", callable_name(cb), self, excerpt(m))
            if self._state not in DELIVERING:  # the callback closed the connection
                return

    def _lost(self, reason):
        # The listener's slot is freed here, on the executor, so a connection
        # accepted next cannot have its events delivered before this one's end.
        if self.listener is not None:
            self.listener.connection_done(self)
        call_logged(self._handler.connection_lost, (self, reason), None, log)

    # -- sending (see outbound.py) ------------------------------------------------

    def send(self, data):
        """Send text (encoded) or bytes exactly as given, no framing added."""
        self._out.sendall(to_bytes(data, self.encoding or "utf-8"))

    def send_message(self, message):
        """Send one message: text (encoded) or bytes, followed by the framing's delimiter.

        Concurrent senders never interleave; raises :class:`ConnectionClosedError`
        when the connection is (or gets) closed.
        """
        self._out.send_message(message)

    def request(self, message, timeout):
        """Send ``message`` and return the next message received, or None after ``timeout`` s.

        The reply is still delivered to the handler as usual.  Works from any
        thread, including from inside this connection's own callbacks.
        """
        w = Waiter()
        with self._lock:
            if self._state not in SENDING:
                return None
            self._waiters.append(w)
        try:
            self.send_message(message)
        except ConnectionClosedError:
            self._drop_waiter(w)
            raise
        if current_reader() is self:
            self._read_nested(w, timeout)
        else:
            w.wait(timeout)
        self._drop_waiter(w)
        return w.value

    def _drop_waiter(self, w):
        with self._lock:
            if w in self._waiters:
                self._waiters.remove(w)

    def _read_nested(self, waiter, timeout):
        # request() from a callback on our own reader thread: nobody else will
        # read the socket, so read it here until the reply comes.
        deadline = monotonic() + timeout
        while not waiter.done and self._eof is None:
            left = deadline - monotonic()
            if left <= 0 or not wait_readable(self.sock, left):
                return
            try:
                data = self.sock.recv(RECV_SIZE)
            except NETWORK_ERRORS as e:
                self._eof = (e,)
                return
            if not data:
                self._eof = (None,)
                return
            self._last_activity = monotonic()
            error = self._received(data)
            if error is not None:
                self._eof = (error,)
