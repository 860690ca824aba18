"""A connection: its life, sending, closing, and the read loop that feeds its handler.

See :mod:`tcpcom.engine` for the handler protocols.

A connection's life is one field, ``state``, moved only by
:meth:`Connection._move`::

    opening --(connection_made posted)--> open
    opening/open --(close(): the program, or the engine's own limits)--> closing --(linger over)--> closed
    opening/open --(the peer closed it, or it broke)--> lost --(close())--> closed

- Messages are delivered in ``opening``, ``open`` and ``lost`` (what arrived
  before the peer ended it), never after a close was asked for -- not even
  the rest of a chunk that arrived with the message whose callback closed.
- The closing event (``connection_lost``) is posted exactly once, when the
  state leaves ``opening``/``open``, after ``connection_made``; it is the
  last event.
- Sending works in ``opening`` and ``open`` only.
- ``closing`` is the graceful close: what was handed to a send goes out,
  then the end of the stream (FIN); the reader keeps reading and discarding
  until the peer closes too, for at most ``LINGER_MAX`` s (and no longer
  than ``LINGER_IDLE`` s after the peer last sent), then closes the socket.
  Closing at once while the peer still sends would make the system answer
  with a reset, which throws away what the peer has not read yet.  Nobody
  waits for the linger: it runs on the connection's own reader thread.
"""
from __future__ import absolute_import

import itertools
import logging
import threading

from .._compat import LOSSLESS_ERRORS, monotonic, set_keepalive, set_nodelay, text_type, to_bytes, wake_reader
from ..dispatch import SerialExecutor, call_logged, call_text, callable_name, excerpt
from ..framing import DEFAULT_MAX_MESSAGE_SIZE, MessageTooLarge, make_framer
from .checks import check_number, check_options
from .deadlines import watchdog
from .errors import NETWORK_ERRORS, ConnectionClosedError, DeadlineExceeded, ReadTimeout, SendTimeout
from .inbound import Inbound
from .reading import RECV_SIZE, ReaderThread, Waiter, current_reader, set_current_reader, spares
from .sockets import (close_quietly, peer_has_closed, plain_address, shutdown_quietly, shutdown_write,
                      wait_readable, writable_now)

log = logging.getLogger("tcpcom.engine")

BIG_SEND = 1 << 20  # payloads this long are sent without a copy to append the delimiter
DEFAULT_SEND_TIMEOUT = 30.0

#: a closing connection reads and discards for at most this long before it closes its socket ...
LINGER_MAX = 10.0
#: ... and for at most this long after the peer last sent something
LINGER_IDLE = 2.0
#: seconds close() waits at most for the closing event to be posted (see close())
CLOSE_WAIT = 1.0

_ids = itertools.count(1)


class State(object):
    """The names of a connection's states (see the module docstring)."""
    OPENING = "opening"
    OPEN = "open"
    CLOSING = "closing"
    LOST = "lost"
    CLOSED = "closed"


_OPENING, _OPEN, _CLOSING, _LOST, _CLOSED = State.OPENING, State.OPEN, State.CLOSING, State.LOST, State.CLOSED
#: the moves _move() allows
_NEXT = {_OPENING: (_OPEN, _CLOSING, _LOST), _OPEN: (_CLOSING, _LOST), _CLOSING: (_CLOSED,),
         _LOST: (_CLOSED,), _CLOSED: ()}
_SENDING = frozenset((_OPENING, _OPEN))
_DELIVERING = frozenset((_OPENING, _OPEN, _LOST))
_CLOSING_EVENT_POSTED = True  # the value of Connection._closing_event once posted with nobody waiting


def _true():
    return True


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



class Connection(object):
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
        self._utf8 = (encoding or "utf-8").lower().replace("-", "").replace("_", "") == "utf8"
        self.errors = errors or LOSSLESS_ERRORS
        self._inbound = Inbound(self.framer, encoding, self.errors)
        self._handler = as_handler(handler)
        self.executor = executor or SerialExecutor(dispatcher)
        self.send_timeout = send_timeout if send_timeout and send_timeout > 0 else None
        self._read_timeout = read_timeout if read_timeout and read_timeout > 0 else None
        self._state = _OPENING
        self.close_reason = None
        self._lock = threading.Lock()       # guards _state, _waiters, _closing_event
        self._send_lock = threading.Lock()  # one sender at a time; the FIN goes out under it
        self._sending_since = None
        self._fin_owed = False
        self._waiters = []
        self._eof = None  # set by a nested read (request() inside a callback): (reason,)
        self._initial = initial_data
        self._last_activity = monotonic()
        self._deadline = None  # (when, farewell bytes, reason text) or None
        self._linger_until = None
        self._closing_event = None  # None; a Waiter someone waits on; or _CLOSING_EVENT_POSTED
        self._reader = None

    def __repr__(self):
        return "<Connection %s %s:%d %s>" % (self.id, self.remote_address, self.remote_port, self._state)

    # -- handler and options -------------------------------------------------

    @property
    def handler(self):
        return self._handler

    @handler.setter
    def handler(self, handler):
        self._handler = as_handler(handler)

    @property
    def read_timeout(self):
        return self._read_timeout

    @read_timeout.setter
    def read_timeout(self, seconds):
        check_number(seconds, "read_timeout")
        self._read_timeout = seconds if seconds and seconds > 0 else None
        self._last_activity = monotonic()
        if self._read_timeout and self._reader is not None:
            watchdog.watch(self, self._last_activity + self._read_timeout)

    def set_deadline(self, seconds, farewell=None, reason=None):
        """Close the connection ``seconds`` from now unless called again before.

        ``None`` cancels.  At the deadline ``farewell`` (bytes, e.g. an HTTP
        408 response) is sent if the socket takes it at once, then the
        connection closes with :class:`DeadlineExceeded` (``reason`` is its
        text).  Unlike ``read_timeout`` the clock does not restart when data
        arrives, so it bounds a whole exchange (a request sent byte by byte).
        """
        if seconds is None:
            self._deadline = None
            return
        when = monotonic() + max(0.0, seconds)
        self._deadline = (when, farewell, reason or "deadline of %g s passed" % seconds)
        if self._reader is not None:
            watchdog.watch(self, when)

    @property
    def state(self):
        """Where the connection is in its life: a :class:`State` name."""
        return self._state

    @property
    def is_open(self):
        """True while the connection can send (``opening`` or ``open``)."""
        return self._state in _SENDING

    def is_done(self):
        """True once a close was asked for or the peer ended it (the opposite of ``is_open``)."""
        return self._state not in _SENDING

    def peer_closed(self):
        """True if the peer has already closed its side and nothing unread is left (reads nothing)."""
        return self._state not in _SENDING or peer_has_closed(self.sock)

    @property
    def delivering(self):
        """True while received messages are still delivered: no close was asked for.

        A handler with ``messages_received`` (a batch) checks it before each
        message of the batch."""
        return self._state in _DELIVERING

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
            if self._reader is not None or self._state is _CLOSED:
                return self
            self._reader = reader
        # accepted daemon connections take a spare thread if one waits
        reader.start("tcpcom-conn-%s" % self.id, self.daemon, spares if self.listener is not None else None)
        deadlines = [d for d in (self._read_timeout, self.send_timeout) if d]
        if self._deadline is not None:
            deadlines.append(max(0.0, self._deadline[0] - monotonic()))
        if deadlines:
            watchdog.watch(self, monotonic() + min(deadlines))
        return self

    def close(self, reason=None):
        """Close the connection gracefully; the handler's ``connection_lost(conn, reason)`` follows.

        What was handed to a send before goes out, then the end of the
        stream; no message is delivered after this call.  Returns at once
        (the linger runs on the reader thread); the closing event is
        delivered before it returns when this connection's callbacks are
        idle, else right after the callback that runs.  Safe to call twice
        and from any thread or callback.
        """
        if not self._move(_CLOSING, reason) and self._state is _LOST:
            self._move(_CLOSED)  # the peer had ended it: what it sent before is not delivered any more
        if current_reader() is not self:
            # closed before connection_made was posted: the reader posts it and then
            # the closing event; wait (bounded) for that, not for the linger
            self.wait_closed(CLOSE_WAIT)

    def close_write(self):
        """Shut down the sending side after what was sent (the peer reads the end of
        the stream); reading goes on until the peer closes or the connection is closed."""
        with self._send_lock:
            try:
                shutdown_write(self.sock)
            except Exception as e:
                log.debug("%r: shutdown for writing failed: %s", self, e)

    def wait_closed(self, timeout=None):
        """Block until the connection has ended and its closing event was posted."""
        with self._lock:
            w = self._closing_event
            if w is _CLOSING_EVENT_POSTED:
                return True
            if w is None:
                w = self._closing_event = Waiter()
        return w.wait(timeout)

    def _move(self, to, reason=None, inline=True):
        """The one place a connection's state changes; returns False if that move is not allowed now.

        ``inline``: the closing event may run on the calling thread (False for
        the engine's own threads, which never run user code).
        """
        with self._lock:
            was = self._state
            if to not in _NEXT[was]:
                return False
            self._state = to
            if to is _CLOSING or to is _LOST:
                self.close_reason = reason
                waiters, self._waiters = self._waiters, []
                for w in waiters:  # request() returns None
                    w.set()
            reader = self._reader
        if to is _CLOSING:
            self._fin_owed = True
            self._pay_fin()
            if reader is None:  # never started: nothing to linger with
                self._move(_CLOSED)
                self._post_closing_event(inline)
            else:
                now = self._last_activity = monotonic()  # the linger's idle clock starts now
                self._linger_until = now + LINGER_MAX
                watchdog.watch(self, now)  # checks the linger from now on
                if was is _OPEN:  # from opening: the reader posts it after connection_made
                    self._post_closing_event(inline)
        elif to is _CLOSED or to is _LOST:
            watchdog.forget(self)
            close_quietly(self.sock)
        return True

    def _abort(self):
        """End the socket now (the linger is over, or a send failed): wakes the reader."""
        shutdown_quietly(self.sock)
        wake_reader(self.sock)  # Jython: shutdown() does not wake the reader's recv()

    def _post_closing_event(self, inline):
        self.executor.post(self._lost, (self.close_reason,), inline, _true)
        with self._lock:
            w, self._closing_event = self._closing_event, _CLOSING_EVENT_POSTED
        if w is not None:
            w.set()

    def watch_ended(self):
        """For the watchdog: nothing is left to watch once the socket is closed."""
        return self._state is _LOST or self._state is _CLOSED

    def check_deadlines(self, now):
        """For the watchdog: act on a deadline that passed; returns the next check time (or None)."""
        state = self._state
        if state is _CLOSING:  # lingering
            due = min(self._linger_until, self._last_activity + LINGER_IDLE)
            if now >= due:
                self._abort()
                return None
            return due
        if state not in _SENDING:
            return None
        nxt = None
        dl = self._deadline
        if dl is not None:
            if now >= dl[0]:
                self._expire(dl)
                return None  # closing: _move() asked for the linger's checks
            nxt = dl[0]
        rt = self._read_timeout
        if rt:
            due = self._last_activity + rt
            if now >= due:
                self._move(_CLOSING, ReadTimeout("no data received for %g s (read timeout)" % rt), False)
                return None
            nxt = due if nxt is None else min(nxt, due)
        st = self.send_timeout
        if st:
            since = self._sending_since
            if since is not None and now - since >= st:
                # the peer is not reading: nothing will drain, end it now
                self._move(_CLOSING, SendTimeout("a send made no progress for %g s: the peer is not "
                                                 "reading (send timeout)" % st), False)
                self._abort()
                return None
            due = (since + st) if since is not None else now + st
            nxt = due if nxt is None else min(nxt, due)
        return nxt

    def _expire(self, deadline):
        # on the watchdog thread: never wait for the peer
        _, farewell, reason = deadline
        if farewell and self._send_lock.acquire(False):
            try:
                if self._state in _SENDING and writable_now(self.sock):
                    self.sock.send(farewell)
            except NETWORK_ERRORS as e:
                log.debug("%r: farewell not sent: %s", self, e)
            finally:
                self._send_lock.release()
        self._move(_CLOSING, DeadlineExceeded(reason), False)

    # -- receiving -------------------------------------------------------------

    def _read_loop(self):
        set_current_reader(self)
        reason = None
        try:
            self.executor.post(self._made, (), True, self.is_done)
            if not self._move(_OPEN):  # closed during connection_made: its closing event is ours to post
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
                if self._state is not _CLOSING:  # closing: lingering, what comes is discarded
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
        if self._state is _CLOSING or not self._move(_LOST, reason):
            self._move(_CLOSED)
            return
        if reason is not None and not isinstance(reason, MessageTooLarge):
            log.debug("%r ended: %s", self, reason)
        tail = self._inbound.finish(self)
        if tail:
            self.executor.post(self._deliver, ([tail],), True, _true)
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
        if self._state not in _DELIVERING:
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
            if self._state not in _DELIVERING:  # the callback closed the connection
                return

    def _lost(self, reason):
        # The listener's slot is freed here, on the executor, so a connection
        # accepted next cannot have its events delivered before this one's end.
        if self.listener is not None:
            self.listener.connection_done(self)
        call_logged(self._handler.connection_lost, (self, reason), None, log)

    # -- sending ---------------------------------------------------------------

    def send(self, data):
        """Send text (encoded) or bytes exactly as given, no framing added."""
        self._sendall(to_bytes(data, self.encoding or "utf-8"))

    def send_message(self, message):
        """Send one message: text (encoded) or bytes, followed by the framing's delimiter.

        Concurrent senders never interleave; raises :class:`ConnectionClosedError`
        when the connection is (or gets) closed.
        """
        if message.__class__ is text_type:  # the common case, without a call
            if len(message) >= BIG_SEND and self._utf8:
                self._send_parts(self._encode_slices(message))
                return
            payload = message.encode(self.encoding or "utf-8", LOSSLESS_ERRORS)
        elif message is None:
            raise TypeError("cannot send None: pass text or bytes")
        else:
            payload = to_bytes(message, self.encoding or "utf-8")
        if len(payload) < BIG_SEND:
            self._sendall(self.framer.encode(payload))
        else:  # no copy of a big payload just to append the delimiter
            self._send_parts((payload, self.framer.encode(b"")))

    def _encode_slices(self, text):
        # A big text is encoded and sent a slice at a time: no second copy of
        # the whole message, and no fresh pages for it (UTF-8 is stateless,
        # so the slices encode to exactly the bytes of the whole).
        step, n, i = BIG_SEND, len(text), 0
        while i < n:
            j = min(i + step, n)
            if j < n and 0xD800 <= ord(text[j - 1]) <= 0xDBFF:
                j += 1  # never split a surrogate pair (UTF-16 builds, Jython)
            yield text[i:j].encode("utf-8", LOSSLESS_ERRORS)
            i = j
        yield self.framer.encode(b"")

    def _check_open(self):
        if self._state not in _SENDING:
            raise ConnectionClosedError("connection %s to %s:%d is closed; connect again before sending"
                                        % (self.id, self.remote_address, self.remote_port))

    def _send_failed(self, error):
        """End the connection after a failed send; returns the exception for the sender."""
        cause = self.close_reason if self._state not in _SENDING else None
        if self._move(_CLOSING, error, False):
            self._abort()  # the peer is gone: nothing to linger for
        return ConnectionClosedError("sending to %s:%d failed: %s"
                                     % (self.remote_address, self.remote_port, cause or error))

    def _send_parts(self, parts):
        self._check_open()
        with self._send_lock:
            try:
                for part in parts:
                    if part:
                        self._sending_since = monotonic()  # progress: the send timeout restarts
                        self.sock.sendall(part)
            except NETWORK_ERRORS as e:
                raise self._send_failed(e)
            finally:
                self._sending_since = None
        if self._fin_owed:
            self._pay_fin()

    def _sendall(self, data):
        # the common case of _send_parts, without its loop
        self._check_open()
        with self._send_lock:
            self._sending_since = monotonic()
            try:
                self.sock.sendall(data)
            except NETWORK_ERRORS as e:
                raise self._send_failed(e)
            finally:
                self._sending_since = None
        if self._fin_owed:
            self._pay_fin()

    def _pay_fin(self):
        # The FIN follows every send that was under way when close() came:
        # whoever holds the send lock last sends it (close() does not wait).
        while self._fin_owed:
            if not self._send_lock.acquire(False):
                return  # the sender holding it pays when it is done
            try:
                if self._fin_owed:
                    self._fin_owed = False
                    shutdown_write(self.sock)
            except Exception as e:
                log.debug("%r: shutdown for writing failed: %s", self, e)
            finally:
                self._send_lock.release()

    def request(self, message, timeout):
        """Send ``message`` and return the next message received, or None after ``timeout`` s.

        The reply is still delivered to the handler as usual.  Works from any
        thread, including from inside this connection's own callbacks.
        """
        w = Waiter()
        with self._lock:
            if self._state not in _SENDING:
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
