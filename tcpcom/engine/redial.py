"""Reconnecting: an outgoing connection that dials again by itself once it is lost.

Devices reboot, Wi-Fi drops, a classmate restarts a server.  A
:class:`ReconnectingConnection` keeps one outgoing connection to
``host:port``: when the connection is lost (the peer closed it, a reset, a
read or keepalive timeout, a limit of the engine) it dials again, first
after a short ``delay``, then with an exponential back-off (``factor``) up
to ``max_delay``, each wait shortened by a random part (``jitter``) so that
many clients of one restarted server do not all come back in the same
instant.  It goes on for as long as the program wants: ``max_attempts``
dials without success, or for ever (None).  Only the program's own
:meth:`ReconnectingConnection.close` ends it for good.

Its life is one field, ``state`` (:class:`ReconnectState`)::

    idle --start()/dial()--> connecting --connected--> open --lost--> waiting --due--> connecting ...
                              connecting --failed--> waiting   (or closed: max_attempts dials failed)
    any --close()--> closed

The handler hears each step, in order, on one serial executor shared by
all the connections it makes (so the events of a lost connection are all
delivered before those of the next one), with the reconnecting connection
itself as ``conn``:

- ``connection_made(conn)`` -- connected (the first time and after each
  return; ``conn.connects`` counts them);
- ``message_received(conn, message)`` (or ``messages_received(conn,
  messages)``) -- as for a :class:`~tcpcom.engine.Connection`;
- ``connection_lost(conn, reason)`` -- the connection ended; exactly one per
  ``connection_made``.  ``reason`` as for a Connection (None: closed
  normally, by the peer or by :meth:`close`);
- ``reconnecting(conn, attempt, delay, reason)`` -- the next dial, the
  ``attempt``-th since the connection was lost (or since ``start()``), is
  made in ``delay`` s; ``reason`` is why: the connection's end, or the
  :class:`~tcpcom.engine.ConnectError` of the dial that just failed (kind
  ``OCCUPIED``: the server is busy -- try again later, like any other);
- ``gave_up(conn, reason)`` -- ``max_attempts`` dials failed in a row (or
  a dial failed with an error that is not the network's: a bug); the last
  event (``reason``: the last error).

After :meth:`close` no event follows except the ``connection_lost`` of the
connection that was open then.  A Q-SYS style function ``fn(conn, event,
data)`` gets ``CONNECTED``, ``DATA``, ``CLOSED``, ``ERROR``, ``TIMEOUT`` as
from a Connection, and ``RECONNECT`` (data: the delay) and ``GAVE_UP``
(data: the reason).

Sending works only while a connection is open: otherwise
:class:`ReconnectingError` (a :class:`~tcpcom.engine.ConnectionClosedError`)
is raised at once, saying that it is reconnecting; nothing is queued.

Threads: never more than one of its own.  While connected, the
connection's reader thread; while not, one thread ``tcpcom-redial-<id>``
that sleeps until the next dial is due (a timed wait on a condition: no
polling, the process stays idle while a dead host is retried), dials, and
ends once connected -- or at once when :meth:`close` wakes it.  A dial under
way when ``close()`` comes ends by itself (within the connect ``timeout``;
at once on loopback) and closes what it got.  The thread is a daemon unless
the option ``daemon=False`` is given: then, as the connection's reader
does, it keeps the program alive while it is reconnecting.
"""
from __future__ import absolute_import

import errno
import itertools
import logging
import random
import threading

from .._compat import make_thread, monotonic, string_types
from ..dispatch import SerialExecutor
from ..framing import DEFAULT_MAX_MESSAGE_SIZE, make_framer
from .checks import check_number, check_options, check_port
from .connection import DEFAULT_SEND_TIMEOUT, Connection, FunctionHandler, Handler, handler_property
from .dialing import DEFAULT_CONNECT_TIMEOUT, connect
from .errors import NETWORK_ERRORS, REFUSED, ConnectError, ConnectionClosedError, make_connect_error

log = logging.getLogger("tcpcom.engine")

#: seconds before the first dial after a loss
DEFAULT_RECONNECT_DELAY = 0.5
#: the longest wait between two dials
DEFAULT_MAX_RECONNECT_DELAY = 30.0

_ids = itertools.count(1)
#: the options of every connection it makes (those of Connection a dial can take)
_OPTIONS = frozenset(("framing", "max_message_size", "encoding", "errors", "read_timeout", "send_timeout",
                      "daemon", "executor", "dispatcher"))


class ReconnectState(object):
    """The names of a reconnecting connection's states (see :mod:`tcpcom.engine.redial`)."""
    IDLE = "idle"
    CONNECTING = "connecting"
    OPEN = "open"
    WAITING = "waiting"
    CLOSED = "closed"


_IDLE, _CONNECTING, _OPEN, _WAITING, _CLOSED = (ReconnectState.IDLE, ReconnectState.CONNECTING,
                                                ReconnectState.OPEN, ReconnectState.WAITING,
                                                ReconnectState.CLOSED)


class ReconnectingError(ConnectionClosedError):
    """A send while a reconnecting connection is not connected (it is reconnecting): nothing was sent."""


class Backoff(object):
    """The waits between dials: ``delay``, then times ``factor`` each time, at most ``max_delay``.

    ``jitter`` (0 to 1) takes up to that fraction off each wait at random,
    so a wait is never longer than the back-off says and (with ``jitter`` <
    1 - 1/``factor``) each wait of one outage is longer than the one before
    until the ceiling.
    """

    def __init__(self, delay=DEFAULT_RECONNECT_DELAY, max_delay=DEFAULT_MAX_RECONNECT_DELAY, factor=2.0,
                 jitter=0.2, rand=random.random):
        check_number(delay, "delay", 0)
        check_number(max_delay, "max_delay", 0)
        check_number(factor, "factor", 1)
        check_number(jitter, "jitter", 0)
        if delay is None or max_delay is None or factor is None or jitter is None:
            raise TypeError("delay, max_delay, factor and jitter must be numbers, not None")
        if jitter > 1:
            raise ValueError("jitter must be from 0 to 1 (the fraction a wait may be shortened), not %r"
                             % (jitter,))
        self.delay = delay
        self.max_delay = max(delay, max_delay)
        self.factor = factor
        self.jitter = jitter
        self.rand = rand

    def ceiling(self, n):
        """The wait before the ``n``-th dial of an outage (1, 2, ...) without jitter."""
        wait = self.delay
        for _ in range(n - 1):  # no float overflow for a long outage: stops at the ceiling
            wait *= self.factor
            if wait >= self.max_delay:
                return self.max_delay
        return min(wait, self.max_delay)

    def delay_for(self, n):
        """The wait before the ``n``-th dial of an outage, with jitter."""
        wait = self.ceiling(n)
        return wait * (1.0 - self.jitter * self.rand())


class ReconnectHandler(Handler):
    """Base class for the handler of a :class:`ReconnectingConnection`; override what you need."""

    def reconnecting(self, conn, attempt, delay, reason):
        pass

    def gave_up(self, conn, reason):
        pass


class ReconnectFunctionHandler(FunctionHandler):
    """A Q-SYS style ``fn(conn, event, data)``, with ``RECONNECT`` and ``GAVE_UP`` as well."""

    def reconnecting(self, conn, attempt, delay, reason):
        self.fn(conn, ReconnectingConnection.RECONNECT, delay)

    def gave_up(self, conn, reason):
        self.fn(conn, ReconnectingConnection.GAVE_UP, reason)


_METHODS = ("connection_made", "message_received", "messages_received", "connection_lost", "reconnecting",
            "gave_up")


def _as_handler(handler):
    if handler is None:
        return ReconnectHandler()
    if any(hasattr(handler, m) for m in _METHODS):
        return handler
    if callable(handler):
        return ReconnectFunctionHandler(handler)
    raise TypeError("a handler must be a function fn(conn, event, data) or an object with connection_made/"
                    "message_received/connection_lost/reconnecting/gave_up, not %r" % (handler,))


def _nothing(*args):
    pass


class _Link(object):
    """The handler of one connection made: passes its events on, with the reconnecting connection as conn."""

    __slots__ = ("rc", "made")

    def __init__(self, rc):
        self.rc = rc
        self.made = False

    def connection_made(self, c):
        self.made = True
        getattr(self.rc.handler, "connection_made", _nothing)(self.rc)

    def messages_received(self, c, messages):
        rc = self.rc
        h = rc.handler
        batch = getattr(h, "messages_received", None)
        if batch is not None:
            try:
                batch(rc, messages)
            except Exception:
                log.exception("message handler of %r raised; the engine goes on", rc)
            return
        cb = getattr(h, "message_received", _nothing)
        for m in messages:
            try:
                cb(rc, m)
            except Exception:
                log.exception("message handler of %r raised; the engine goes on", rc)
            if not c.delivering:  # the callback closed it
                return

    def connection_lost(self, c, reason):
        if not self.made:  # closed before it started: the handler never heard of it
            return
        rc = self.rc
        rc._lost(c, reason)  # the reconnecting event is queued behind this one
        getattr(rc.handler, "connection_lost", _nothing)(rc, reason)


class ReconnectingConnection(object):
    """An outgoing connection to ``host:port`` that dials again by itself once lost.

    ``handler``: see :mod:`tcpcom.engine.redial` (an object, or a Q-SYS
    style function).  ``timeout``: seconds each dial waits for the
    handshake.  ``delay``, ``max_delay``, ``factor``, ``jitter``: the
    back-off (see :class:`Backoff`), or ``backoff``, a ready one.
    ``max_attempts``: failed dials in a row before it gives up (None: never).
    ``occupied_wait``: as for :func:`~tcpcom.engine.connect` (an occupied
    server is retried like any other failure).  ``start``: True dials at once
    in the background (failures are retried); False leaves it ``idle`` until
    :meth:`start` or :meth:`dial`.  ``options``: those of
    :class:`~tcpcom.engine.Connection` (framing, encoding, read_timeout,
    max_message_size, dispatcher, executor, daemon, ...), used for every
    connection it makes.

    Attributes: ``id`` (kept across reconnects), ``host``, ``port``,
    ``handler`` (settable), ``state``, ``connection`` (the current
    :class:`~tcpcom.engine.Connection`, or None), ``connects`` (how many
    times it connected), ``attempt`` (dials since the last connection),
    ``last_error``, ``close_reason`` (once closed: None after
    :meth:`close`, the last error after giving up).
    """

    CONNECTED = Connection.CONNECTED
    DATA = Connection.DATA
    CLOSED = Connection.CLOSED
    ERROR = Connection.ERROR
    TIMEOUT = Connection.TIMEOUT
    RECONNECT = "reconnect"
    GAVE_UP = "gave_up"

    def __init__(self, host, port, handler=None, timeout=DEFAULT_CONNECT_TIMEOUT, delay=DEFAULT_RECONNECT_DELAY,
                 max_delay=DEFAULT_MAX_RECONNECT_DELAY, factor=2.0, jitter=0.2, max_attempts=None,
                 occupied_wait=None, start=True, backoff=None, **options):
        if not isinstance(host, string_types):
            raise TypeError("host must be a string such as '127.0.0.1', not %r" % (host,))
        check_port(port, allow_zero=False)
        check_number(timeout, "timeout", 0)
        check_number(max_attempts, "max_attempts", 1, integer=True)
        # a wrong option fails here, not at every dial
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise TypeError("unknown option %s: a reconnecting connection takes %s" % (
                ", ".join(repr(k) for k in unknown), ", ".join(sorted(_OPTIONS))))
        check_options(options.get("max_message_size", DEFAULT_MAX_MESSAGE_SIZE), options.get("read_timeout"),
                      options.get("send_timeout", DEFAULT_SEND_TIMEOUT))
        make_framer(options.get("framing", b"\0"), options.get("max_message_size", DEFAULT_MAX_MESSAGE_SIZE))
        self.backoff = backoff if backoff is not None else Backoff(delay, max_delay, factor, jitter)
        self.host = host
        self.port = port
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.occupied_wait = occupied_wait
        executor = options.pop("executor", None)
        dispatcher = options.pop("dispatcher", None)
        self.executor = executor or SerialExecutor(dispatcher)
        self.options = options
        self.id = "r%d" % next(_ids)
        self._handler = _as_handler(handler)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._state = _IDLE
        self._conn = None
        self._dialer = None       # the thread of the outage under way (None: connected, idle or closed)
        self._next_at = None      # when the next dial is due (waiting)
        self._failures = 0        # losses and failed dials of this outage: picks the back-off step
        self.attempt = 0
        self.connects = 0
        self.last_error = None
        self.close_reason = None
        if start:
            self.start()

    def __repr__(self):
        return "<ReconnectingConnection %s %s:%d %s>" % (self.id, self.host, self.port, self._state)

    # -- what the program sees --------------------------------------------------

    handler = handler_property(_as_handler)

    @property
    def state(self):
        """Where it is: a :class:`ReconnectState` name."""
        return self._state

    @property
    def connection(self):
        """The current :class:`~tcpcom.engine.Connection` (None while not connected)."""
        return self._conn

    @property
    def is_open(self):
        """True while connected and able to send."""
        c = self._conn
        return c is not None and c.is_open

    def is_done(self):
        """True once closed (by :meth:`close`, or after giving up)."""
        return self._state is _CLOSED

    @property
    def delivering(self):
        """True while messages of the current connection are still delivered (for ``messages_received``).

        The connection's own flag: :meth:`close` closes it, which ends the delivery -- except
        of replies ``request()`` returned before a close from another thread, which still come.
        """
        c = self._conn
        return c is not None and c.delivering

    @property
    def next_dial_in(self):
        """Seconds until the next dial while waiting, else None."""
        at = self._next_at
        return max(0.0, at - monotonic()) if at is not None and self._state is _WAITING else None

    @property
    def remote_address(self):
        c = self._conn
        return c.remote_address if c is not None else self.host

    @property
    def remote_port(self):
        return self.port

    @property
    def local_port(self):
        c = self._conn
        return c.local_port if c is not None else None

    @property
    def info(self):
        """A dict describing it (for logs and the faces)."""
        c = self._conn
        info = c.info if c is not None else {"remote_address": self.host, "remote_port": self.port}
        info = dict(info)
        info.update(id=self.id, connection_id=c.id if c is not None else None, state=self._state,
                    connects=self.connects)
        return info

    # -- dialing ----------------------------------------------------------------

    def start(self):
        """Dial in the background now (from ``idle``); failures are retried. Returns self."""
        with self._lock:
            if self._state is not _IDLE:
                return self
            self._state = _CONNECTING
        self._spawn()
        return self

    def dial(self, keep_trying=False):
        """Dial once on the calling thread (from ``idle``); returns the :class:`Connection`.

        A failure raises :class:`~tcpcom.engine.ConnectError`; with
        ``keep_trying`` the dials go on in the background as after a loss
        (the handler hears ``reconnecting``), else it is ``idle`` again.
        When it is connected already, returns the connection.
        """
        with self._lock:
            if self._state is _OPEN:
                return self._conn
            if self._state is _CLOSED:
                raise ConnectionClosedError("reconnecting connection %s to %s:%d is closed"
                                            % (self.id, self.host, self.port))
            if self._state is not _IDLE:
                raise ReconnectingError("connection %s to %s:%d is already reconnecting by itself (%s)"
                                        % (self.id, self.host, self.port, self._state))
            self._state = _CONNECTING
        conn, error = self._dial_once()
        if conn is not None:
            return conn
        if keep_trying:
            if self._failed(error):
                self._spawn()
        else:
            with self._lock:
                if self._state is _CONNECTING:
                    self._state = _IDLE
        raise error

    def _spawn(self):
        """Start the thread of an outage: it waits for each dial, dials, and ends once connected or closed."""
        t = make_thread(self._outage, "tcpcom-redial-%s" % self.id, daemon=self.options.get("daemon", True))
        with self._lock:
            self._dialer = t
        t.start()

    def _outage(self):
        try:
            while True:
                with self._cond:
                    while self._state is _WAITING:
                        left = self._next_at - monotonic()
                        if left <= 0:
                            self._state = _CONNECTING
                            self._next_at = None
                            break
                        self._cond.wait(left)  # close() wakes it
                    if self._state is not _CONNECTING:
                        return  # closed
                conn, error = self._dial_once()
                if conn is not None or not self._failed(error):
                    return
        finally:
            with self._lock:
                if self._dialer is threading.current_thread():
                    self._dialer = None

    def _dial_once(self):
        """One dial (state ``connecting``); returns (connection, None) or (None, the error)."""
        with self._lock:
            self.attempt += 1
        link = _Link(self)
        try:
            c = connect(self.host, self.port, link, self.timeout, self.occupied_wait, False,
                        executor=self.executor, **self.options)
        except ConnectError as e:
            log.debug("%r: dial %d failed: %s", self, self.attempt, e)
            return None, e
        except Exception as e:  # an engine bug: never silent, and not retried (see _failed)
            log.exception("%r: dial %d failed", self, self.attempt)
            return None, e
        if c.local_port == c.remote_port and c.local_address == c.remote_address:
            # dialing a dead port of this machine in a loop can connect the socket to
            # itself (TCP simultaneous open): that is nobody listening
            c.handler = None
            c.close()
            return None, make_connect_error(REFUSED, errno.ECONNREFUSED, "%s:%d refused the connection: nobody "
                                            "listens on port %d there" % (self.host, self.port, self.port))
        with self._lock:
            closed = self._state is _CLOSED
            if not closed:
                self._state = _OPEN
                self._conn = c
                self._next_at = None
                self._failures = 0
                self.attempt = 0
                self.connects += 1
        if closed:  # close() came during the dial
            c.handler = None
            c.close()
            return None, ConnectionClosedError("closed while dialing")
        c.start()
        return c, None

    def _failed(self, error):
        """A dial failed: wait and dial again (True), or give up or stop (False)."""
        with self._lock:
            if self._state is _CLOSED:
                return False
            self.last_error = error
            if (self.max_attempts is not None and self.attempt >= self.max_attempts) \
                    or not isinstance(error, NETWORK_ERRORS):  # a bug would fail every dial the same way
                self._state = _CLOSED
                self.close_reason = error
                gave_up = True
            else:
                gave_up = False
                self._failures += 1
                delay, attempt = self._wait(), self.attempt + 1
        if gave_up:
            log.debug("%r: giving up after %d dials: %s", self, self.attempt, error)
            self.executor.post(self._tell_gave_up, (error,))
            return False
        self.executor.post(self._tell_reconnecting, (attempt, delay, error))
        return True

    def _lost(self, c, reason):
        """The current connection ended (on the executor, from its closing event)."""
        with self._lock:
            if self._conn is not c:
                return
            self._conn = None
            if self._state is not _OPEN:  # close(): it ends here
                return
            self.last_error = reason
            self._failures = 1
            delay = self._wait()
        log.debug("%r: connection lost (%s); dialing again in %.3f s", self, reason, delay)
        # the event first (it is queued behind this callback): what the next dial brings comes after it
        self.executor.post(self._tell_reconnecting, (1, delay, reason))
        self._spawn()

    def _wait(self):
        # with the lock held: move to waiting; returns the delay
        delay = self.backoff.delay_for(self._failures)
        self._state = _WAITING
        self._next_at = monotonic() + delay
        return delay

    def _tell_reconnecting(self, attempt, delay, reason):
        if self._state is _CLOSED:  # closed meanwhile: nothing after close()
            return
        getattr(self._handler, "reconnecting", _nothing)(self, attempt, delay, reason)

    def _tell_gave_up(self, reason):
        getattr(self._handler, "gave_up", _nothing)(self, reason)

    # -- sending ----------------------------------------------------------------------

    def _current(self):
        c = self._conn
        if c is None or not c.is_open:
            raise self._not_connected()
        return c

    def _not_connected(self, error=None):
        state = self._state
        where = "%s:%d" % (self.host, self.port)
        if state is _CLOSED:
            return ConnectionClosedError("connection %s to %s is closed%s; nothing was sent" % (
                self.id, where, " (gave up: %s)" % self.close_reason if self.close_reason is not None else ""))
        if state is _WAITING:
            when = self.next_dial_in
            doing = "reconnecting (dial %d in %.2f s)" % (self.attempt + 1, when or 0.0)
        elif state is _IDLE:
            return ReconnectingError("connection %s to %s is not connected yet: call start() or dial() first; "
                                     "nothing was sent" % (self.id, where))
        else:
            doing = "reconnecting"
        return ReconnectingError("connection %s to %s is lost%s and %s; nothing was sent: send again once "
                                 "connection_made says it is back" % (
                                     self.id, where, " (%s)" % error if error is not None else "", doing))

    def send(self, data):
        """Send text or bytes as given; :class:`ReconnectingError` at once while not connected."""
        c = self._current()
        try:
            c.send(data)
        except ConnectionClosedError as e:
            raise self._not_connected(e)

    def send_message(self, message):
        """Send one message (the framing's delimiter added); :class:`ReconnectingError` while not connected."""
        c = self._current()
        try:
            c.send_message(message)
        except ConnectionClosedError as e:
            raise self._not_connected(e)

    def request(self, message, timeout):
        """Send ``message`` and return the next message received (None after ``timeout`` s)."""
        c = self._current()
        try:
            return c.request(message, timeout)
        except ConnectionClosedError as e:
            raise self._not_connected(e)

    # -- the end ------------------------------------------------------------------------

    def close(self):
        """Stop for good: close the current connection gracefully (its ``connection_lost`` is the
        last event), or stop waiting.  Returns at once; safe to call twice, from anywhere."""
        with self._lock:
            if self._state is _CLOSED:
                return
            self._state = _CLOSED
            self._next_at = None
            c = self._conn
            self._cond.notify_all()  # the outage thread ends now
        if c is not None:
            c.close()

    def wait_closed(self, timeout=None):
        """Block until closed and nothing of it runs any more (a dial under way ended, the
        connection's closing event was posted); True if so within ``timeout`` s."""
        deadline = None if timeout is None else monotonic() + timeout
        t = self._dialer
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
            if t.is_alive():
                return False
        c = self._conn
        if c is not None:
            left = None if deadline is None else max(0.0, deadline - monotonic())
            if not c.wait_closed(left):
                return False
        return self._state is _CLOSED
