"""xtcompat, the XTension plugin API, over loopback: every function and event."""
import errno
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import types

import pytest

from helpers import DEADLINE, OverlapMeter, Proc, ctrl_c, raw_client, wait_until
from netutil import NetNS, loopback_multicast_ok, netns_available
import xtcompat
from xtcompat import *  # noqa: F401,F403  -- as a ported script does
from xtcompat import api
from tcpcom.engine.hostinfo import PeerInfo, parse_neigh, parse_proc_arp
from xtcompat.registry import Registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Script(object):
    """The event functions of a plugin script; records every call."""

    def __init__(self, accept=True, echo=False):
        self.accept = accept
        self.echo = echo
        self.events = []
        self.cond = threading.Condition()

    def _add(self, *event):
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def XTNewConnection(self, theConnectionID, theConnectionInfo):
        accept = self.accept(theConnectionID, theConnectionInfo) if callable(self.accept) else self.accept
        self._add("new", theConnectionID, theConnectionInfo)
        return accept

    def XTDataAvailable(self, theData, theConnectionID, theConnectionInfo):
        self._add("data", theConnectionID, theData)
        if self.echo:
            tail = self.echo if isinstance(self.echo, str) else ""
            XTWriteConnection(theConnectionID, theData + (tail.encode() if isinstance(theData, bytes) else tail))

    def XTSocketError(self, theConnectionID, theConnectionInfo):
        self._add("error", theConnectionID, theConnectionInfo)

    def XTReceivedDatagram(self, theData, theListenerID, theDatagramInfo):
        self._add("datagram", theListenerID, (theData, theDatagramInfo))

    # -- waiting -------------------------------------------------------------------

    def wait(self, predicate, timeout=DEADLINE):
        with self.cond:
            ok = self.cond.wait_for(lambda: predicate(self.events), timeout)
            assert ok, "timed out; events: %r" % (self.events,)
            return list(self.events)

    def of(self, kind, cid=None):
        with self.cond:
            return [e for e in self.events if e[0] == kind and (cid is None or e[1] == cid)]

    def wait_count(self, kind, n, cid=None, timeout=DEADLINE):
        self.wait(lambda ev: len([e for e in ev if e[0] == kind and (cid is None or e[1] == cid)]) >= n, timeout)
        return self.of(kind, cid)

    def data(self, cid):
        return [e[2] for e in self.of("data", cid)]

    def ids(self):
        return [e[1] for e in self.of("new")]


@pytest.fixture
def script():
    s = Script()
    XTRegisterHandlers(s)
    # XTCOMPAT_TEST_SERIAL=1 runs every test with all events serialized
    XTSerializeEvents(os.environ.get("XTCOMPAT_TEST_SERIAL") == "1")
    yield s
    XTSerializeEvents(False)
    XTStopAll()
    api._face.stop_requested.clear()
    XTRegisterHandlers(None)


def listen(boundary=None, **kw):
    kw.setdefault("host", "127.0.0.1")
    lid = XTStartTCPListener(0, boundary, **kw)
    assert lid != 0
    return lid, XTGetListenerPort(lid)


def connect_clients(port, n):
    clients = []
    for _ in range(n):
        c = raw_client(port)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        clients.append(c)
    return clients


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def sees_eof(sock):
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, socket.timeout):
        return False


def log_text(caplog):
    return "\n".join(r.getMessage() for r in caplog.records)


# -- constants and registry ---------------------------------------------------------


def test_constants_have_xtensions_values_and_both_spellings():
    assert xtKeyRemoteAddress == "RemoteAddress"
    assert xtKeyRemotePort == "RemotePort"
    assert xtKeyUniqueId == "UnID"
    assert xtKeyErrorMessage == "ErrM"
    assert xtBroadcastAddress == "broadcast"
    assert xtErrorNumber == xtKeyErrorNumber
    assert xtErrorDescription == xtKeyErrorMessage
    keys = [xtKeyRemoteAddress, xtKeyRemotePort, xtKeyPeerPort, xtKeyName, xtKeyMacAddress, xtKeyUniqueId,
            xtKeyErrorNumber, xtKeyErrorMessage]
    assert len(set(keys)) == len(keys)
    assert (xtErrDisconnected, xtErrNameResolution, xtErrInvalidState, xtErrInvalidPort,
            xtErrOutOfMemory) == (102, 103, 106, 107, 108)
    assert "XTStartTCPListener" in xtcompat.__all__ and "xtKeyName" in xtcompat.__all__


def test_registry_ids_are_unique_across_kinds():
    r = Registry()
    a, b, c = r.add("tcp", "A"), r.add("udp", "B"), r.add("html", "C")
    assert 0 not in (a, b, c) and len({a, b, c}) == 3
    assert r.get(a, "tcp") == "A" and r.get(a, "udp") is None and r.get(c) == "C"
    assert r.remove(b, "tcp") is None and r.remove(b, "udp") == "B" and r.get(b) is None
    assert r.get([]) is None
    assert [kind for _, kind, _ in r.remove_all()] == ["tcp", "html"] and len(r) == 0


# -- TCP listeners ------------------------------------------------------------------


def test_two_connections_interleaved_with_a_boundary(script):
    script.echo = "\r\n"
    lid, port = listen("\r\n")
    a, b = connect_clients(port, 2)
    try:
        for i in range(5):
            a.sendall(("a%d\r\n" % i).encode())
            b.sendall(("b%d\r\n" % i).encode())
        ids = [e[1] for e in script.wait_count("new", 2)]
        script.wait_count("data", 10)
        by_first = {script.data(cid)[0][0]: cid for cid in ids}
        assert script.data(by_first["a"]) == ["a%d" % i for i in range(5)]
        assert script.data(by_first["b"]) == ["b%d" % i for i in range(5)]
        expect = lambda p: b"".join(("%s%d\r\n" % (p, i)).encode() for i in range(5))
        assert recv_exact(a, len(expect("a"))) == expect("a")
        assert recv_exact(b, len(expect("b"))) == expect("b")
    finally:
        a.close()
        b.close()


def test_twenty_connections_interleaved_each_in_order(script):
    lid, port = listen("\0")
    clients = connect_clients(port, 20)
    try:
        for r in range(10):
            for i, c in enumerate(clients):
                c.sendall(("c%02d-r%d\0" % (i, r)).encode())
        script.wait_count("data", 200)
        news = script.of("new")
        assert len(news) == 20 and len({e[1] for e in news}) == 20
        by_port = {e[2][xtKeyPeerPort]: e[1] for e in news}
        for i, c in enumerate(clients):
            cid = by_port[c.getsockname()[1]]
            assert script.data(cid) == ["c%02d-r%d" % (i, r) for r in range(10)]
        for c in clients:
            c.close()
        for cid in by_port.values():  # each of these connections' own end (an earlier test's may come too)
            script.wait_count("error", 1, cid)
        for cid in by_port.values():  # per connection: new, data..., error
            kinds = [e[0] for e in script.events if e[1] == cid]
            assert kinds == ["new"] + ["data"] * 10 + ["error"]
    finally:
        for c in clients:
            c.close()


def test_connection_info(script):
    lid, port = listen("\n")
    c = raw_client(port)
    try:
        new = script.wait_count("new", 1)[0]
        cid, info = new[1], new[2]
        assert info[xtKeyRemoteAddress] == "127.0.0.1"
        assert info[xtKeyRemotePort] == port  # XTension: the port it was received on
        assert info[xtKeyPeerPort] == c.getsockname()[1]
        assert info[xtKeyUniqueId] == cid and isinstance(cid, str)
        assert info[xtKeyMacAddress] == "00:00:00:00:00:00"  # loopback has none
        assert isinstance(info[xtKeyName], str) and info[xtKeyName]
        assert XTGetConnectionInfo(cid) == info
        c.sendall(b"x\n")
        script.wait_count("data", 1)
        c.close()
        err = script.wait_count("error", 1)[0][2]
        assert err[xtKeyErrorNumber] == 102 and err[xtErrorNumber] == 102
        assert err[xtKeyErrorMessage] == err[xtErrorDescription] == "disconnected"
        assert err[xtKeyRemoteAddress] == "127.0.0.1" and err[xtKeyUniqueId] == cid
        assert XTGetConnectionInfo(cid) is None  # the ID is gone
        assert not XTWriteConnection(cid, "late")
    finally:
        c.close()


@pytest.mark.parametrize("boundary", ["\r\n", "\0", "<END>", "line"])
def test_boundary_splitting_across_arbitrary_chunking(script, boundary):
    lid, port = listen(boundary)
    rnd = random.Random(boundary)
    packets = ["p%d %s" % (i, "\u00e9\u20ac\U0001f600" * rnd.randint(0, 3)) for i in range(40)]
    packets += ["", "last"]
    stream = "".join(p + boundary for p in packets).encode("utf-8")
    c = raw_client(port)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        i = 0
        while i < len(stream):  # cuts anywhere: inside delimiters and characters too
            n = rnd.choice([1, 1, 2, 3, 5, 7, 64])
            c.sendall(stream[i:i + n])
            i += n
        cid = script.wait_count("new", 1)[0][1]
        script.wait_count("data", len(packets))
        assert script.data(cid) == packets
    finally:
        c.close()


def test_without_boundary_characters_stay_whole_and_chunks_join_back(script):
    lid, port = listen()
    c = raw_client(port)
    try:
        cid = script.wait_count("new", 1)[0][1]
        euro = "\u20ac".encode("utf-8")
        c.sendall(b"a" + euro[:1])  # a character cut after its first byte
        script.wait_count("data", 1)
        assert script.data(cid) == ["a"]  # its start is held back, not mangled
        c.sendall(euro[1:] + b"b")
        script.wait(lambda ev: "".join(script.data(cid)) == "a\u20acb")
        assert script.data(cid)[1] == "\u20acb"
        text = "".join("z\u00e9\U0001f600" for _ in range(300))
        data = text.encode("utf-8")
        for i in range(0, len(data), 7):
            c.sendall(data[i:i + 7])
        script.wait(lambda ev: len("".join(script.data(cid))) >= 3 + len(text))
        assert "".join(script.data(cid)) == "a\u20acb" + text
    finally:
        c.close()


def test_invalid_utf8_is_lossless_and_binary_listeners_get_bytes(script):
    script.echo = True
    lid, port = listen("\n")
    blid, bport = listen("\n", binary=True)
    c, bc = raw_client(port), raw_client(bport)
    try:
        c.sendall(b"ok\xff\xfe\n")
        bc.sendall(b"ok\xff\xfe\n")
        script.wait_count("data", 2)
        datas = [e[2] for e in script.of("data")]
        text = [d for d in datas if isinstance(d, str)][0]
        assert text.startswith("ok") and text.encode("utf-8", "surrogateescape") == b"ok\xff\xfe"
        assert b"ok\xff\xfe" in datas
        assert recv_exact(c, 4) == b"ok\xff\xfe"  # written back: the same bytes
        assert recv_exact(bc, 4) == b"ok\xff\xfe"
    finally:
        c.close()
        bc.close()


def test_write_sends_text_and_bytes_exactly_as_given(script):
    lid, port = listen("\r\n")
    c = raw_client(port)
    try:
        cid = script.wait_count("new", 1)[0][1]
        assert XTWriteConnection(cid, "h\u00e9")
        assert XTWriteConnection(cid, b"\x00\xff")
        assert XTWriteConnection(cid, bytearray(b"!"))
        assert recv_exact(c, 6) == "h\u00e9".encode("utf-8") + b"\x00\xff!"  # no boundary added
        with pytest.raises(TypeError):
            XTWriteConnection(cid, 42)
    finally:
        c.close()


def test_a_refusing_new_connection_closes_it_at_once(script):
    script.accept = lambda cid, info: len(script.of("new")) >= 1  # refuse the first, accept the next
    lid, port = listen("\n")
    first = raw_client(port)
    try:
        refused = script.wait_count("new", 1)[0][1]
        assert sees_eof(first)
        assert not XTWriteConnection(refused, "x")
        second = raw_client(port)
        second.sendall(b"hi\n")
        accepted = script.wait_count("new", 2)[1][1]
        assert script.wait_count("data", 1)[0][1] == accepted
        second.close()
        script.wait_count("error", 1)
        assert [e[1] for e in script.of("error")] == [accepted]  # nothing for the refused one
        assert script.of("data", refused) == []
    finally:
        first.close()


def test_new_connection_returning_none_refuses_with_a_warning(script, caplog):
    script.accept = lambda cid, info: None
    lid, port = listen("\n")
    c = raw_client(port)
    try:
        assert sees_eof(c)
        assert "returned None" in log_text(caplog)
    finally:
        c.close()


def test_without_xtnewconnection_connections_are_refused_and_it_is_logged_once(script, caplog):
    got = []
    XTRegisterHandlers({"XTDataAvailable": lambda d, cid, info: got.append(d)})
    lid, port = listen("\n")
    clients = [raw_client(port) for _ in range(3)]
    try:
        for c in clients:
            c.sendall(b"hello\n")
            assert sees_eof(c)
        msgs = [r.getMessage() for r in caplog.records if "XTNewConnection" in r.getMessage()]
        assert len(msgs) == 1 and "refuses" in msgs[0] and "required" in msgs[0]
        assert got == []
    finally:
        for c in clients:
            c.close()


def test_a_missing_optional_event_is_logged_once(script, caplog):
    XTRegisterHandlers({"XTNewConnection": lambda cid, info: True})
    lid, port = listen("\n")
    c = raw_client(port)
    try:
        c.sendall(b"one\ntwo\nthree\n")
        wait_until(lambda: any("XTDataAvailable" in r.getMessage() for r in caplog.records))
        c.sendall(b"four\n")
        c.close()
        wait_until(lambda: any("XTSocketError" in r.getMessage() for r in caplog.records))
        wait_until(lambda: not api._face.connections)  # the end was processed
        text = log_text(caplog)
        assert text.count("no XTDataAvailable") == 1
        assert text.count("no XTSocketError") == 1
    finally:
        c.close()


def test_an_event_function_that_raises_is_logged_and_the_plugin_goes_on(script, caplog):
    def data(d, cid, info):
        if d == "boom":
            raise ValueError("boom")
        script._add("data", cid, d)
    XTRegisterHandlers({"XTNewConnection": script.XTNewConnection, "XTDataAvailable": data,
                        "XTSocketError": script.XTSocketError})
    lid, port = listen("\n")
    c = raw_client(port)
    try:
        c.sendall(b"boom\nafter\n")
        assert [e[2] for e in script.wait_count("data", 1)] == ["after"]
        assert any(r.exc_info and "ValueError: boom" in caplog.text for r in caplog.records)
    finally:
        c.close()


def test_stop_listener_with_live_connections(script):
    lid, port = listen("\n")
    clients = connect_clients(port, 3)
    try:
        ids = [e[1] for e in script.wait_count("new", 3)]
        assert XTStopTCPListener(lid)
        errors = script.wait_count("error", 3)
        assert sorted(e[1] for e in errors) == sorted(ids)
        assert all(e[2][xtKeyErrorNumber] == 102 for e in errors)
        for c in clients:
            assert sees_eof(c)
        assert not XTStopTCPListener(lid)  # twice: False
        assert XTGetListenerPort(lid) == 0
        again = XTStartTCPListener(port, "\n", host="127.0.0.1")  # the port is free
        assert again not in (0, lid)
    finally:
        for c in clients:
            c.close()


def test_close_connection_gives_102_and_then_writing_is_106(script, caplog):
    lid, port = listen("\n")
    c = raw_client(port)
    try:
        cid = script.wait_count("new", 1)[0][1]
        assert XTCloseConnection(cid)
        err = script.wait_count("error", 1)[0]
        assert err[1] == cid and err[2][xtKeyErrorNumber] == 102
        assert sees_eof(c)
        assert not XTWriteConnection(cid, "x")
        assert not XTCloseConnection(cid)
        assert not XTWriteConnection("no-such-id", "x")
        assert "error 106" in log_text(caplog)
    finally:
        c.close()


def test_close_from_inside_an_event(script):
    def data(d, cid, info):
        XTWriteConnection(cid, "bye\n")
        XTCloseConnection(cid)
    XTRegisterHandlers({"XTNewConnection": script.XTNewConnection, "XTDataAvailable": data,
                        "XTSocketError": script.XTSocketError})
    lid, port = listen("\n")
    c = raw_client(port)
    try:
        c.sendall(b"quit\n")
        assert recv_exact(c, 4) == b"bye\n"
        assert sees_eof(c)
        assert script.wait_count("error", 1)[0][2][xtKeyErrorNumber] == 102
    finally:
        c.close()


def test_a_packet_over_the_size_limit_is_error_108(script):
    lid, port = listen("\n", maxMessageSize=100)
    c = raw_client(port)
    try:
        c.sendall(b"ok\n" + b"x" * 200)
        err = script.wait_count("error", 1)[0][2]
        assert script.data(err[xtKeyUniqueId]) == ["ok"]
        assert err[xtKeyErrorNumber] == 108 and "100" in err[xtKeyErrorMessage]
    finally:
        c.close()


@pytest.mark.parametrize("port", [80, 1023, 65536, -1, "5000", 5000.0, True, None])
def test_invalid_listening_ports_are_error_107(script, caplog, port):
    assert XTStartTCPListener(port, host="127.0.0.1") == 0
    assert XTStartUDPListener(port, host="127.0.0.1") == 0
    assert log_text(caplog).count("error 107") == 2


def test_a_tcp_port_in_use_returns_0(script, caplog):
    lid, port = listen()
    assert XTStartTCPListener(port, host="127.0.0.1") == 0
    assert "in use" in log_text(caplog)


def test_stop_with_the_wrong_kind_of_id(script, caplog):
    lid, port = listen()
    uid = XTStartUDPListener(0, host="127.0.0.1")
    assert not XTStopUDPListener(lid) and not XTStopTCPListener(uid)
    assert "is a TCP listener" in log_text(caplog) and "is a UDP listener" in log_text(caplog)
    assert XTGetListenerPort(lid) == port  # still running
    assert XTStopUDPListener(uid) and XTStopTCPListener(lid)


# -- outgoing connections ------------------------------------------------------------


@pytest.fixture
def server_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(5)
    s.settimeout(20.0)  # the sample plugin connects to it after starting up
    yield s
    s.close()


def test_outgoing_connection(script, server_socket):
    port = server_socket.getsockname()[1]
    cid = XTOpenTCPConnection("127.0.0.1", port, "\n")
    assert cid
    peer, _ = server_socket.accept()
    peer.settimeout(DEADLINE)
    try:
        assert XTWriteConnection(cid, "hello")  # exactly as given: no boundary
        assert XTWriteConnection(cid, b" world")
        assert recv_exact(peer, 11) == b"hello world"
        peer.sendall("a\nb\u00e9\npart".encode("utf-8"))
        script.wait_count("data", 2)
        assert script.data(cid) == ["a", "b\u00e9"]
        info = XTGetConnectionInfo(cid)
        assert info[xtKeyRemotePort] == port and info[xtKeyPeerPort] == port
        assert info[xtKeyRemoteAddress] == "127.0.0.1" and info[xtKeyUniqueId] == cid
        assert script.of("new") == []  # the ID is the return value
        assert XTCloseConnection(cid)
        assert script.wait_count("error", 1)[0][2][xtKeyErrorNumber] == 102
        assert sees_eof(peer)
    finally:
        peer.close()


def test_outgoing_connection_by_name_and_peer_closing(script, server_socket):
    port = server_socket.getsockname()[1]
    cid = XTOpenTCPConnection("localhost", port)
    assert cid
    peer, _ = server_socket.accept()
    try:
        peer.sendall(b"raw chunk")
        script.wait(lambda ev: "".join(script.data(cid)) == "raw chunk")
        peer.close()
        err = script.wait_count("error", 1)[0][2]
        assert err[xtKeyErrorNumber] == 102 and err[xtKeyName] == "localhost"
    finally:
        peer.close()


def test_outgoing_to_a_name_that_does_not_resolve_is_103(script, monkeypatch):
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kw):  # no DNS traffic leaves the machine in a test
        if str(host).endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kw)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    assert XTOpenTCPConnection("no-such-host.invalid", 5000) == ""
    err = script.wait_count("error", 1)[0]
    assert err[1] == "" and err[2][xtKeyErrorNumber] == 103
    assert "no-such-host.invalid" in err[2][xtKeyErrorMessage]
    assert err[2][xtKeyRemoteAddress] == "no-such-host.invalid"


def test_outgoing_refused_gives_the_system_error(script):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    assert XTOpenTCPConnection("127.0.0.1", port) == ""
    err = script.wait_count("error", 1)[0][2]
    assert err[xtKeyErrorNumber] == errno.ECONNREFUSED and err[xtKeyErrorMessage]


def test_outgoing_invalid_port_is_107(script):
    assert XTOpenTCPConnection("127.0.0.1", 0) == ""
    assert XTOpenTCPConnection("127.0.0.1", 70000) == ""
    errs = script.wait_count("error", 2)
    assert [e[2][xtKeyErrorNumber] for e in errs] == [107, 107]
    with pytest.raises(TypeError):
        XTOpenTCPConnection(None, 5000)


def test_outgoing_to_our_own_listener_both_sides_see_each_other(script):
    lid, port = listen("\n")
    cid = XTOpenTCPConnection("127.0.0.1", port, "\n")
    assert cid
    assert XTWriteConnection(cid, "ping\n")
    new = script.wait_count("new", 1)[0]
    server_id = new[1]
    assert XTWriteConnection(server_id, "pong\n")
    script.wait_count("data", 2)
    assert script.data(server_id) == ["ping"] and script.data(cid) == ["pong"]
    assert new[2][xtKeyPeerPort] == api._face.connection(cid).conn.local_port
    XTCloseConnection(cid)
    errs = script.wait_count("error", 2)
    assert sorted(e[1] for e in errs) == sorted([cid, server_id])


# -- UDP ----------------------------------------------------------------------------


def test_datagrams_both_ways(script):
    a = XTStartUDPListener(0, host="127.0.0.1")
    b = XTStartUDPListener(0, host="127.0.0.1")
    assert 0 not in (a, b) and a != b
    pa, pb = XTGetListenerPort(a), XTGetListenerPort(b)
    assert XTSendDatagram(a, "127.0.0.1", pb, "hello \u00e9")
    got = script.wait_count("datagram", 1)[0]
    assert got[1] == b
    data, info = got[2]
    assert data == "hello \u00e9"
    assert info[xtKeyRemoteAddress] == "127.0.0.1"
    assert info[xtKeyRemotePort] == pa  # the sender's own port: sent from a's socket
    assert XTSendDatagram(b, info[xtKeyRemoteAddress], info[xtKeyRemotePort], b"reply\xff")
    back = script.wait_count("datagram", 2)[1]
    assert back[1] == a and back[2][0].encode("utf-8", "surrogateescape") == b"reply\xff"
    assert back[2][1][xtKeyRemotePort] == pb


def test_udp_binary_listener_and_raw_peer(script):
    lid = XTStartUDPListener(0, host="127.0.0.1", binary=True)
    port = XTGetListenerPort(lid)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(DEADLINE)
    try:
        peer.sendto(b"\x00\x01bin", ("127.0.0.1", port))
        assert script.wait_count("datagram", 1)[0][2][0] == b"\x00\x01bin"
        assert XTSendDatagram(lid, "127.0.0.1", peer.getsockname()[1], "t\u00e9xt")
        assert peer.recvfrom(100) == ("t\u00e9xt".encode("utf-8"), ("127.0.0.1", port))
    finally:
        peer.close()


def test_a_udp_port_already_bound_returns_0(script, caplog):
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("", 0))
    try:
        port = holder.getsockname()[1]
        assert XTStartUDPListener(port) == 0
        assert XTStartUDPListener(port, host="127.0.0.1") == 0
    finally:
        holder.close()
    lid = XTStartUDPListener(port, host="127.0.0.1")  # free again
    assert lid != 0
    assert XTStartUDPListener(port, host="127.0.0.1") == 0  # our own: still taken
    assert "in use" in log_text(caplog)
    assert XTStopUDPListener(lid)
    assert XTStartUDPListener(port, host="127.0.0.1") != 0  # free when Stop returned


def test_send_datagram_failures_return_false(script, caplog, monkeypatch):
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kw):
        if str(host).endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kw)
    lid = XTStartUDPListener(0, host="127.0.0.1")
    assert not XTSendDatagram(12345678, "127.0.0.1", 5000, "x")
    assert not XTSendDatagram(lid, "127.0.0.1", 0, "x")
    assert "error 107" in log_text(caplog)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)  # no DNS traffic leaves the machine
    assert not XTSendDatagram(lid, "no-such-host.invalid", 5000, "x")
    assert "error 103" in log_text(caplog)
    with pytest.raises(TypeError):
        XTSendDatagram(lid, "127.0.0.1", 5000, None)
    XTStopUDPListener(lid)
    assert not XTSendDatagram(lid, "127.0.0.1", 5000, "x")


def test_broadcast_sending(script):
    # The sender is bound to 127.0.0.1, so its broadcast to 255.255.255.255
    # leaves by the loopback device only; the receiver listens on every
    # address (INADDR_ANY), as broadcast receivers must.
    sender = XTStartUDPListener(0, host="127.0.0.1")
    receiver = XTStartUDPListener(0)
    assert XTSendDatagram(sender, xtBroadcastAddress, XTGetListenerPort(receiver), "anyone there?")
    got = script.wait_count("datagram", 1)[0]
    assert got[1] == receiver and got[2][0] == "anyone there?"
    assert got[2][1][xtKeyRemotePort] == XTGetListenerPort(sender)
    other = XTStartUDPListener(0, host="127.0.0.1", broadcastAddress="127.255.255.255")
    assert XTSendDatagram(other, xtBroadcastAddress, XTGetListenerPort(receiver), "directed")
    assert script.wait_count("datagram", 2)[1][2][0] == "directed"


MULTICAST_SCRIPT = r'''
import sys, threading
sys.path.insert(0, sys.argv[1])
from xtcompat import *
got = []
cond = threading.Condition()
def XTReceivedDatagram(theData, theListenerID, theDatagramInfo):
    with cond:
        got.append((theData, theListenerID, theDatagramInfo[xtKeyRemotePort]))
        cond.notify_all()
def wait(n):
    with cond:
        assert cond.wait_for(lambda: len(got) >= n, 10), got
group = "239.255.77.1"
receiver = XTStartUDPListener(0)
sender = XTStartUDPListener(0, host="127.0.0.1")
port = XTGetListenerPort(receiver)
assert XTJoinMulticastGroup(receiver, group, "127.0.0.1")
assert XTSendDatagram(sender, group, port, "through the group")
wait(1)
assert got[0] == ("through the group", receiver, XTGetListenerPort(sender)), got
assert XTLeaveMulticastGroup(receiver, group, "127.0.0.1")
assert not XTLeaveMulticastGroup(receiver, group, "127.0.0.1")
assert not XTJoinMulticastGroup(receiver, "10.1.2.3", "127.0.0.1")
XTSendDatagram(sender, group, port, "after leaving")
XTSendDatagram(sender, "127.0.0.1", port, "marker")
wait(2)
assert [g[0] for g in got] == ["through the group", "marker"], got
XTStopAll()
print("MULTICAST OK")
'''


def test_multicast_join_receive_leave(tmp_path):
    path = tmp_path / "mc.py"
    path.write_text(MULTICAST_SCRIPT)
    argv = [sys.executable, str(path), ROOT]
    ok, why = loopback_multicast_ok()
    if ok:
        out = subprocess.run(argv, capture_output=True, timeout=30)
    else:
        can, why_not = netns_available()
        if not can:
            pytest.skip("multicast: %s, and no network namespace: %s" % (why, why_not))
        with NetNS() as ns:
            out = subprocess.run(["ip", "netns", "exec", ns.name] + argv, capture_output=True, timeout=30)
    assert b"MULTICAST OK" in out.stdout, (out.stdout + out.stderr).decode("utf-8", "replace")


def test_multicast_group_by_name(script, monkeypatch):
    real = socket.gethostbyname
    monkeypatch.setattr(socket, "gethostbyname",
                        lambda name: "239.255.78.9" if name == "devices.example.test" else real(name))
    ok, why = loopback_multicast_ok()
    if not ok:
        pytest.skip(why)
    lid = XTStartUDPListener(0)
    assert XTJoinMulticastGroup(lid, "devices.example.test", "127.0.0.1")
    assert api._face.listeners.get(lid).groups == [("239.255.78.9", "127.0.0.1")]
    assert XTLeaveMulticastGroup(lid, "devices.example.test", "127.0.0.1")
    assert not XTJoinMulticastGroup(999999, "239.255.78.9")


# -- the script's life ---------------------------------------------------------------


def test_handlers_from_a_dict_a_module_an_object_and_main(script, monkeypatch):
    calls = []
    mod = types.ModuleType("plugin")
    mod.XTReceivedDatagram = lambda d, lid, info: calls.append(("module", d))
    main = types.ModuleType("__main__")
    main.XTReceivedDatagram = lambda d, lid, info: calls.append(("main", d))
    monkeypatch.setitem(sys.modules, "__main__", main)
    lid = XTStartUDPListener(0, host="127.0.0.1")
    port = XTGetListenerPort(lid)
    for name, ns in [("dict", {"XTReceivedDatagram": lambda d, l, i: calls.append(("dict", d))}),
                     ("module", mod), ("object", script), ("main", None)]:
        XTRegisterHandlers(ns)
        XTSendDatagram(lid, "127.0.0.1", port, name)
        wait_until(lambda: len(calls) + len(script.of("datagram")) >= 1 + ["dict", "module", "object",
                                                                            "main"].index(name))
    assert calls == [("dict", "dict"), ("module", "module"), ("main", "main")]
    assert script.of("datagram")[0][2][0] == "object"
    with pytest.raises(TypeError):
        XTRegisterHandlers(42)


def test_events_are_looked_up_when_they_fire(script):
    lid, port = listen("\n")
    c = raw_client(port)
    try:
        cid = script.wait_count("new", 1)[0][1]
        later = []
        script.XTDataAvailable = lambda d, i, info: later.append(d)  # redefined after the start
        c.sendall(b"x\n")
        wait_until(lambda: later == ["x"])
    finally:
        c.close()


def test_write_log(script, caplog):
    with caplog.at_level(logging.INFO, logger="xtcompat"):
        XTWriteLog("value", 42, 1.5, None)
        XTWriteLog("alarm", xtColorRed)
        XTWriteLog("custom", "#00ff00")
        XTWriteLog("123456")  # a lone argument is the message
        XTWriteLog("count", "123456")  # ... but a last one of six hex digits is a colour
    recs = [r for r in caplog.records if r.name == "xtcompat"]
    assert [(r.getMessage(), r.xtcolor) for r in recs] == [
        ("value 42 1.5 None", None), ("alarm", xtColorRed.upper()), ("custom", "00FF00"),
        ("123456", None), ("count", "123456")]


def test_colour_formatter_uses_ansi_only_on_a_terminal():
    class Tty(list):
        def isatty(self):
            return True
    rec = logging.LogRecord("xtcompat", logging.INFO, __file__, 1, "hot", None, None)
    rec.xtcolor = "FF0000"
    assert "\x1b[38;2;255;0;0m" in api.ColourFormatter(Tty()).format(rec)
    assert "\x1b" not in api.ColourFormatter(open(os.devnull, "w")).format(rec)


def test_run_forever_until_stop_all_from_an_event(script):
    def datagram(d, lid, info):
        if d == "quit":
            XTStopAll()
    XTRegisterHandlers({"XTReceivedDatagram": datagram})
    lid = XTStartUDPListener(0, host="127.0.0.1")
    tcp, port = listen()
    result = []
    t = threading.Thread(target=lambda: result.append(XTRunForever()))
    t.start()
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        peer.sendto(b"quit", ("127.0.0.1", XTGetListenerPort(lid)))
        t.join(DEADLINE)
        assert not t.is_alive() and result == ["stopped"]
        assert XTGetListenerPort(lid) == 0 and XTGetListenerPort(tcp) == 0
        assert len(api._face.listeners) == 0
    finally:
        peer.close()


def test_run_forever_takes_ctrl_c_also_as_the_error_python_threading_turns_it_into(script, monkeypatch):
    lid, port = listen()
    monkeypatch.setattr(api._face.stop_requested, "wait", lambda timeout=None: ctrl_c())  # see helpers
    assert XTRunForever() == "interrupted"
    assert XTGetListenerPort(lid) == 0 and len(api._face.listeners) == 0


def test_run_forever_with_a_timeout_stops_everything(script):
    lid, port = listen()
    c = raw_client(port)
    try:
        script.wait_count("new", 1)
        assert XTRunForever(0.05) == "timeout"
        assert script.wait_count("error", 1)[0][2][xtKeyErrorNumber] == 102
        assert XTGetListenerPort(lid) == 0
        assert sees_eof(c)
    finally:
        c.close()


def test_stop_all_closes_outgoing_connections_too(script, server_socket):
    cid = XTOpenTCPConnection("127.0.0.1", server_socket.getsockname()[1])
    peer, _ = server_socket.accept()
    try:
        XTStopAll()
        assert script.wait_count("error", 1)[0][1] == cid
        assert sees_eof(peer)
        assert api._face.connections == {}
    finally:
        peer.close()


# -- peer information ----------------------------------------------------------------


def test_name_lookup_is_bounded_and_cached():
    release = threading.Event()
    calls = []

    def slow(address):
        calls.append(address)
        release.wait(DEADLINE)
        return "late.example"
    p = PeerInfo(name_timeout=0.01, resolver=slow)
    assert p.name("10.0.0.7") == "?"  # did not wait for the answer
    assert p.name("10.0.0.7") == "?"
    assert calls == ["10.0.0.7"]  # one lookup at a time per address
    release.set()
    wait_until(lambda: p.name("10.0.0.7") == "late.example")  # the late answer is kept
    assert calls == ["10.0.0.7"]
    fast = PeerInfo(resolver=lambda a: "dev-%s.local" % a)
    assert fast.name("10.0.0.8") == "dev-10.0.0.8.local"
    assert PeerInfo(name_timeout=0).name("10.0.0.8") == "?"

    def broken(address):
        raise socket.herror(1, "Unknown host")
    assert PeerInfo(resolver=broken).name("10.0.0.9") == "?"


def test_mac_from_the_neighbour_table(tmp_path):
    arp = tmp_path / "arp"
    arp.write_text("IP address       HW type     Flags       HW address            Mask     Device\n"
                   "192.168.1.20     0x1         0x2         AA:bb:cc:dd:ee:0f     *        eth0\n"
                   "192.168.1.21     0x1         0x0         00:00:00:00:00:00     *        eth0\n")
    p = PeerInfo(arp_path=str(arp))
    assert p.mac("192.168.1.20") == "aa:bb:cc:dd:ee:0f"
    assert p.mac("192.168.1.21") == "00:00:00:00:00:00"  # incomplete
    assert p.mac("8.8.8.8") == "00:00:00:00:00:00"
    assert p.mac("127.0.0.1") == "00:00:00:00:00:00"
    assert parse_neigh("192.168.1.5 dev eth0 lladdr 0:1b:2c:3d:4e:5f REACHABLE\n"
                       "? (192.168.1.6) at 00:11:22:33:44:55 [ether] on eth0\n") == {
        "192.168.1.5": "00:1b:2c:3d:4e:5f", "192.168.1.6": "00:11:22:33:44:55"}
    assert parse_proc_arp("header only\n") == {}


# -- the sample plugin ------------------------------------------------------------------

SAMPLE = os.path.join(ROOT, "samples", "xtension_device_plugin.py")
SLOW = 20.0  # a child Python may start slowly on a loaded machine


class Plugin(Proc):
    """The sample plugin in a child process; its stdout lines are collected (helpers.Proc)."""

    def __init__(self, args):
        Proc.__init__(self, [SAMPLE] + args)

    def wait_line(self, needle, timeout=SLOW):
        """The first line that contains ``needle``."""
        return Proc.wait_line(self, re.escape(needle), timeout).string

    def finish(self, timeout=SLOW):
        return Proc.finish(self, timeout)


def read_lines(sock, n):
    data = b""
    while data.count(b"\r\n") < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8").split("\r\n")[:n]


def test_sample_device_plugin(server_socket):
    controller_port = server_socket.getsockname()[1]
    plugin = Plugin(["--tcp", "0", "--udp", "0", "--host", "127.0.0.1",
                     "--report", "127.0.0.1:%d" % controller_port, "--run-seconds", "30"])
    try:
        line = plugin.wait_line("LISTENING")
        tcp_port, udp_port = [int(w.split("=")[1]) for w in line.split()[-2:]]
        controller, _ = server_socket.accept()
        controller.settimeout(DEADLINE)
        assert read_lines(controller, 1) == ["HELLO dimmer-1"]
        # discovery: a broadcast from this machine's loopback address
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        probe.settimeout(DEADLINE)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        probe.sendto(b"DISCOVER", ("255.255.255.255", udp_port))
        assert probe.recvfrom(100)[0] == ("DEVICE dimmer-1 %d" % tcp_port).encode()
        probe.close()
        # two command clients
        a, b = raw_client(tcp_port), raw_client(tcp_port)
        assert read_lines(a, 1) == ["HELLO dimmer-1"] and read_lines(b, 1) == ["HELLO dimmer-1"]
        a.sendall(b"ON\r\nDIM 4")
        a.sendall(b"0\r\n")
        assert read_lines(a, 4) == ["OK ON", "STATUS ON 100", "OK DIM 40", "STATUS ON 40"]
        assert read_lines(b, 2) == ["STATUS ON 100", "STATUS ON 40"]
        assert read_lines(controller, 2) == ["STATUS ON 100", "STATUS ON 40"]
        b.sendall(b"bogus\r\nSTATUS\r\n")
        assert read_lines(b, 2)[1] == "OK STATUS ON 40"
        b.sendall(b"QUIT\r\n")
        assert read_lines(b, 1) == ["OK BYE"]
        assert plugin.finish() == 0
        assert sees_eof(a) and sees_eof(controller)
        plugin.wait_line("STOPPED (stopped)")
        plugin.wait_line("ended: 102")
        a.close()
        b.close()
        controller.close()
    finally:
        plugin.finish()


def test_sample_device_plugin_stops_by_itself():
    plugin = Plugin(["--tcp", "0", "--udp", "0", "--host", "127.0.0.1", "--udp-host", "127.0.0.1",
                     "--run-seconds", "0.2"])
    try:
        assert plugin.finish() == 0
        plugin.wait_line("STOPPED (timeout)")
    finally:
        plugin.finish()


def test_sample_device_plugin_stops_cleanly_on_ctrl_c():
    plugin = Plugin(["--tcp", "0", "--udp", "0", "--host", "127.0.0.1", "--udp-host", "127.0.0.1",
                     "--run-seconds", "60"])
    try:
        port = int(plugin.wait_line("LISTENING").split()[-2].split("=")[1])
        c = raw_client(port)
        assert read_lines(c, 1) == ["HELLO dimmer-1"]
        plugin.p.send_signal(signal.SIGINT)
        assert plugin.finish() == 0
        plugin.wait_line("STOPPED (interrupted)")
        assert sees_eof(c)
        c.close()
    finally:
        plugin.finish()


def test_sample_device_plugin_reports_a_port_in_use():
    lid, port = listen()
    plugin = Plugin(["--tcp", str(port), "--host", "127.0.0.1", "--run-seconds", "5"])
    try:
        assert plugin.finish() == 1
        plugin.wait_line("an error occurred trying to bind")
    finally:
        plugin.finish()
        XTStopAll()


@pytest.mark.parametrize("serial", [True, False])
def test_serialized_events_never_overlap(script, serial):
    # A's event waits (bounded) for B's to start; serialized, B's cannot
    # start until A's returns, so they never overlap.
    meter = OverlapMeter()
    order = []
    b_started = threading.Event()

    def data(d, cid, info):
        with meter:
            order.append(d)
            if d == "A":
                b_started.wait(1.0)
            else:
                b_started.set()
    XTRegisterHandlers({"XTNewConnection": lambda cid, info: True, "XTDataAvailable": data})
    XTSerializeEvents(serial)
    try:
        lid, port = listen("\n")
        a, b = raw_client(port), raw_client(port)
        a.sendall(b"A\n")
        wait_until(lambda: order == ["A"])
        b.sendall(b"B\n")
        wait_until(lambda: len(order) == 2)
        assert order == ["A", "B"]
        assert meter.overlap is (not serial)
        a.close()
        b.close()
    finally:
        XTSerializeEvents(False)


MAC_SERVER = r'''
import sys, threading
sys.path.insert(0, sys.argv[1])
from xtcompat import *
done = threading.Event()
def XTNewConnection(theConnectionID, theConnectionInfo):
    print("INFO %s %s" % (theConnectionInfo[xtKeyRemoteAddress], theConnectionInfo[xtKeyMacAddress]))
    sys.stdout.flush()
    done.set()
    return True
lid = XTStartTCPListener(0, "\n", host=sys.argv[2])
print("PORT %d" % XTGetListenerPort(lid))
sys.stdout.flush()
done.wait(20)
XTStopAll()
'''


def test_mac_address_of_a_peer_on_the_local_network(tmp_path):
    """Two network namespaces joined by a veth pair: the listener sees the client's MAC."""
    can, why_not = netns_available()
    if not can:
        pytest.skip(why_not)
    server = tmp_path / "mac_server.py"
    server.write_text(MAC_SERVER)
    with NetNS() as ns1, NetNS() as ns2:
        a, b = "xa" + ns1.name[-8:], "xb" + ns2.name[-8:]
        subprocess.check_call(["ip", "link", "add", a, "netns", ns1.name, "type", "veth",
                               "peer", "name", b, "netns", ns2.name])
        ns1.run(["ip", "addr", "add", "10.213.0.1/24", "dev", a])
        ns2.run(["ip", "addr", "add", "10.213.0.2/24", "dev", b])
        ns1.run(["ip", "link", "set", a, "up"])
        ns2.run(["ip", "link", "set", b, "up"])
        mac = subprocess.check_output(["ip", "netns", "exec", ns2.name, "cat",
                                       "/sys/class/net/%s/address" % b]).decode().strip()
        p = ns1.popen([sys.executable, str(server), ROOT, "10.213.0.1"], stdout=subprocess.PIPE)
        try:
            port = int(p.stdout.readline().split()[1])
            client = ("import socket; s = socket.create_connection(('10.213.0.1', %d), 10); "
                      "s.recv(1)" % port)
            ns2.run([sys.executable, "-c", client], timeout=30)
            line = p.stdout.readline().decode().split()
            assert line == ["INFO", "10.213.0.2", mac]
            assert p.wait(20) == 0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
