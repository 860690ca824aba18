"""xtcompat (the XTension face): load with boundary parsing, NUL boundaries and junk, wrong
arguments, peers that vanish, security defaults."""
import logging
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from helpers import DEADLINE, raw_client
from rel_helpers import FULL, StreamDigest, is_utf8, scaled
from tcpcom.engine import DEFAULT_MAX_CONNECTIONS, local_addresses
from tcpcom.framing import DEFAULT_MAX_MESSAGE_SIZE
from test_rel_load import Peer, drive
import xtcompat
from xtcompat import api
from xtcompat import *  # noqa: F401,F403  -- as a ported script does

EVENT = 10.0
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Script(object):
    """A plugin script's event functions: records events, echoes packets (boundary added)."""

    def __init__(self, echo_tail=None):
        self.echo_tail = echo_tail
        self.cond = threading.Condition()
        self.new, self.data, self.errors = [], {}, []
        self.digests = {}

    def XTNewConnection(self, theConnectionID, theConnectionInfo):
        with self.cond:
            self.new.append((theConnectionID, theConnectionInfo))
            self.digests[theConnectionInfo[xtKeyPeerPort]] = StreamDigest()
            self.cond.notify_all()
        return True

    def XTDataAvailable(self, theData, theConnectionID, theConnectionInfo):
        if self.echo_tail is not None:
            XTWriteConnection(theConnectionID, theData + self.echo_tail)
        raw = theData if isinstance(theData, bytes) else theData.encode("utf-8", "surrogateescape")
        with self.cond:
            self.data.setdefault(theConnectionID, []).append(theData)
            d = self.digests.get(theConnectionInfo[xtKeyPeerPort])
            if d is not None:
                d.add(raw, is_utf8(raw))
            self.cond.notify_all()

    def XTSocketError(self, theConnectionID, theConnectionInfo):
        with self.cond:
            self.errors.append((theConnectionID, theConnectionInfo))
            self.cond.notify_all()

    def wait(self, pred, timeout=EVENT):
        with self.cond:
            ok = self.cond.wait_for(pred, timeout)
        assert ok, "timed out: new=%d data=%r errors=%r" % (
            len(self.new), dict((k, v[-3:]) for k, v in self.data.items()), self.errors)

    def error_of(self, cid):
        for c, info in self.errors:
            if c == cid:
                return info
        return None


@pytest.fixture
def script():
    s = Script()
    XTRegisterHandlers(s)
    yield s
    XTStopAll()
    api._face.stop_requested.clear()
    XTRegisterHandlers(None)


def listen(boundary=None, **kw):
    kw.setdefault("host", "127.0.0.1")
    lid = XTStartTCPListener(0, boundary, **kw)
    assert lid != 0
    return lid, XTGetListenerPort(lid)


def echo_round_trip(port, boundary=b"\r\n", text=u"still served \u00e4"):
    s = raw_client(port)
    try:
        s.sendall(text.encode("utf-8") + boundary)
        want = text.encode("utf-8") + boundary
        got = b""
        while len(got) < len(want):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        assert got == want
    finally:
        s.close()


# -- load ---------------------------------------------------------------------------

LOAD_BOUNDARY = u"\0\r\n"


class BoundaryPeer(Peer):
    delim = LOAD_BOUNDARY.encode("utf-8")


@pytest.mark.timeout(scaled(120, 24 * 3600))
def test_xtcompat_load_with_boundary_every_packet_once_in_order_identical(script, figures):
    """Many concurrent connections to XTStartTCPListener with a 3-byte boundary ('\\0\\r\\n'),
    each sending random packets (0 B..64 KiB, text with non-ASCII, ASCII and binary = invalid
    UTF-8) in random-sized writes (1 B..128 KiB); XTDataAvailable echoes each with
    XTWriteConnection(data + boundary). Checked: every echo exactly once, in order,
    byte-identical (client side, packet by packet), and XTDataAvailable got exactly the sent
    packets (count, bytes, order-sensitive MD5 per connection); no XTSocketError meanwhile."""
    connections = 100
    messages = scaled(200, 10000)
    script.echo_tail = LOAD_BOUNDARY
    lid, port = listen(LOAD_BOUNDARY)
    peers = []
    try:
        for i in range(connections):
            s = socket.create_connection(("127.0.0.1", port), 10)
            peers.append(BoundaryPeer(s, 7000 + i, messages))
        start = time.monotonic()
        drive(peers, start + scaled(100, 24 * 3600))
        took = time.monotonic() - start
        assert [p.mismatch for p in peers if p.mismatch] == []
        assert all(p.echoed == messages for p in peers)
        script.wait(lambda: sum(d.count for d in script.digests.values()) >= connections * messages)
        for p in peers:
            assert script.digests[p.sock.getsockname()[1]].result() == p.sent.result()
        assert script.errors == []
        total = sum(p.sent.nbytes for p in peers)
        figures.update(connections=connections, messages_per_connection=messages,
                       packets=connections * messages, bytes_each_way=total, boundary="\\0\\r\\n",
                       invalid_utf8_packets=sum(p.sent.count - p.sent.valid_text for p in peers),
                       writes=sum(p.writes for p in peers), seconds=round(took, 1), full=FULL)
    finally:
        for p in peers:
            p.sock.close()
    script.wait(lambda: len(script.errors) == connections)
    assert all(info[xtKeyErrorNumber] == 102 for _, info in script.errors)


# -- bad input: NUL boundaries, junk ----------------------------------------------------


def junk(rng, n, avoid):
    """n random bytes (every value, \\0 included) that never contain ``avoid``."""
    data = bytearray(rng.getrandbits(8) for _ in range(n))
    while avoid in data:
        i = data.find(avoid)
        data[i] = 1 if data[i] != 1 else 2
    return bytes(data)


@pytest.mark.parametrize("boundary,binary", [
    (u"\0", False), (u"\0\r", False), (b"\0\r", True), (u"\r\n", True)],
    ids=["NUL", "NUL-CR", "NUL-CR-bytes-binary", "CRLF-binary"])
def test_nul_boundaries_and_binary_junk_are_lossless_and_others_unaffected(script, figures, boundary, binary):
    """A listener whose boundary is '\\0' or contains NUL ('\\0\\r', also given as bytes) gets
    packets of binary junk (every byte value, NUL inside where the boundary allows, invalid
    UTF-8) in random cuts: each packet arrives whole and exactly (text with surrogateescape,
    or bytes with binary=True), the echo is byte-identical, and a second connection sending
    text packets at the same time gets all of its own, unchanged."""
    rng = random.Random(hash((boundary, binary)) & 0xffff)
    bnd = boundary if isinstance(boundary, bytes) else boundary.encode("utf-8")
    script.echo_tail = bnd if binary else bnd.decode("utf-8")
    lid, port = listen(boundary, binary=binary)
    packets = [junk(rng, rng.choice((0, 1, 2, 17, 300, 5000, 70000)), bnd) for _ in range(200)]
    stream = b"".join(p + bnd for p in packets)
    a = raw_client(port)
    b = raw_client(port)
    script.wait(lambda: len(script.new) == 2)
    ida = [c for c, info in script.new if info[xtKeyPeerPort] == a.getsockname()[1]][0]
    idb = [c for c, info in script.new if info[xtKeyPeerPort] == b.getsockname()[1]][0]
    texts = [u"caf\u00e9 %d \U0001F389" % i for i in range(50)]

    def send_text():
        for t in texts:
            b.sendall(t.encode("utf-8") + bnd)
    t = threading.Thread(target=send_text)
    t.start()
    received = bytearray()
    pos = 0
    while pos < len(stream):  # random cuts; read the echo as we go (no deadlock on full buffers)
        n = rng.choice((1, 2, 3, 100, 4096, 65536))
        a.sendall(stream[pos:pos + n])
        pos += n
        a.setblocking(False)
        try:
            while True:
                chunk = a.recv(262144)
                if not chunk:
                    break
                received += chunk
        except (BlockingIOError, socket.error):
            pass
        a.setblocking(True)
        a.settimeout(DEADLINE)
    while len(received) < len(stream):
        chunk = a.recv(262144)
        assert chunk, "closed early"
        received += chunk
    t.join(DEADLINE)
    assert bytes(received) == stream
    script.wait(lambda: len(script.data.get(ida, [])) == len(packets) and len(script.data.get(idb, [])) == len(texts))
    got = script.data[ida]
    if binary:
        assert all(isinstance(g, bytes) for g in got)
        assert got == packets
    else:
        assert [g.encode("utf-8", "surrogateescape") for g in got] == packets
    gotb = script.data[idb]
    assert [g if not isinstance(g, bytes) else g.decode("utf-8") for g in gotb] == texts
    assert script.errors == []
    a.close()
    b.close()
    figures.update(packets=len(packets), junk_bytes=len(stream), nul_bytes=stream.count(b"\0"),
                   invalid_utf8_packets=sum(1 for p in packets if not is_utf8(p)))


def test_junk_without_boundary_arrives_whole_and_in_order(script):
    """Without a boundary, 1 MiB of binary junk (invalid UTF-8, NULs) cut at random: the pieces
    XTDataAvailable gets join back to exactly the bytes sent (no byte lost, none invented)."""
    rng = random.Random(5)
    lid, port = listen(None)
    data = bytes(bytearray(rng.getrandbits(8) for _ in range(1 << 20)))
    a = raw_client(port)
    script.wait(lambda: len(script.new) == 1)
    cid = script.new[0][0]
    pos = 0
    while pos < len(data):
        n = rng.choice((1, 7, 1000, 65536))
        a.sendall(data[pos:pos + n])
        pos += n
    a.close()
    script.wait(lambda: script.error_of(cid) is not None)
    joined = b"".join(d.encode("utf-8", "surrogateescape") for d in script.data[cid])
    assert joined == data


def test_unframed_text_cut_in_a_character_by_the_close_is_delivered():
    """Regression (engine): on a connection without framing that delivers text, bytes of a
    UTF-8 character cut off by the close were held by the decoder and silently dropped; now
    they are delivered (as surrogateescape text) before connection_lost."""
    from tcpcom.engine import Handler, Listener
    got = []
    done = threading.Event()

    class H(Handler):
        def message_received(self, conn, message):
            got.append(message)

        def connection_lost(self, conn, reason):
            done.set()
    lst = Listener(0, H, host="127.0.0.1", framing=None)
    try:
        s = raw_client(lst.port)
        s.sendall(b"ab\xc3\xa4\xe2\x82")  # 'ab', a whole '\u00e4', then 2 of 3 bytes of '\u20ac'
        s.close()
        assert done.wait(EVENT)
        assert u"".join(got).encode("utf-8", "surrogateescape") == b"ab\xc3\xa4\xe2\x82"
    finally:
        lst.close()


# -- wrong arguments ------------------------------------------------------------------


def call_bounded(fn, *args, **kw):
    """Run fn in a thread; it must return (or raise) within the deadline: never a hang."""
    out = {}

    def run():
        try:
            out["value"] = fn(*args, **kw)
        except BaseException as e:  # noqa: B902 -- reported to the test
            out["error"] = e
    t = threading.Thread(target=run)
    t.start()
    t.join(EVENT)
    assert not t.is_alive(), "%s%r hangs" % (fn.__name__, args)
    if "error" in out:
        raise out["error"]
    return out["value"]


BAD_PORTS = [-1, 65536, 70000, 80, 1023, "5000", 5000.0, None, True, [], b"80"]


def test_wrong_arguments_give_the_documented_return_value_and_a_log_line(script, caplog, figures):
    """Wrong arguments to xtcompat functions (bad ports and types to XTStartTCPListener,
    XTStartUDPListener, XTStartHTMLListener; bad address/port/data to XTSendDatagram; unknown
    or unhashable IDs to XTWriteConnection, XTCloseConnection, XTStop...Listener; junk groups to
    XTJoinMulticastGroup/XTLeaveMulticastGroup; bad boundary/host/limits): each returns the
    documented value (0, False or "") with a warning/error log line naming the function, within
    a bounded time, no exception escapes, and a listener made before still serves."""
    lid, port = listen(u"\r\n")
    script.echo_tail = u"\r\n"
    ulid = XTStartUDPListener(0, host="127.0.0.1")
    assert ulid
    cases = []
    for p in BAD_PORTS:
        cases += [("XTStartTCPListener", (p,), {}, 0), ("XTStartUDPListener", (p,), {}, 0),
                  ("XTStartHTMLListener", (p,), {}, 0)]
    cases += [
        ("XTStartTCPListener", (0, 12345), {}, 0),                  # boundary not a string
        ("XTStartTCPListener", (0, [b"\r"]), {}, 0),
        ("XTStartTCPListener", (0,), {"host": None}, 0),
        ("XTStartTCPListener", (0,), {"host": "256.0.0.1"}, 0),
        ("XTStartTCPListener", (0,), {"maxMessageSize": -5}, 0),
        ("XTStartTCPListener", (0,), {"maxMessageSize": "big"}, 0),
        ("XTStartTCPListener", (port,), {"host": "127.0.0.1"}, 0),  # in use
        ("XTStartUDPListener", (0,), {"host": 42}, 0),
        ("XTStartUDPListener", (0,), {"maxDatagramSize": "x"}, 0),
        ("XTStartHTMLListener", (0,), {"host": None}, 0),
        ("XTStartHTMLListener", (port,), {"host": "127.0.0.1"}, 0),  # in use
        ("XTSendDatagram", (ulid, "256.0.0.1", 5000, "x"), {}, False),
        ("XTSendDatagram", (ulid, None, 5000, "x"), {}, False),
        ("XTSendDatagram", (ulid, 12345, 5000, "x"), {}, False),
        ("XTSendDatagram", (ulid, "", 5000, "x"), {}, False),
        ("XTSendDatagram", (ulid, "127.0.0.1", 0, "x"), {}, False),
        ("XTSendDatagram", (ulid, "127.0.0.1", 65536, "x"), {}, False),
        ("XTSendDatagram", (ulid, "127.0.0.1", "5000", "x"), {}, False),
        ("XTSendDatagram", (ulid, "127.0.0.1", None, "x"), {}, False),
        ("XTSendDatagram", (ulid, "127.0.0.1", 5000, b"x" * 70000), {}, False),  # too long
        ("XTSendDatagram", (9999, "127.0.0.1", 5000, "x"), {}, False),
        ("XTSendDatagram", (lid, "127.0.0.1", 5000, "x"), {}, False),  # a TCP listener's ID
        ("XTSendDatagram", ([], "127.0.0.1", 5000, "x"), {}, False),
        ("XTWriteConnection", ("c999999", "x"), {}, False),
        ("XTWriteConnection", (None, "x"), {}, False),
        ("XTWriteConnection", ([], "x"), {}, False),
        ("XTWriteConnection", (lid, "x"), {}, False),
        ("XTCloseConnection", ("nope",), {}, False),
        ("XTCloseConnection", ({},), {}, False),
        ("XTStopTCPListener", (9999,), {}, False),
        ("XTStopTCPListener", ([],), {}, False),
        ("XTStopTCPListener", (ulid,), {}, False),
        ("XTStopUDPListener", ("x",), {}, False),
        ("XTStopHTMLListener", (None,), {}, False),
        ("XTJoinMulticastGroup", (ulid, None), {}, False),
        ("XTJoinMulticastGroup", (ulid, 12345), {}, False),
        ("XTJoinMulticastGroup", (ulid, ""), {}, False),
        ("XTJoinMulticastGroup", (ulid, "1.2.3.4"), {}, False),      # not a multicast address
        ("XTJoinMulticastGroup", (ulid, "256.0.0.1"), {}, False),
        ("XTJoinMulticastGroup", (ulid, b"\xff\xfe"), {}, False),
        ("XTJoinMulticastGroup", (ulid, ["239.1.1.1"]), {}, False),
        ("XTJoinMulticastGroup", (ulid, "239.255.7.7", "256.0.0.1"), {}, False),
        ("XTJoinMulticastGroup", (ulid, "239.255.7.7", 17), {}, False),
        ("XTJoinMulticastGroup", (9999, "239.255.7.7"), {}, False),
        ("XTJoinMulticastGroup", (lid, "239.255.7.7"), {}, False),
        ("XTLeaveMulticastGroup", (ulid, "239.255.7.8"), {}, False),  # not joined
        ("XTLeaveMulticastGroup", (ulid, None), {}, False),
        ("XTLeaveMulticastGroup", (ulid, "1.2.3.4"), {}, False),
    ]
    failures = []
    worst = 0.0
    for name, args, kw, expected in cases:
        fn = getattr(xtcompat, name)
        caplog.clear()
        start = time.monotonic()
        with caplog.at_level(logging.WARNING):
            try:
                got = call_bounded(fn, *args, **kw)
            except Exception as e:
                failures.append("%s%r %r raised %r" % (name, args, kw, e))
                continue
        worst = max(worst, time.monotonic() - start)
        logged = [r for r in caplog.records if r.levelno >= logging.WARNING and name in r.getMessage()]
        if got != expected or not logged or type(got) is not type(expected):
            failures.append("%s%r %r returned %r (expected %r), log: %r" % (
                name, args, kw, got, expected, [r.getMessage() for r in caplog.records]))
    assert failures == []
    # the documented TypeErrors: data that is neither text nor bytes (a bug in the script)
    for fn, args in ((XTWriteConnection, ("c1", 5)), (XTSendDatagram, (ulid, "127.0.0.1", 5000, None))):
        with pytest.raises(TypeError):
            call_bounded(fn, *args)
    echo_round_trip(port)
    figures.update(wrong_calls=len(cases), exceptions_escaped=0, slowest_call_s=round(worst, 2))


# -- peers that vanish ------------------------------------------------------------------

CHILD_CLIENT = r"""
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"hello\r\npartial pack")
print("ready", flush=True)
sys.stdin.read()
"""

CHILD_SERVER = r"""
import socket, sys
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
print(srv.getsockname()[1], flush=True)
c, _ = srv.accept()
c.sendall(b"hi\r\n")
sys.stdin.read()
"""


def child(code, *args):
    return subprocess.Popen([sys.executable, "-c", code] + [str(a) for a in args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def test_peer_vanishes_gives_xtsocketerror_102_and_the_listener_serves_the_next(script, figures):
    """A SIGKILLed child-process client (mid-packet), a client that resets (SO_LINGER 0,
    mid-packet) and a client that half-closes after two packets: each connection gets
    XTSocketError with 102 within a bounded time (the half-closed one after its echoes were
    delivered), and the listener serves the next client each time. An outgoing
    XTOpenTCPConnection to a SIGKILLed child-process server also gets 102."""
    script.echo_tail = u"\r\n"
    lid, port = listen(u"\r\n")
    seconds = {}
    # SIGKILL
    p = child(CHILD_CLIENT, port)
    try:
        assert p.stdout.readline().strip() == b"ready"
        script.wait(lambda: any(d == [u"hello"] for d in script.data.values()))
        cid = [c for c, d in script.data.items() if d == [u"hello"]][0]
        start = time.monotonic()
        os.kill(p.pid, signal.SIGKILL)
        script.wait(lambda: script.error_of(cid) is not None)
        seconds["sigkill"] = round(time.monotonic() - start, 3)
        assert script.error_of(cid)[xtKeyErrorNumber] == 102
    finally:
        p.kill()
        p.wait()
    echo_round_trip(port)
    # RST mid-packet
    s = raw_client(port)
    s.sendall(b"one\r\ntwo-cut")
    script.wait(lambda: len(script.new) == 3 and len(script.data.get(script.new[-1][0], [])) == 1)
    cid = script.new[-1][0]
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    start = time.monotonic()
    s.close()
    script.wait(lambda: script.error_of(cid) is not None)
    seconds["rst"] = round(time.monotonic() - start, 3)
    info = script.error_of(cid)
    assert info[xtKeyErrorNumber] == 102, info
    echo_round_trip(port)
    # half-close
    s = raw_client(port)
    s.sendall(b"a\r\nb\r\n")
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    assert got == b"a\r\nb\r\n"
    cid = script.new[-1][0]
    script.wait(lambda: script.error_of(cid) is not None)
    assert script.error_of(cid)[xtKeyErrorNumber] == 102
    assert script.data[cid] == [u"a", u"b"]
    echo_round_trip(port)
    # outgoing connection to a server process that is killed
    p = child(CHILD_SERVER)
    try:
        sport = int(p.stdout.readline())
        oid = XTOpenTCPConnection("127.0.0.1", sport, u"\r\n")
        assert oid
        script.wait(lambda: script.data.get(oid) == [u"hi"])
        start = time.monotonic()
        os.kill(p.pid, signal.SIGKILL)
        script.wait(lambda: script.error_of(oid) is not None)
        seconds["outgoing_sigkill"] = round(time.monotonic() - start, 3)
        assert script.error_of(oid)[xtKeyErrorNumber] == 102
    finally:
        p.kill()
        p.wait()
    assert XTWriteConnection(oid, "gone") is False
    echo_round_trip(port)
    figures.update(("seconds_to_102_" + k, v) for k, v in seconds.items())


# -- security defaults ------------------------------------------------------------------


def _non_loopback():
    for ip in local_addresses():
        if not ip.startswith("127."):
            return ip
    return None


def _refused(ip, port):
    try:
        s = socket.create_connection((ip, port), 5)
    except (ConnectionRefusedError, OSError):
        return True
    s.close()
    return False


def test_xtcompat_listeners_default_interfaces_and_one_address(script, figures):
    """TCP, UDP and HTML listeners bind all interfaces by default, as in XTension (TCP and
    HTML: :: taking IPv4 and IPv6, or 0.0.0.0 where the system has no IPv6; UDP: 0.0.0.0,
    for broadcast); host='127.0.0.1' binds loopback only: reachable via 127.0.0.1, refused via the
    machine's non-loopback address (when it has one)."""
    bound = {}
    for name, start, sock_of in (
            ("TCP", lambda **kw: XTStartTCPListener(0, **kw), lambda o: o.sock),
            ("UDP", lambda **kw: XTStartUDPListener(0, **kw), lambda o: o.sock),
            ("HTML", lambda **kw: XTStartHTMLListener(0, **kw), lambda o: o.listener.sock)):
        lid = start()
        assert lid
        bound[name + " default"] = sock_of(api._face.listeners.get(lid)).getsockname()[0]
        assert bound[name + " default"] in (("0.0.0.0",) if name == "UDP" else ("::", "0.0.0.0"))
        lid = start(host="127.0.0.1")
        bound[name + " host=127.0.0.1"] = sock_of(api._face.listeners.get(lid)).getsockname()[0]
        assert bound[name + " host=127.0.0.1"] == "127.0.0.1"
    other = _non_loopback()
    lid, port = listen(u"\r\n")
    script.echo_tail = u"\r\n"
    hid = XTStartHTMLListener(0, host="127.0.0.1")
    hport = XTGetListenerPort(hid) or api._face.listeners.get(hid).port
    echo_round_trip(port)
    if other is None:
        bound["other address"] = "none on this machine: not checked"
    else:
        assert _refused(other, port) and _refused(other, hport)
        bound["refused via"] = other
    figures.update(bound)


def test_xtcompat_limits_on_by_default_and_parameters(script, figures):
    """maxMessageSize is 16 MiB by default and enforced: a 16 MiB + 1 packet ends that
    connection with 108 while another is served; maxConnections (default 4096) refuses
    connections past it (closed at once, no XTNewConnection); idleTimeout (off by default, as in
    XTension) drops a silent connection with 102."""
    assert DEFAULT_MAX_MESSAGE_SIZE == 16 * 1024 * 1024
    script.echo_tail = u"\r\n"
    lid, port = listen(u"\r\n")
    obj = api._face.listeners.get(lid)
    assert obj.options["max_message_size"] == DEFAULT_MAX_MESSAGE_SIZE
    assert obj.max_connections == DEFAULT_MAX_CONNECTIONS == 4096
    assert obj.options["read_timeout"] is None
    big = raw_client(port)
    script.wait(lambda: len(script.new) == 1)
    cid = script.new[0][0]
    chunk = b"x" * (1 << 20)
    sent = 0
    try:
        while sent <= DEFAULT_MAX_MESSAGE_SIZE + len(chunk):
            big.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    script.wait(lambda: script.error_of(cid) is not None)
    assert script.error_of(cid)[xtKeyErrorNumber] == 108
    big.close()
    echo_round_trip(port)
    # maxConnections
    lid2, port2 = listen(u"\r\n", maxConnections=2)
    n_before = len(script.new)
    keep = [raw_client(port2), raw_client(port2)]
    script.wait(lambda: len(script.new) == n_before + 2)
    extra = raw_client(port2)
    assert extra.recv(10) == b""  # closed at once
    extra.close()
    assert len(script.new) == n_before + 2
    keep[0].sendall(b"ok\r\n")
    assert keep[0].recv(10) == b"ok\r\n"
    for k in keep:
        k.close()
    # idleTimeout
    lid3, port3 = listen(u"\r\n", idleTimeout=0.5)
    idle = raw_client(port3)
    script.wait(lambda: len(script.new) == n_before + 3)
    cid3 = script.new[-1][0]
    script.wait(lambda: script.error_of(cid3) is not None)
    assert script.error_of(cid3)[xtKeyErrorNumber] == 102
    assert idle.recv(10) == b""
    idle.close()
    figures.update(max_message_size=DEFAULT_MAX_MESSAGE_SIZE, bytes_sent_before_108=sent,
                   max_connections_default=DEFAULT_MAX_CONNECTIONS, idle_timeout_default="off")
