"""Rough edges of the engine: big messages with a header framing, errors="strict", handler objects
with only some methods, the engine's __all__, and the MessageTooLarge text."""
import ast
import logging
import os
import struct
import threading

import pytest

import tcpcom.engine
from helpers import DEADLINE, CallLog, raw_client, recv_until, wait_until
from tcpcom.engine import BIG_SEND, Handler, Listener, connect
from tcpcom.framing import DelimiterFramer, LineFramer, MessageTooLarge


class LengthPrefixed(object):
    """A framing with a header: a 4-byte big-endian length, then that many bytes."""

    def __init__(self, max_size):
        self.max_size = max_size
        self._buf = b""

    @property
    def buffered(self):
        return len(self._buf)

    def encode(self, payload):
        return struct.pack("!I", len(payload)) + payload

    def feed(self, data):
        self._buf += bytes(data)
        messages = []
        while len(self._buf) >= 4:
            (size,) = struct.unpack("!I", self._buf[:4])
            if size > self.max_size:
                self._buf = b""
                raise MessageTooLarge(size, self.max_size, messages)
            if len(self._buf) < 4 + size:
                break
            messages.append(self._buf[4:4 + size])
            self._buf = self._buf[4 + size:]
        return messages


class Log(Handler, CallLog):
    def __init__(self):
        Handler.__init__(self)
        CallLog.__init__(self, "log", hold=0)

    def message_received(self, conn, message):
        self.record("msg", message)

    def connection_lost(self, conn, reason):
        self.record("lost", reason)


def _ended(events):
    return any(k == "lost" for k, _ in events)


def errors_logged(caplog):
    return [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("tcpcom")]


# -- 1. a big message with a framing that puts a header before the payload ------------------------

@pytest.mark.parametrize("kind", ["bytes", "utf-8 text"])
def test_message_of_1_5_mib_arrives_whole_with_a_length_prefix_framer(kind):
    log = Log()
    encoding = None if kind == "bytes" else "utf-8"
    listener = Listener(0, lambda conn: log, host="127.0.0.1", framing=LengthPrefixed, encoding=encoding,
                        max_message_size=4 * BIG_SEND)
    try:
        c = connect("127.0.0.1", listener.port, None, framing=LengthPrefixed, encoding=encoding)
        if kind == "bytes":
            big = b"xy" * (3 * BIG_SEND // 4)  # 1.5 MiB
            before, after = b"before", b"after"
        else:
            big = u"x\u00e9" * (BIG_SEND // 2)  # 1.5 MiB of UTF-8, 1 Mi characters: the sliced path
            before, after = u"before", u"after"
        assert len(big) >= BIG_SEND
        c.send_message(before)
        c.send_message(big)
        c.send_message(after)
        events = log.wait_for(lambda ev: len(ev) >= 3 or _ended(ev))
        assert [k for k, _ in events] == ["msg", "msg", "msg"]
        got = [m for _, m in events]
        assert got[0] == before and got[2] == after
        assert len(got[1]) == len(big) and got[1] == big
        c.close()
    finally:
        listener.close()


def test_big_message_with_a_delimiter_still_gets_its_delimiter_once():
    listener = Listener(0, lambda conn: None, host="127.0.0.1", framing=b"<end>")
    s = None
    try:
        server_side = []
        listener.on_connection = lambda conn: server_side.append(conn)
        s = raw_client(listener.port)
        wait_until(lambda: server_side)
        big = b"x" * (BIG_SEND + 10)
        server_side[0].send_message(big)
        server_side[0].send_message(b"next")
        data = recv_until(s, 2, b"<end>")
        assert data == big + b"<end>next<end>"
    finally:
        if s is not None:
            s.close()
        listener.close()


# -- 2. errors="strict" -------------------------------------------------------------------------

@pytest.mark.parametrize("framing,data,before", [
    (b"\0", b"one\0two\0bad\xff\0three\0", [u"one", u"two"]),
    ("line", b"one\ntwo\nbad\xff\nthree\n", [u"one", u"two"]),
])
def test_strict_decoding_delivers_the_messages_before_a_bad_one_then_ends_with_a_clear_error(
        caplog, framing, data, before):
    log = Log()
    listener = Listener(0, lambda conn: log, host="127.0.0.1", framing=framing, errors="strict")
    s = None
    try:
        with caplog.at_level(logging.WARNING, logger="tcpcom"):
            s = raw_client(listener.port)
            s.sendall(data)
            events = log.wait_for(_ended)
            wait_until(lambda: errors_logged(caplog))
        assert [m for k, m in events if k == "msg"] == before
        reason = events[-1][1]
        assert events[-1][0] == "lost" and isinstance(reason, UnicodeDecodeError)
        errors = errors_logged(caplog)
        assert len(errors) == 1, [r.getMessage() for r in errors]
        text = errors[0].getMessage()
        assert "utf-8" in text and "<Connection c" in text, text
        assert "reader of" not in text and errors[0].exc_info is None  # not an engine bug
        assert s.recv(100) == b""  # the connection ended
    finally:
        if s is not None:
            s.close()
        listener.close()


def test_strict_decoding_of_raw_chunks_delivers_the_text_before_a_bad_byte(caplog):
    log = Log()
    listener = Listener(0, lambda conn: log, host="127.0.0.1", framing="raw", errors="strict")
    s = None
    try:
        with caplog.at_level(logging.WARNING, logger="tcpcom"):
            s = raw_client(listener.port)
            s.sendall(b"caf\xc3\xa9 ok\xff rest")
            events = log.wait_for(_ended)
        assert u"".join(m for k, m in events if k == "msg") == u"caf\u00e9 ok"
        assert isinstance(events[-1][1], UnicodeDecodeError)
        errors = errors_logged(caplog)
        assert len(errors) == 1 and errors[0].exc_info is None and "utf-8" in errors[0].getMessage()
    finally:
        if s is not None:
            s.close()
        listener.close()


# -- 3. a handler object with only some of the methods -------------------------------------------------

class OnlyMessages(object):
    """Neither connection_made nor connection_lost."""

    def __init__(self):
        self.got = []
        self.conns = []
        self.cond = threading.Condition()

    def message_received(self, conn, message):
        with self.cond:
            self.got.append(message)
            self.conns.append(conn)
            self.cond.notify_all()


class OnlyLost(object):
    """Neither connection_made nor message_received."""

    def __init__(self):
        self.reasons = []
        self.ended = threading.Event()

    def connection_lost(self, conn, reason):
        self.reasons.append(reason)
        self.ended.set()


def _echo_then_close(conn, event, data):
    if event == "data":
        conn.send_message(data)
        conn.close()


def test_connected_handler_without_connection_made_or_lost_runs_without_errors(caplog):
    listener = Listener(0, lambda conn: _echo_then_close, host="127.0.0.1")
    h = OnlyMessages()
    try:
        with caplog.at_level(logging.WARNING, logger="tcpcom"):
            c = connect("127.0.0.1", listener.port, h)
            c.send_message("hi")
            wait_until(lambda: h.got == ["hi"])
            c.close()
            wait_until(lambda: not c.is_open)
            assert c.executor.wait_idle(DEADLINE)
        assert errors_logged(caplog) == []
    finally:
        listener.close()


def test_connected_handler_with_only_connection_lost_hears_the_end_without_errors(caplog):
    listener = Listener(0, lambda conn: _echo_then_close, host="127.0.0.1")
    h = OnlyLost()
    try:
        with caplog.at_level(logging.WARNING, logger="tcpcom"):
            c = connect("127.0.0.1", listener.port, h)
            c.send_message("hi")  # echoed (a message h does not take), then the server closes
            assert h.ended.wait(DEADLINE)
        assert h.reasons == [None]
        assert errors_logged(caplog) == []
    finally:
        listener.close()


def test_accepted_handler_without_connection_made_or_lost_runs_without_errors(caplog):
    h = OnlyMessages()
    listener = Listener(0, lambda conn: h, host="127.0.0.1")
    s = None
    try:
        with caplog.at_level(logging.WARNING, logger="tcpcom"):
            s = raw_client(listener.port)
            s.sendall(b"hi\0")
            wait_until(lambda: h.got == ["hi"])
            s.close()
            conn = h.conns[0]
            wait_until(lambda: not conn.is_open)
            assert conn.executor.wait_idle(DEADLINE)
        assert errors_logged(caplog) == []
    finally:
        listener.close()


# -- 4. __all__ --------------------------------------------------------------------------------------

def _stub_all():
    path = os.path.join(os.path.dirname(tcpcom.engine.__file__), "__init__.pyi")
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return [ast.literal_eval(e) for e in node.value.elts]
    raise AssertionError("no __all__ in the stub")


def test_engine_all_names_each_name_once_and_matches_its_stub():
    names = tcpcom.engine.__all__
    assert sorted(set(n for n in names if names.count(n) > 1)) == []
    assert all(hasattr(tcpcom.engine, n) for n in names)
    stub = _stub_all()
    assert sorted(set(n for n in stub if stub.count(n) > 1)) == []
    assert set(stub) == set(names)


# -- MessageTooLarge: the limit is "at most max_size", and the text says so -------------------------

@pytest.mark.parametrize("make,end", [(lambda: DelimiterFramer(b"\0", 100), b"\0"),
                                      (lambda: LineFramer(max_size=100), b"\n")], ids=["delimiter", "line"])
def test_message_of_exactly_max_size_passes_and_one_byte_more_is_named_truthfully(make, end):
    assert make().feed(b"x" * 100 + end) == [b"x" * 100]
    for data in (b"x" * 101 + end, b"x" * 101):  # complete, and still incomplete
        with pytest.raises(MessageTooLarge) as info:
            make().feed(data)
        text = str(info.value)
        assert info.value.size == 101 and info.value.limit == 100
        assert "more than 101" not in text  # it has exactly 101 bytes
        assert "at least 101 bytes" in text and "maximum of 100 bytes" in text


# -- a reset whose error a send took: the reader sees only the end of the stream ----------------

def _pair():
    import socket
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    a = socket.create_connection(ls.getsockname())
    b, _ = ls.accept()
    ls.close()
    return a, b


@pytest.mark.skipif(not hasattr(__import__("socket"), "TCP_INFO"), reason="needs Linux's TCP_INFO")
def test_an_end_of_stream_after_a_reset_is_told_from_the_peers_normal_end():
    import errno
    import socket
    from tcpcom.engine.sockets import reset_error
    a, b = _pair()
    try:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        a.close()  # a reset
        b.settimeout(DEADLINE)
        with pytest.raises(socket.error):  # the first call takes the reset's error (a send, say)...
            b.recv(10)
        assert b.recv(10) == b""  # ...and the reader then sees only an end
        e = reset_error(b)
        assert isinstance(e, socket.error) and e.errno == errno.ECONNRESET
    finally:
        b.close()
    a, b = _pair()
    try:
        a.close()  # a normal end
        b.settimeout(DEADLINE)
        assert b.recv(10) == b""
        assert reset_error(b) is None
    finally:
        b.close()


def _reason_after(end_peer, before_first_recv):
    """The ``connection_lost`` reason of an accepted connection whose client ``end_peer(sock)``
    ends it, and whose handler's ``connection_made`` -- on the reader thread, before its first
    ``recv()`` -- runs ``before_first_recv(conn)`` once the client has ended."""
    ended, lost = threading.Event(), []

    class H(Handler):
        def connection_made(self, conn):
            ended.wait(DEADLINE)
            before_first_recv(conn)

        def connection_lost(self, conn, reason):
            lost.append(reason)

    listener = Listener(0, lambda conn: H(), host="127.0.0.1")
    try:
        s = raw_client(listener.port)
        end_peer(s)
        ended.set()
        wait_until(lambda: lost, DEADLINE)
        s.close()
        return lost[0]
    finally:
        listener.close()


@pytest.mark.skipif(not hasattr(__import__("socket"), "TCP_INFO"), reason="needs Linux's TCP_INFO")
def test_a_connection_reset_whose_error_a_send_took_ends_with_that_error_not_a_normal_close():
    import socket

    def reset(s):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()

    def send_takes_the_error(conn):
        for _ in range(200):  # a send (here a raw one) takes the reset's error
            try:
                conn.sock.send(b"x")
            except socket.error:
                return
            threading.Event().wait(0.01)

    reason = _reason_after(reset, send_takes_the_error)
    assert isinstance(reason, socket.error), reason  # not None: it did not end normally


@pytest.mark.skipif(not hasattr(__import__("socket"), "TCP_INFO"), reason="needs Linux's TCP_INFO")
def test_a_normal_end_after_our_own_close_write_is_not_taken_for_a_reset():
    import socket
    from tcpcom.engine.sockets import _TCP_CLOSE, _tcp_state

    def close_write_then_both_ends_are_done(conn):
        conn.close_write()  # the peer's end came first: both ends are done, the state is CLOSE
        wait_until(lambda: _tcp_state(conn.sock) == _TCP_CLOSE, DEADLINE)

    assert _reason_after(lambda s: s.shutdown(socket.SHUT_WR), close_write_then_both_ends_are_done) is None


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("timeout", [None, 1.0])
def test_the_accept_loop_makes_the_socket_socket_accept_makes(host, timeout):
    # the accept loop skips socket.accept()'s per-connection enum lookups (tcpcom._compat.accepter)
    import socket
    from tcpcom._compat import accepter
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listening = socket.socket(family, socket.SOCK_STREAM)
        listening.bind((host, 0))
    except OSError:
        pytest.skip("no %s here" % host)
    listening.listen(2)
    listening.settimeout(timeout)
    peers, accepted = [], []
    try:
        for accept in (listening.accept, accepter(listening)):
            peers.append(socket.create_connection(listening.getsockname()[:2], timeout=DEADLINE))
            accepted.append(accept())
        (ours, our_addr), (theirs, their_addr) = accepted[1], accepted[0]
        for sock, peer in ((ours, peers[1]), (theirs, peers[0])):
            assert sock.getpeername() == peer.getsockname()
        assert our_addr == peers[1].getsockname()
        assert (ours.family, ours.type, ours.proto, ours.gettimeout(), ours.getblocking()) == \
            (theirs.family, theirs.type, theirs.proto, theirs.gettimeout(), theirs.getblocking())
        assert ours.family == family and ours.type == socket.SOCK_STREAM
        assert type(ours.family) is type(theirs.family)  # an AddressFamily enum, as accept() gives
    finally:
        for s in peers + [a for a, _ in accepted] + [listening]:
            s.close()
