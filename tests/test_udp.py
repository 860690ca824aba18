"""The engine's UDP endpoint: datagrams, closing, port rules, broadcast, multicast."""
import logging
import socket
import threading

import pytest

from helpers import DEADLINE, CallLog, wait_until
from tcpcom.engine import PortInUseError
from tcpcom.udp import EndpointClosedError, UDPEndpoint, resolve_group

from netutil import loopback_multicast_ok


class Rec(CallLog):
    """A UDP handler that records what it gets; ``overlap`` if two calls ever ran at once."""

    def __init__(self):
        CallLog.__init__(self, "udp")

    def datagram_received(self, endpoint, data, address):
        self.record("datagram", (data, address))

    def endpoint_closed(self, endpoint, reason):
        self.record("closed", reason)

    @property
    def datagrams(self):
        return self.messages("datagram")

    @property
    def closed(self):
        return self.messages("closed")

    def wait(self, n, timeout=DEADLINE):
        return self.wait_messages(n, timeout, "datagram")


def raw_udp(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(DEADLINE)
    return s


@pytest.fixture
def endpoint():
    rec = Rec()
    ep = UDPEndpoint(0, rec, host="127.0.0.1")
    ep.rec = rec
    yield ep
    ep.close()


def test_datagrams_both_ways_in_order(endpoint):
    peer = raw_udp()
    try:
        for i in range(50):
            peer.sendto(("d%d \u00e9" % i).encode("utf-8"), ("127.0.0.1", endpoint.port))
        got = endpoint.rec.wait(50)
        assert [d for d, _ in got] == ["d%d \u00e9" % i for i in range(50)]
        assert set(a for _, a in got) == {peer.getsockname()}
        assert not endpoint.rec.overlap
        assert endpoint.send("r\u00e9ply", "127.0.0.1", peer.getsockname()[1]) == len("r\u00e9ply".encode("utf-8"))
        assert peer.recvfrom(100) == ("r\u00e9ply".encode("utf-8"), ("127.0.0.1", endpoint.port))
        endpoint.send(b"\xff\x00raw", "127.0.0.1", peer.getsockname()[1])
        assert peer.recvfrom(100)[0] == b"\xff\x00raw"
    finally:
        peer.close()


def test_invalid_utf8_is_lossless_and_bytes_on_request():
    rec, brec = Rec(), Rec()
    ep = UDPEndpoint(0, rec, host="127.0.0.1")
    bep = UDPEndpoint(0, brec, host="127.0.0.1", encoding=None)
    peer = raw_udp()
    try:
        peer.sendto(b"ok\xff\xfe", ("127.0.0.1", ep.port))
        peer.sendto(b"ok\xff\xfe", ("127.0.0.1", bep.port))
        text = rec.wait(1)[0][0]
        assert text.startswith("ok") and text.encode("utf-8", "surrogateescape") == b"ok\xff\xfe"
        assert brec.wait(1)[0][0] == b"ok\xff\xfe"
        ep.send(text, "127.0.0.1", peer.getsockname()[1])  # the text goes back as the same bytes
        assert peer.recvfrom(100)[0] == b"ok\xff\xfe"
    finally:
        peer.close()
        ep.close()
        bep.close()


def test_zero_length_datagram_is_delivered(endpoint):
    peer = raw_udp()
    try:
        peer.sendto(b"", ("127.0.0.1", endpoint.port))
        peer.sendto(b"x", ("127.0.0.1", endpoint.port))
        assert [d for d, _ in endpoint.rec.wait(2)] == ["", "x"]
    finally:
        peer.close()


def test_function_handler():
    got = []
    done = threading.Event()

    def on_datagram(ep, data, address):
        got.append((data, address[0]))
        done.set()
    ep = UDPEndpoint(0, on_datagram, host="127.0.0.1")
    try:
        s = raw_udp()
        s.sendto(b"hi", ("127.0.0.1", ep.port))
        assert done.wait(DEADLINE)
        assert got == [("hi", "127.0.0.1")]
        s.close()
    finally:
        ep.close()


def test_port_taken_raises_port_in_use():
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("", 0))
    try:
        port = holder.getsockname()[1]
        with pytest.raises(PortInUseError):
            UDPEndpoint(port, host="127.0.0.1")
        with pytest.raises(PortInUseError):
            UDPEndpoint(port)
    finally:
        holder.close()
    ep = UDPEndpoint(0, host="127.0.0.1")
    try:
        with pytest.raises(PortInUseError):  # not even our own endpoint can be bound twice
            UDPEndpoint(ep.port, host="127.0.0.1")
    finally:
        ep.close()


def test_close_ends_the_thread_and_frees_the_port(endpoint):
    port = endpoint.port
    thread = endpoint._thread
    assert thread.is_alive()
    endpoint.close()
    assert not thread.is_alive()
    assert endpoint.is_closed
    with endpoint.rec.cond:
        assert endpoint.rec.cond.wait_for(lambda: endpoint.rec.closed, DEADLINE)
    assert endpoint.rec.closed == [None]
    again = UDPEndpoint(port, host="127.0.0.1")  # the port is free at once
    again.close()
    endpoint.close()  # twice is fine
    assert endpoint.rec.closed == [None]
    with pytest.raises(EndpointClosedError):
        endpoint.send("late", "127.0.0.1", port)


def test_close_from_own_callback():
    closed = threading.Event()

    class Closer(object):
        def datagram_received(self, ep, data, address):
            ep.close()

        def endpoint_closed(self, ep, reason):
            closed.set()
    ep = UDPEndpoint(0, Closer(), host="127.0.0.1")
    s = raw_udp()
    try:
        s.sendto(b"stop", ("127.0.0.1", ep.port))
        assert closed.wait(DEADLINE)
        assert ep.wait_closed(DEADLINE)
        UDPEndpoint(ep.port, host="127.0.0.1").close()  # port free
    finally:
        s.close()
        ep.close()


def test_handler_that_raises_is_logged_and_delivery_goes_on(caplog):
    got = []
    done = threading.Event()

    def handler(ep, data, address):
        if data == "boom":
            raise RuntimeError("boom")
        got.append(data)
        done.set()
    ep = UDPEndpoint(0, handler, host="127.0.0.1")
    s = raw_udp()
    try:
        s.sendto(b"boom", ("127.0.0.1", ep.port))
        s.sendto(b"after", ("127.0.0.1", ep.port))
        assert done.wait(DEADLINE)
        assert got == ["after"]
        assert any("RuntimeError: boom" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    finally:
        s.close()
        ep.close()


def test_too_long_datagram_is_logged_not_cut(caplog):
    rec = Rec()
    ep = UDPEndpoint(0, rec, host="127.0.0.1", max_datagram=10)
    s = raw_udp()
    try:
        with caplog.at_level(logging.WARNING, logger="tcpcom.udp"):
            s.sendto(b"x" * 11, ("127.0.0.1", ep.port))
            s.sendto(b"y" * 10, ("127.0.0.1", ep.port))
            assert rec.wait(1) == [("y" * 10, s.getsockname())]
        assert ep.dropped == 1
        assert any("max_datagram" in r.getMessage() for r in caplog.records)
    finally:
        s.close()
        ep.close()


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError):
        UDPEndpoint(70000)
    with pytest.raises(TypeError):
        UDPEndpoint("5000")
    with pytest.raises(ValueError):
        UDPEndpoint(0, max_datagram=0)
    ep = UDPEndpoint(0, host="127.0.0.1")
    try:
        with pytest.raises(TypeError):
            ep.send(None, "127.0.0.1", 9)
        with pytest.raises(ValueError):
            ep.send("x", "127.0.0.1", 0)
        with pytest.raises(ValueError):
            ep.join_group("127.0.0.1")
    finally:
        ep.close()


def test_broadcast_needs_and_sets_so_broadcast():
    """A broadcast from a socket bound to 127.0.0.1 goes out on loopback only."""
    rec = Rec()
    receiver = UDPEndpoint(0, rec, host="")  # INADDR_ANY: broadcasts reach it
    sender = UDPEndpoint(0, host="127.0.0.1")
    try:
        with pytest.raises(socket.error):  # without SO_BROADCAST the system refuses
            sender.send("plain", "255.255.255.255", receiver.port)
        sender.send_broadcast("to all", receiver.port)
        sender.send_broadcast("to lo", receiver.port, "127.255.255.255")
        got = rec.wait(2)
        assert sorted(d for d, _ in got) == ["to all", "to lo"]
        assert got[0][1] == ("127.0.0.1", sender.port)
    finally:
        sender.close()
        receiver.close()


def test_resolve_group():
    assert resolve_group("239.1.2.3") == "239.1.2.3"
    with pytest.raises(ValueError):
        resolve_group("10.0.0.1")
    with pytest.raises(TypeError):
        resolve_group(None)


def test_multicast_join_receive_leave():
    ok, reason = loopback_multicast_ok()
    if not ok:
        pytest.skip(reason)
    group = "239.255.42.%d" % (threading.get_ident() % 200 + 1)
    rec = Rec()
    receiver = UDPEndpoint(0, rec, host="")
    sender = UDPEndpoint(0, host="127.0.0.1")
    try:
        assert receiver.join_group(group, "127.0.0.1") == group
        assert receiver.groups == [(group, "127.0.0.1")]
        sender.send("to the group", group, receiver.port)
        assert rec.wait(1)[0] == ("to the group", ("127.0.0.1", sender.port))
        receiver.leave_group(group, "127.0.0.1")
        assert receiver.groups == []
        with pytest.raises(socket.error):
            receiver.leave_group(group, "127.0.0.1")  # not a member any more
        sender.send("after leaving", group, receiver.port)
        sender.send("marker", "127.0.0.1", receiver.port)
        got = rec.wait(2)
        assert [d for d, _ in got] == ["to the group", "marker"]
    finally:
        sender.close()
        receiver.close()


def test_multicast_interface_for_sending():
    ok, reason = loopback_multicast_ok()
    if not ok:
        pytest.skip(reason)
    rec = Rec()
    receiver = UDPEndpoint(0, rec, host="")
    sender = UDPEndpoint(0, host="")  # unbound address: the interface must be chosen
    try:
        receiver.join_group("239.255.43.1", "127.0.0.1")
        sender.set_multicast_interface("127.0.0.1")
        sender.set_multicast_ttl(1)
        sender.send("via lo", "239.255.43.1", receiver.port)
        assert rec.wait(1)[0][0] == "via lo"
    finally:
        sender.close()
        receiver.close()


def test_no_threads_left():
    eps = [UDPEndpoint(0, host="127.0.0.1") for _ in range(5)]
    for ep in eps:
        ep.close()
    wait_until(lambda: not [t for t in threading.enumerate() if t.name.startswith("tcpcom-udp-")
                            and any(t.name == "tcpcom-udp-%d" % ep.port for ep in eps)])
