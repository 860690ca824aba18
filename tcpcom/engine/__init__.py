"""The engine: listeners, connections and their threads.

A :class:`Listener` runs one thread that accepts connections; every
:class:`Connection` runs one thread that reads its socket, splits the bytes
into messages with a sans-IO framer (:mod:`tcpcom.framing`) and posts them to
the connection's :class:`~tcpcom.dispatch.SerialExecutor`, which calls the
handler (see :mod:`tcpcom.dispatch` for how that stays fast and safe).

A handler is either an object with any of these methods::

    class Echo(Handler):
        def connection_made(self, conn): ...
        def message_received(self, conn, message): conn.send_message(message)
        def connection_lost(self, conn, reason): ...   # reason None: closed normally

A handler may also define ``messages_received(conn, messages)``: it is then
called instead of ``message_received`` with every message of one received
chunk, in order (a list), saving a call per message; it must handle (log)
an exception of one message itself if the others are still to be handled.

Or a function ``handler(conn, event, data)`` in the style of Q-SYS
``TcpSocket.EventHandler``, with ``event`` one of ``Connection.CONNECTED``,
``DATA`` (``data`` is the message), ``CLOSED``, ``ERROR`` (``data`` is the
exception) and ``TIMEOUT``.

Usage::

    from tcpcom.engine import Listener, connect

    def on_connection(conn):          # called once per accepted connection
        return Echo()                 # ... and returns its handler

    listener = Listener(0, on_connection, framing="line")
    client = connect("127.0.0.1", listener.port, handler, framing="line")
"""
from __future__ import absolute_import

import codecs
import errno
import heapq
import itertools
import logging
import select
import socket
import threading

from .._compat import (BIND_RETRY, JYTHON, LOCK_TIMEOUT, LOSSLESS_ERRORS, bind_error, close_listening,
                      integer_types, is_addr_in_use, make_thread, monotonic, set_keepalive,
                      set_nodelay, string_types, text_type, to_bytes, wake_accept, wake_reader)
from ..dispatch import SerialExecutor
from ..framing import DEFAULT_MAX_MESSAGE_SIZE, DelimiterFramer, MessageTooLarge, RawFramer, make_framer

log = logging.getLogger("tcpcom.engine")

RECV_SIZE = 65536
BIG_SEND = 1 << 20  # payloads this long are sent without a copy to append the delimiter
DEFAULT_SEND_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 4096

_OPEN, _CLOSING, _CLOSED = "open", "closing", "closed"


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


def check_port(port, allow_zero=True):
    """Validate a port number with a message that says what is wrong."""
    if isinstance(port, bool) or not isinstance(port, integer_types):
        raise TypeError("port must be an int from %d to 65535, not %s %r"
                        % (0 if allow_zero else 1, type(port).__name__, port))
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise ValueError("port must be from %d to 65535 (0 lets the system choose), not %d"
                         % (0 if allow_zero else 1, port))
    return port


def check_number(value, name, minimum=None, integer=False):
    """Validate a limit or timeout option (None allowed) with a message naming it."""
    if value is None:
        return value
    kinds = integer_types if integer else integer_types + (float,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise TypeError("%s must be %s or None, not %s %r" % (
            name, "an int" if integer else "a number (seconds)", type(value).__name__, value))
    if minimum is not None and value < minimum:
        raise ValueError("%s must be at least %s, not %r" % (name, minimum, value))
    return value


def check_host(host):
    if not isinstance(host, string_types):
        raise TypeError("host must be a string such as '127.0.0.1' ('' = all interfaces), not %s %r"
                        % (type(host).__name__, host))
    return host


def _check_options(max_message_size, read_timeout, send_timeout):
    if max_message_size is None:
        raise TypeError("max_message_size must be an int (bytes), not None")
    check_number(max_message_size, "max_message_size", 1, integer=True)
    check_number(read_timeout, "read_timeout")
    check_number(send_timeout, "send_timeout")


def _check_callable(fn, what):
    if fn is not None and not callable(fn):
        raise TypeError("%s must be a function (or None), not %s %r" % (what, type(fn).__name__, fn))


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


def _true():
    return True


class _Waiter(object):
    """A one-shot slot for ``request()``: the reader fills it, the caller waits.

    A bare lock is the cheapest cross-thread wake-up CPython has (an Event
    costs a Condition and two more locks); interpreters whose locks take no
    timeout (Python 2.7, Jython) use an Event.
    """
    __slots__ = ("value", "done", "_lock", "_event")

    def __init__(self):
        self.value = None
        self.done = False
        if LOCK_TIMEOUT:
            self._lock = threading.Lock()
            self._lock.acquire()
            self._event = None
        else:
            self._event = threading.Event()

    def set(self, value=None):
        # called once, under the connection's state lock
        if self.done:
            return
        self.value = value
        self.done = True
        if self._event is None:
            self._lock.release()
        else:
            self._event.set()

    def wait(self, timeout=None):
        """Wait until set (``timeout`` None: for ever); any number of threads may wait."""
        if self.done:
            return True
        if self._event is not None:
            self._event.wait(timeout)
        elif self._lock.acquire(True, -1 if timeout is None else timeout):
            self._lock.release()  # for the next one who waits
        return self.done


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


class _Watchdog(object):
    """One shared thread that enforces read and send timeouts by deadline."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._heap = []
        self._seq = itertools.count()
        self._thread = None
        self._closed = 0  # connections closed since the heap was last compacted
        self._wake_at = None  # when the waiting watchdog wakes by itself (None: not waiting)

    def forget(self):
        """A connection closed: drop closed connections' entries once they could be
        half the heap, so a closed connection is not kept alive until its deadline
        (up to send_timeout, 30 s: at a high connection rate that is a lot of memory)."""
        with self._cond:
            self._closed += 1
            if self._closed * 2 >= len(self._heap) or len(self._heap) <= 256:
                self._heap = [e for e in self._heap if e[2]._state == _OPEN]
                heapq.heapify(self._heap)
                self._closed = 0

    def watch(self, conn, when):
        with self._cond:
            if conn._state != _OPEN:  # closed meanwhile (forget() may have run already)
                return
            due = conn._watch_due
            if due is not None and due <= when:
                return  # an earlier check is pending; it schedules the next one
            conn._watch_due = when
            heapq.heappush(self._heap, (when, next(self._seq), conn))
            if self._thread is None:
                self._thread = make_thread(self._run, "tcpcom-watchdog")
                self._thread.start()
            elif self._wake_at is not None and when < self._wake_at:
                # only when it would wake too late: with short-lived connections the
                # heap is often empty and a new entry is the first (30 s send timeout)
                # while the watchdog wakes within 5 s anyway -- no wake-up per connection
                self._wake_at = None
                self._cond.notify()

    def _run(self):
        cond = self._cond
        while True:
            with cond:
                while True:
                    now = monotonic()
                    if not self._heap:
                        self._wake_at = now + 5.0
                        cond.wait(5.0)
                        self._wake_at = None
                        if not self._heap:
                            self._thread = None
                            return
                        continue
                    when = self._heap[0][0]
                    if when <= now:
                        conn = heapq.heappop(self._heap)[2]
                        if conn._watch_due is not None and conn._watch_due <= when:
                            conn._watch_due = None
                        break
                    wait = min(when - now, 5.0)
                    self._wake_at = now + wait
                    cond.wait(wait)  # holding no connection meanwhile
                    self._wake_at = None
            try:
                nxt = conn._check_deadlines(monotonic())
            except Exception:
                log.exception("watchdog check failed")
                nxt = None
            if nxt is not None:
                self.watch(conn, nxt)
            conn = None


class _Spares(object):
    """Reader threads kept for the next accepted connection instead of ending.

    Starting a thread costs about 100 us of CPU (and the accept thread
    waits for it to run); at a connection per request (HTTP with
    ``Connection: close``) that was the largest cost per connection.  A
    daemon reader whose connection has finished waits up to
    ``idle_timeout`` s, named ``tcpcom-spare``, for the next connection's
    read loop; at most ``max_spare`` wait.  Only daemon connections use it
    (a non-daemon reader must end with its connection).
    """

    def __init__(self, max_spare=16, idle_timeout=2.0):
        self.max_spare = max_spare
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._idle = []  # one _Waiter per waiting spare thread, the last one waited least
        self._seq = itertools.count(1)

    def start(self, reader, name):
        """Run ``reader.run()`` on a spare thread, or on a new daemon thread if none waits."""
        with self._lock:
            if self._idle:
                self._idle.pop().set((reader, name))
                return
        make_thread(self._run, name, ((reader, name),)).start()

    def _run(self, job):
        me = threading.current_thread()
        while True:
            reader, name = job
            if me.name != name:
                me.name = name
            try:
                reader.run()
            except Exception:  # the read loop logs its own; never let a spare die silently
                log.exception("reader thread failed")
            except BaseException:
                reader.ended()
                raise
            _reader_threads.conn = None
            me.name = "tcpcom-spare-%d" % next(self._seq)
            w = _Waiter()
            with self._lock:
                keep = len(self._idle) < self.max_spare
                if keep:
                    self._idle.append(w)
            reader.ended()  # join() returns: this thread no longer belongs to the connection
            if not keep:
                return
            job = reader = None
            w.wait(self.idle_timeout)
            with self._lock:
                if not w.done:  # nobody came: leave (set() happens under this lock)
                    self._idle.remove(w)
                    return
            job = w.value


class _PooledReader(object):
    """Stands for the reader thread of an accepted connection run by :class:`_Spares`:
    ``join()`` waits until its read loop has ended and the thread was released."""

    __slots__ = ("conn", "_ended")
    ident = True  # started (what close() checks of a thread)

    def __init__(self, conn):
        self.conn = conn
        self._ended = _Waiter()

    def run(self):
        self.conn._read_loop()

    def ended(self):
        self.conn = None
        self._ended.set()

    @property
    def done(self):
        return self._ended.done

    def join(self, timeout=None):
        self._ended.wait(timeout)


_watchdog = _Watchdog()
_spares = _Spares()
_ids = itertools.count(1)
_reader_threads = threading.local()


def _in_reader_thread():
    return getattr(_reader_threads, "conn", None) is not None


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
        _check_options(max_message_size, read_timeout, send_timeout)
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
        self._watch_due = None  # earliest pending watchdog check (owned by the watchdog)
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
            _watchdog.watch(self, self._last_activity + self._read_timeout)

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
            _watchdog.watch(self, when)

    def close_write(self):
        """Shut down the sending side after what was sent (the peer reads the end of
        the stream); reading goes on until the peer closes or the connection is closed."""
        with self._send_lock:
            try:
                if JYTHON:  # there shutdown(SHUT_WR) sends no FIN
                    self.sock._sock.channel.shutdownOutput()
                else:
                    self.sock.shutdown(socket.SHUT_WR)
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
        if self.daemon and self.listener is not None:  # accepted: a spare thread if one waits
            self._reader = _PooledReader(self)
            _spares.start(self._reader, "tcpcom-conn-%s" % self.id)
        else:
            self._reader = make_thread(self._read_loop, "tcpcom-conn-%s" % self.id, daemon=self.daemon)
            self._reader.start()
        deadlines = [d for d in (self._read_timeout, self.send_timeout) if d]
        if self._deadline is not None:
            deadlines.append(max(0.0, self._deadline[0] - monotonic()))
        if deadlines:
            _watchdog.watch(self, monotonic() + min(deadlines))
        return self

    def close(self):
        """Close the connection; the handler then gets ``connection_lost(conn, None)``.

        Waits for the reader thread to end, except when called from inside a
        callback running on a reader thread (it then ends right after).
        Safe to call twice and from any thread.
        """
        self._shutdown(None)
        reader = self._reader
        if reader is not None and reader.ident is not None and not _in_reader_thread():
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
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except (socket.error, OSError):
            pass
        wake_reader(self.sock)  # Jython: shutdown() does not wake the reader's recv()
        if self._reader is None:  # never started: finish here
            self._finish(cause)
        return True

    def _is_closing(self):
        return self._state != _OPEN

    def _check_deadlines(self, now):
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
        _reader_threads.conn = self
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
        _watchdog.forget()
        try:
            self.sock.close()
        except (socket.error, OSError):
            pass
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
        w = _Waiter()
        with self._state_lock:
            if self._state != _OPEN:
                return None
            self._waiters.append(w)
        try:
            self.send_message(message)
        except ConnectionClosedError:
            self._drop_waiter(w)
            raise
        if getattr(_reader_threads, "conn", None) is self:
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


def _java_interface_addresses():
    from java.net import Inet4Address, NetworkInterface
    found = []
    for nif in NetworkInterface.getNetworkInterfaces() or []:
        if nif.isUp():
            for addr in nif.getInetAddresses():
                if isinstance(addr, Inet4Address):
                    found.append(str(addr.getHostAddress()))
    return found


def _interface_addresses():
    """IPv4 addresses of the network interfaces (Linux ioctl, Java's NetworkInterface; else [])."""
    if JYTHON:
        try:
            return _java_interface_addresses()
        except Exception:
            return []
    try:
        import fcntl
        import struct
        names = [name for _, name in socket.if_nameindex()]
    except (ImportError, AttributeError, OSError, socket.error):
        return []
    found = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for name in names:
            try:
                req = struct.pack("256s", name.encode("ascii")[:15])
                raw = fcntl.ioctl(probe.fileno(), 0x8915, req)  # SIOCGIFADDR
                found.append(socket.inet_ntoa(raw[20:24]))
            except (IOError, OSError, UnicodeError, socket.error):
                continue
    finally:
        probe.close()
    return found


def local_addresses():
    """This machine's IPv4 addresses, non-loopback ones first (no packet is sent)."""
    found = []
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.append(info[4][0])
    except (socket.error, OSError):
        pass
    found.extend(_interface_addresses())
    unique = []
    for ip in found:
        if ip not in unique:
            unique.append(ip)
    return sorted(unique, key=lambda ip: ip.startswith("127."))


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


def connect(host, port, handler=None, timeout=10.0, **options):
    """Open an outgoing connection and start it; returns the :class:`Connection`.

    ``options`` are those of :class:`Connection` (framing, encoding,
    read_timeout, max_message_size, dispatcher, ...).
    """
    sock, _ = open_socket(host, port, timeout)
    try:
        conn = Connection(sock, handler, **options)
    except Exception:
        sock.close()
        raise
    return conn.start()


class Listener(object):
    """Accepts TCP connections on a port, each with its own :class:`Connection`.

    ``on_connection(conn)`` is called for every accepted connection, before
    any of its data; it returns the connection's handler (a handler object,
    or a Q-SYS style function), or sets ``conn.handler`` itself and returns
    None.  A handler class works too: ``Listener(0, EchoHandler)``.

    Options: ``host`` ('' = all interfaces, '127.0.0.1' = this machine
    only), ``framing`` (a delimiter, ``"line"``, ``"raw"``/None),
    ``max_connections`` (more are accepted and closed at once, and
    ``on_refused(address)`` is called), ``read_timeout`` (close a connection
    idle that long), ``send_timeout``, ``max_message_size``, ``encoding``
    (None delivers bytes), ``serialize`` (True: the handlers of all
    connections share one executor, so they never run concurrently),
    ``on_closed()`` (after :meth:`close`, once every thread has ended),
    ``dispatcher``, ``daemon`` (False: the listener's threads keep the
    program alive until :meth:`close`, as the tcpcom face does).

    The socket is bound in the constructor, so ``port`` is known at once
    (pass 0 to let the system choose); :class:`PortInUseError` if it is taken.
    """

    def __init__(self, port=0, on_connection=None, host="", framing=b"\0",
                 max_message_size=DEFAULT_MAX_MESSAGE_SIZE, max_connections=DEFAULT_MAX_CONNECTIONS,
                 read_timeout=None, send_timeout=DEFAULT_SEND_TIMEOUT, encoding="utf-8", errors=None,
                 serialize=False, on_refused=None, on_closed=None, dispatcher=None, executor=None,
                 backlog=128, start=True, daemon=True):
        check_port(port)
        check_host(host)
        _check_options(max_message_size, read_timeout, send_timeout)
        check_number(max_connections, "max_connections", 1, integer=True)
        check_number(backlog, "backlog", 0, integer=True)
        _check_callable(on_connection, "on_connection")
        _check_callable(on_refused, "on_refused")
        _check_callable(on_closed, "on_closed")
        make_framer(framing, max_message_size)  # fail early on a bad framing
        self.on_connection = on_connection
        self.on_refused = on_refused
        self.on_closed = on_closed
        self.host = host
        self.options = dict(framing=framing, max_message_size=max_message_size, encoding=encoding,
                            errors=errors, read_timeout=read_timeout, send_timeout=send_timeout,
                            daemon=daemon)
        self.daemon = daemon
        self.max_connections = max_connections
        self.dispatcher = dispatcher
        self.executor = executor or SerialExecutor(dispatcher)
        self.serialize = serialize
        self._conns = {}
        self._lock = threading.Lock()
        self._closing = False
        self._active = 1  # the accept thread, plus one per live connection
        self._thread = None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        retry_until = monotonic() + BIND_RETRY
        while True:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
                sock.listen(backlog)
                break
            except (socket.error, OSError) as e:
                sock.close()
                if not is_addr_in_use(e):
                    raise bind_error(e)  # Jython: its errno 98 may mean another error
                if port and monotonic() < retry_until:  # Jython: a port closed a moment ago
                    threading.Event().wait(0.01)        # is freed asynchronously
                    continue
                raise PortInUseError(errno.EADDRINUSE, "port %d is already in use: stop the other "
                                     "program or choose another port" % port)
        self.sock = sock
        self.port = sock.getsockname()[1]
        if start:
            self.start()

    def __repr__(self):
        return "<Listener %s:%d%s>" % (self.host or "*", self.port, " closed" if self._closing else "")

    def start(self):
        if self._thread is None:
            self._thread = make_thread(self._accept_loop, "tcpcom-listen-%d" % self.port, daemon=self.daemon)
            self._thread.start()
        return self

    @property
    def connections(self):
        """A snapshot list of the open connections."""
        with self._lock:
            return list(self._conns.values())

    @property
    def is_closed(self):
        return self._closing

    def _accept_loop(self):
        self.sock.settimeout(1.0)  # a fallback wake-up where shutdown() does not end accept()
        backoff = 0.0
        try:
            while not self._closing:
                try:
                    sock, addr = self.sock.accept()
                except socket.timeout:
                    continue
                except (socket.error, OSError) as e:
                    if self._closing:
                        break
                    code = getattr(e, "errno", None)
                    if code in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                        backoff = min(max(backoff * 2, 0.01), 0.5)
                        log.error("listener on port %d cannot accept: %s; retrying in %.2f s",
                                  self.port, e, backoff)
                        self._post_refused(None, e)
                        threading.Event().wait(backoff)
                        continue
                    log.warning("listener on port %d: accept failed: %s", self.port, e)
                    continue
                backoff = 0.0
                try:
                    self._accepted(sock, addr)
                except Exception:  # a bug must not end accepting for good
                    log.exception("listener on port %d: setting up a connection failed", self.port)
                    self._refuse(sock)
        finally:
            try:
                close_listening(self.sock)  # Jython: waits until the port is free
            except (socket.error, OSError):
                pass
            self._release()

    def _accepted(self, sock, addr):
        with self._lock:
            refuse = self._closing or (self.max_connections is not None
                                       and len(self._conns) >= self.max_connections)
        if refuse:
            self._refuse(sock)
            if not self._closing:
                self._post_refused(addr, None)
            return
        try:
            conn = Connection(sock, None, listener=self,
                              executor=self.executor if self.serialize else None,
                              dispatcher=self.dispatcher, peer=addr, **self.options)
        except (socket.error, OSError) as e:  # the peer left before we looked
            log.debug("accepted connection vanished: %s", e)
            self._refuse(sock)
            return
        with self._lock:
            self._conns[conn.id] = conn
            self._active += 1
        conn._handler = _PendingHandler(self, conn)
        conn.start()

    @staticmethod
    def _refuse(sock):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except (socket.error, OSError):
            pass
        sock.close()

    def _post_refused(self, addr, error):
        if self.on_refused is not None:
            self.executor.post(self.on_refused, (addr, error) if error is not None else (addr,))
        elif addr is not None:
            log.warning("listener on port %d refused %s: %d connections is the maximum",
                        self.port, addr[0], self.max_connections)

    def _connection_done(self, conn):
        with self._lock:
            self._conns.pop(conn.id, None)
        self._release()

    def _release(self):
        with self._lock:
            self._active -= 1
            last = self._active == 0
        if last and self.on_closed is not None:
            # The last thread out delivers the final event itself, or waits
            # for its delivery: a non-daemon listener must not let the
            # program exit before it.
            self.executor.post(self.on_closed, (), True, _true)
            self.executor.wait_idle(5.0)

    def close(self):
        """Stop accepting and close every connection; safe to call twice.

        Returns once the accept thread and every connection's reader have
        ended (from inside a callback on a reader thread: without waiting).
        ``on_closed`` is posted when the last of them is done.
        """
        with self._lock:
            if self._closing:
                first = False
            else:
                self._closing = first = True
        t = self._thread
        if first:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except (socket.error, OSError):
                pass
            if t is not None:
                wake_accept(self.sock)  # Jython: shutdown() does not wake accept()
        if t is None:
            if first:
                close_listening(self.sock)
                self._release()
        elif not _in_reader_thread():
            t.join()  # first: no connection can be added after this
        else:
            try:  # cannot wait here: close the socket now so the port is free at once
                close_listening(self.sock)
            except (socket.error, OSError):
                pass
        for conn in self.connections:
            conn.close()


class _PendingHandler(object):
    """Stands in until the listener's ``on_connection`` has chosen the handler."""

    def __init__(self, listener, conn):
        self.listener = listener
        self.conn = conn

    def connection_made(self, conn):
        # Runs on the connection's executor; the listener-level callback runs
        # on the listener's executor (one at a time across connections), and
        # this connection's events wait until it has chosen the handler.
        done = threading.Event()
        lex = self.listener.executor
        if conn.executor is lex:  # serialize=True: we already hold it
            self._choose(done)
        elif not lex.dispatcher.inline and lex.dispatcher is conn.executor.dispatcher:
            # an EventPump: we run on the one pumping thread, which would have to
            # run _choose itself -- waiting for it here would never end
            self._choose(done)
        else:
            # inline: when the listener's executor is idle this thread runs
            # on_connection itself (still one at a time with the listener's
            # other callbacks) instead of waking a pool thread and waiting
            self.listener.executor.post(self._choose, (done,), True, conn._is_closing)
            while not done.wait(0.05):
                if conn._state != _OPEN:
                    break
        h = conn._handler
        if h is not self:
            h.connection_made(conn)

    def _choose(self, done):
        conn = self.conn
        try:
            fn = self.listener.on_connection
            result = fn(conn) if fn is not None else None
            if result is not None:
                conn.handler = result
            elif conn._handler is self:
                conn.handler = None
        except Exception:
            log.exception("on_connection raised; closing %r", conn)
            conn._handler = Handler()
            conn._shutdown(None)
        finally:
            done.set()

    def message_received(self, conn, message):
        pass

    def connection_lost(self, conn, reason):
        pass
