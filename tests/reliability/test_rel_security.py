"""Security defaults: what listeners bind to, binding one address, limits on by default."""
import socket

import pytest

from helpers import raw_client, recv_until
from tcpcom.engine import DEFAULT_MAX_CONNECTIONS, DEFAULT_SEND_TIMEOUT, Handler, Listener
from tcpcom.framing import DEFAULT_MAX_MESSAGE_SIZE
from tcpcom.tcp import TCPServer


class Echo(Handler):
    def message_received(self, conn, message):
        conn.send_message(message)


def test_default_is_all_interfaces_and_host_binds_one_address(figures):
    """By default (host='') a Listener and a TCPServer bind all interfaces, like the original
    tcpcom (:: taking IPv4 and IPv6, or 0.0.0.0 where the system has no IPv6); host='127.0.0.1' binds only the loopback address (and still
    serves local clients); host='::1' binds IPv6 loopback where the machine has IPv6."""
    bound = {}
    for name, make, sock_of in (
            ("Listener()", lambda h: Listener(0, Echo, **h), lambda o: o.sock),
            ("TCPServer()", lambda h: TCPServer(0, None, **h), lambda o: o._listener.sock)):
        for host in (None, "127.0.0.1"):
            obj = make({} if host is None else {"host": host})
            try:
                addr = sock_of(obj).getsockname()[0]
                bound["%s host=%s" % (name, "default" if host is None else host)] = addr
                assert addr in (("::", "0.0.0.0") if host is None else (host,))
            finally:
                obj.close() if hasattr(obj, "close") else obj.terminate()
    lst = Listener(0, Echo, host="127.0.0.1")
    try:
        s = raw_client(lst.port)
        s.sendall(b"local\0")
        assert recv_until(s, 1) == b"local\0"
        s.close()
    finally:
        lst.close()
    if socket.has_ipv6:
        try:
            lst = Listener(0, Echo, host="::1")
        except (OSError, socket.error):
            bound["Listener host=::1"] = "IPv6 not available here"
        else:
            try:
                bound["Listener host=::1"] = lst.sock.getsockname()[0]
                s = socket.create_connection(("::1", lst.port), 5)
                s.sendall(b"v6\0")
                assert recv_until(s, 1) == b"v6\0"
                s.close()
            finally:
                lst.close()
    figures.update(bound)


def test_limits_are_on_by_default():
    """Limits are on by default, with the documented values: message size 16 MiB,
    4096 connections per Listener (1 for TCPServer), send timeout 30 s; idle time is off
    by default and set with read_timeout / setTimeout."""
    lst = Listener(0, Echo, host="127.0.0.1")
    server = TCPServer(0, None, host="127.0.0.1")
    try:
        assert DEFAULT_MAX_MESSAGE_SIZE == 16 * 1024 * 1024
        assert lst.options["max_message_size"] == DEFAULT_MAX_MESSAGE_SIZE
        assert lst.max_connections == DEFAULT_MAX_CONNECTIONS == 4096
        assert lst.options["send_timeout"] == DEFAULT_SEND_TIMEOUT == 30.0
        assert lst.options["read_timeout"] is None
        assert server._listener.max_connections == 1
        assert server._listener.options["max_message_size"] == DEFAULT_MAX_MESSAGE_SIZE
        assert server._listener.options["send_timeout"] == DEFAULT_SEND_TIMEOUT
        server.setTimeout(7)
        assert server._listener.options["read_timeout"] == 7
    finally:
        lst.close()
        server.terminate()
