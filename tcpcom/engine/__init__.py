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

An outgoing connection that dials again by itself once lost (a device that
restarts) is a :class:`ReconnectingConnection`; its handler also hears
``reconnecting(conn, attempt, delay, reason)`` and ``gave_up(conn, reason)``
(see :mod:`tcpcom.engine.redial`)::

    keeper = ReconnectingConnection("192.168.1.20", 5000, handler, delay=0.5, max_delay=30, framing="line")
"""
from __future__ import absolute_import

from ..framing import DEFAULT_MAX_MESSAGE_SIZE, MessageTooLarge
from .checks import check_callable, check_host, check_number, check_options, check_port, is_ip_literal
from .connection import DEFAULT_SEND_TIMEOUT, Connection, FunctionHandler, Handler
from .lifecycle import State
from .deadlines import watchdog
from .dialing import DEFAULT_CONNECT_TIMEOUT, connect, open_socket, probe_hangup
from .errors import (CLOSED, DROPPED, ERROR, FAILED, LOST_AT_ONCE, NOT_FOUND, OCCUPIED, REFUSED, TIMED_OUT,
                     TIMEOUT, TOO_LARGE, UNREACHABLE, ConnectError, ConnectionClosedError, DeadlineExceeded,
                     NETWORK_ERRORS, PortInUseError, ReadTimeout, SendTimeout, end_kind, error_number,
                     error_text, is_name_error)
from .hostinfo import NO_MAC, UNKNOWN_NAME, PeerInfo, local_addresses, resolves
from .listener import DEFAULT_BACKLOG, DEFAULT_MAX_CONNECTIONS, Listener
from .outbound import BIG_SEND
from .reading import RECV_SIZE, current_reader
from .redial import (DEFAULT_MAX_RECONNECT_DELAY, DEFAULT_RECONNECT_DELAY, Backoff, ReconnectFunctionHandler,
                     ReconnectHandler, ReconnectingConnection, ReconnectingError, ReconnectState)
from .sockets import wait_readable, writable_now

__all__ = ["Listener", "Connection", "State", "Handler", "FunctionHandler", "connect", "open_socket", "probe_hangup",
           "ConnectError", "ConnectionClosedError", "PortInUseError", "ReadTimeout", "DeadlineExceeded",
           "SendTimeout", "MessageTooLarge", "end_kind", "error_number", "error_text", "is_name_error", "NETWORK_ERRORS",
           "REFUSED", "NOT_FOUND", "TIMED_OUT", "OCCUPIED", "UNREACHABLE", "LOST_AT_ONCE", "FAILED",
           "CLOSED", "TOO_LARGE", "TIMEOUT", "DROPPED", "ERROR", "check_port", "check_number", "check_host",
           "check_options", "check_callable", "is_ip_literal", "local_addresses", "resolves", "PeerInfo", "NO_MAC",
           "UNKNOWN_NAME", "wait_readable", "writable_now", "current_reader", "watchdog",
           "DEFAULT_MAX_MESSAGE_SIZE", "DEFAULT_MAX_CONNECTIONS", "DEFAULT_BACKLOG", "DEFAULT_SEND_TIMEOUT",
           "DEFAULT_CONNECT_TIMEOUT", "BIG_SEND", "RECV_SIZE",
           "ReconnectingConnection", "ReconnectHandler", "ReconnectFunctionHandler", "ReconnectState",
           "ReconnectingError", "Backoff", "DEFAULT_RECONNECT_DELAY", "DEFAULT_MAX_RECONNECT_DELAY"]
