"""Addresses: IPv4 peers are plain dotted quads everywhere; the default host takes IPv4 and IPv6.

- A listener on ``host="::"`` sees an IPv4 client as ``::ffff:127.0.0.1``;
  every face reports it as ``127.0.0.1`` (TCPServer's CONNECTED, the engine's
  ``remote_address``, xtcompat's ``xtKeyRemoteAddress``, HTTPServer).
- With the default ``host=""`` a TCP listener (TCPServer, the engine's
  Listener, the HTTP servers, xtcompat's listeners) accepts IPv4 *and* IPv6
  clients where the system allows it, and IPv4 alone where it has no IPv6.
- UDP endpoints keep IPv4 on ``host=""`` (broadcast and multicast are IPv4).

The default-host tests bind ``host=""`` (all interfaces) but connect only
via loopback addresses.
"""
import errno
import logging
import socket

import pytest

from helpers import DEADLINE, Recorder, get, raw_client, recv_until, wait_until
from tcpcom import HTTPServer, TCPClient, TCPServer
from tcpcom.engine import Handler, Listener, connect
from tcpcom.engine import sockets
from tcpcom.engine.sockets import plain_address
from tcpcom.httpserver import HTTPListener
from tcpcom.udp import UDPEndpoint
import xtcompat
from xtcompat import api


def _ipv6_loopback():
    """None if a socket can listen on ::1 and be reached there, else why not."""
    if not socket.has_ipv6:
        return "this Python has no IPv6 (socket.has_ipv6 is False)"
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except (OSError, socket.error) as e:
        return "no IPv6 sockets here: %s" % e
    try:
        s.bind(("::1", 0))
        s.listen(1)
        c = socket.create_connection(("::1", s.getsockname()[1]), DEADLINE)
        c.close()
    except (OSError, socket.error) as e:
        return "::1 is not available here (IPv6 loopback not configured): %s" % e
    finally:
        s.close()
    return None


NO_IPV6 = _ipv6_loopback()
needs_ipv6 = pytest.mark.skipif(NO_IPV6 is not None, reason=NO_IPV6 or "")


def v6_client(port):
    s = socket.create_connection(("::1", port), DEADLINE)
    s.settimeout(DEADLINE)
    return s


class Echo(Handler):
    def message_received(self, conn, message):
        conn.send_message(message)


# -- plain_address: one function ---------------------------------------------------------


@pytest.mark.parametrize("seen, reported", [
    ("127.0.0.1", "127.0.0.1"),
    ("::ffff:127.0.0.1", "127.0.0.1"),             # an IPv4 client of an IPv6 socket (CPython)
    ("::FFFF:192.168.1.20", "192.168.1.20"),
    ("::1", "::1"),
    ("0:0:0:0:0:0:0:1", "::1"),                    # Jython's long form
    ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  # RFC 5952: the first longest run of zeros
    ("2001:DB8::8:800:200C:417A", "2001:db8::8:800:200c:417a"),
    ("fe80::1%lo", "fe80::1%lo"),                  # a zone stays
    ("fe80:0:0:0:0:0:0:1%eth0", "fe80::1%eth0"),
    ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
    ("1:0:3:4:5:6:7:8", "1:0:3:4:5:6:7:8"),        # one zero group is not shortened
    ("::", "::"),
    ("not an address", "not an address"),
])
def test_plain_address_reports_ipv4_as_a_dotted_quad_and_ipv6_in_its_short_form(seen, reported):
    assert plain_address(seen) == reported


# -- host="::": an IPv4 client is 127.0.0.1 in every face --------------------------------


def _v6_any_listener_or_skip():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::", 0))
        s.close()
    except (OSError, socket.error) as e:
        pytest.skip("cannot listen on '::' here: %s" % e)


def test_tcpserver_on_ipv6_any_reports_an_ipv4_client_as_a_dotted_quad():
    _v6_any_listener_or_skip()
    rec = Recorder()
    server = TCPServer(0, rec, host="::")
    try:
        s = raw_client(server.getPort())
        assert rec.wait_state("CONNECTED") and rec.messages("CONNECTED") == ["127.0.0.1"]
        s.close()
    finally:
        server.terminate()


def test_engine_listener_on_ipv6_any_reports_an_ipv4_peer_as_a_dotted_quad():
    _v6_any_listener_or_skip()
    seen = []
    listener = Listener(0, lambda conn: seen.append((conn.remote_address, conn.local_address)), host="::")
    try:
        s = raw_client(listener.port)
        wait_until(lambda: seen)
        assert seen == [("127.0.0.1", "127.0.0.1")]
        s.close()
    finally:
        listener.close()


def test_an_outgoing_connection_to_a_mapped_address_reports_dotted_quads():
    _v6_any_listener_or_skip()
    listener = Listener(0, Echo, host="::")
    try:
        conn = connect("::ffff:127.0.0.1", listener.port, Echo())
        assert (conn.remote_address, conn.local_address) == ("127.0.0.1", "127.0.0.1")
        conn.close()
    finally:
        listener.close()


def test_engine_listener_on_ipv6_any_refuses_an_ipv4_peer_naming_its_dotted_quad():
    _v6_any_listener_or_skip()
    refused = []
    listener = Listener(0, Echo, host="::", max_connections=1, on_refused=refused.append)
    try:
        first = raw_client(listener.port)
        first.sendall(b"x\0")
        assert recv_until(first, 1) == b"x\0"
        second = raw_client(listener.port)
        wait_until(lambda: refused)
        assert refused[0][0] == "127.0.0.1"
        first.close()
        second.close()
    finally:
        listener.close()


@pytest.fixture
def script():
    events = []

    class Script(object):
        def XTNewConnection(self, theConnectionID, theConnectionInfo):
            events.append(dict(theConnectionInfo))
            return True
    xtcompat.XTRegisterHandlers(Script())
    yield events
    xtcompat.XTStopAll()
    api._face.stop_requested.clear()
    xtcompat.XTRegisterHandlers(None)


def test_xtcompat_on_ipv6_any_reports_an_ipv4_client_as_a_dotted_quad(script):
    _v6_any_listener_or_skip()
    lid = xtcompat.XTStartTCPListener(0, "\n", host="::")
    assert lid
    s = raw_client(xtcompat.XTGetListenerPort(lid))
    try:
        wait_until(lambda: script)
        assert script[0][xtcompat.xtKeyRemoteAddress] == "127.0.0.1"
    finally:
        s.close()


def test_httpserver_on_ipv6_any_reports_an_ipv4_client_as_a_dotted_quad():
    _v6_any_listener_or_skip()
    server = HTTPServer(lambda ip, name, params: ip, port=0, host="::")
    try:
        status, _, body = get("http://127.0.0.1:%d/" % server.getPort())
        assert (status, body) == (200, b"127.0.0.1")
    finally:
        server.terminate()


@needs_ipv6
def test_udp_endpoint_on_ipv6_any_reports_an_ipv4_sender_as_a_dotted_quad_and_can_answer_it():
    got = []
    answers = []
    ep = UDPEndpoint(0, lambda endpoint, data, address: (got.append(address), endpoint.send("pong", *address)),
                     host="::")
    peer = UDPEndpoint(0, lambda endpoint, data, address: answers.append(data), host="127.0.0.1")
    try:
        peer.send("ping", "127.0.0.1", ep.port)
        wait_until(lambda: answers)
        assert got == [("127.0.0.1", peer.port)]
        assert answers == ["pong"]
    finally:
        ep.close()
        peer.close()


# -- the default host: IPv4 and IPv6 clients -------------------------------------------


def test_default_tcpserver_takes_an_ipv4_client():
    rec = Recorder()
    server = TCPServer(0, rec, host="")
    try:
        client = TCPClient("127.0.0.1", server.getPort(), None)
        assert client.connect(DEADLINE)
        assert rec.wait_state("CONNECTED") and rec.messages("CONNECTED") == ["127.0.0.1"]
        client.disconnect()
    finally:
        server.terminate()


@needs_ipv6
def test_default_tcpserver_takes_an_ipv6_client():
    rec = Recorder()
    server = TCPServer(0, rec)  # host="" by default
    try:
        client = TCPClient("::1", server.getPort(), Recorder("client"))
        assert client.connect(DEADLINE), "an IPv6 client got CONNECTION_FAILED from the default server"
        assert rec.wait_state("CONNECTED") and rec.messages("CONNECTED") == ["::1"]
        client.sendMessage("over IPv6")
        assert rec.wait_messages(1) == ["over IPv6"]
        client.disconnect()
    finally:
        server.terminate()


@needs_ipv6
def test_default_engine_listener_takes_ipv4_and_ipv6_clients():
    listener = Listener(0, Echo, host="")
    try:
        for make, address in ((raw_client, "127.0.0.1"), (v6_client, "::1")):
            s = make(listener.port)
            s.sendall(b"hi\0")
            assert recv_until(s, 1) == b"hi\0"
            wait_until(lambda: [c for c in listener.connections if c.remote_address == address],
                       what="a connection from %s" % address)
            s.close()
        conn = connect("::1", listener.port, Echo())
        assert conn.remote_address == "::1"
        conn.close()
    finally:
        listener.close()


@needs_ipv6
def test_default_http_servers_take_ipv4_and_ipv6_clients():
    server = HTTPServer(lambda ip, name, params: ip, port=0)
    listener = HTTPListener(0, lambda request, conn: conn.remote_address)
    try:
        for port in (server.getPort(), listener.port):
            assert get("http://127.0.0.1:%d/" % port)[::2] == (200, b"127.0.0.1")
            assert get("http://[::1]:%d/" % port)[::2] == (200, b"::1")
    finally:
        server.terminate()
        listener.close()


@needs_ipv6
def test_default_xtcompat_listener_takes_ipv4_and_ipv6_clients(script):
    lid = xtcompat.XTStartTCPListener(0, "\n")
    port = xtcompat.XTGetListenerPort(lid)
    a = raw_client(port)
    b = v6_client(port)
    try:
        wait_until(lambda: len(script) == 2)
        assert sorted(info[xtcompat.xtKeyRemoteAddress] for info in script) == ["127.0.0.1", "::1"]
    finally:
        a.close()
        b.close()


def test_where_the_system_has_no_ipv6_the_default_listener_takes_ipv4(monkeypatch, caplog):
    real = sockets._new_socket

    def no_ipv6(family, kind):
        if family == socket.AF_INET6:
            raise socket.error(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        return real(family, kind)
    monkeypatch.setattr(sockets, "_new_socket", no_ipv6)
    with caplog.at_level(logging.DEBUG, logger="tcpcom"):
        listener = Listener(0, Echo)
        server = TCPServer(0, None)
    try:
        assert listener.sock.family == socket.AF_INET
        s = raw_client(listener.port)
        s.sendall(b"v4\0")
        assert recv_until(s, 1) == b"v4\0"
        s.close()
        client = TCPClient("127.0.0.1", server.getPort(), None)
        assert client.connect(DEADLINE)
        client.disconnect()
    finally:
        listener.close()
        server.terminate()
    assert "IPv4 only" in caplog.text


def test_where_python_has_no_ipv6_the_default_listener_takes_ipv4(monkeypatch):
    monkeypatch.setattr(socket, "has_ipv6", False)
    listener = Listener(0, Echo)
    try:
        assert listener.sock.family == socket.AF_INET
        s = raw_client(listener.port)
        s.sendall(b"v4\0")
        assert recv_until(s, 1) == b"v4\0"
        s.close()
    finally:
        listener.close()


@pytest.mark.parametrize("family", ["IPv4", pytest.param("IPv6", marks=needs_ipv6)])
def test_a_taken_port_is_reported_in_use_not_bound_on_the_other_family(family):
    """Held by another program on one family only: PORT_IN_USE, not a server on the other one."""
    if family == "IPv4":
        taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        taken.bind(("0.0.0.0", 0))
    else:
        taken = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        taken.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        taken.bind(("::", 0))
    taken.listen(1)
    rec = Recorder()
    try:
        server = TCPServer(taken.getsockname()[1], rec)
        assert rec.wait_state("PORT_IN_USE")
        assert server.isTerminated()
    finally:
        taken.close()


def test_default_udp_endpoint_stays_ipv4_for_broadcast_and_multicast():
    ep = UDPEndpoint(0)
    try:
        assert ep.sock.family == socket.AF_INET
        assert ep.send("to myself", "127.0.0.1", ep.port) == len("to myself")
    finally:
        ep.close()
