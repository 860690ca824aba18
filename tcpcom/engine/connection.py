"""A connection: its socket's reading, delivery and sending (its life: lifecycle.py).

See :mod:`tcpcom.engine` for the handler protocols and
:mod:`tcpcom.engine.lifecycle` for a connection's states.
"""
from __future__ import absolute_import

import itertools
import logging
import select
import threading

from .._compat import JYTHON, LOSSLESS_ERRORS, PY2, get_ident, monotonic, set_keepalive, set_nodelay
from ..diagnostics import excerpt
from ..dispatch import SerialExecutor, call_logged, call_text, callable_name
from ..framing import DEFAULT_MAX_MESSAGE_SIZE, MessageTooLarge, make_framer
from .checks import check_options
from .deadlines import watchdog
from .errors import NETWORK_ERRORS, ConnectionClosedError, ReadTimeout
from .inbound import Inbound
from .lifecycle import CLOSED, CLOSING, DELIVERING, LOST, OPEN, SENDING, ConnectionLife, always
from .outbound import Outbound
from .reading import RECV_SIZE, ReaderThread, Waiter, current_reader, readers, set_current_reader
from .sockets import plain_address, reset_error, set_recv_timeout, timed_out, wait_readable

log = logging.getLogger("tcpcom.engine")

DEFAULT_SEND_TIMEOUT = 30.0
_ids = itertools.count(1)

#: After a request() was answered the reader thread leaves the socket to the callers of
#: request() for this long (s): while requests follow each other more closely, each caller
#: reads its own reply -- no thread switch per round trip.  What the peer sends between two
#: requests is read by the next one, or by the reader thread at most this long later.
#: None: the reader thread reads everything (Jython: its sockets wake every poller; systems
#: without poll(), i.e. Windows, whose SO_RCVTIMEO takes another format).
CALLER_READS = None if JYTHON or not hasattr(select, "poll") else 0.005
#: a request() that reads its reply itself looks this often (s) whether it was closed meanwhile
READ_SLICE = 0.05
#: a close() alone sends the end of the stream at once (Python 2 closes the descriptor only when
#: the last reference to it goes -- the read loop holds one -- and Jython's close is asynchronous)
_CLOSE_SENDS_END = not (PY2 or JYTHON)


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


class _CallerReads(object):
    """What a connection's request() callers and its reader thread share (see CALLER_READS);
    one object, made on the first request() (or by a close without linger on the reader thread,
    for ``eof``), so that a connection keeps its attributes compact (see Connection)."""

    __slots__ = ("park_next", "requests", "unpark", "eof", "unread", "owed", "owing")

    def __init__(self):
        self.park_next = False  # a request() asks the reader thread to leave the socket to callers
        self.requests = 0       # requests whose callers read their replies themselves
        self.unpark = None      # an Event while the reader thread is parked
        self.eof = None         # (reason,): a request()'s read saw the end (or a callback on the reader
        #                         thread closed without linger); the read loop ends it
        self.unread = None      # what callers read, queued for the handler (see _received)
        self.owed = False       # closed from outside the handler's callbacks: what callers read still comes
        self.owing = False      # (under the connection's _lock) what callers read is being delivered


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

    # CPython 3.11-3.13 keep at most 29 attribute names of a class's objects compactly -- every
    # name any Connection ever sets counts, for the life of the process; past that a connection
    # that sets a new one gets a dict of its own, about 1.6 KB (tests/test_perf_paths.py checks
    # it). __init__ sets 28; request() adds _callers, which holds what only requests need.
    # _ATTRIBUTE_NAMES names all 29 (see _reserve_names() below).
    _callers = None      # a _CallerReads once a request() came (see CALLER_READS)
    _ATTRIBUTE_NAMES = ("sock", "daemon", "remote_address", "remote_port", "_local_address", "local_port", "id",
                        "listener", "framer", "encoding", "errors", "_inbound", "_handler", "executor",
                        "send_timeout", "_state", "delivering", "close_reason", "_lock", "_waiters",
                        "_read_timeout", "_last_activity", "_deadline", "_linger_until", "_closing_event",
                        "_reader", "_out", "_reading", "_callers")

    def __init__(self, sock, handler=None, framing=b"\0", max_message_size=DEFAULT_MAX_MESSAGE_SIZE,
                 encoding="utf-8", errors=None, read_timeout=None, send_timeout=DEFAULT_SEND_TIMEOUT,
                 executor=None, dispatcher=None, listener=None, initial_data=b"", daemon=True, peer=None):
        if listener is None:  # (a listener checked its connections' options when it was made)
            check_options(max_message_size, read_timeout, send_timeout)
        self.sock = sock
        self.daemon = daemon
        if sock.gettimeout() is not None:
            sock.settimeout(None)
        set_nodelay(sock)
        set_keepalive(sock)
        if peer is None:  # a listener passes the address accept() returned: one system call less
            peer = sock.getpeername()
        self.remote_address, self.remote_port = plain_address(peer[0]), int(peer[1])  # IPv4: a dotted quad
        if listener is not None:  # its port; its address too, unless it listens on all (see local_address)
            self._local_address, self.local_port = listener._connections_address, listener.port
        else:
            local = sock.getsockname()
            self._local_address, self.local_port = plain_address(local[0]), int(local[1])
        self.id = "c%d" % next(_ids)
        self.listener = listener
        self.framer = make_framer(framing, max_message_size)
        self.encoding = encoding
        self.errors = errors or LOSSLESS_ERRORS
        self._inbound = Inbound(self.framer, encoding, self.errors)
        self._inbound.pending = initial_data  # (the read loop feeds it first)
        # (a listener sets its own first handler before the start: no default one made for it)
        self._handler = as_handler(handler) if listener is None else handler
        self.executor = executor or SerialExecutor(dispatcher)
        self.send_timeout = send_timeout if send_timeout and send_timeout > 0 else None
        ConnectionLife.__init__(self, read_timeout)
        self._out = Outbound(sock, self.framer, encoding, self)
        self._reading = threading.Lock()  # held by whoever reads the socket (see CALLER_READS)

    def __repr__(self):
        return "<Connection %s %s:%d %s>" % (self.id, self.remote_address, self.remote_port, self._state)

    # -- handler and options -------------------------------------------------

    handler = handler_property(as_handler)

    @property
    def local_address(self):
        """This end's address.  For a connection of a listener on all addresses the system is
        asked when this is first read; first read once the socket has closed, it is the
        listener's address as bound ("0.0.0.0" or "::")."""
        address = self._local_address
        if address is None:
            # (not asked for every connection: on a busy server that system call lets the other
            # threads run, and asking it cost 5 % more CPU time per short connection)
            try:
                address = plain_address(self.sock.getsockname()[0])
            except NETWORK_ERRORS:  # closed: the system cannot tell any more
                address = self.listener.address
            self._local_address = address
        return address

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
        deadline = self._deadline  # (read once: the reader thread, started, may cancel it)
        if deadline is not None:
            deadlines.append(max(0.0, deadline[0] - monotonic()))
        if deadlines:
            watchdog.watch(self, monotonic() + min(deadlines))
        return self

    def close(self, reason=None, linger=True):
        callers = self._callers
        if callers is not None and not self.executor.in_callback():
            # replies request() returned before this close reach the handler (close() delivers
            # them first) -- also when the reader thread is delivering them at this moment
            callers.owed = True
        ConnectionLife.close(self, reason, linger)

    close.__doc__ = ConnectionLife.close.__doc__

    def _owing(self):
        callers = self._callers
        return callers is not None and callers.owing and callers.owed

    def close_write(self):
        """Shut down the sending side after what was sent (the peer reads the end of
        the stream); reading goes on until the peer closes or the connection is closed."""
        self._out.close_write()

    # -- receiving -------------------------------------------------------------

    def _read_loop(self):
        set_current_reader(self)
        reason = None
        reading = self._reading
        reading.acquire()
        try:
            self.executor.post_here(self._made, None, self.is_done)
            if not self._move(OPEN):  # closed during connection_made: its closing event is ours to post
                self._post_closing_event(True)
            initial = self._inbound.pending
            if initial:
                self._inbound.pending = b""
                reason = self._received(initial)
            recv = self.sock.recv
            while reason is None:
                callers = self._callers
                if callers is not None:
                    if callers.eof is not None:  # a request()'s read saw the end (its reason: below)
                        break
                    if callers.park_next:  # (a request() waiting for its reply is woken to read it)
                        self._park(callers)
                        continue
                try:
                    data = recv(RECV_SIZE)
                except NETWORK_ERRORS as e:
                    reason = e
                    break
                if not data:
                    reason = self._end_reason()
                    break
                self._last_activity = monotonic()
                if self._state is not CLOSING:  # closing: lingering, what comes is discarded
                    reason = self._received(data)
        except Exception as e:  # a bug in the engine: never die silently
            log.exception("reader of %r failed", self)
            reason = e
        finally:
            callers = self._callers
            if reason is None and callers is not None and callers.eof is not None:
                reason = callers.eof[0]
            try:
                self._ended(reason)
            finally:
                reading.release()  # after the state left open: no caller reads a closed socket
                set_current_reader(None)

    def _end_reason(self):
        # recv() returned the end of the stream: None (the peer's normal end), or the error of a
        # reset that a send on another thread saw first (once we sent our own end, CLOSE is normal)
        return None if self._out.wrote_end else reset_error(self.sock)

    def _park(self, callers):
        # Leave the socket to request() callers (see CALLER_READS) until none came for that long.
        callers.park_next = False
        unpark = callers.unpark = threading.Event()
        try:
            set_recv_timeout(self.sock, READ_SLICE)  # callers read with one system call
        except NETWORK_ERRORS:
            return  # the socket is gone: the read loop ends
        self._reading.release()
        if self._waiters:
            # a request() that came while this thread held the socket waits for its reply,
            # looking at the socket only every CALLER_READS s: now, not then (else requests
            # that follow each other in lockstep with this thread would never reach the park)
            with self._lock:
                for w in self._waiters:
                    w.wake()
        try:
            # not holding the socket while parked, not even to look at the count: a caller
            # that found it held would wait for its reply, which nobody read
            while self._state in SENDING and callers.eof is None:
                seen = callers.requests
                unpark.clear()
                if self._state in SENDING:  # (a close sets the event after moving the state)
                    unpark.wait(CALLER_READS)
                self.executor.run_deferred()  # what the callers read, to the handler
                if callers.requests == seen:
                    break
        finally:
            self._reading.acquire()
            try:
                callers.unpark = None
                set_recv_timeout(self.sock, 0)  # the reader's recv() waits for ever again
            except NETWORK_ERRORS:
                pass
        # what a caller read while this thread waited for the socket (its reply came later
        # than CALLER_READS): delivered now, not when the peer next sends
        self.executor.run_deferred()

    def _reads_here(self):
        # the reader thread, in a callback, holding the socket (parked, it has left it to
        # request() callers, and the shutdown must wake a caller's read)
        if _CLOSE_SENDS_END and current_reader() is self:
            callers = self._callers
            return callers is None or callers.unpark is None
        return False

    def _end_reading(self):
        # the read loop sees the end (as of a request()'s read) and ends when the callback returns
        callers = self._callers
        if callers is None:
            callers = self._callers = _CallerReads()
        callers.eof = (None,)

    def _resume_reader(self):
        """The connection is ending: a parked reader thread takes over again (to linger or end)."""
        callers = self._callers
        unpark = callers.unpark if callers is not None else None
        if unpark is not None:
            unpark.set()

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
        """Frame, decode and post one chunk the reader thread read; returns an exception that
        ends the connection.  The first messages are the replies of request() callers waiting."""
        messages, error = self._inbound.feed(data)
        if error is not None:
            log.error("%r: %s; closing the connection", self, error)
        if messages:
            if self._waiters:
                with self._lock:
                    self._answer(messages)
            callers = self._callers
            if callers is not None and callers.unread is not None:
                # what this thread read comes after that batch: nothing joins it now
                # (callers and this thread never read at once: no lock needed against them)
                callers.unread = None
            self.executor.post_here(self._deliver, messages, self.is_done)
        return error

    def _caller_received(self, data, own):
        """Frame and decode a chunk a request() caller read; returns (its reply or None, an
        exception that ends the connection or None).  The caller's thread never runs the
        handler: the reader thread delivers when it next wakes (see CALLER_READS).

        ``own``: the caller registered no waiter (see request()): the first message is its reply.
        """
        messages, error = self._inbound.feed(data)
        if error is not None:
            log.error("%r: %s; closing the connection", self, error)
        reply = None
        if messages:
            callers = self._callers
            lock = self._lock
            lock.acquire()  # (not "with": this runs per reply, and "with" costs more)
            try:
                if own:
                    reply = messages[0]
                if self._waiters:
                    self._answer(messages[1:] if own else messages)
                if callers.unread is not None:  # a delivery is queued: these join it
                    callers.unread.extend(messages)
                    return reply, error
                # (a copy: what joins it must not grow a list a framer may keep)
                batch = callers.unread = list(messages)
            finally:
                lock.release()
            # one queued delivery for what callers read until it runs
            self.executor.post(self._deliver_unread, (batch,), False, self.is_done, True)
        return reply, error

    def _answer(self, messages):
        # (under _lock) request() callers waiting: the first messages are their replies
        waiters = self._waiters
        for m in messages:
            if not waiters:
                return
            waiters.pop(0).set(m)

    def _deliver_unread(self, batch):
        # what request() callers read from when this delivery was queued until now, in one call
        callers = self._callers
        lock = self._lock
        with lock:
            if callers.unread is batch:  # nothing joins it from now on
                callers.unread = None
            callers.owing = True
            if callers.owed:  # closed from outside the callbacks: these were read before it
                self.delivering = True
        try:
            self._deliver(batch)
        finally:
            with lock:
                callers.owing = False
                self.delivering = self._state in DELIVERING

    def _made(self, _):
        # (the argument: post_here() passes one; this reads the handler when it runs)
        fn = getattr(self._handler, "connection_made", None)  # a method it lacks: nothing to do
        if fn is not None:
            call_logged(fn, (self,), None, log)

    def _deliver(self, messages):
        if not self.delivering:
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
        cb = getattr(h, "message_received", None)
        if cb is None:  # a handler object without it: nothing to do
            return
        for m in messages:
            try:
                cb(self, m)
            except Exception:
                log.exception("%s raised (%r, %s); the engine goes on", callable_name(cb), self, excerpt(m))
            if not self.delivering:  # the callback closed the connection
                return

    def _lost(self, reason):
        # The listener's slot is freed here, on the executor, so a connection
        # accepted next cannot have its events delivered before this one's end.
        if self.listener is not None:
            self.listener.connection_done(self)
        fn = getattr(self._handler, "connection_lost", None)
        if fn is not None:
            call_logged(fn, (self, reason), None, log)

    # -- sending (see outbound.py) ------------------------------------------------

    def send(self, data):
        """Send text (encoded) or bytes exactly as given, no framing added."""
        self._out.send(data)

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
        callers = self._callers
        reading = self._reading
        if callers is not None and self._state is OPEN and not self._waiters and reading.acquire(False):
            # The reader thread left the socket to callers (see CALLER_READS) and no other
            # request() waits for a reply: this thread sends and reads its reply itself, the
            # first message that comes -- no waiter to register, fill and wake.
            try:
                callers.requests += 1  # (before the send: the parked reader thread waits on)
                self._out.send_message(message)
                return self._read_until(None, monotonic() + timeout, True)
            finally:
                reading.release()
        w = Waiter()
        with self._lock:
            if self._state not in SENDING:
                return None
            self._waiters.append(w)
            if callers is None:
                callers = self._callers = _CallerReads()
        on_reader = readers.get(get_ident()) is self  # (current_reader(), without the call)
        if CALLER_READS is not None and not on_reader:
            # asked before the send: the reply may be read and handed over before this thread
            # runs again (its send let the other threads run), and then asking comes too late
            callers.park_next = True
        try:
            self._out.send_message(message)
        except ConnectionClosedError:
            self._drop_waiter(w)
            raise
        deadline = monotonic() + timeout
        if on_reader:
            self._read_until(w, deadline, False)  # a callback on our own reader: nobody else reads
        elif CALLER_READS is None:
            w.wait(timeout)
        else:
            # Read the reply on this thread whenever the reader thread leaves the socket to
            # callers (CALLER_READS); else ask it to, after it hands this reply over.
            while not w.done:
                if self._state is OPEN and reading.acquire(False):
                    try:
                        callers.requests += 1
                        self._read_until(w, deadline, True)
                    finally:
                        reading.release()
                    break
                left = deadline - monotonic()
                if left <= 0:
                    break
                callers.park_next = True
                w.wait(min(left, CALLER_READS))
        if not w.done:  # (filled: whoever filled it took it off the list)
            self._drop_waiter(w)
        return w.value

    def _drop_waiter(self, w):
        with self._lock:
            if w in self._waiters:
                self._waiters.remove(w)

    def _read_until(self, waiter, deadline, caller):
        """Read the socket on this thread until ``waiter`` is done or ``deadline`` passes.

        ``caller``: a request() caller holding ``_reading`` while the reader thread is
        parked (which delivers the messages: never the caller's thread); else a request()
        from a callback on the reader thread itself.  ``waiter`` None: a caller that
        registered none, whose reply is the first message read; this returns it (or None).
        """
        callers = self._callers  # (made by request(), our only caller)
        sock = self.sock
        reply = None
        while reply is None and callers.eof is None and (self._state is OPEN or not caller):
            if waiter is not None and waiter.done:
                break
            left = deadline - monotonic()
            if left <= 0:
                break
            # a caller's recv() gives up after READ_SLICE by itself (the parked reader set
            # SO_RCVTIMEO); else wait at most that long (a close from another thread ends the wait)
            if not (caller and left >= READ_SLICE) and not wait_readable(sock, min(left, READ_SLICE)):
                continue
            try:
                data = sock.recv(RECV_SIZE)
            except NETWORK_ERRORS as e:
                if caller and timed_out(e):
                    continue
                callers.eof = (e,)
            else:
                if not data:
                    callers.eof = (self._end_reason(),)
                else:
                    self._last_activity = monotonic()
                    if caller:
                        reply, error = self._caller_received(data, waiter is None)
                    else:
                        error = self._received(data)
                    if error is not None:
                        callers.eof = (error,)
            if callers.eof is not None:
                self._resume_reader()  # the reader thread ends the connection
        return reply


def _reserve_names(cls, names):
    """Set every one of ``names`` on one object of ``cls`` now, before any other is made.

    CPython 3.11+ keeps the attribute names of a class's objects in one table of at most 30
    names, filled in the order they are first set, and each object made before the table is
    full takes one place of it.  The process's first two connections made at once by two
    threads (a program that starts a Listener and connects to it) took two places: no place
    was left for ``_callers``, and every connection that then made a request got a dict of its
    own (1.6 KB more each).  At import no other thread makes one.  Elsewhere: harmless.
    """
    obj = cls.__new__(cls)
    for name in names:
        object.__setattr__(obj, name, None)


_reserve_names(Connection, Connection._ATTRIBUTE_NAMES)
