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

    ``thePort``: from 1024 to 65535, or 0 to let the system choose a free
    port (learn it with :func:`XTGetListenerPort`).  Any other port is
    error 107 (logged, 0 returned); so is a port that is not an int.  A
    port another program holds also returns 0, with a log line that says so.

    ``theBoundryString`` (XTension's spelling): with one (``"\\r\\n"``,
    ``"\\0"``, any text or bytes) each packet arrives in its own
    ``XTDataAvailable``, the boundary removed, however TCP cut the stream;
    without one (None or "") data arrives as it comes and the script keeps
    its own buffer (a UTF-8 character cut between two reads is still
    delivered whole).

    Each incoming connection calls the script's ``XTNewConnection``, which
    accepts it by returning True; then ``XTDataAvailable`` for its data and,
    last, ``XTSocketError``.

    This library's additions (keyword arguments):

    - ``host``: the address to listen on; "" (default) is every address,
      IPv4 and, where the system has it, IPv6; "127.0.0.1" is this machine
      only;
    - ``binary``: True delivers bytes instead of text;
    - ``maxMessageSize``: bytes (16 MiB); a longer packet ends its
      connection with ``XTSocketError`` 108;
    - ``maxConnections``: 4096; connections over it are closed at once and
      logged, with no event;
    - ``idleTimeout``: seconds (default None: off); a connection silent that
      long is closed with ``XTSocketError`` 102.
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
    """Stop a TCP listener and close its connections; True, or False for an unknown ID (logged).

    Each of its open connections gets ``XTSocketError`` with 102 (the
    script's own outgoing connections are not touched).  The port is free
    again when this returns.  The ID of a UDP or HTML listener is refused
    (False, logged).
    """
    return stop_listener("XTStopTCPListener", TCP, theListenerID)


def XTGetListenerPort(theListenerID):
    """This library's addition: the port a TCP, UDP or HTML listener is bound to; 0 if there is no such listener.

    Useful after ``XTStartTCPListener(0)``, where the system chose the port.
    """
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
    """This library's name: open an outgoing TCP connection; returns its ID (a string), or "" on failure.

    ``theAddress``: an address such as "192.168.1.20" or a host name (not a
    string: TypeError).  ``thePort``: 1 to 65535 (else error 107).
    ``theBoundryString``: as for :func:`XTStartTCPListener`.  Blocks until
    connected or failed, at most ``theTimeout`` seconds (10) for the
    handshake.  The reason for a failure arrives as ``XTSocketError("",
    info)``: 103 for a name that does not resolve, else the system's error
    number (on Linux 111 connection refused, 110 timed out).

    Data arrives in ``XTDataAvailable`` as for accepted connections, and the
    end in ``XTSocketError``; ``XTNewConnection`` is not called (the ID is
    the return value).  The info's ``xtKeyName`` is the name given, if one
    was.  Additions: ``binary`` and ``maxMessageSize`` as for
    :func:`XTStartTCPListener`.

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
    """Send text (as UTF-8) or bytes exactly as given (no boundary added); True, or False.

    Works for accepted and outgoing connections.  False, with error 106 in
    the log, for an unknown or closed connection (and for a ``reconnect=``
    connection while it is away).  Data that is neither text nor bytes is a
    TypeError.  Returns once the system has taken all of the data (it waits
    while the peer reads more slowly than the script writes); two writes
    from different threads never interleave, and a close afterwards still
    sends what was written.
    """
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
    """Close an accepted or outgoing connection; True, or False for an unknown ID (106 logged).

    What was written before is still sent.  The connection's last event,
    ``XTSocketError`` with 102, follows; after it the ID is no longer valid.
    Safe to call from any event function.
    """
    xc = _open_connection("XTCloseConnection", theConnectionID)
    if xc is None:
        return False
    away = isinstance(xc, XTKeptConnection) and xc.conn.connection is None
    xc.conn.close()
    if away:  # reconnecting: its loss was reported already, no other event comes
        face.drop_connection(xc)
    return True


def XTGetConnectionInfo(theConnectionID):
    """This library's addition: a copy of an open connection's info dictionary, or None for an unknown ID.

    The same keys as the info the events get (``xtKeyRemoteAddress``,
    ``xtKeyRemotePort``, ``xtKeyPeerPort``, ``xtKeyName``,
    ``xtKeyMacAddress``, ``xtKeyUniqueId``).
    """
    xc = face.connection(theConnectionID)
    return dict(xc.info) if xc is not None else None
