"""TCP in the XTension face: listeners, accepted and outgoing connections.

Every accepted or opened connection gets an :class:`XTConnection`, the
engine handler that turns its events into the script's ``XTNewConnection``
(accepted ones only: its answer accepts or refuses), ``XTDataAvailable``
and, last, ``XTSocketError``.  Connection IDs are the engine's
(``conn.id``); listener IDs come from the face's registry.
"""
from __future__ import absolute_import

import errno
import logging

from tcpcom._compat import binary_type, string_types, text_type
from tcpcom.diagnostics import excerpt
from tcpcom.engine import (DEFAULT_MAX_CONNECTIONS, LOST_AT_ONCE, NOT_FOUND, TIMED_OUT, ConnectError,
                           ConnectionClosedError, Listener, ReconnectingConnection, check_number, connect,
                           is_ip_literal)
from tcpcom.framing import DEFAULT_MAX_MESSAGE_SIZE, DelimiterFramer

from .constants import (NO_MAC, UNKNOWN_NAME, xtErrDisconnected, xtErrInvalidPort, xtErrInvalidState,
                        xtErrNameResolution, xtKeyMacAddress, xtKeyName, xtKeyPeerPort, xtKeyRemoteAddress,
                        xtKeyRemotePort, xtKeyUniqueId)
from .face import TCP, check_data, error_for, error_info, face, is_port, start_listener, stop_listener

log = logging.getLogger("tcpcom.xtcompat")

#: seconds XTOpenTCPConnection waits for the handshake by default
DEFAULT_CONNECT_TIMEOUT = 10


def framing(where, boundary):
    """The engine framing for a boundary string: None -> raw chunks, else split on it exactly."""
    if boundary is None or boundary == "" or boundary == b"":
        return None
    if not isinstance(boundary, (text_type, binary_type)):
        raise TypeError("%s: the boundary must be a string such as '\\r\\n' or None, not %s"
                        % (where, excerpt(boundary)))
    # a factory, so that "line" or "raw" are taken literally as boundaries too
    return lambda max_size: DelimiterFramer(boundary, max_size)


class XTConnection(object):
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
        peers = face.peers
        info = dict(self.info)
        info[xtKeyMacAddress] = peers.mac(conn.remote_address)
        if not self.name:
            info[xtKeyName] = peers.name(conn.remote_address)
        self.info = info
        if not self.incoming:
            return
        fn = face.find("XTNewConnection")
        if fn is None:
            face.warn_once(("XTNewConnection", self.listener_id),
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
                face.warn_once(("XTNewConnection-None",),
                               "XTNewConnection returned None (no return statement?): the connection from "
                               "%s is refused; return True to accept it", conn.remote_address)
        if not accept:
            self.refused = True
            face.drop_connection(self)
            conn.close()

    def message_received(self, conn, data):
        if self.refused:
            return
        face.call("XTDataAvailable", (data, self.id, dict(self.info)),
                  "data from the connections is not delivered")

    def connection_lost(self, conn, reason):
        if self.refused:
            return
        number, message = error_for(reason)
        try:
            face.call("XTSocketError", (self.id, error_info(self.info, number, message)),
                      "the ends of connections are not reported")
        finally:
            face.drop_connection(self)


class XTKeptConnection(XTConnection):
    """The handler of an outgoing connection opened with ``reconnect=``: its ID lives on
    across reconnects; a loss is reported (``XTSocketError``, 102) and the return too
    (``XTReconnected``); only ``XTCloseConnection`` (or giving up) ends the ID."""

    def connection_made(self, conn):
        XTConnection.connection_made(self, conn)
        if conn.connects > 1:
            face.call("XTReconnected", (self.id, dict(self.info)), "returns of connections are not reported")

    def connection_lost(self, conn, reason):
        number, message = error_for(reason)
        try:
            face.call("XTSocketError", (self.id, error_info(self.info, number, message)),
                      "the ends of connections are not reported")
        finally:
            if conn.is_done():  # closed by the script (or given up): the ID ends
                face.drop_connection(self)

    def reconnecting(self, conn, attempt, delay, reason):
        log.debug("connection %s to %s:%s: dialling again in %.2f s (attempt %d)", self.id, conn.host,
                  conn.port, delay, attempt)

    def gave_up(self, conn, reason):
        log.warning("connection %s to %s:%s: gave up reconnecting: %s", self.id, conn.host, conn.port, reason)
        face.drop_connection(self)


class _Holder(object):
    listener_id = None


# -- TCP listeners ---------------------------------------------------------------


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
        framer = framing(where, theBoundryString)
    except TypeError as e:
        log.error("%s(%s) failed: %s", where, excerpt(thePort), e)
        return 0
    holder = _Holder()

    def on_connection(conn):
        xc = XTConnection(conn, holder.listener_id, remote_port=conn.local_port)
        face.add_connection(xc)
        return xc

    def make(port):
        serial = face.serial
        return Listener(port, on_connection, host=host, framing=framer,
                        encoding=None if binary else "utf-8", max_message_size=maxMessageSize,
                        max_connections=maxConnections, read_timeout=idleTimeout,
                        serialize=serial is not None, executor=serial, start=False)
    return start_listener(where, TCP, thePort, host, make, holder)


def XTStopTCPListener(theListenerID):
    """Stop listening and close the listener's connections (each gets XTSocketError with 102)."""
    return stop_listener("XTStopTCPListener", TCP, theListenerID)


def XTGetListenerPort(theListenerID):
    """This library's addition: the port a TCP or UDP listener is bound to (0 if no such listener)."""
    obj = face.listeners.get(theListenerID)
    return getattr(obj, "port", 0) if obj is not None else 0


# -- TCP connections ---------------------------------------------------------------


def _open_failed(address, port, number, message):
    log.warning("XTOpenTCPConnection(%s, %s) failed with error %d: %s", excerpt(address), excerpt(port), number,
                message)
    info = {xtKeyRemoteAddress: address, xtKeyRemotePort: port, xtKeyPeerPort: port,
            xtKeyName: address if isinstance(address, string_types) and not is_ip_literal(address) else UNKNOWN_NAME,
            xtKeyMacAddress: NO_MAC, xtKeyUniqueId: ""}
    info = error_info(info, number, message)
    face.event_executor().post(face.call, ("XTSocketError", ("", info), "failed connections are not reported"))
    return ""


def XTOpenTCPConnection(theAddress, thePort, theBoundryString=None, theTimeout=DEFAULT_CONNECT_TIMEOUT,
                        binary=False, maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE, reconnect=None):
    """This library's name: open an outgoing TCP connection; returns its ID, or "" on failure.

    Blocks until connected or failed (at most ``theTimeout`` seconds for the
    handshake).  The reason for a failure also arrives as ``XTSocketError("", info)``:
    103 for a name that does not resolve, else the system's error number
    (e.g. 111 connection refused, 110 timed out).  Data arrives in
    XTDataAvailable as for accepted connections; XTNewConnection is not
    called (the ID is the return value).

    ``reconnect=seconds`` (this library's addition): once connected, a lost
    connection is dialled again by itself, first after ``seconds``, then less
    and less often (at most every 30 s); the ID stays the same.  The script
    hears the loss (``XTSocketError``, 102) and the return
    (``XTReconnected(theConnectionID, theConnectionInfo)``);
    ``XTWriteConnection`` returns False while it is away and works again once
    it is back; ``XTCloseConnection`` stops it.  The first connect still
    fails at once, as without ``reconnect``.
    """
    if not isinstance(theAddress, string_types) or not theAddress:
        raise TypeError("XTOpenTCPConnection: the address must be a string such as '192.168.1.20', not %s"
                        % excerpt(theAddress))
    if not is_port(thePort):
        return _open_failed(theAddress, thePort, xtErrInvalidPort,
                            "invalid port %s: ports are from 1 to 65535" % excerpt(thePort))
    framer = framing("XTOpenTCPConnection", theBoundryString)
    timeout = theTimeout or DEFAULT_CONNECT_TIMEOUT
    options = dict(framing=framer, encoding=None if binary else "utf-8", max_message_size=maxMessageSize,
                   executor=face.serial)
    try:
        if reconnect is not None:
            check_number(reconnect, "reconnect", 0)
            return _open_kept(theAddress, thePort, timeout, reconnect, options)
        conn = connect(theAddress, thePort, None, timeout, start=False, **options)
    except ConnectError as e:
        if e.kind == NOT_FOUND:
            number = xtErrNameResolution
        elif e.kind == TIMED_OUT:
            number = errno.ETIMEDOUT
        else:
            number = e.errno if e.errno and e.errno > 0 and e.kind != LOST_AT_ONCE else xtErrDisconnected
        return _open_failed(theAddress, thePort, number, str(e))
    xc = XTConnection(conn, None, name=None if is_ip_literal(theAddress) else theAddress)
    conn.handler = xc
    face.add_connection(xc)  # before any event can name it
    conn.start()
    return xc.id


def _open_kept(address, port, timeout, delay, options):
    keeper = ReconnectingConnection(address, port, None, timeout, delay=delay, max_delay=max(delay, 30.0),
                                    start=False, **options)
    xc = XTKeptConnection(keeper, None, name=None if is_ip_literal(address) else address)
    keeper.handler = xc
    face.add_connection(xc)  # before any event can name it
    try:
        keeper.dial()
    except ConnectError:
        face.drop_connection(xc)
        keeper.close()
        raise
    return xc.id


def _open_connection(where, theConnectionID):
    """The open connection with that ID, or None after logging error 106."""
    xc = face.connection(theConnectionID)
    if xc is None:
        log.warning("%s(%s) failed with error %d: no open connection has that ID",
                    where, excerpt(theConnectionID), xtErrInvalidState)
    return xc


def XTWriteConnection(theConnectionID, theData):
    """Write text (as UTF-8) or bytes exactly as given (no boundary added); True or False (106 logged)."""
    check_data("XTWriteConnection", theData)
    xc = _open_connection("XTWriteConnection", theConnectionID)
    if xc is None:
        return False
    try:
        xc.conn.send(theData)
        return True
    except ConnectionClosedError as e:
        log.warning("XTWriteConnection(%s) failed with error %d: %s", excerpt(theConnectionID), xtErrInvalidState, e)
        return False


def XTCloseConnection(theConnectionID):
    """Close a connection; the script then gets its XTSocketError with 102.  False for an unknown ID."""
    xc = _open_connection("XTCloseConnection", theConnectionID)
    if xc is None:
        return False
    away = isinstance(xc, XTKeptConnection) and xc.conn.connection is None
    xc.conn.close()
    if away:  # reconnecting: its loss was reported already, no other event comes
        face.drop_connection(xc)
    return True


def XTGetConnectionInfo(theConnectionID):
    """This library's addition: a copy of an open connection's info dictionary, or None."""
    xc = face.connection(theConnectionID)
    return dict(xc.info) if xc is not None else None
