"""A connection: its state, sending, closing, and the read loop that feeds its handler.

See :mod:`tcpcom.engine` for the handler protocols.
"""
from __future__ import absolute_import

import codecs
import itertools
import logging
import socket
import threading

from .._compat import LOSSLESS_ERRORS, monotonic, set_keepalive, set_nodelay, text_type, to_bytes, wake_reader
from ..dispatch import SerialExecutor
from ..framing import DEFAULT_MAX_MESSAGE_SIZE, DelimiterFramer, MessageTooLarge, RawFramer, make_framer
from .checks import check_number, check_options
from .deadlines import watchdog
from .errors import ConnectionClosedError, DeadlineExceeded, ReadTimeout, SendTimeout
from .reading import RECV_SIZE, ReaderThread, Waiter, current_reader, set_current_reader, spares
from .sockets import close_quietly, shutdown_quietly, shutdown_write, wait_readable, writable_now

log = logging.getLogger("tcpcom.engine")

BIG_SEND = 1 << 20  # payloads this long are sent without a copy to append the delimiter
DEFAULT_SEND_TIMEOUT = 30.0

_OPEN, _CLOSING, _CLOSED = "open", "closing", "closed"
_ids = itertools.count(1)


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
        self.fn(conn, Connection.CONNECTED, None)

    def message_received(self, conn, message):
        self.fn(conn, Connection.DATA, message)

    def connection_lost(self, conn, reason):
        if reason is None:
            self.fn(conn, Connection.CLOSED, None)
        elif isinstance(reason, ReadTimeout):
            self.fn(conn, Connection.TIMEOUT, reason)
        else:
            self.fn(conn, Connection.ERROR, reason)


def _as_handler(handler):
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
    ``close_reason`` (after it closed: None, or the exception that closed it).
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
        self.remote_address, self.remote_port = str(peer[0]), int(peer[1])
        self.local_address, self.local_port = str(local[0]), int(local[1])
        self.id = "c%d" % next(_ids)
        self.listener = listener
        self.framer = make_framer(framing, max_message_size)
        if encoding and isinstance(self.framer, DelimiterFramer):
            self.framer.allow_bytearray = True  # decoded at once: no copy of big messages needed
        self.encoding = encoding
        self._utf8 = (encoding or "utf-8").lower().replace("-", "").replace("_", "") == "utf8"
        self.errors = errors or LOSSLESS_ERRORS
        self._stream_decoder = None
        if encoding and isinstance(self.framer, RawFramer):
            self._stream_decoder = codecs.getincrementaldecoder(encoding)(self.errors)
        self._handler = _as_handler(handler)
        self.executor = executor or SerialExecutor(dispatcher)
        self.send_timeout = send_timeout if send_timeout and send_timeout > 0 else None
        self._read_timeout = read_timeout if read_timeout and read_timeout > 0 else None
        self._state = _OPEN
        self._state_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._sending_since = None
        self._waiters = []
        self._cause = None  # why the engine itself closed it (timeouts)
        self._eof = None  # set by a nested read (request() inside a callback): (reason,)
        self._initial = initial_data
        self._last_activity = monotonic()
        self._deadline = None  # (when, farewell bytes, reason text) or None
        self._done = None  # an Event, made by the first wait_closed() (memory per connection)
        self._finished = False
        self._reader = None
        self.close_reason = None

    def __repr__(self):
        return "<Connection %s %s:%d %s>" % (self.id, self.remote_address, self.remote_port, self._state)

    # -- handler and options -------------------------------------------------

    @property
    def handler(self):
        return self._handler

    @handler.setter
    def handler(self, handler):
        self._handler = _as_handler(handler)

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

    def close_write(self):
        """Shut down the sending side after what was sent (the peer reads the end of
        the stream); reading goes on until the peer closes or the connection is closed."""
        with self._send_lock:
            try:
                shutdown_write(self.sock)
            except Exception as e:
                log.debug("%r: shutdown for writing failed: %s", self, e)

    @property
    def is_open(self):
        return self._state == _OPEN

    @property
    def info(self):
        """A dict describing the connection (for logs and the faces)."""
        return {"id": self.id, "remote_address": self.remote_address, "remote_port": self.remote_port,
                "local_address": self.local_address, "local_port": self.local_port}

    # -- life cycle ------------------------------------------------------------

    def start(self):
        """Start the reader thread; the handler gets ``connection_made`` first."""
        self._reader = ReaderThread(self._read_loop)
        # accepted daemon connections take a spare thread if one waits
        self._reader.start("tcpcom-conn-%s" % self.id, self.daemon,
                           spares if self.listener is not None else None)
        deadlines = [d for d in (self._read_timeout, self.send_timeout) if d]
        if self._deadline is not None:
            deadlines.append(max(0.0, self._deadline[0] - monotonic()))
        if deadlines:
            watchdog.watch(self, monotonic() + min(deadlines))
        return self

    def close(self):
        """Close the connection; the handler then gets ``connection_lost(conn, None)``.

        Waits for the reader thread to end, except when called from inside a
        callback running on a reader thread (it then ends right after).
        Safe to call twice and from any thread.
        """
        self._shutdown(None)
        reader = self._reader
        if reader is not None and current_reader() is None:
            reader.join()

    def wait_closed(self, timeout=None):
        """Block until the connection is closed and ``connection_lost`` was posted."""
        with self._state_lock:
            if self._finished:
                return True
            if self._done is None:
                self._done = threading.Event()
            done = self._done
        return done.wait(timeout)

    def _shutdown(self, cause):
        with self._state_lock:
            if self._state != _OPEN:
                return False
            self._state = _CLOSING
            self._cause = cause
        shutdown_quietly(self.sock)
        wake_reader(self.sock)  # Jython: shutdown() does not wake the reader's recv()
        if self._reader is None:  # never started: finish here
            self._finish(cause)
        return True

    def _is_closing(self):
        return self._state != _OPEN

    def watch_ended(self):
        """For the watchdog: nothing is left to watch once the connection is closing."""
        return self._state != _OPEN

    def check_deadlines(self, now):
        """For the watchdog: act on a deadline that passed; returns the next check time (or None)."""
        if self._state != _OPEN:
            return None
        nxt = None
        dl = self._deadline
        if dl is not None:
            if now >= dl[0]:
                self._expire(dl)
                return None
            nxt = dl[0]
        rt = self._read_timeout
        if rt:
            due = self._last_activity + rt
            if now >= due:
                self._shutdown(ReadTimeout("no data received for %g s (read timeout)" % rt))
                return None
            nxt = due if nxt is None else min(nxt, due)
        st = self.send_timeout
        if st:
            since = self._sending_since
            if since is not None and now - since >= st:
                self._shutdown(SendTimeout("a send made no progress for %g s: the peer is not "
                                           "reading (send timeout)" % st))
                return None
            due = (since + st) if since is not None else now + st
            nxt = due if nxt is None else min(nxt, due)
        return nxt

    def _expire(self, deadline):
        # on the watchdog thread: never wait for the peer
        _, farewell, reason = deadline
        if farewell and self._send_lock.acquire(False):
            try:
                if self._state == _OPEN and writable_now(self.sock):
                    self.sock.send(farewell)
            except (socket.error, OSError) as e:
                log.debug("%r: farewell not sent: %s", self, e)
            finally:
                self._send_lock.release()
        self._shutdown(DeadlineExceeded(reason))

    # -- receiving -------------------------------------------------------------

    def _read_loop(self):
        set_current_reader(self)
        post = self.executor.post
        abort = self._is_closing
        reason = None
        try:
            post(self._made, (), True, abort)
            if self._initial:
                reason = self._on_data(self._initial)
                self._initial = b""
            recv = self.sock.recv
            while reason is None and self._eof is None:
                try:
                    data = recv(RECV_SIZE)
                except (socket.error, OSError) as e:
                    if self._state == _OPEN:
                        reason = e
                    break
                if not data:
                    break
                self._last_activity = monotonic()
                reason = self._on_data(data)
        except Exception as e:  # a bug in the engine: never die silently
            log.exception("reader of %r failed", self)
            reason = e
        finally:
            if self._eof is not None and reason is None:
                reason = self._eof[0]
            self._finish(reason)

    def _on_data(self, data):
        """Frame, decode and post one chunk; returns an exception that ends the connection."""
        error = None
        try:
            messages = self.framer.feed(data)
        except MessageTooLarge as e:
            log.error("%r: %s; closing the connection", self, e)
            messages, error = e.messages, e
        if self.encoding:
            if self._stream_decoder is not None:
                text = self._stream_decoder.decode(messages[0] if messages else b"")
                messages = [text] if text else []
            else:
                enc, errs = self.encoding, self.errors
                messages = [m.decode(enc, errs) for m in messages]
        if messages:
            if self._waiters:
                self._hand_to_waiters(messages)
            self.executor.post(self._deliver, (messages,), True, self._is_closing)
        return error

    def _hand_to_waiters(self, messages):
        with self._state_lock:
            for m in messages:
                if not self._waiters:
                    break
                self._waiters.pop(0).set(m)

    def _made(self):
        self._handler.connection_made(self)

    def _deliver(self, messages):
        h = self._handler
        batch = getattr(h, "messages_received", None)
        if batch is not None:  # the handler takes the whole batch (it logs its own errors)
            try:
                batch(self, messages)
            except Exception:
                log.exception("message handler of %r raised; the engine goes on", self)
            return
        cb = h.message_received
        for m in messages:
            try:
                cb(self, m)
            except Exception:
                log.exception("message handler of %r raised; the engine goes on", self)

    def _lost(self, reason):
        # The listener's slot is freed here, on the executor, so a connection
        # accepted next cannot have its events delivered before this one's end.
        if self.listener is not None:
            self.listener._connection_done(self)
        self._handler.connection_lost(self, reason)

    def _finish(self, reason):
        with self._state_lock:
            if self._state == _CLOSED:
                return
            self._state = _CLOSED
            if reason is None or isinstance(reason, (socket.error, OSError)) and self._cause is not None:
                reason = self._cause if self._cause is not None else reason
            waiters, self._waiters = self._waiters, []
        watchdog.forget(self)
        close_quietly(self.sock)
        for w in waiters:
            w.set()
        self.close_reason = reason
        if reason is not None and not isinstance(reason, (ReadTimeout, MessageTooLarge)):
            log.debug("%r closed: %s", self, reason)
        decoder = self._stream_decoder
        if decoder is not None:  # unframed text: the start of a character cut off by the close
            try:
                tail = decoder.decode(b"", True)
            except UnicodeDecodeError as e:
                tail = None
                log.warning("%r closed in the middle of a character: %s", self, e)
            if tail:
                self.executor.post(self._deliver, ([tail],), True, _true)
        partial = getattr(self.framer, "buffered", 0)
        if partial:  # never drop data silently: a message cut off by the close
            log.warning("%r closed with %d bytes of an incomplete message (no delimiter yet); "
                        "they were discarded", self, partial)
        self.executor.post(self._lost, (reason,), True, _true)
        with self._state_lock:
            self._finished = True
            done = self._done
        if done is not None:
            done.set()

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
            self._sendall(payload, self.framer.encode(b""))

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
        if self._state != _OPEN:
            raise ConnectionClosedError("connection %s to %s:%d is closed; connect again before sending"
                                        % (self.id, self.remote_address, self.remote_port))

    def _send_failed(self, error):
        """Close after a failed send; returns the exception for the sender."""
        cause = self._cause
        self._shutdown(error)
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
            except (socket.error, OSError) as e:
                raise self._send_failed(e)
            finally:
                self._sending_since = None

    def _sendall(self, data, tail=b""):
        # the common case of _send_parts, without its loop: one message, maybe a delimiter
        self._check_open()
        with self._send_lock:
            self._sending_since = monotonic()
            try:
                self.sock.sendall(data)
                if tail:
                    self.sock.sendall(tail)
            except (socket.error, OSError) as e:
                raise self._send_failed(e)
            finally:
                self._sending_since = None

    def request(self, message, timeout):
        """Send ``message`` and return the next message received, or None after ``timeout`` s.

        The reply is still delivered to the handler as usual.  Works from any
        thread, including from inside this connection's own callbacks.
        """
        w = Waiter()
        with self._state_lock:
            if self._state != _OPEN:
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
        with self._state_lock:
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
            except (socket.error, OSError) as e:
                self._eof = (e if self._state == _OPEN else None,)
                return
            if not data:
                self._eof = (None,)
                return
            self._last_activity = monotonic()
            error = self._on_data(data)
            if error is not None:
                self._eof = (error,)

