"""The listener: one thread accepts connections, each becomes a :class:`~tcpcom.engine.Connection`."""
from __future__ import absolute_import

import errno
import logging
import socket
import threading

from .._compat import SHUTDOWN_WAKES_ACCEPT, accepter, close_listening, make_thread, monotonic, wake_accept
from ..dispatch import SerialExecutor, call_logged, call_text, callable_name
from ..framing import DEFAULT_MAX_MESSAGE_SIZE, make_framer
from .checks import check_callable, check_host, check_number, check_options, check_port
from .connection import DEFAULT_SEND_TIMEOUT, Connection
from .lifecycle import always
from .reading import Spares, Waiter, current_reader, spares
from .sockets import bind_socket, close_quietly, peer_sent_end, plain_address, shutdown_quietly

log = logging.getLogger("tcpcom.engine")

DEFAULT_MAX_CONNECTIONS = 4096
#: connections the system may complete and queue before the accept thread takes them.  A
#: burst (devices after a power cut, a class after "now connect!") must not overflow it:
#: 2,000 clients at once lost 474 connections with the old 128, none with 4096.  The system
#: caps it (Linux: net.core.somaxconn, 4096 since kernel 5.4, 128 before; macOS:
#: kern.ipc.somaxconn, 128), so asking for more is harmless.  Where the platform's own
#: "as many as you allow" value is larger (Windows' SOMAXCONN), that one.  Not
#: socket.SOMAXCONN alone: it is a compile-time header value (128 on older builds and on
#: macOS, absent on Jython), not what the running system allows.
DEFAULT_BACKLOG = max(4096, getattr(socket, "SOMAXCONN", 0))
#: seconds the accept thread gives a connection whose peer has hung up to end (see _at_limit)
PEER_GONE_WAIT = 1.0
#: seconds the accept thread, at the limit, waits for an end that may still be on its way (see
#: _at_limit); a refused client hears of it this much later (well within a TCPClient's 80 ms)
END_IN_FLIGHT_WAIT = 0.03
#: seconds after such a wait that found no end during which refusals do not wait (a flood of
#: clients at the limit costs the accept thread at most 3 % of its time)
END_IN_FLIGHT_PAUSE = 1.0


class Listener(object):
    """Accepts TCP connections on a port, each with its own :class:`Connection`.

    ``on_connection(conn)`` is called for every accepted connection, before
    any of its data; it returns the connection's handler (a handler object,
    or a Q-SYS style function), or sets ``conn.handler`` itself and returns
    None.  A handler class works too: ``Listener(0, EchoHandler)``.

    Options: ``host`` ('' = all interfaces, IPv4 and IPv6 where the system
    has IPv6; '127.0.0.1' = this machine only; '0.0.0.0' = IPv4 only),
    ``framing`` (a delimiter, ``"line"``, ``"raw"``/None),
    ``max_connections`` (more are accepted and closed at once, and
    ``on_refused(address)`` is called), ``read_timeout`` (close a connection
    idle that long), ``send_timeout``, ``max_message_size``, ``encoding``
    (None delivers bytes), ``serialize`` (True: the handlers of all
    connections share one executor, so they never run concurrently),
    ``on_closed()`` (after :meth:`close`, once every thread has ended),
    ``dispatcher``, ``daemon`` (False: the listener's threads keep the
    program alive until :meth:`close`, as the tcpcom face does),
    ``backlog`` (how many connections the system completes and queues
    before the accept thread takes them; default :data:`DEFAULT_BACKLOG`,
    4096, so that thousands of clients connecting at the same moment are
    all served; the system caps it: on Linux at ``net.core.somaxconn``,
    4096 since kernel 5.4 and 128 before, on macOS at
    ``kern.ipc.somaxconn``, 128; raise that setting for larger bursts).

    The socket is bound in the constructor, so ``port`` is known at once
    (pass 0 to let the system choose), and ``address``, the address it is
    bound to ("0.0.0.0" or "::" for all); :class:`PortInUseError` if the
    port is taken.
    """

    def __init__(self, port=0, on_connection=None, host="", framing=b"\0",
                 max_message_size=DEFAULT_MAX_MESSAGE_SIZE, max_connections=DEFAULT_MAX_CONNECTIONS,
                 read_timeout=None, send_timeout=DEFAULT_SEND_TIMEOUT, encoding="utf-8", errors=None,
                 serialize=False, on_refused=None, on_closed=None, dispatcher=None, executor=None,
                 backlog=DEFAULT_BACKLOG, start=True, daemon=True):
        check_port(port)
        check_host(host)
        check_options(max_message_size, read_timeout, send_timeout)
        check_number(max_connections, "max_connections", 1, integer=True)
        check_number(backlog, "backlog", 0, integer=True)
        check_callable(on_connection, "on_connection")
        check_callable(on_refused, "on_refused")
        check_callable(on_closed, "on_closed")
        make_framer(framing, max_message_size)  # fail early on a bad framing
        self.on_connection = on_connection
        self.on_refused = on_refused
        self.on_closed = on_closed
        self.host = host
        self.options = dict(framing=framing, max_message_size=max_message_size, encoding=encoding,
                            errors=errors, read_timeout=read_timeout, send_timeout=send_timeout,
                            daemon=daemon)
        self.daemon = daemon
        # reader threads kept for the next connection; non-daemon ones are this listener's own
        self.spares = spares if daemon else Spares(daemon=False)
        self.max_connections = max_connections
        self.dispatcher = dispatcher
        self.executor = executor or SerialExecutor(dispatcher)
        self.serialize = serialize
        self._conns = {}
        self._lock = threading.Lock()
        self._closing = False
        self._in_flight_wait_after = 0.0  # see _at_limit
        self._active = 1  # the accept thread, plus one per live connection
        self._thread = None
        sock = bind_socket(host, port, socket.SOCK_STREAM, reuse_address=True, backlog=backlog, dual_stack=True)
        self.sock = sock
        bound = sock.getsockname()
        self.address, self.port = plain_address(bound[0]), bound[1]
        # its connections' local address: this one, unless it listens on all (then each asks)
        self._connections_address = None if self.address in ("0.0.0.0", "::") else self.address
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
        """A snapshot list of the open connections (those not ended or closing)."""
        with self._lock:
            return [c for c in self._conns.values() if c.is_open]

    @property
    def is_closed(self):
        return self._closing

    def _accept_loop(self):
        if not SHUTDOWN_WAKES_ACCEPT:
            self.sock.settimeout(1.0)  # a fallback wake-up where shutdown() does not end accept()
        backoff = 0.0
        accept = accepter(self.sock)
        try:
            while not self._closing:
                try:
                    sock, addr = accept()
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
                    self._accepted(sock, (plain_address(addr[0]), addr[1]))
                except Exception:  # a bug must not end accepting for good
                    log.exception("listener on port %d: setting up a connection failed", self.port)
                    self._refuse(sock)
        finally:
            try:
                close_listening(self.sock)  # Jython: waits until the port is free
            except (socket.error, OSError):
                pass
            self._release()

    def _at_limit(self):
        """True if ``max_connections`` connections are still open.

        At the limit, a connection whose peer has already hung up does not
        count: its reader is given a moment (bounded) to see the end, so that
        its closing event is posted before the next connection's first event
        (a client that asks one question per connection is never refused
        because the server has not yet noticed the previous one leave).  When
        none shows an end yet, one may still be on its way: up to
        END_IN_FLIGHT_WAIT for it (not again within END_IN_FLIGHT_PAUSE after
        such a wait found nobody leaving).
        """
        if self.max_connections is None:
            return False
        if len(self._conns) < self.max_connections:
            # the open ones are among these: below the limit without building the list (a
            # snapshot per accept made a burst of n connections cost n * n / 2 steps here)
            return False
        live = self.connections
        if len(live) < self.max_connections:
            return False
        if _wait_for_ends(live) or monotonic() < self._in_flight_wait_after:
            return len(self.connections) >= self.max_connections
        # None shows its peer's end yet, but it may be on its way: a client that hung up and
        # dialled again at once can have its new connection accepted before its old one's end
        # has reached our socket (a loaded CI run refused such a client at once).  That end
        # wakes the connection's reader, which posts its closing event: wait for that,
        # briefly, then look again.
        until = monotonic() + END_IN_FLIGHT_WAIT
        for conn in live:
            if conn.wait_closed(max(0.0, until - monotonic())):
                break
        _wait_for_ends(self.connections)
        full = len(self.connections) >= self.max_connections
        if full:  # nobody was leaving
            self._in_flight_wait_after = monotonic() + END_IN_FLIGHT_PAUSE
        return full

    def _accepted(self, sock, addr):
        refuse = self._closing or self._at_limit()
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
        conn._handler = self._first_handler(conn)  # the engine's own: nothing to convert
        with self._lock:  # (after it: a connection whose setup failed is not counted)
            self._conns[conn.id] = conn
            self._active += 1
        conn.start()

    def _first_handler(self, conn):
        """The handler a new connection starts with (before its first event): one that has
        ``on_connection`` choose the real one, on the listener's executor."""
        return _PendingHandler(self, conn)

    @staticmethod
    def _refuse(sock):
        shutdown_quietly(sock)
        close_quietly(sock)

    def _post_refused(self, addr, error):
        if self.on_refused is not None:
            self.executor.post(self.on_refused, (addr, error) if error is not None else (addr,))
        elif addr is not None:
            log.warning("listener on port %d refused %s: %d connections is the maximum",
                        self.port, addr[0], self.max_connections)

    def connection_done(self, conn):
        """Called by a connection of this listener when its closing event is delivered: frees its slot."""
        with self._lock:
            self._conns.pop(conn.id, None)
        self._release()

    def _release(self):
        with self._lock:
            self._active -= 1
            last = self._active == 0
        if last and self.on_closed is not None:
            # Posted, not waited for: the thread that closes may be inside one
            # of this listener's callbacks (the dispatcher delivers what is
            # pending before the program ends: tcpcom.lifetime).  Never run by
            # the accept thread itself: a callback there that closes the
            # listener again would wait for its own thread.
            self.executor.post(self.on_closed, (), threading.current_thread() is not self._thread, always)

    def close(self):
        """Stop accepting and close every connection; safe to call twice.

        Returns once the accept thread has ended (from inside a callback on
        a reader thread: without waiting; the port is free either way) and
        every connection's closing event was posted.  Each connection closes
        gracefully: its reader lingers until the peer has closed too
        (bounded, see :mod:`tcpcom.engine.connection`); nobody waits for it.
        ``on_closed`` is posted when the last closing event was delivered.
        """
        with self._lock:
            if self._closing:
                first = False
            else:
                self._closing = first = True
        t = self._thread
        if first:
            shutdown_quietly(self.sock)
            if t is not None:
                wake_accept(self.sock)  # Jython: shutdown() does not wake accept()
        if t is None:
            if first:
                close_listening(self.sock)
                self._release()
        elif current_reader() is None and t is not threading.current_thread():
            t.join()  # first: no connection can be added after this
        else:
            try:  # cannot wait here: close the socket now so the port is free at once
                close_listening(self.sock)
            except (socket.error, OSError):
                pass
        with self._lock:  # also those the peer ended whose closing event is not delivered yet
            conns = list(self._conns.values())
        for conn in conns:
            conn.close()
        if self.spares is not spares:
            self.spares.close()  # its waiting threads must not hold the program's end


def _wait_for_ends(conns):
    """Gives each of ``conns`` whose peer has hung up a moment (bounded) to end; True if any had."""
    any_ended = False
    for conn in conns:
        # (it may still be reading what the peer sent before: it delivers that, then ends)
        if conn.peer_closed() or peer_sent_end(conn.sock):
            conn.wait_closed(PEER_GONE_WAIT)
            any_ended = True
    return any_ended


class _PendingHandler(object):
    """Stands in until the listener's ``on_connection`` has chosen the handler."""

    def __init__(self, listener, conn):
        self.listener = listener
        self.conn = conn

    def connection_made(self, conn):
        # Runs on the connection's executor; the listener-level callback runs
        # on the listener's executor (one at a time across connections), and
        # this connection's events wait until it has chosen the handler.
        # (A Waiter, not a threading.Event: making an Event -- a Condition, which probes
        # its lock for three methods it lacks -- took a reader thread's stack from 8 to
        # 12 KiB, 4 KiB more memory per connection.)
        done = Waiter()
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
            self.listener.executor.post_here(self._choose, done, conn.is_done)
            while not done.wait(0.05):
                if not conn.is_open:
                    break
        h = conn.handler
        made = getattr(h, "connection_made", None) if h is not self else None  # it may lack one
        if made is not None:  # the program's handler: a bug in it is logged under its name
            call_logged(made, (conn,), None, log)

    def _choose(self, done):
        conn = self.conn
        try:
            fn = self.listener.on_connection
            result = fn(conn) if fn is not None else None
            if result is not None:
                conn.handler = result
            elif conn.handler is self:
                conn.handler = None
        except Exception:
            log.exception("on_connection: %s raised; closing that connection", call_text(callable_name(fn), (conn,)))
            conn.handler = None
            conn.close()
        finally:
            done.set()

    def message_received(self, conn, message):
        pass

    def connection_lost(self, conn, reason):
        pass
