"""Bad input tried: oversized, undelimited, empty floods, invalid UTF-8, junk, wrong arguments."""
import logging
import os
import random
import socket
import threading
import tracemalloc

import pytest

from helpers import Recorder, engine_threads, raw_client, recv_until, wait_until
from rel_helpers import fd_count, scaled, settle
from tcpcom.engine import (ConnectionClosedError, Handler, Listener, connect)
from tcpcom.framing import MessageTooLarge
from tcpcom.tcp import TCPClient, TCPServer

EVENT = 10.0
MiB = 1024 * 1024


class Sink(Handler):
    """Counts messages per connection (optionally echoes); records why connections ended."""

    def __init__(self, echo=False, keep=False):
        Handler.__init__(self)
        self.echo, self.keep = echo, keep
        self.count = {}
        self.kept = {}
        self.lost = {}
        self.cond = threading.Condition()

    def __call__(self, conn):
        return self

    def message_received(self, conn, message):
        with self.cond:
            self.count[conn.remote_port] = self.count.get(conn.remote_port, 0) + 1
            if self.keep:
                self.kept.setdefault(conn.remote_port, []).append(message)
            self.cond.notify_all()
        if self.echo and (message or self.echo != "non-empty"):
            conn.send_message(message)

    def connection_lost(self, conn, reason):
        with self.cond:
            self.lost[conn.remote_port] = reason
            self.cond.notify_all()

    def wait(self, pred, timeout=EVENT):
        with self.cond:
            assert self.cond.wait_for(pred, timeout), "timed out: count=%r lost=%r" % (self.count, self.lost)


def bystander_ok(port):
    s = raw_client(port)
    try:
        s.sendall(b"control\0")
        return recv_until(s, 1) == b"control\0"
    finally:
        s.close()


def send_ignoring_reset(sock, data):
    try:
        sock.sendall(data)
        return True
    except (ConnectionResetError, BrokenPipeError):
        return False


@pytest.mark.parametrize("limit, stream", [(64 * 1024, 10 * MiB), (None, 20 * MiB)],
                         ids=["64KiB-limit", "default-16MiB-limit"])
def test_message_past_the_maximum_and_no_delimiter_at_all(limit, stream, caplog, figures):
    """A peer sends one good message, then a stream with no delimiter at all, far past the
    maximum message size: the good message is delivered, the connection is closed with
    MessageTooLarge and a logged error, the Python heap stays bounded (tracemalloc peak),
    and another connection is echoed meanwhile and after."""
    sink = Sink(echo=True)
    opts = {} if limit is None else {"max_message_size": limit}
    listener = Listener(0, sink, host="127.0.0.1", **opts)
    limit = limit or 16 * MiB
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        s = raw_client(listener.port)
        port = s.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="tcpcom"):
            s.sendall(b"good\0")
            block = b"x" * MiB
            sent = 5
            for _ in range(stream // MiB):
                if not send_ignoring_reset(s, block):
                    break
                sent += len(block)
            sink.wait(lambda: port in sink.lost)
        assert isinstance(sink.lost[port], MessageTooLarge)
        assert sink.count[port] == 1
        assert any("exceeds the maximum" in r.getMessage() for r in caplog.records)
        peak = tracemalloc.get_traced_memory()[1] - base
        assert peak < 2 * limit + 4 * MiB, "heap peak grew by %d bytes" % peak
        assert bystander_ok(listener.port)
        figures.update(max_message_size=limit, bytes_streamed_before_close=sent,
                       heap_peak_growth_kib=peak // 1024)
        s.close()
    finally:
        tracemalloc.stop()
        listener.close()


def test_flood_of_empty_messages(figures):
    """A flood of empty messages (only \\0 bytes): every one is delivered (none dropped), the
    heap stays bounded, another connection is served meanwhile; through TCPServer each is a
    MESSAGE event with ''."""
    n = scaled(300000, 1000000)
    sink = Sink(echo="non-empty")
    listener = Listener(0, sink, host="127.0.0.1")
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        s = raw_client(listener.port)
        port = s.getsockname()[1]
        done = threading.Event()
        t = threading.Thread(target=lambda: (s.sendall(b"\0" * n), done.set()))
        t.start()
        assert bystander_ok(listener.port)
        sink.wait(lambda: sink.count.get(port, 0) >= n, 60)
        t.join(EVENT)
        peak = tracemalloc.get_traced_memory()[1] - base
        assert sink.count[port] == n
        assert peak < 32 * MiB, peak
        s.close()
        figures.update(empty_messages_engine=n, heap_peak_growth_kib=peak // 1024)
    finally:
        tracemalloc.stop()
        listener.close()
    m = scaled(30000, 200000)
    got = [0]
    ev = threading.Event()

    def cb(state, msg):
        if state == "MESSAGE":
            assert msg == ""
            got[0] += 1
            if got[0] == m:
                ev.set()
    server = TCPServer(0, cb, host="127.0.0.1")
    try:
        s = raw_client(server.getPort())
        s.sendall(b"\0" * m)
        assert ev.wait(60)
        s.close()
        figures["empty_messages_tcpserver"] = m
    finally:
        server.terminate()


def test_invalid_utf8_and_binary_junk_round_trip_unchanged(figures):
    """Invalid UTF-8 and 2 MiB of random binary junk (with \\0 bytes inside) through an echo
    Listener ('\\0' framing and line framing) and a TCPServer: messages are split exactly at
    the delimiters, delivered as text with surrogateescape (encode gives the bytes back),
    echoed byte-identical; nothing raises, other connections are served."""
    rng = random.Random(7)
    junk = bytes(bytearray(rng.getrandbits(8) for _ in range(2 * MiB))) + b"\0"
    bad = [b"\xff\xfe", b"\xc3(", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"abc\x80", b"\xe2\x82"]
    sink = Sink(echo=True, keep=True)
    listener = Listener(0, sink, host="127.0.0.1")
    try:
        s = raw_client(listener.port)
        port = s.getsockname()[1]
        payload = b"\0".join(bad) + b"\0" + junk
        want = payload.split(b"\0")[:-1]
        t = threading.Thread(target=s.sendall, args=(payload,))
        t.start()
        echoed = recv_until(s, len(want))
        t.join(EVENT)
        assert echoed == payload
        sink.wait(lambda: sink.count.get(port, 0) == len(want))
        assert [m.encode("utf-8", "surrogateescape") for m in sink.kept[port]] == want
        assert bystander_ok(listener.port)
        s.close()
        figures.update(junk_bytes=len(junk), junk_messages=len(want))
    finally:
        listener.close()
    lines = Sink(keep=True)
    listener = Listener(0, lines, host="127.0.0.1", framing="line")
    try:
        s = raw_client(listener.port)
        port = s.getsockname()[1]
        s.sendall(junk + b"\n")
        import re
        want = re.split(b"\r\n|\r|\n", junk + b"\n")[:-1]
        lines.wait(lambda: lines.count.get(port, 0) == len(want))
        assert [m.encode("utf-8", "surrogateescape") for m in lines.kept[port]] == want
        s.close()
    finally:
        listener.close()
    rec = Recorder("server")
    server = TCPServer(0, rec, host="127.0.0.1")
    try:
        s = raw_client(server.getPort())
        s.sendall(b"\0".join(bad) + b"\0")
        msgs = rec.wait_messages(len(bad), EVENT)
        assert [m.encode("utf-8", "surrogateescape") for m in msgs] == bad
        s.close()
    finally:
        server.terminate()


# -- wrong arguments ---------------------------------------------------------------------

BAD_PORTS = [-1, 65536, 2 ** 70, 1.5, "5000", None, True, [5000]]


@pytest.mark.parametrize("port", BAD_PORTS, ids=repr)
def test_bad_ports_raise_a_clear_error_everywhere(port):
    """Negative, too large, float, str, None, bool and list ports: TypeError or ValueError
    naming the port, from Listener, connect(), TCPServer and TCPClient alike (nothing hangs,
    no thread or descriptor is left behind)."""
    before_fds, before_threads = fd_count(), engine_threads()
    for make in (lambda: Listener(port, None, host="127.0.0.1"),
                 lambda: connect("127.0.0.1", port, None),
                 lambda: TCPServer(port, None, host="127.0.0.1"),
                 lambda: TCPClient("127.0.0.1", port, None)):
        with pytest.raises((TypeError, ValueError)) as e:
            make()
        assert "port" in str(e.value)
    assert fd_count() == before_fds and engine_threads() == before_threads


@pytest.mark.parametrize("make", [
    lambda: TCPServer(0, 5, host="127.0.0.1"),
    lambda: TCPServer(0, "onStateChanged", host="127.0.0.1"),
    lambda: TCPClient("127.0.0.1", 5000, 5),
    lambda: Listener(0, 5, host="127.0.0.1"),
    lambda: Listener(0, None, host="127.0.0.1", on_refused="x"),
    lambda: Listener(0, None, host="127.0.0.1", on_closed=1),
], ids=["server-int", "server-str", "client-int", "listener-int", "on_refused", "on_closed"])
def test_a_callback_that_is_not_callable_is_refused_at_once(make):
    """A callback that is not callable is a TypeError when the object is made (not a
    thread that dies later)."""
    with pytest.raises(TypeError) as e:
        make()
    assert "function" in str(e.value)


@pytest.mark.parametrize("make", [
    lambda: Listener(0, None, host=None),
    lambda: Listener(0, None, host=127),
    lambda: TCPServer(0, None, host=None),
    lambda: Listener(0, None, host="127.0.0.1", max_connections="10"),
    lambda: Listener(0, None, host="127.0.0.1", max_connections=-1),
    lambda: Listener(0, None, host="127.0.0.1", read_timeout="5"),
    lambda: Listener(0, None, host="127.0.0.1", send_timeout="30"),
    lambda: Listener(0, None, host="127.0.0.1", max_message_size="big"),
    lambda: Listener(0, None, host="127.0.0.1", max_message_size=0),
    lambda: TCPServer(0, None, host="127.0.0.1", maxMessageSize=None),
    lambda: Listener(0, None, host="127.0.0.1", framing=5),
    lambda: Listener(0, None, host="127.0.0.1", framing=b""),
    lambda: TCPClient("127.0.0.1", 5000, None, maxMessageSize="1"),
], ids=["host-None", "host-int", "server-host-None", "max_connections-str", "max_connections-neg",
        "read_timeout-str", "send_timeout-str", "max_message_size-str", "max_message_size-0",
        "maxMessageSize-None", "framing-int", "framing-empty", "client-maxMessageSize-str"])
def test_bad_options_raise_a_clear_error_when_made(make):
    """Options of the wrong type or range (host, limits, timeouts, framing) are a TypeError or
    ValueError naming the option when the object is made, instead of an accept or reader
    thread failing later on the first connection."""
    before = fd_count()
    with pytest.raises((TypeError, ValueError)) as e:
        make()
    text = str(e.value)
    assert any(w in text for w in ("host", "max_connections", "timeout", "max_message_size",
                                   "maxMessageSize", "framing", "delimiter")), text
    assert fd_count() == before


def test_send_none_bytes_and_non_text(caplog):
    """sendMessage(None) is a TypeError (TCPServer, TCPClient, Connection.send_message);
    bytes and bytearray are sent as they are; an int is a TypeError saying to convert it;
    the connection stays usable after each of these."""
    rec = Recorder("server")
    server = TCPServer(0, rec, host="127.0.0.1")
    try:
        c = TCPClient("127.0.0.1", server.getPort(), None)
        assert c.connect()
        wait_until(server.isConnected)
        for bad in (None, 42, 4.2, ["x"]):
            with pytest.raises(TypeError):
                c.sendMessage(bad)
            with pytest.raises(TypeError):
                server.sendMessage(bad)
        c.sendMessage(b"as bytes")
        c.sendMessage(bytearray(b"as bytearray"))
        c.sendMessage(u"as text \u00e4")
        assert rec.wait_messages(3, EVENT) == ["as bytes", "as bytearray", u"as text \u00e4"]
        c.disconnect()
    finally:
        server.terminate()
    listener = Listener(0, None, host="127.0.0.1")
    try:
        conn = connect("127.0.0.1", listener.port, None)
        for bad in (None, 42):
            with pytest.raises(TypeError):
                conn.send_message(bad)
        conn.send_message(b"fine")
        conn.close()
        with pytest.raises(ConnectionClosedError):
            conn.send_message("after close")
    finally:
        listener.close()


def test_unresolvable_host_and_nobody_listening():
    """An unresolvable host name: TCPClient.connect() returns False after CONNECTING,
    CONNECTION_FAILED; engine connect() raises socket.gaierror. A port nobody listens on:
    CONNECTION_FAILED / ConnectionRefusedError. A host that is not a string: TypeError."""
    for host in ("no-such-host.invalid", "999.1.2.3"):
        rec = Recorder("client")
        c = TCPClient(host, 5000, rec)
        assert c.connect(5) is False
        assert rec.states() == ["CONNECTING", "CONNECTION_FAILED"]
        with pytest.raises(socket.gaierror):
            connect(host, 5000, None, timeout=5)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    rec = Recorder("client")
    assert TCPClient("127.0.0.1", port, rec).connect(5) is False
    assert rec.states() == ["CONNECTING", "CONNECTION_FAILED"]
    with pytest.raises(ConnectionRefusedError):
        connect("127.0.0.1", port, None)
    for bad in (None, 127001, b"127.0.0.1"):
        with pytest.raises(TypeError):
            TCPClient(bad, 5000, None)
        with pytest.raises(TypeError):
            connect(bad, 5000, None)


def test_on_connection_returning_a_non_handler_closes_only_that_connection(caplog):
    """on_connection returns something that is not a handler: that connection is closed with
    a logged TypeError; the listener's accept thread lives on and serves the next one."""
    calls = [0]

    class Echo(Handler):
        def message_received(self, conn, message):
            conn.send_message(message)

    def on_connection(conn):
        calls[0] += 1
        return 42 if calls[0] == 1 else Echo()
    listener = Listener(0, on_connection, host="127.0.0.1")
    try:
        with caplog.at_level(logging.ERROR, logger="tcpcom"):
            s = raw_client(listener.port)
            assert s.recv(10) == b""
            s.close()
        assert "not 42" in caplog.text
        assert bystander_ok(listener.port)
    finally:
        listener.close()


def assert_failed_setup_is_closed_and_logged_and_the_next_client_served(listener, caplog):
    # the first client meets an injected failure in the accept thread's setup of its connection
    with caplog.at_level(logging.ERROR, logger="tcpcom"):
        s = raw_client(listener.port)
        assert s.recv(10) == b""
        s.close()
        assert bystander_ok(listener.port)
    assert "injected failure" in caplog.text


def test_accept_thread_survives_an_unexpected_error(monkeypatch, caplog):
    """Regression (Listener): an unexpected exception while setting up an accepted connection
    (before: it ended the accept thread, so the listener silently stopped accepting) is
    logged, that connection is closed, and the next client is served."""
    calls = [0]
    original = Listener._accepted

    def flaky(self, sock, addr):
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("injected failure")
        return original(self, sock, addr)
    monkeypatch.setattr(Listener, "_accepted", flaky)
    listener = Listener(0, Sink(echo=True), host="127.0.0.1")
    try:
        assert_failed_setup_is_closed_and_logged_and_the_next_client_served(listener, caplog)
    finally:
        listener.close()


def test_a_connection_whose_setup_failed_is_not_counted(caplog):
    """Regression (Listener): when setting up an accepted connection failed after the
    Connection was made (here: its first handler), that connection stayed counted -- with
    ``max_connections=1`` every later client was refused, and ``on_closed`` never came."""
    closed = threading.Event()
    fail = [True]

    class Flaky(Listener):
        def _first_handler(self, conn):
            if fail[0]:
                fail[0] = False
                raise RuntimeError("injected failure")
            return Listener._first_handler(self, conn)

    listener = Flaky(0, Sink(echo=True), host="127.0.0.1", max_connections=1, on_closed=closed.set)
    try:
        assert_failed_setup_is_closed_and_logged_and_the_next_client_served(listener, caplog)
    finally:
        listener.close()
    assert closed.wait(5), "on_closed never came: the failed connection was still counted"
