"""The TigerJython face: ``TCPServer`` and ``TCPClient``.

Same names, arguments and states as TigerJython's tcpcom, written on the
engine (``tcpcom.engine``): a message is the text as UTF-8 followed by one
``\\0`` byte on the wire, so both sides interoperate with the original.

Also here: ``getIPAddress()`` (this machine's IPv4 address) and
``close_all()``, which terminates every server and disconnects every client
of the program at once.
"""
from __future__ import absolute_import, print_function

import logging
import sys
import threading

from ._compat import binary_type, monotonic, script_text, string_types, text_type
from ._version import __version__
from .diagnostics import console_write, excerpt
from .dispatch import SerialExecutor, call_text, callable_name
from .engine import (CLOSED, DEFAULT_CONNECT_TIMEOUT, DROPPED, OCCUPIED, ConnectError, ConnectionClosedError, Listener,
                     PortInUseError, ReconnectingConnection, check_callable, check_number, check_port, connect,
                     end_kind, local_addresses, watchdog)
from .lifetime import close_all, interrupted, keeps_alive, register  # noqa: F401  (close_all: tcpcom.tcp.close_all)
from .framing import DEFAULT_MAX_MESSAGE_SIZE

#: seconds terminate()/disconnect() wait for their last event to be delivered
EVENT_WAIT = 5.0


class Face(object):
    """What TCPServer and TCPClient share: diagnostics and event delivery."""

    isVerbose = False

    def _debugging(self):
        """True when a _debug() line is shown (logged or printed): work only for it waits for this."""
        return self.isVerbose or self._log.isEnabledFor(logging.DEBUG)

    def _debug(self, msg, *args):
        if not self._debugging():
            return
        text = msg % args if args else msg
        self._log.debug(text)
        if self.isVerbose:  # the classic tcpcom style (printed; what the console cannot show, escaped)
            console_write(sys.stdout, "   %s-> %s\n" % (type(self).__name__, text))

    def _emit(self, state, msg):
        if state != "MESSAGE":
            self._debug("state %s (%s)", state, msg)
        _call(self.stateChanged, state, msg, self._log)


def _ignore(state, msg):
    pass


def _call(stateChanged, state, msg, logger):
    """Call the user's ``stateChanged(state, msg)``; an exception is logged, and the engine goes on."""
    try:
        stateChanged(state, msg)
    except Exception:
        log_raised(logger, "stateChanged", stateChanged, (state, msg))


def log_raised(logger, role, fn, args, then="the engine goes on"):
    """Log the exception being handled under the name the user knows: ``stateChanged('CONNECTED',
    '127.0.0.1') raised`` (and the function's own name if it has another), with the traceback --
    not under the engine's wrapper that called it."""
    name = callable_name(fn)
    where = "" if name in (role, "<lambda>") else " in %s" % name
    logger.exception("%s raised%s; %s", call_text(role, args), where, then)


class _FaceSide(object):
    """What the engine handlers of both faces do with messages: a MESSAGE event for each.

    ``face``: the TCPServer or TCPClient.  ``heard``: something came (the
    client's occupied verdict reads it).
    """

    face = None
    heard = False

    def message_received(self, conn, message):
        self.heard = True
        _call(self.face.stateChanged, "MESSAGE", message, self.face._log)

    def messages_received(self, conn, messages):
        # the engine's batch hook: one call per chunk instead of a layer per message.  One that
        # raises is logged and the rest still come -- unless the callback closed the connection
        # (disconnect(), terminate()).
        self.heard = True
        face = self.face
        stateChanged = face.stateChanged
        for m in messages:
            try:
                stateChanged("MESSAGE", m)
            except Exception:
                log_raised(face._log, "stateChanged", stateChanged, ("MESSAGE", m))
            if not conn.delivering:
                return


def _delimiter(endOfBlock):
    if isinstance(endOfBlock, (text_type, binary_type)) and endOfBlock:
        return endOfBlock
    raise TypeError("endOfBlock must be a non-empty str or bytes (default '\\0'), not %r" % (endOfBlock,))


def getIPAddress():
    """This machine's IPv4 address on the local network ('127.0.0.1' if it has none)."""
    addresses = local_addresses()
    return addresses[0] if addresses else "127.0.0.1"


class TCPServer(Face):
    """A TCP server for one client at a time (TigerJython tcpcom).

    ``TCPServer(port, stateChanged, isVerbose=False)`` starts listening at
    once; the constructor returns immediately.  ``port``: 0 to 65535 (0 lets
    the system choose, see ``getPort()``).  ``stateChanged(state, msg)``: the
    function called for every event (None: no events).  The third positional
    argument may also be ``endOfBlock``, the message delimiter
    (``TCPServer(5000, onStateChanged, "\\n")``); a bool there means
    ``isVerbose``.

    ``state`` is one of these class constants, each a string equal to its
    name (``TCPServer.LISTENING == "LISTENING"``); ``msg`` is a string:

    ================  ==================  ==================================
    state             msg                 when
    ================  ==================  ==================================
    ``PORT_IN_USE``   the port            the port is taken: the server is
                                          terminated (no ``TERMINATED``)
    ``LISTENING``     the port            listening; again each time the
                                          client went away
    ``CONNECTED``     the client's IP     a client connected
    ``MESSAGE``       the text            a message arrived
    ``TERMINATED``    ``""``              after ``terminate()``; the last
                                          event
    ================  ==================  ==================================

    One client at a time
        A second client while one is connected is accepted and closed at
        once; its ``TCPClient`` reports ``SERVER_OCCUPIED``.  A client that
        has just hung up makes room at once, even before its ``LISTENING``.

    Callbacks
        The calls of one server never overlap and come in the order of the
        events.  They run on the engine's threads (the connection's reader
        thread, a shared worker) or on the thread whose call caused the
        event (``disconnect()``'s ``LISTENING``, ``terminate()``'s
        ``TERMINATED``); with ``dispatcher=EventPump()`` all on the thread
        that calls ``pump()``.  ``sendMessage``, ``disconnect``
        and ``terminate`` may be called from a callback.  A callback that
        raises is logged with its traceback (logger ``tcpcom.server``) and
        the server goes on.

    Events that come early
        ``LISTENING`` (and a quick client's ``CONNECTED`` and ``MESSAGE``)
        may be delivered before ``server = TCPServer(...)`` has been
        assigned.  A callback that uses ``server`` for such events should
        first wait for a ``threading.Event`` set after the assignment.

    Messages
        On the wire a message is its text as UTF-8 followed by one ``\\0``
        byte, as with the original tcpcom.  A message split across reads, or
        several in one read, are each delivered once, in order, without the
        delimiter.  Bytes that are not UTF-8 arrive with ``surrogateescape``
        (``msg.encode("utf-8", "surrogateescape")`` gives them back; on
        Jython they become U+FFFD).

    Closing
        ``disconnect()`` and ``terminate()`` are graceful: what
        ``sendMessage`` was given before reaches the client, also while the
        client is still sending (the connection reads and discards until
        the client has closed too, for a bounded time; nobody waits for
        that).  After either call no ``MESSAGE`` of that connection is
        delivered any more, not even one that came in the same packet.

    Program lifetime
        The server keeps the program running, also after the script's last
        line, until ``terminate()``.  One Ctrl-C ends the script: every
        server and client is terminated and the port is free.  In an
        interactive session leaving the interpreter terminates it.

    Errors
        A wrong argument raises ``TypeError`` or ``ValueError`` saying what
        is wrong.  A port that is taken is the ``PORT_IN_USE`` event, not an
        exception; a ``host`` this machine does not have raises
        ``socket.error`` (``OSError``).

    More keyword arguments
        ``host=""``: all interfaces, IPv4 and IPv6 clients where the system
        has IPv6 (``"127.0.0.1"``: this machine only; ``"0.0.0.0"``: IPv4
        only).  ``maxMessageSize`` (16 MiB): a longer message closes that
        connection with a logged error.  ``dispatcher``: where callbacks
        run, e.g. an ``EventPump``.  ``isVerbose=True`` also prints the
        server's log lines in the classic ``TCPServer-> ...`` style.
    """

    #: state: the port is taken (msg: the port); the server is terminated
    PORT_IN_USE = "PORT_IN_USE"
    #: state: a client connected (msg: its IP address, e.g. ``"192.168.1.20"`` or ``"::1"``)
    CONNECTED = "CONNECTED"
    #: state: listening for a client (msg: the port); again each time the client went away
    LISTENING = "LISTENING"
    #: state: ``terminate()`` closed the server (msg: ``""``); its last event
    TERMINATED = "TERMINATED"
    #: state: a message arrived (msg: its text, without the delimiter)
    MESSAGE = "MESSAGE"
    _log = logging.getLogger("tcpcom.server")

    def __init__(self, port, stateChanged, endOfBlock=b"\0", isVerbose=False, host="",
                 maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE, dispatcher=None):
        if isinstance(endOfBlock, bool):  # TCPServer(port, stateChanged, True)
            endOfBlock, isVerbose = b"\0", endOfBlock
        check_port(port)
        check_callable(stateChanged, "stateChanged")
        self.endOfBlock = _delimiter(endOfBlock)
        self.isVerbose = bool(isVerbose)
        self.stateChanged = stateChanged or _ignore
        self._executor = SerialExecutor(dispatcher)
        register(self)
        self._terminated = False
        self._timeout = None
        self.port = port
        self._listener = None
        self._last = None  # the connection _current() found last
        try:
            self._listener = Listener(
                port, self._on_connection, host=host, framing=self.endOfBlock,
                max_message_size=maxMessageSize, max_connections=1, serialize=True,
                executor=self._executor, on_refused=self._on_refused, on_closed=self._on_closed,
                dispatcher=dispatcher, start=False, daemon=not keeps_alive())
        except PortInUseError as e:
            self._terminated = True
            self._debug("%s", e)
            self._executor.post(self._emit, (self.PORT_IN_USE, str(port)))
            return
        self.port = self._listener.port
        self._executor.post(self._emit, (self.LISTENING, str(self.port)))
        self._listener.start()
        self._debug("listening on port %d", self.port)

    def __repr__(self):
        return "<TCPServer port %d%s>" % (self.port, " terminated" if self._terminated else "")

    # engine callbacks (all on this server's executor: one at a time, in order)

    def _on_connection(self, conn):
        return _ServerSide(self)

    def _on_refused(self, addr, error=None):
        if addr is not None:
            self._debug("refused %s: a client is already connected", addr[0])

    def _on_closed(self):
        self._emit(self.TERMINATED, "")

    def _current(self):
        conn = self._last  # the one client, as found last time: no list built per message
        if conn is not None and conn.is_open:
            return conn
        listener = self._listener
        if listener is not None:
            for conn in listener.connections:
                if conn.is_open:
                    self._last = conn
                    return conn
        return None

    # the TigerJython API

    def sendMessage(self, msg):
        """Send ``msg`` to the connected client.

        ``msg``: text (sent as UTF-8, followed by the delimiter) or bytes
        (sent as they are).  Returns None.  With no client connected nothing
        is sent and a warning is logged.  ``None`` or another type (an int)
        raises ``TypeError``.  Any thread may call it, also a callback;
        concurrent calls never interleave their bytes.
        """
        if msg is None:
            raise TypeError("sendMessage(None): pass the text to send")
        conn = self._last  # (_current()'s first case, without the call)
        # (conn._out: is_open and send_message without their calls -- this runs per message)
        if conn is None or conn._out.stopped:
            conn = self._current()
            if conn is None:
                self._log.warning("sendMessage(%s): no client is connected, nothing was sent", excerpt(msg))
                return
        if msg.__class__ is not text_type:  # (text, the common case, needs no call)
            msg = script_text(msg)
        try:
            conn._out.send_message(msg)
        except ConnectionClosedError as e:
            self._log.warning("sendMessage(%s) failed: %s", excerpt(msg), e)

    def disconnect(self):
        """Close the connection to the client; the server goes on listening.

        ``LISTENING`` follows; no ``MESSAGE`` of that connection is delivered
        after this call.  What ``sendMessage`` was given before still reaches
        the client.  Returns at once; nothing happens without a client.
        """
        conn = self._current()
        if conn is not None:
            self._debug("disconnecting %s", conn.remote_address)
            conn.close()

    def terminate(self):
        """Close the connection and stop listening; the port is free when this returns.

        ``TERMINATED`` is delivered before it returns (called from one of
        this server's callbacks: right after that callback), and it is the
        server's last event.  Safe to call twice, at any time (also before
        ``LISTENING`` came, or after ``PORT_IN_USE``), from any thread or
        callback.
        """
        if self._listener is None:
            self._terminated = True
            return
        if not self._terminated:
            self._debug("terminating")
        self._terminated = True
        self._listener.close()
        self._executor.wait_idle(EVENT_WAIT)  # TERMINATED is delivered before we return

    _close = terminate

    def isConnected(self):
        """True while a client is connected."""
        return self._current() is not None

    def isTerminated(self):
        """True after ``terminate()``, or when the port was in use (``PORT_IN_USE``)."""
        return self._terminated

    def setTimeout(self, timeout):
        """Disconnect a client that sends nothing for ``timeout`` seconds.

        Counts for the client connected now and for later ones; the server
        then says ``LISTENING`` again.  ``timeout <= 0`` or None: never (the
        default).
        """
        check_number(timeout, "timeout")
        self._timeout = timeout if timeout and timeout > 0 else None
        if self._listener is not None:
            self._listener.options["read_timeout"] = self._timeout
        conn = self._current()
        if conn is not None:
            conn.read_timeout = self._timeout

    def getPort(self):
        """The port the server listens on (the real one when created with port 0)."""
        return self.port

    def loopForever(self):
        """Block until Ctrl-C (or until the server is terminated elsewhere), then terminate.

        For a script whose last line is the server: it waits there, and
        Ctrl-C ends it cleanly.  (On Jython Ctrl-C ends the JVM at once; the
        system frees the port.)
        """
        try:
            while not self._terminated:
                threading.Event().wait(0.5)
        except BaseException as e:
            if not interrupted(e):
                raise
        self.terminate()

    @staticmethod
    def getVersion():
        """This library's version, ``tcpcom.__version__`` (TigerJython's own tcpcom says another)."""
        return __version__

    @staticmethod
    def getIPAddress():
        """This machine's IPv4 address on the local network (``"127.0.0.1"`` if it has none)."""
        return getIPAddress()


class _ServerSide(_FaceSide):
    """The engine handler of a TCPServer's one connection."""

    def __init__(self, server):
        self.face = self.server = server

    def connection_made(self, conn):
        self.server._emit(TCPServer.CONNECTED, conn.remote_address)

    def connection_lost(self, conn, reason):
        server = self.server
        if reason is not None:
            server._debug("connection to %s ended: %s", conn.remote_address, reason)
        if not server._terminated:
            server._emit(TCPServer.LISTENING, str(server.port))


class TCPClient(Face):
    """A TCP client (TigerJython tcpcom).

    ``TCPClient(ipAddress, port, stateChanged, isVerbose=False)``: nothing
    happens until ``connect()``.  ``ipAddress``: a name or an address
    (``"localhost"``, ``"192.168.1.20"``); ``port``: 1 to 65535;
    ``stateChanged(state, msg)``: the function called for every event
    (None: no events).

    ``state`` is one of these class constants, each a string equal to its
    name (``TCPClient.CONNECTED == "CONNECTED"``); ``msg`` is a string:

    =====================  ============  ================================
    state                  msg           when
    =====================  ============  ================================
    ``CONNECTING``         "ip:port"     ``connect()`` begins
    ``CONNECTION_FAILED``  "ip:port"     nobody listens, name not found,
                                         timeout
    ``CONNECTED``          "ip:port"     connected
    ``SERVER_OCCUPIED``    "ip:port"     the server hung up without a
                                         word: it has a client already
    ``DISCONNECTED``       ``""``        the connection ended
    ``MESSAGE``            the text      a message arrived
    =====================  ============  ================================

    Order of events
        ``connect()``: ``CONNECTING``, then ``CONNECTION_FAILED``,
        ``SERVER_OCCUPIED`` or ``CONNECTED``.  Every ``CONNECTED`` is
        followed by exactly one ``DISCONNECTED``, the last event of that
        connection -- after ``disconnect()``, after the server hung up, and
        after a late ``SERVER_OCCUPIED`` (see ``connect()``).

    Callbacks
        The calls of one client never overlap and come in the order of the
        events.  ``connect()`` normally delivers its events on the calling
        thread before it returns, and ``disconnect()`` its ``DISCONNECTED``;
        what arrives runs on the connection's reader thread.  With
        ``dispatcher=EventPump()`` all run on the thread that calls
        ``pump()``.  Blocking calls (``connect``, ``sendMessage`` with a
        ``responseTime``, ``disconnect``) may be made from a callback.  A
        callback that raises is logged with its traceback (logger
        ``tcpcom.client``) and the client goes on.

    Messages
        On the wire a message is its text as UTF-8 followed by one ``\\0``
        byte, as with the original tcpcom; it is delivered once, in order,
        without the delimiter, however the bytes were split.  Bytes that
        are not UTF-8 arrive with ``surrogateescape`` (U+FFFD on Jython).

    Closing
        ``disconnect()`` is graceful: what ``sendMessage`` was given before
        reaches the server, also while the server is still sending (the
        connection reads and discards until the server has closed too, for
        a bounded time; nobody waits for that).  After it no ``MESSAGE`` is
        delivered any more.

    Program lifetime
        A connected client keeps the program running until it is
        disconnected.  One Ctrl-C ends the script and disconnects it.

    Errors
        A wrong argument raises ``TypeError`` or ``ValueError`` saying what
        is wrong.  A connection that cannot be made is an event
        (``CONNECTION_FAILED``, ``SERVER_OCCUPIED``) and ``connect()``
        returns False; it never raises for that.

    More keyword arguments
        ``autoReconnect`` (seconds; None, the default: a lost connection
        stays lost, as in the original): once connected, a lost connection
        (the server was restarted, the network dropped) is dialled again by
        itself, first after that delay, then less and less often (at most
        every 30 s).  Each outage is ``DISCONNECTED``, ``CONNECTING``, then
        ``CONNECTED`` once it is back; an occupied server is tried again
        later.  Meanwhile ``sendMessage`` sends nothing (a warning) and
        ``isConnecting()`` is True; ``disconnect()`` stops it.
        ``occupiedWait``: seconds ``connect()`` watches a fresh connection
        for an occupied server's hang-up (see ``getOccupiedWait()``).
        ``endOfBlock`` (``"\\0"``): the message delimiter.
        ``maxMessageSize`` (16 MiB): a longer message closes the connection
        with a logged error.  ``dispatcher``: where callbacks run.
        ``isVerbose=True`` also prints the client's log lines.
    """

    #: state: ``connect()`` begins, or an ``autoReconnect`` outage (msg: ``"ip:port"``)
    CONNECTING = "CONNECTING"
    #: state: the server hung up without a word: it has a client (msg: ``"ip:port"``)
    SERVER_OCCUPIED = "SERVER_OCCUPIED"
    #: state: no connection: nobody listens, name not found, timeout (msg: ``"ip:port"``)
    CONNECTION_FAILED = "CONNECTION_FAILED"
    #: state: connected (msg: ``"ip:port"``)
    CONNECTED = "CONNECTED"
    #: state: the connection ended (msg: ``""``); the last event of a connection
    DISCONNECTED = "DISCONNECTED"
    #: state: a message arrived (msg: its text, without the delimiter)
    MESSAGE = "MESSAGE"
    _log = logging.getLogger("tcpcom.client")

    # Bounds of the automatic occupied wait, and its multiple of the handshake time.  The
    # minimum is above the slowest hang-up measured from the original's accept loop on
    # Jython (65 ms; median 1-5 ms; docs/PERFORMANCE.md figure 1b) and keeps connect() to
    # a free server under 100 ms (median 82 ms).
    #: seconds: the shortest automatic occupied wait of ``connect()`` (see ``getOccupiedWait()``)
    OCCUPIED_WAIT_MIN = 0.08
    #: seconds: the longest automatic occupied wait of ``connect()``
    OCCUPIED_WAIT_MAX = 2.0
    #: the automatic occupied wait is this many times the measured handshake time
    OCCUPIED_WAIT_FACTOR = 25
    #: seconds after ``connect()`` returned True in which a hang-up without a byte from the
    #: server still means ``SERVER_OCCUPIED`` (the original client's 2 s watch)
    OCCUPIED_GRACE = 2.0

    def __init__(self, ipAddress, port, stateChanged, isVerbose=False, endOfBlock=b"\0",
                 occupiedWait=None, maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE, dispatcher=None, autoReconnect=None):
        if not isinstance(ipAddress, string_types):
            raise TypeError("ipAddress must be a string such as '127.0.0.1', not %r" % (ipAddress,))
        check_port(port, allow_zero=False)
        check_callable(stateChanged, "stateChanged")
        if maxMessageSize is None:
            raise TypeError("maxMessageSize must be an int (bytes), not None")
        check_number(maxMessageSize, "maxMessageSize", 1, integer=True)
        check_number(autoReconnect, "autoReconnect", 0)
        self.autoReconnect = autoReconnect
        self.ipAddress = ipAddress
        self.port = port
        self.stateChanged = stateChanged or _ignore
        self.isVerbose = bool(isVerbose)
        self.endOfBlock = _delimiter(endOfBlock)
        self.occupiedWait = occupiedWait
        self.maxMessageSize = maxMessageSize
        self._executor = SerialExecutor(dispatcher)
        register(self)
        self._conn = None
        self._connecting = False
        self._lastWait = None

    def __repr__(self):
        return "<TCPClient %s:%d%s>" % (self.ipAddress, self.port, " connected" if self.isConnected() else "")

    def _post(self, state, msg):
        self._executor.post(self._emit, (state, msg), True)

    def connect(self, timeout=0):
        """Connect; True once connected, False after CONNECTION_FAILED or SERVER_OCCUPIED.

        ``timeout`` (seconds) bounds the TCP handshake; 0 means 10 s.  Blocks
        until it knows; the events (``CONNECTING``, then ``CONNECTED``,
        ``CONNECTION_FAILED`` or ``SERVER_OCCUPIED``) normally come before it
        returns.  Already connected: True at once, no events.  With
        ``autoReconnect`` the first connection fails as without it.

        How an occupied server is recognised: a one-client server (tcpcom's
        or the original's) accepts a second client and hangs up on it.
        That hang-up is its only answer, and it can come late (the original
        on Jython: 1-65 ms after the handshake; a server busy in a slow
        ``CONNECTED`` callback: when that returns).  Two lines of defence:

        1. ``connect()`` watches the fresh connection for the occupied wait
           (``getOccupiedWait()``: at least 80 ms).  A hang-up within it:
           ``CONNECTING``, ``SERVER_OCCUPIED``, and False.
        2. Otherwise ``CONNECTED`` and True.  If the server then hangs up
           within ``OCCUPIED_GRACE`` (2 s, the original client's watch)
           without having sent a single byte: ``SERVER_OCCUPIED``, then
           ``DISCONNECTED``; ``isConnected()`` is False from
           ``SERVER_OCCUPIED`` on.  A hang-up after the 2 s, after a message
           from the server, or after ``disconnect()`` is a plain
           ``DISCONNECTED``.

        So a server that accepts and closes without a word within 2 s is
        reported occupied, as the original client reports it.
        """
        if self.isConnected():
            return True
        where = "%s:%d" % (self.ipAddress, self.port)
        timeout = timeout if timeout and timeout > 0 else DEFAULT_CONNECT_TIMEOUT
        if self.autoReconnect is not None:
            return self._connect_kept(where, timeout)
        self._connecting = True
        try:
            self._post(self.CONNECTING, where)
            side = _ClientSide(self, where)
            try:
                conn = connect(self.ipAddress, self.port, side, timeout, occupied_wait=self.getOccupiedWait, start=False, framing=self.endOfBlock,
                               max_message_size=self.maxMessageSize, executor=self._executor,
                               daemon=not keeps_alive())
            except ConnectError as e:
                self._debug("connection to %s failed: %s", where, e)
                self._post(self.SERVER_OCCUPIED if e.kind == OCCUPIED else self.CONNECTION_FAILED, where)
                return False
            self._conn = conn
        finally:
            self._connecting = False
        self._post(self.CONNECTED, where)
        side.watch(conn, self.OCCUPIED_GRACE)  # the second line of defence, from now on
        conn.start()
        return True

    def _connect_kept(self, where, timeout):
        # autoReconnect: the engine's ReconnectingConnection dials again after a loss
        self._connecting = True
        try:
            self._post(self.CONNECTING, where)
            keeper = ReconnectingConnection(
                self.ipAddress, self.port, _KeptClientSide(self, where), timeout, delay=self.autoReconnect,
                max_delay=max(self.autoReconnect, 30.0), occupied_wait=self.getOccupiedWait, start=False,
                framing=self.endOfBlock, max_message_size=self.maxMessageSize, executor=self._executor,
                daemon=not keeps_alive())
            try:
                keeper.dial()  # the first connect fails as without autoReconnect
            except ConnectError as e:
                keeper.close()
                self._debug("connection to %s failed: %s", where, e)
                self._post(self.SERVER_OCCUPIED if e.kind == OCCUPIED else self.CONNECTION_FAILED, where)
                return False
            self._conn = keeper
        finally:
            self._connecting = False
        self._executor.wait_idle(EVENT_WAIT)  # CONNECTED (from the handler) is delivered before we return
        return True

    def getOccupiedWait(self, handshake=None):
        """Seconds ``connect()`` watches for an occupied server's hang-up.

        ``occupiedWait`` if set, else ``OCCUPIED_WAIT_FACTOR`` (25) times the
        measured handshake time ``handshake`` (seconds), kept between
        ``OCCUPIED_WAIT_MIN`` (80 ms: what a slow accept loop needs on
        loopback) and ``OCCUPIED_WAIT_MAX`` (2 s).  Without an argument: the
        last wait used (None before the first ``connect()``).  A hang-up that
        comes later is still caught within ``OCCUPIED_GRACE`` (see
        ``connect()``).  A shorter ``occupiedWait`` (e.g. 0.005) makes
        ``connect()`` quicker when the server is known not to be a
        one-client server.
        """
        if handshake is None:
            return self._lastWait
        if self.occupiedWait is not None:
            wait = self.occupiedWait
        else:
            wait = min(self.OCCUPIED_WAIT_MAX, max(self.OCCUPIED_WAIT_MIN, self.OCCUPIED_WAIT_FACTOR * handshake))
        self._lastWait = wait
        return wait

    def sendMessage(self, msg, responseTime=0):
        """Send ``msg``; with ``responseTime > 0`` wait that long for the reply and return it.

        ``msg``: text (sent as UTF-8, followed by the delimiter) or bytes
        (sent as they are).  With ``responseTime`` (seconds) it returns the
        server's next message, which is also delivered as a ``MESSAGE``
        event; this works inside callbacks too.  Returns None when not
        waiting, when no reply came in time, and when not connected (then
        nothing is sent and a warning is logged).  ``None`` or another type
        (an int) raises ``TypeError``.  Concurrent calls never interleave
        their bytes.
        """
        if msg is None:
            raise TypeError("sendMessage(None): pass the text to send")
        conn = self._conn
        if conn is None or not conn.is_open:
            self._log.warning("sendMessage(%s): not connected, nothing was sent; call connect() first",
                              excerpt(msg))
            return None
        if msg.__class__ is not text_type:  # Jython: a str that is not UTF-8 is Latin-1 text
            msg = script_text(msg)
        try:
            if responseTime and responseTime > 0:
                return conn.request(msg, responseTime)
            conn.send_message(msg)
        except ConnectionClosedError as e:
            self._log.warning("sendMessage(%s) failed: %s", excerpt(msg), e)
        return None

    def disconnect(self):
        """Close the connection; ``DISCONNECTED`` is delivered before this returns.

        Called from one of this client's callbacks it returns at once and
        ``DISCONNECTED`` comes right after that callback.  What
        ``sendMessage`` was given before still reaches the server; no
        ``MESSAGE`` is delivered after this call.  Stops ``autoReconnect``.
        Safe to call twice, and when not connected.
        """
        conn = self._conn
        if conn is not None:
            if conn.is_open:
                conn.handler.closed_here = True  # our close, not the server's hang-up
            conn.close()
            self._executor.wait_idle(EVENT_WAIT)  # DISCONNECTED is delivered before we return

    _close = disconnect

    def isConnecting(self):
        """True while ``connect()`` is trying to connect (with ``autoReconnect``: also while it is
        dialling again by itself)."""
        conn = self._conn
        return self._connecting or (isinstance(conn, ReconnectingConnection) and not conn.is_open
                                    and not conn.is_done())

    def isConnected(self):
        """True while connected (False from ``SERVER_OCCUPIED`` or ``DISCONNECTED`` on)."""
        conn = self._conn
        return conn is not None and conn.is_open

    @staticmethod
    def getVersion():
        """This library's version, ``tcpcom.__version__`` (TigerJython's own tcpcom says another)."""
        return __version__


class _ClientSide(_FaceSide):
    """The engine handler of a TCPClient's connection, and its second line of defence.

    The server hung up within ``OCCUPIED_GRACE`` s of ``connect()``
    returning True without having sent a single byte: it was occupied (its
    accept loop turned us away late), so the client reports
    SERVER_OCCUPIED, then DISCONNECTED.  Whether the hang-up came within
    the window is decided by the socket, not by when the event is
    delivered: at the window's end the watchdog looks (without reading)
    whether the server had closed by then; a slow callback that delays
    the closing event does not turn the verdict.
    """

    def __init__(self, client, where):
        self.face = self.client = client
        self.where = where
        self.heard = False        # the server sent something (a message)
        self.closed_here = False  # disconnect() closed it, not the server
        self.conn = None
        self.in_window = False    # True from connect() returning True until the window's end

    # -- the window, as a watchdog target ----------------------------------------

    def watch(self, conn, seconds):
        self.conn = conn
        self.in_window = True
        watchdog.watch(self, monotonic() + seconds)

    def watch_ended(self):
        return self.conn.is_done()

    def check_deadlines(self, now):
        # the window is over: it stays open (for the closing event) only if the
        # server had hung up by now
        if not self.conn.peer_closed():
            self.in_window = False
        return None

    def _occupied(self, conn, reason):
        return (self.in_window and not self.heard and not self.closed_here
                and not getattr(conn.framer, "buffered", 0)  # part of a message came
                and end_kind(reason) in (CLOSED, DROPPED))

    # -- engine events ------------------------------------------------------------

    def connection_made(self, conn):
        pass

    def connection_lost(self, conn, reason):
        client = self.client
        if reason is not None:
            client._debug("connection ended: %s", reason)
        if self.conn is not None:
            watchdog.forget(self)  # not kept (with its connection) until the window's end
        if self._occupied(conn, reason):
            client._debug("the server hung up without a word within %g s: it is occupied", client.OCCUPIED_GRACE)
            client._emit(TCPClient.SERVER_OCCUPIED, self.where)
        client._emit(TCPClient.DISCONNECTED, "")


class _KeptClientSide(_ClientSide):
    """The handler of an ``autoReconnect`` client: every (re)connection is ``CONNECTED``, every
    loss ``DISCONNECTED``, each outage starts with one ``CONNECTING``.  An occupied server is
    retried by the engine (no second line of defence here: it would only say "try again")."""

    def connection_made(self, conn):
        self.heard = False
        self.client._emit(TCPClient.CONNECTED, self.where)

    def reconnecting(self, conn, attempt, delay, reason):
        self.client._debug("dialling %s again in %.2f s (attempt %d)", self.where, delay, attempt)
        if attempt == 1:
            self.client._emit(TCPClient.CONNECTING, self.where)

    def gave_up(self, conn, reason):
        self.client._debug("gave up reconnecting to %s: %s", self.where, reason)

    def connection_lost(self, conn, reason):
        if reason is not None:
            self.client._debug("connection ended: %s", reason)
        self.client._emit(TCPClient.DISCONNECTED, "")
