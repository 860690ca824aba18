"""The XTension plugin networking API, translated onto the tcpcom engine.

Every function here checks its arguments, calls the engine
(:class:`tcpcom.engine.Listener`, :class:`tcpcom.engine.Connection`,
:class:`tcpcom.udp.UDPEndpoint`) and turns the engine's events into calls of
the script's event functions.  There is no socket code here.
"""
from __future__ import absolute_import

import errno
import logging
import re
import sys
import threading

from tcpcom._compat import PY2, binary_type, integer_types, string_types, text_type
from tcpcom.diagnostics import console_write
from tcpcom.dispatch import SerialExecutor
from tcpcom.engine import (DEFAULT_MAX_CONNECTIONS, DROPPED, LOST_AT_ONCE, NETWORK_ERRORS, NOT_FOUND, TIMED_OUT, TIMEOUT,
                           TOO_LARGE, ConnectError, ConnectionClosedError, Listener, PeerInfo, PortInUseError,
                           connect, end_kind, error_number, error_text, is_ip_literal, is_name_error)
from tcpcom.framing import DEFAULT_MAX_MESSAGE_SIZE, DelimiterFramer
from tcpcom.httpserver import HTTPListener
from tcpcom.udp import MAX_DATAGRAM, UDPEndpoint

from .constants import (NO_MAC, UNKNOWN_NAME, xtBroadcastAddress, xtErrDisconnected, xtErrInvalidPort,
                        xtErrInvalidState, xtErrNameResolution, xtErrOutOfMemory, xtErrorDescription,
                        xtErrorNumber, xtKeyErrorMessage, xtKeyErrorNumber, xtKeyMacAddress, xtKeyName,
                        xtKeyFormData, xtKeyHeaders, xtKeyMethod, xtKeyPeerPort, xtKeyPostData, xtKeyQuery,
                        xtKeyRemoteAddress, xtKeyRemotePort, xtKeyUniqueId)
from .registry import Registry

log = logging.getLogger("tcpcom.xtcompat")
#: where XTWriteLog writes (shown on the console unless logging is configured)
script_log = logging.getLogger("xtcompat")

#: XTension plugins cannot listen below this port
MIN_LISTEN_PORT = 1024
DEFAULT_CONNECT_TIMEOUT = 10

TCP, UDP, HTML = "tcp", "udp", "html"

_MESSAGES = {
    xtErrDisconnected: "disconnected",
    xtErrNameResolution: "the name could not be resolved",
    xtErrInvalidState: "invalid state: the connection is not open",
    xtErrInvalidPort: "invalid port: listening ports must be from 1024 to 65535",
    xtErrOutOfMemory: "out of memory",
}


class _Face(object):
    """The state of the API: listeners, connections, the script's namespace."""

    def __init__(self):
        self.lock = threading.Lock()
        self.listeners = Registry()
        self.connections = {}  # connection ID -> _XTConnection
        self.namespace = None
        self.warned = set()
        self.stop_requested = threading.Event()
        self.peers = PeerInfo()
        self.executor = None  # face-level events (a failed XTOpenTCPConnection), made on first use
        self.serial = None  # one executor for every event, after XTSerializeEvents(True)

    def event_executor(self):
        if self.serial is not None:
            return self.serial
        with self.lock:
            if self.executor is None:  # the default dispatcher of that moment (maybe an EventPump)
                self.executor = SerialExecutor()
            return self.executor

    # -- the script's event functions --------------------------------------------

    def find(self, name):
        ns = self.namespace
        if ns is None:
            ns = sys.modules.get("__main__")
        if isinstance(ns, dict):
            fn = ns.get(name)
        else:
            fn = getattr(ns, name, None)
        return fn if callable(fn) else None

    def warn_once(self, key, msg, *args):
        with self.lock:
            if key in self.warned:
                return
            self.warned.add(key)
        log.warning(msg + " (said once)", *args)

    def call(self, name, args, missing):
        """Call the script's ``name(*args)``; log once if it has none.  Returns (found, result)."""
        fn = self.find(name)
        if fn is None:
            self.warn_once(name, "the script defines no %s function: %s", name, missing)
            return False, None
        try:
            return True, fn(*args)
        except Exception:
            log.exception("%s raised; the plugin goes on", name)
            return True, None

    # -- connections ---------------------------------------------------------------

    def add_connection(self, xc):
        with self.lock:
            self.connections[xc.id] = xc

    def drop_connection(self, xc):
        with self.lock:
            if self.connections.get(xc.id) is xc:
                del self.connections[xc.id]

    def connection(self, cid):
        with self.lock:
            try:
                return self.connections.get(cid)
            except TypeError:
                return None


_face = _Face()


def _error_for(reason):
    """(XTension error number, description) for why a connection ended."""
    kind = end_kind(reason)
    if reason is None:
        return xtErrDisconnected, _MESSAGES[xtErrDisconnected]
    if kind == TOO_LARGE:
        return xtErrOutOfMemory, "%s: %s" % (_MESSAGES[xtErrOutOfMemory], reason)
    if kind == TIMEOUT:
        return xtErrDisconnected, "disconnected: %s" % reason
    code = error_number(reason)
    if kind == DROPPED:
        return xtErrDisconnected, "the connection was dropped: %s" % error_text(reason)
    if code is not None:
        return code, error_text(reason)
    return xtErrDisconnected, "disconnected: %s" % (reason,)


def _error_info(info, number, message):
    info = dict(info)
    info[xtKeyErrorNumber] = info[xtErrorNumber] = number
    info[xtKeyErrorMessage] = info[xtErrorDescription] = message
    return info


def _framing(where, boundary):
    """The engine framing for a boundary string: None -> raw chunks, else split on it exactly."""
    if boundary is None or boundary == "" or boundary == b"":
        return None
    if not isinstance(boundary, (text_type, binary_type)):
        raise TypeError("%s: the boundary must be a string such as '\\r\\n' or None, not %r"
                        % (where, boundary))
    # a factory, so that "line" or "raw" are taken literally as boundaries too
    return lambda max_size: DelimiterFramer(boundary, max_size)


def _listen_port(where, port):
    """The port to bind (0: any free port), or None after logging error 107."""
    ok = isinstance(port, integer_types) and not isinstance(port, bool) and \
        (port == 0 or MIN_LISTEN_PORT <= port <= 65535)
    if not ok:
        log.error("%s(%r) failed with error %d: %s (or 0 to let the system choose one)",
                  where, port, xtErrInvalidPort, _MESSAGES[xtErrInvalidPort])
        return None
    return port


class _XTConnection(object):
    """The engine handler of one connection: turns its events into XT... calls."""

    def __init__(self, conn, listener_id=None, remote_port=None, name=None):
        self.conn = conn
        self.id = conn.id
        self.listener_id = listener_id
        self.incoming = listener_id is not None
        self.remote_port = remote_port if remote_port is not None else conn.remote_port
        self.name = name
        self.info = self._basic_info()
        self.refused = False

    def _basic_info(self):
        c = self.conn
        info = {xtKeyRemoteAddress: c.remote_address, xtKeyRemotePort: self.remote_port,
                xtKeyPeerPort: c.remote_port, xtKeyName: self.name or UNKNOWN_NAME,
                xtKeyMacAddress: NO_MAC, xtKeyUniqueId: c.id}
        return info

    def connection_made(self, conn):
        peers = _face.peers
        info = dict(self.info)
        info[xtKeyMacAddress] = peers.mac(conn.remote_address)
        if not self.name:
            info[xtKeyName] = peers.name(conn.remote_address)
        self.info = info
        if not self.incoming:
            return
        fn = _face.find("XTNewConnection")
        if fn is None:
            _face.warn_once(("XTNewConnection", self.listener_id),
                            "listener %d refuses the connection from %s: the script defines no "
                            "XTNewConnection(theConnectionID, theConnectionInfo) function, which is required "
                            "to accept incoming connections (define it and return True to accept)",
                            self.listener_id, conn.remote_address)
            accept = False
        else:
            try:
                accept = fn(self.id, dict(info))
            except Exception:
                log.exception("XTNewConnection raised; the connection from %s is refused", conn.remote_address)
                accept = False
            if accept is None:
                _face.warn_once(("XTNewConnection-None",),
                                "XTNewConnection returned None (no return statement?): the connection from "
                                "%s is refused; return True to accept it", conn.remote_address)
        if not accept:
            self.refused = True
            _face.drop_connection(self)
            conn.close()

    def message_received(self, conn, data):
        if self.refused:
            return
        _face.call("XTDataAvailable", (data, self.id, dict(self.info)),
                   "data from the connections is not delivered")

    def connection_lost(self, conn, reason):
        if self.refused:
            return
        number, message = _error_for(reason)
        try:
            _face.call("XTSocketError", (self.id, _error_info(self.info, number, message)),
                       "the ends of connections are not reported")
        finally:
            _face.drop_connection(self)


class _XTDatagrams(object):
    """The engine handler of one UDP listener."""

    def __init__(self, listener_id):
        self.listener_id = listener_id

    def datagram_received(self, endpoint, data, address):
        info = {xtKeyRemoteAddress: address[0], xtKeyRemotePort: address[1], xtKeyPeerPort: address[1]}
        _face.call("XTReceivedDatagram", (data, self.listener_id, info),
                   "datagrams received are not delivered")


class _Holder(object):
    listener_id = None


# -- TCP listeners ---------------------------------------------------------------


def _start(where, kind, thePort, host, make):
    """Create a listener of ``kind`` with ``make(port)`` and register it.

    Returns ``(obj, listener ID)``, or ``(None, 0)`` after logging why (an
    invalid port is error 107; a port in use, or any other error, is logged).
    """
    port = _listen_port(where, thePort)
    if port is None:
        return None, 0
    try:
        obj = make(port)
    except PortInUseError as e:
        log.error("%s(%d) failed: %s", where, thePort, e.strerror or e)
        return None, 0
    except NETWORK_ERRORS + (ValueError, TypeError) as e:
        log.error("%s(%r, host=%r) failed: %s", where, thePort, host, e)
        return None, 0
    return obj, _face.listeners.add(kind, obj)


def XTStartTCPListener(thePort, theBoundryString=None, host="", binary=False,
                       maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE, maxConnections=DEFAULT_MAX_CONNECTIONS,
                       idleTimeout=None):
    """Listen for TCP connections; returns a non-zero listener ID, or 0 (the reason is logged).

    ``thePort`` from 1024 to 65535, or 0 for any free port (learn it with
    :func:`XTGetListenerPort`).  With ``theBoundryString`` (e.g. ``"\\r\\n"``)
    each packet arrives in its own XTDataAvailable, boundary removed; without
    it data arrives as it comes.  This library's additions: ``host`` (the
    address to listen on; '' = all), ``binary`` (deliver bytes, not text),
    ``maxMessageSize`` (a longer packet closes that connection, error 108),
    ``maxConnections`` (4096; more are closed at once, logged, no event),
    ``idleTimeout`` (seconds; off by default: a connection silent that long
    is closed, XTSocketError 102).
    """
    where = "XTStartTCPListener"
    try:
        framing = _framing(where, theBoundryString)
    except TypeError as e:
        log.error("%s(%r) failed: %s", where, thePort, e)
        return 0
    holder = _Holder()

    def on_connection(conn):
        xc = _XTConnection(conn, holder.listener_id, remote_port=conn.local_port)
        _face.add_connection(xc)
        return xc

    def make(port):
        serial = _face.serial
        return Listener(port, on_connection, host=host, framing=framing,
                        encoding=None if binary else "utf-8", max_message_size=maxMessageSize,
                        max_connections=maxConnections, read_timeout=idleTimeout,
                        serialize=serial is not None, executor=serial, start=False)
    listener, holder.listener_id = _start(where, TCP, thePort, host, make)
    if listener is None:
        return 0
    listener.start()
    log.debug("TCP listener %d on port %d", holder.listener_id, listener.port)
    return holder.listener_id


def _stop(where, kind, theListenerID):
    obj = _face.listeners.remove(theListenerID, kind)
    if obj is None:
        other = _face.listeners.kind(theListenerID)
        if other is not None:
            log.error("%s(%r): that ID is a %s listener, not a %s one", where, theListenerID,
                      other.upper(), kind.upper())
        else:
            log.warning("%s(%r): no such listener (already stopped?)", where, theListenerID)
        return False
    obj.close()
    return True


def XTStopTCPListener(theListenerID):
    """Stop listening and close the listener's connections (each gets XTSocketError with 102)."""
    return _stop("XTStopTCPListener", TCP, theListenerID)


def XTGetListenerPort(theListenerID):
    """This library's addition: the port a TCP or UDP listener is bound to (0 if no such listener)."""
    obj = _face.listeners.get(theListenerID)
    return getattr(obj, "port", 0) if obj is not None else 0


# -- TCP connections ---------------------------------------------------------------


def _open_failed(address, port, number, message):
    log.warning("XTOpenTCPConnection(%r, %r) failed with error %d: %s", address, port, number, message)
    info = {xtKeyRemoteAddress: address, xtKeyRemotePort: port, xtKeyPeerPort: port,
            xtKeyName: address if isinstance(address, string_types) and not is_ip_literal(address) else UNKNOWN_NAME,
            xtKeyMacAddress: NO_MAC, xtKeyUniqueId: ""}
    info = _error_info(info, number, message)
    _face.event_executor().post(_face.call, ("XTSocketError", ("", info), "failed connections are not reported"))
    return ""


def XTOpenTCPConnection(theAddress, thePort, theBoundryString=None, theTimeout=DEFAULT_CONNECT_TIMEOUT,
                        binary=False, maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE):
    """This library's name: open an outgoing TCP connection; returns its ID, or "" on failure.

    Blocks until connected or failed (at most ``theTimeout`` seconds for the
    handshake).  The reason for a failure also arrives as ``XTSocketError("", info)``:
    103 for a name that does not resolve, else the system's error number
    (e.g. 111 connection refused, 110 timed out).  Data arrives in
    XTDataAvailable as for accepted connections; XTNewConnection is not
    called (the ID is the return value).
    """
    if not isinstance(theAddress, string_types) or not theAddress:
        raise TypeError("XTOpenTCPConnection: the address must be a string such as '192.168.1.20', not %r"
                        % (theAddress,))
    if isinstance(thePort, bool) or not isinstance(thePort, integer_types) or not 1 <= thePort <= 65535:
        return _open_failed(theAddress, thePort, xtErrInvalidPort,
                            "invalid port %r: ports are from 1 to 65535" % (thePort,))
    framing = _framing("XTOpenTCPConnection", theBoundryString)
    timeout = theTimeout or DEFAULT_CONNECT_TIMEOUT
    try:
        conn = connect(theAddress, thePort, None, timeout, start=False, framing=framing,
                       encoding=None if binary else "utf-8", max_message_size=maxMessageSize,
                       executor=_face.serial)
    except ConnectError as e:
        if e.kind == NOT_FOUND:
            number = xtErrNameResolution
        elif e.kind == TIMED_OUT:
            number = errno.ETIMEDOUT
        else:
            number = e.errno if e.errno and e.errno > 0 and e.kind != LOST_AT_ONCE else xtErrDisconnected
        return _open_failed(theAddress, thePort, number, str(e))
    xc = _XTConnection(conn, None, name=None if is_ip_literal(theAddress) else theAddress)
    conn.handler = xc
    _face.add_connection(xc)  # before any event can name it
    conn.start()
    return xc.id


def XTWriteConnection(theConnectionID, theData):
    """Write text (as UTF-8) or bytes exactly as given (no boundary added); True or False (106 logged)."""
    if not isinstance(theData, (text_type, binary_type, bytearray)):
        raise TypeError("XTWriteConnection: the data must be text or bytes, not %s %r; convert it with str()"
                        % (type(theData).__name__, theData))
    xc = _face.connection(theConnectionID)
    if xc is None:
        log.warning("XTWriteConnection(%r) failed with error %d: no open connection has that ID",
                    theConnectionID, xtErrInvalidState)
        return False
    try:
        xc.conn.send(theData)
        return True
    except ConnectionClosedError as e:
        log.warning("XTWriteConnection(%r) failed with error %d: %s", theConnectionID, xtErrInvalidState, e)
        return False


def XTCloseConnection(theConnectionID):
    """Close a connection; the script then gets its XTSocketError with 102.  False for an unknown ID."""
    xc = _face.connection(theConnectionID)
    if xc is None:
        log.warning("XTCloseConnection(%r): no open connection has that ID (error %d)",
                    theConnectionID, xtErrInvalidState)
        return False
    xc.conn.close()
    return True


def XTGetConnectionInfo(theConnectionID):
    """This library's addition: a copy of an open connection's info dictionary, or None."""
    xc = _face.connection(theConnectionID)
    return dict(xc.info) if xc is not None else None


# -- UDP ----------------------------------------------------------------------------


def XTStartUDPListener(thePort, host="", binary=False, broadcastAddress=None, maxDatagramSize=MAX_DATAGRAM):
    """Receive UDP datagrams on a port; returns a non-zero ID, or 0 (port taken, invalid: logged).

    Additions: ``host`` (the address to bind; '' = all), ``binary``,
    ``broadcastAddress`` (where ``xtBroadcastAddress`` sends; default
    255.255.255.255), ``maxDatagramSize``.
    """
    where = "XTStartUDPListener"
    holder = _XTDatagrams(None)

    def make(port):
        return UDPEndpoint(port, holder, host=host, encoding=None if binary else "utf-8",
                           broadcast_address=broadcastAddress, max_datagram=maxDatagramSize,
                           executor=_face.serial, start=False)
    endpoint, holder.listener_id = _start(where, UDP, thePort, host, make)
    if endpoint is None:
        return 0
    endpoint.start()
    return holder.listener_id


def XTStopUDPListener(theListenerID):
    """Stop a UDP listener (its port is free when this returns)."""
    return _stop("XTStopUDPListener", UDP, theListenerID)


def _udp(where, lid):
    ep = _face.listeners.get(lid, UDP)
    if ep is None:
        log.error("%s(%r, ...): no UDP listener has that ID", where, lid)
    return ep


def XTSendDatagram(theListenerID, theRemoteAddress, theRemotePort, theData):
    """Send a datagram from the listener's own socket and port; True or False (reason logged).

    ``xtBroadcastAddress`` as the address sends a broadcast.
    """
    where = "XTSendDatagram"
    if not isinstance(theData, (text_type, binary_type, bytearray)):
        raise TypeError("%s: the data must be text or bytes, not %s %r" % (where, type(theData).__name__, theData))
    ep = _udp(where, theListenerID)
    if ep is None:
        return False
    if isinstance(theRemotePort, bool) or not isinstance(theRemotePort, integer_types) \
            or not 1 <= theRemotePort <= 65535:
        log.error("%s(%r, %r, %r, ...) failed with error %d: ports are from 1 to 65535", where, theListenerID,
                  theRemoteAddress, theRemotePort, xtErrInvalidPort)
        return False
    try:
        if theRemoteAddress == xtBroadcastAddress:
            ep.send_broadcast(theData, theRemotePort)
        else:
            ep.send(theData, theRemoteAddress, theRemotePort)
        return True
    except NETWORK_ERRORS + (ValueError, TypeError) as e:
        if is_name_error(e):
            log.error("%s to %r failed with error %d: %s", where, theRemoteAddress, xtErrNameResolution,
                      error_text(e))
        else:
            log.error("%s to %r:%r failed: %s", where, theRemoteAddress, theRemotePort, e)
    return False


def _group_op(where, theListenerID, theGroup, op):
    """Run ``op(endpoint)`` for a multicast call: True, or False with the reason logged."""
    ep = _udp(where, theListenerID)
    if ep is None:
        return False
    try:
        op(ep)
        return True
    except NETWORK_ERRORS + (ValueError, TypeError) as e:
        if is_name_error(e):
            log.error("%s(%r, %r) failed with error %d: %s", where, theListenerID, theGroup,
                      xtErrNameResolution, error_text(e))
        else:
            log.error("%s(%r, %r) failed: %s", where, theListenerID, theGroup, e)
    return False


def XTJoinMulticastGroup(theListenerID, theGroup, theInterface=None):
    """Receive a multicast group (address or name) on a UDP listener; True or False (reason logged).

    Addition: ``theInterface``, the local address of the interface to join
    on (default: the system chooses); it is then also the interface the
    listener's datagrams to groups leave by.
    """
    def join(ep):
        ep.join_group(theGroup, theInterface)
        if theInterface:
            ep.set_multicast_interface(theInterface)
    return _group_op("XTJoinMulticastGroup", theListenerID, theGroup, join)


def XTLeaveMulticastGroup(theListenerID, theGroup, theInterface=None):
    """Stop receiving a multicast group; True, or False if it was not joined (logged)."""
    return _group_op("XTLeaveMulticastGroup", theListenerID, theGroup,
                     lambda ep: ep.leave_group(theGroup, theInterface))


# -- the HTML listener -------------------------------------------------------------


def _page_info(request, conn):
    return {xtKeyRemoteAddress: conn.remote_address, xtKeyRemotePort: conn.remote_port,
            xtKeyPeerPort: conn.remote_port, xtKeyUniqueId: conn.id, xtKeyMethod: request.method,
            xtKeyHeaders: request.headers_dict(), xtKeyQuery: dict(request.query),
            xtKeyFormData: dict(request.form()), xtKeyPostData: request.text()}


def _page_request(request, conn):
    fn = _face.find("XTPageRequest")
    if fn is None:
        _face.warn_once("XTPageRequest", "the script defines no XTPageRequest function: "
                        "the HTML listener answers 501")
        return 501, "501 Not Implemented: the plugin defines no XTPageRequest function\n", "text/plain"
    return fn(request.path, _page_info(request, conn))


def XTStartHTMLListener(thePort, host="", serialize=True):
    """Serve HTTP; returns a non-zero listener ID, or 0 (the reason is logged).

    Each request calls the script's ``XTPageRequest(thePath, theRequestInfo)``
    (the path with its leading '/', without the query) and its return value
    is the response, made inline: a body (status 200), ``(code, body)`` or
    ``(code, body, contentType)``; a dict or list is sent as JSON.  Port
    rules as for :func:`XTStartTCPListener`.  This library's additions:
    ``host``, and ``serialize`` (True: XTPageRequest calls run one at a
    time while connections are read and written in parallel).
    """
    server, lid = _start("XTStartHTMLListener", HTML, thePort, host,
                         lambda port: HTTPListener(port, _page_request, host=host, serialize=serialize,
                                                   server_name="xtcompat"))
    if server is not None:
        log.debug("HTML listener %d on port %d", lid, server.port)
    return lid


def XTStopHTMLListener(theListenerID):
    """Stop an HTML listener (open requests are closed)."""
    return _stop("XTStopHTMLListener", HTML, theListenerID)


# -- the script's life -----------------------------------------------------------


def XTRegisterHandlers(namespace):
    """Where the event functions are looked up: a module, a dict or an object (None: ``__main__``)."""
    if namespace is not None and not isinstance(namespace, dict) and not hasattr(namespace, "__dict__") \
            and not hasattr(namespace, "__getattr__"):
        raise TypeError("XTRegisterHandlers needs a module, a dict or an object, not %r" % (namespace,))
    _face.namespace = namespace
    with _face.lock:
        _face.warned.clear()


def XTStopAll():
    """Stop every listener and close every connection (each gets XTSocketError with 102).

    Also ends :func:`XTRunForever`.  Safe to call from an event function.
    """
    for _, kind, obj in _face.listeners.remove_all():
        try:
            obj.close()
        except Exception:
            log.exception("stopping a %s listener failed", kind)
    with _face.lock:
        conns = list(_face.connections.values())
    for xc in conns:
        xc.conn.close()
    _face.stop_requested.set()


def XTRunForever(timeout=None):
    """Block until Ctrl-C, :func:`XTStopAll` or ``timeout`` seconds, then stop everything.

    A plugin script otherwise runs off its end while its listeners are
    still working.  Returns "stopped", "interrupted" (Ctrl-C) or "timeout".
    """
    from tcpcom._compat import monotonic
    deadline = None if timeout is None else monotonic() + timeout
    how = "stopped"
    try:
        while not _face.stop_requested.is_set():
            left = 0.5 if deadline is None else min(0.5, deadline - monotonic())
            if left <= 0:
                how = "timeout"
                break
            _face.stop_requested.wait(left)
    except KeyboardInterrupt:
        how = "interrupted"
        log.info("Ctrl-C: stopping every listener and connection")
    XTStopAll()
    _face.stop_requested.clear()
    return how


def XTSerializeEvents(on=True):
    """This library's addition: run every event function one at a time, as in XTension.

    By default events of one connection (one UDP listener) run in order, one
    at a time, but events of different connections may run at the same time
    on different threads.  After ``XTSerializeEvents(True)`` the listeners and
    connections started afterwards share one queue: no two event functions
    ever run at once (a slow one then delays all the others).
    """
    _face.serial = SerialExecutor() if on else None


def XTSetNameLookupTimeout(seconds):
    """This library's addition: how long a peer's name (xtKeyName) is looked up (0: never; default 0.5 s)."""
    _face.peers.name_timeout = seconds


# -- the log ------------------------------------------------------------------------

_COLOUR = re.compile(r"^#?[0-9A-Fa-f]{6}$")
_console = []


class ColourFormatter(logging.Formatter):
    """Shows XTWriteLog's colour with ANSI escapes when the stream is a terminal."""

    def __init__(self, stream, fmt="%(asctime)s %(message)s", datefmt="%H:%M:%S"):
        logging.Formatter.__init__(self, fmt, datefmt)
        self.stream = stream

    def format(self, record):
        text = logging.Formatter.format(self, record)
        colour = getattr(record, "xtcolor", None)
        isatty = getattr(self.stream, "isatty", None)
        if colour and isatty is not None and isatty():
            r, g, b = int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16)
            text = "\x1b[38;2;%d;%d;%dm%s\x1b[0m" % (r, g, b, text)
        return text


class _ConsoleHandler(logging.StreamHandler):
    """A console handler that shows what the terminal cannot encode as escapes, never fails."""

    def emit(self, record):
        try:
            console_write(self.stream, self.format(record) + "\n")
            self.flush()
        except Exception:
            self.handleError(record)


def _ensure_console():
    if _console:
        return
    _console.append(True)
    if script_log.level == logging.NOTSET:
        script_log.setLevel(logging.INFO)
    if not script_log.handlers and not logging.getLogger().handlers:
        handler = _ConsoleHandler(sys.stdout)
        handler.setFormatter(ColourFormatter(sys.stdout))
        script_log.addHandler(handler)
        script_log.propagate = False


def _part(p):
    if PY2 and not isinstance(p, text_type):  # pragma: no cover - Python 2 / Jython
        if isinstance(p, binary_type):
            return p.decode("utf-8", "replace")
        return text_type(p)
    return p if isinstance(p, text_type) else str(p)


def XTWriteLog(*parts):
    """Write one line to the log: the parts joined as ``print`` joins them.

    A last argument (after at least one other) that is a colour constant or a
    6-hex-digit colour string such as ``"FF0000"`` is the line's colour
    (on the record as ``record.xtcolor``; shown on a terminal).  Goes to the
    ``xtcompat`` logger, shown on the console unless logging is configured.
    """
    parts = list(parts)
    colour = None
    if len(parts) >= 2 and isinstance(parts[-1], string_types) and _COLOUR.match(parts[-1]):
        colour = parts.pop().lstrip("#").upper()
    _ensure_console()
    script_log.info(u" ".join(_part(p) for p in parts), extra={"xtcolor": colour})
