"""A connection: its life, sending, closing, and the read loop that feeds its handler.

See :mod:`tcpcom.engine` for the handler protocols.

A connection's life is one field, ``state``, moved only by
:meth:`ConnectionLife._move`::

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

import logging
import threading

from .._compat import monotonic, wake_reader
from .checks import check_number
from .deadlines import watchdog
from .errors import ConnectionClosedError, DeadlineExceeded, ReadTimeout, SendTimeout
from .reading import Waiter, current_reader
from .sockets import close_quietly, peer_has_closed, shutdown_quietly

log = logging.getLogger("tcpcom.engine")

#: a closing connection reads and discards for at most this long before it closes its socket ...
LINGER_MAX = 10.0
#: ... and for at most this long after the peer last sent something
LINGER_IDLE = 2.0
#: seconds close() waits at most for the closing event to be posted (see close())
CLOSE_WAIT = 1.0


class State(object):
    """The names of a connection's states (see the module docstring)."""
    OPENING = "opening"
    OPEN = "open"
    CLOSING = "closing"
    LOST = "lost"
    CLOSED = "closed"


OPENING, OPEN, CLOSING, LOST, CLOSED = State.OPENING, State.OPEN, State.CLOSING, State.LOST, State.CLOSED
#: the moves _move() allows
_NEXT = {OPENING: (OPEN, CLOSING, LOST), OPEN: (CLOSING, LOST), CLOSING: (CLOSED,), LOST: (CLOSED,), CLOSED: ()}
#: the states in which a connection sends
SENDING = frozenset((OPENING, OPEN))
#: the states in which received messages are delivered
DELIVERING = frozenset((OPENING, OPEN, LOST))
_CLOSING_EVENT_POSTED = True  # the value of Connection._closing_event once posted with nobody waiting


def always():
    """True: the ``abort`` of a post that must never give up waiting for room (a closing event)."""
    return True


class ConnectionLife(object):
    """The life half of a :class:`~tcpcom.engine.Connection`: the one field, its moves, closing
    and the deadlines.  The connection provides ``sock``, ``executor``, ``_out`` (its
    :class:`~tcpcom.engine.outbound.Outbound`), ``_reader`` and ``_lost(reason)`` (the closing
    event's delivery)."""

    def __init__(self, read_timeout):
        self._state = OPENING
        #: True while received messages are still delivered: no close was asked for.  A handler
        #: with ``messages_received`` (a batch) checks it before each message of the batch (an
        #: attribute, not a property: it is read once per message).
        self.delivering = True
        self.close_reason = None
        self._lock = threading.Lock()  # guards _state, _waiters, _closing_event
        self._waiters = []  # request() callers waiting for a reply
        self._read_timeout = read_timeout if read_timeout and read_timeout > 0 else None
        self._last_activity = monotonic()
        self._deadline = None  # (when, farewell bytes, reason text) or None
        self._linger_until = None
        self._closing_event = None  # None; a Waiter someone waits on; or _CLOSING_EVENT_POSTED
        self._reader = None

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
        return self._state in SENDING

    def is_done(self):
        """True once a close was asked for or the peer ended it (the opposite of ``is_open``)."""
        return self._state not in SENDING

    def peer_closed(self):
        """True if the peer has already closed its side and nothing unread is left (reads nothing)."""
        return self._state not in SENDING or peer_has_closed(self.sock)

    def close(self, reason=None, linger=True):
        """Close the connection gracefully; the handler's ``connection_lost(conn, reason)`` follows.

        What was handed to a send before goes out, then the end of the
        stream; no message is delivered after this call (a reply that
        ``request()`` returned is delivered before it -- or, when another
        thread is delivering it at that moment, by that thread, before the
        closing event; unless this is called from one of the connection's
        own callbacks).  Returns at once
        (the linger runs on the reader thread); the closing event is
        delivered before it returns when this connection's callbacks are
        idle, else right after the callback that runs.  Safe to call twice
        and from any thread or callback.

        ``linger=False``: the peer has said that it sends nothing more (an
        HTTP client's ``Connection: close``): once what was sent has gone to
        the system, the socket closes without reading until the peer closes
        too (with a send still under way on another thread it lingers as
        usual).  Called from one of the connection's own callbacks, the
        socket closes, and the end of the stream goes, when that callback
        and the closing event have returned (the cheapest close: nothing
        more for the system to do than the close itself).  Should the peer
        send after all, the system may answer with a reset.
        """
        # what request() callers read and returned is delivered first (see connection.CALLER_READS)
        self.executor.run_deferred()
        if not self._move(CLOSING, reason, True, linger) and self._state is LOST:
            self._move(CLOSED)  # the peer had ended it: what it sent before is not delivered any more
        if current_reader() is not self:
            # closed before connection_made was posted: the reader posts it and then
            # the closing event; wait (bounded) for that, not for the linger
            self.wait_closed(CLOSE_WAIT)

    def wait_closed(self, timeout=None):
        """Block until the connection has ended and its closing event was posted."""
        with self._lock:
            w = self._closing_event
            if w is _CLOSING_EVENT_POSTED:
                return True
            if w is None:
                w = self._closing_event = Waiter()
        return w.wait(timeout)

    def _move(self, to, reason=None, inline=True, linger=True):
        """The one place a connection's state changes; returns False if that move is not allowed now.

        ``inline``: the closing event may run on the calling thread (False for
        the engine's own threads, which never run user code).  ``linger``
        (closing): False ends the socket once the end of the stream is sent.
        """
        with self._lock:
            was = self._state
            if to not in _NEXT[was]:
                return False
            self._state = to
            self.delivering = to in DELIVERING or self._owing()
            if to is CLOSING or to is LOST:
                self._out.stopped = True  # sending is over (a send asks _check_open() why)
                self.close_reason = reason
                waiters, self._waiters = self._waiters, []
                for w in waiters:  # request() returns None
                    w.set()
            reader = self._reader
        if to is CLOSING or to is LOST:
            self._resume_reader()
        if to is CLOSING:
            # no linger (the peer sends nothing more): one shutdown ends the stream after what
            # was sent and the reading; the reader reads the end at once, and closes -- or,
            # closed by a callback on the reader thread itself, that thread closes the socket
            # when the callback returns, with no shutdown and no read of the end (its close
            # sends the FIN: two system calls less; see _reads_here)
            here = not linger and self._reads_here()
            if linger or not self._out.end_now(not here):
                self._out.owe_fin()
                linger, here = True, False
            if reader is None:  # never started: nothing to linger with
                self._move(CLOSED)
            elif linger:
                now = self._last_activity = monotonic()  # the linger's idle clock starts now
                self._linger_until = now + LINGER_MAX
                # asked for the first moment the linger can end, not for now: the watchdog
                # is not woken by every close (it wakes early only if it would oversleep)
                watchdog.watch(self, min(self._linger_until, now + LINGER_IDLE))
            elif here:
                self._end_reading()
            else:
                wake_reader(self.sock)  # Jython: shutdown() does not wake the reader's recv()
            if reader is None or was is OPEN:  # from opening: the reader posts it after connection_made
                self._post_closing_event(inline)
        elif to is CLOSED or to is LOST:
            watchdog.forget(self)
            close_quietly(self.sock)
        return True

    def _reads_here(self):
        """True on the thread that reads the socket now, which can end the reading without a
        system call (see _end_reading)."""
        return False

    def _end_reading(self):
        """(on the reader thread, see _reads_here) The read loop ends when the callback that
        runs returns, without reading the end, and closes the socket."""

    def _resume_reader(self):
        """A reader thread that left the socket to request() callers takes over again."""

    def _owing(self):
        """(under _lock) True while messages that must still be delivered after a close are
        being delivered (see Connection.close)."""
        return False

    def _abort(self):
        """End the socket now (the linger is over, or a send failed): wakes the reader."""
        shutdown_quietly(self.sock)
        wake_reader(self.sock)  # Jython: shutdown() does not wake the reader's recv()

    def _post_closing_event(self, inline):
        if inline:
            self.executor.post_here(self._lost, self.close_reason, always)
        else:
            self.executor.post(self._lost, (self.close_reason,), False, always)
        with self._lock:
            w, self._closing_event = self._closing_event, _CLOSING_EVENT_POSTED
        if w is not None:
            w.set()

    def watch_ended(self):
        """For the watchdog: nothing is left to watch once the socket is closed."""
        return self._state is LOST or self._state is CLOSED

    def check_deadlines(self, now):
        """For the watchdog: act on a deadline that passed; returns the next check time (or None)."""
        state = self._state
        if state is CLOSING:  # lingering
            if self._linger_until is None:  # no linger: the reader ends it at once
                return None
            due = min(self._linger_until, self._last_activity + LINGER_IDLE)
            if now >= due:
                self._abort()
                return None
            return due
        if state not in SENDING:
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
                self._move(CLOSING, ReadTimeout("no data received for %g s (read timeout)" % rt), False)
                return None
            nxt = due if nxt is None else min(nxt, due)
        st = self.send_timeout
        if st:
            since = self._out.since
            if since is not None and now - since >= st:
                # the peer is not reading: nothing will drain, end it now
                self._move(CLOSING, SendTimeout("a send made no progress for %g s: the peer is not "
                                                 "reading (send timeout)" % st), False)
                self._abort()
                return None
            due = (since + st) if since is not None else now + st
            nxt = due if nxt is None else min(nxt, due)
        return nxt

    def _expire(self, deadline):
        # on the watchdog thread: never wait for the peer
        _, farewell, reason = deadline
        if farewell and self._state in SENDING:
            self._out.send_now(farewell)
        self._move(CLOSING, DeadlineExceeded(reason), False)

    def _check_open(self):
        if self._state not in SENDING:
            raise ConnectionClosedError("connection %s to %s:%d is closed; connect again before sending"
                                        % (self.id, self.remote_address, self.remote_port))

    def _send_failed(self, error):
        """End the connection after a failed send; returns the exception for the sender."""
        cause = self.close_reason if self._state not in SENDING else None
        if self._move(CLOSING, error, False):
            self._abort()  # the peer is gone: nothing to linger for
        return ConnectionClosedError("sending to %s:%d failed: %s"
                                     % (self.remote_address, self.remote_port, cause or error))

