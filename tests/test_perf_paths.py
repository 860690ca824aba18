"""Behaviour of the engine's fast paths (issue 6): same guarantees, fewer hops and copies."""
import gc
import logging
import sys
import threading

import pytest

from helpers import DEADLINE, CallLog, Recorder, raw_client, recv_until, wait_until
from tcpcom import TCPClient, TCPServer
from tcpcom.engine import BIG_SEND, Handler, Listener, connect


class Batches(Handler):
    """Takes whole batches through the messages_received hook."""

    def __init__(self):
        Handler.__init__(self)
        self.batches = []
        self.single = []
        self.cond = threading.Condition()

    def messages_received(self, conn, messages):
        with self.cond:
            self.batches.append(list(messages))
            self.cond.notify_all()

    def message_received(self, conn, message):
        self.single.append(message)

    def all(self):
        with self.cond:
            return [m for b in self.batches for m in b]


def test_batch_hook_gets_every_message_in_order_instead_of_message_received():
    h = Batches()
    listener = Listener(0, lambda conn: h, host="127.0.0.1")
    try:
        s = raw_client(listener.port)
        expected = ["m%d" % i for i in range(500)]
        s.sendall(b"".join(m.encode() + b"\0" for m in expected))  # arrives in few chunks
        wait_until(lambda: len(h.all()) >= 500)
        assert h.all() == expected
        assert h.single == []
        s.close()
    finally:
        listener.close()


def test_batch_hook_that_raises_is_logged_and_later_batches_still_come(caplog):
    got = []

    class Bad(Handler):
        def messages_received(self, conn, messages):
            got.extend(messages)
            if "boom" in messages:
                raise RuntimeError("batch bug")

    listener = Listener(0, lambda conn: Bad(), host="127.0.0.1")
    try:
        with caplog.at_level(logging.ERROR, logger="tcpcom"):
            s = raw_client(listener.port)
            s.sendall(b"boom\0")
            wait_until(lambda: "boom" in got)
            s.sendall(b"after\0")
            wait_until(lambda: "after" in got)
        assert any("batch bug" in (r.exc_text or "") for r in caplog.records)
        s.close()
    finally:
        listener.close()


def test_tcpserver_callback_raising_mid_chunk_still_gets_the_rest_of_the_chunk(caplog):
    got = []

    def cb(state, msg):
        if state == "MESSAGE":
            got.append(msg)
            if msg == "boom":
                raise RuntimeError("student bug")

    srv = TCPServer(0, cb, host="127.0.0.1")
    try:
        with caplog.at_level(logging.ERROR, logger="tcpcom"):
            s = raw_client(srv.getPort())
            s.sendall(b"a\0boom\0c\0")  # one send: one chunk, one batch
            wait_until(lambda: len(got) >= 3)
        assert got == ["a", "boom", "c"]
        assert sum("student bug" in (r.exc_text or "") for r in caplog.records) == 1
        s.close()
    finally:
        srv.terminate()


def test_big_message_is_sent_whole_with_its_delimiter_and_the_next_one_follows():
    got = []
    done = threading.Event()

    class Keep(Handler):
        def message_received(self, conn, message):
            got.append(message)
            if len(got) == 3:
                done.set()

    listener = Listener(0, lambda conn: Keep(), host="127.0.0.1", encoding=None,
                        max_message_size=4 * BIG_SEND)
    try:
        c = connect("127.0.0.1", listener.port, None, encoding=None)
        big = bytes(bytearray(range(1, 256))) * (BIG_SEND // 255 + 3)  # no NUL; over the no-copy threshold
        assert len(big) >= BIG_SEND
        c.send_message(b"before")
        c.send_message(big)
        c.send_message(b"after")
        assert done.wait(DEADLINE)
        assert got == [b"before", big, b"after"]
        c.close()
    finally:
        listener.close()


def test_big_message_with_a_line_framing_gets_the_line_end():
    listener = Listener(0, lambda conn: None, host="127.0.0.1", framing="line")
    s = None
    try:
        server_side = []
        listener.on_connection = lambda conn: server_side.append(conn)
        s = raw_client(listener.port)
        wait_until(lambda: server_side)
        big = "x" * (BIG_SEND + 10)
        server_side[0].send_message(big)
        data = recv_until(s, 1, b"\r\n")
        assert data == big.encode() + b"\r\n"
    finally:
        if s is not None:
            s.close()
        listener.close()


def test_wait_closed_before_and_after_the_close():
    listener = Listener(0, lambda conn: None, host="127.0.0.1")
    try:
        c = connect("127.0.0.1", listener.port, None)
        assert not c.wait_closed(0.05)  # the Event is made on demand and not yet set
        c.close()
        assert c.wait_closed(DEADLINE)
        assert c.wait_closed(0)  # after the close: True at once
    finally:
        listener.close()


def test_on_connection_runs_one_at_a_time_even_when_run_inline():
    seen = CallLog("on_connection", hold=0.002)  # widen the window a concurrent call would need

    def on_connection(conn):
        seen.record("conn", conn.id)
        return None

    listener = Listener(0, on_connection, host="127.0.0.1")
    socks = []
    try:
        socks = [raw_client(listener.port) for _ in range(20)]
        seen.wait_messages(20, state="conn")
        assert not seen.overlap
    finally:
        for s in socks:
            s.close()
        listener.close()


def test_request_reply_is_still_delivered_to_the_callback():
    rec = Recorder("client")
    srv = TCPServer(0, lambda state, msg: srv.sendMessage("re:" + msg) if state == "MESSAGE" else None,
                    host="127.0.0.1")
    try:
        c = TCPClient("127.0.0.1", srv.getPort(), rec)
        assert c.connect()
        assert c.sendMessage("x", DEADLINE) == "re:x"
        rec.wait_messages(1)
        assert rec.messages() == ["re:x"]
        c.disconnect()
    finally:
        srv.terminate()


def test_framer_hands_big_assembled_messages_as_bytearray_only_when_allowed():
    from tcpcom.framing import DelimiterFramer
    big = b"y" * 200000
    for allowed in (False, True):
        f = DelimiterFramer(max_size=1 << 20)
        f.allow_bytearray = allowed
        out = []
        for i in range(0, len(big), 4096):
            out.extend(f.feed(big[i:i + 4096]))
        out.extend(f.feed(b"\0small\0"))
        assert out == [big, b"small"]
        assert type(out[0]) is (bytearray if allowed else bytes)
        assert type(out[1]) is bytes


def test_big_text_message_arrives_as_text_and_big_bytes_message_as_bytes():
    got = []
    done = threading.Event()

    class Keep(Handler):
        def message_received(self, conn, message):
            got.append(message)
            done.set()

    for encoding, payload in (("utf-8", u"\u00e9" * 300000), (None, b"z" * 600000)):
        got[:] = []
        done.clear()
        listener = Listener(0, lambda conn: Keep(), host="127.0.0.1", encoding=encoding)
        try:
            c = connect("127.0.0.1", listener.port, None, encoding=encoding)
            c.send_message(payload)
            assert done.wait(DEADLINE)
            assert got == [payload] and type(got[0]) is type(payload)
            c.close()
        finally:
            listener.close()


def sent_by_a_listener(text, **options):
    """The bytes a raw client receives when the server side of its connection sends ``text``."""
    listener = Listener(0, lambda conn: None, host="127.0.0.1", **options)
    s = None
    try:
        server_side = []
        listener.on_connection = lambda conn: server_side.append(conn)
        s = raw_client(listener.port)
        wait_until(lambda: server_side)
        got = []
        reader = threading.Thread(target=lambda: got.append(recv_until(s, 1, b"\0")))
        reader.start()  # read while sending: the text is bigger than the socket buffers
        server_side[0].send_message(text)
        reader.join(DEADLINE)
        return got[0] if got else None
    finally:
        if s is not None:
            s.close()
        listener.close()


def test_big_text_in_an_encoding_that_is_not_plain_utf8_is_encoded_whole():
    # slices are for UTF-8 alone: in "utf-8-sig" each slice would begin with a BOM of its own
    text = u"\u00e9" * (BIG_SEND + 5)
    assert sent_by_a_listener(text, encoding="utf-8-sig") == text.encode("utf-8-sig") + b"\0"


def test_big_text_is_sent_in_slices_that_join_to_its_exact_utf8_bytes():
    # non-ASCII around every slice boundary, a surrogate-escaped byte, and
    # a length that is not a multiple of the slice size
    text = (u"a\u00e9\u20ac\U0001f600" * (BIG_SEND // 2 + 7)) + u"\udcff" + u"end"
    assert sent_by_a_listener(text) == text.encode("utf-8", "surrogateescape") + b"\0"


def test_big_text_to_a_closed_connection_raises_a_clear_error():
    from tcpcom.engine import ConnectionClosedError
    listener = Listener(0, lambda conn: None, host="127.0.0.1")
    try:
        c = connect("127.0.0.1", listener.port, None)
        c.close()
        try:
            c.send_message(u"x" * (BIG_SEND + 1))
        except ConnectionClosedError as e:
            assert "closed" in str(e)
        else:
            raise AssertionError("no error")
    finally:
        listener.close()


def has_own_dict(obj):
    """True if ``obj``'s attributes live in a dict of its own (seen without making one:
    ``vars(obj)`` would create it)."""
    return any(type(r) is dict and r.get("id") == obj.id for r in gc.get_referents(obj))


class _Echo(Handler):
    def message_received(self, conn, message):
        conn.send_message(message)


def test_an_open_connection_keeps_its_attributes_without_a_dict_of_its_own():
    # CPython 3.11-3.13 keep at most 29 attribute names of a class's objects compactly, and
    # every name any connection of the process ever set counts; past that a connection gets a
    # dict of its own, ~1.6 KB more each (16 MB at 10,000 connections). A 30th name set in
    # __init__ did that, and so did request()'s three attributes on a client (tracemalloc found
    # them; a count of 30 allowed both).
    server = Listener(0, lambda conn: _Echo(), host="127.0.0.1")
    try:
        client = connect("127.0.0.1", server.port, None)
        try:
            assert client.request(u"hello", DEADLINE) == u"hello"  # the caller-reads attributes
            wait_until(lambda: server.connections, what="the server side")
            for conn in (client, server.connections[0]):
                if sys.version_info >= (3, 11) and sys.implementation.name == "cpython":
                    assert not has_own_dict(conn), "a Connection got a dict of its own"
                assert len(vars(conn)) <= 29, sorted(vars(conn))
                from tcpcom.engine.connection import Connection
                assert set(vars(conn)) <= set(Connection._ATTRIBUTE_NAMES), "a name _reserve_names() does not know"
        finally:
            client.close()
    finally:
        server.close()


_FIRST_TWO = r"""
import gc, socket, sys, threading
sys.path.insert(0, sys.argv[1])
from tcpcom.engine import connection
from tcpcom.engine.connection import Connection, _CallerReads
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(2)
a = socket.create_connection(ls.getsockname()); b, _ = ls.accept(); ls.close()
first_waits, second_made = threading.Event(), threading.Event()
real = connection.set_nodelay
def set_nodelay(sock):  # the process's first connection stops half made until the second is made
    if not first_waits.is_set():
        first_waits.set()
        second_made.wait(10)
    real(sock)
connection.set_nodelay = set_nodelay
made = []
t = threading.Thread(target=lambda: made.append(Connection(a)))
t.start()
first_waits.wait(10)
made.append(Connection(b))
second_made.set()
t.join(10)
first = made[0]
first._callers = _CallerReads()  # what its first request() sets
print(any(type(r) is dict and r.get("id") == first.id for r in gc.get_referents(first)))
"""


@pytest.mark.skipif(sys.implementation.name != "cpython" or sys.version_info < (3, 11),
                    reason="CPython 3.11+'s shared attribute tables")
def test_the_first_two_connections_made_at_once_leave_room_for_every_attribute_name():
    # Flaky until found: a class's objects share one table of at most 30 attribute names, and
    # each object made before the first had set all of its names takes one place of it. The
    # process's first two connections, made at once by two threads (a program that starts a
    # Listener and connects to it), left no place for _callers: every connection that then
    # made a request got a dict of its own, for the life of the process.  A fresh interpreter,
    # the first connection held half made while a second one is made.
    assert _run_script(_FIRST_TWO) == [b"False"], "a connection got a dict of its own"


# -- memory per connection: a reader thread's stack ------------------------------------------------

_STACKS = r"""
import re, socket, statistics, sys, threading
sys.path.insert(0, sys.argv[2])
kind, n = sys.argv[1], 20
hold = threading.Event()
if kind == "raw":
    ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(64)
    def serve(s):
        while True:
            data = s.recv(65536)
            if not data:
                break
            s.sendall(data)
    def accept():
        while True:
            s, _ = ls.accept()
            t = threading.Thread(target=serve, args=(s,)); t.daemon = True; t.start()
    t = threading.Thread(target=accept); t.daemon = True; t.start()
    port = ls.getsockname()[1]
else:
    from tcpcom.engine import Handler, Listener
    class Echo(Handler):
        def connection_made(self, conn):
            self.seen = 0
        def message_received(self, conn, message):
            conn.send_message(message)
    port = Listener(0, lambda conn: Echo(), host="127.0.0.1").port
socks = [socket.create_connection(("127.0.0.1", port), 10) for _ in range(n)]
for s in socks:
    s.sendall(b"hello\0")
for s in socks:
    got = b""
    while not got.endswith(b"\0"):
        got += s.recv(100)
sizes, size = [], 0
for line in open("/proc/self/smaps"):
    m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", line)
    if m:
        size = int(m.group(2), 16) - int(m.group(1), 16)
    elif line.startswith("Rss:") and 8 * 1024 * 1024 - 65536 <= size <= 8 * 1024 * 1024 + 4096:
        sizes.append(int(line.split()[1]))  # a thread's stack (glibc's default: 8 MiB, less guard)
print(len(sizes), statistics.median(sizes) if sizes else -1)
"""


def _run_script(script, *args):
    """Run ``script`` in a fresh interpreter (argv: ``args``, then the project's root); the words it printed."""
    import os
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.check_output([sys.executable, "-c", script] + list(args) + [root], timeout=DEADLINE).split()


def _stack_kib(kind):
    count, median = _run_script(_STACKS, kind)
    return int(count), float(median)


@pytest.mark.skipif(not sys.platform.startswith("linux") or sys.implementation.name != "cpython"
                    or sys.version_info < (3, 11),
                    reason="reads /proc/self/smaps; before CPython 3.11 every Python call nests in C, "
                           "so a stack's depth follows the Python call depth")
def test_a_reader_thread_touches_no_more_stack_than_a_raw_server_thread():
    # Found by bisection (4 KiB per connection, the larger part of the RSS gap at 2,000
    # connections): a threading.Event made per connection (its Condition probes the lock for
    # three methods it lacks), and fn(*args) in call_logged (another C-level interpreter loop
    # per callback level) each took every reader's stack from 8 to 12 KiB.
    raw_count, raw = _stack_kib("raw")
    ours_count, ours = _stack_kib("listener")
    assert raw_count >= 20 and ours_count >= 20
    assert ours <= raw, "reader threads touch %s KiB of stack, a raw server's threads %s KiB" % (ours, raw)


def test_a_read_loop_that_ended_leaves_no_entry_in_the_readers_registry():
    # current_reader() is a dict keyed by thread ident (a threading.local cost every reader
    # thread 500 bytes more): an entry left behind would hold its connection, and a new thread
    # that got the same ident would take itself for that connection's reader.
    from tcpcom.engine import reading
    from tcpcom.udp import UDPEndpoint
    server = Listener(0, lambda conn: _Echo(), host="127.0.0.1")
    try:
        client = connect("127.0.0.1", server.port, None)
        assert client.request(u"hello", DEADLINE) == u"hello"
        wait_until(lambda: server.connections, what="the server side")
        ours = [client, server.connections[0]]
        assert set(ours) <= set(reading.readers.values())
        client.close()
        for conn in ours:
            assert conn.wait_closed(DEADLINE)
        wait_until(lambda: all(c._reader.done for c in ours), what="both read loops ended")
    finally:
        server.close()
    ep = UDPEndpoint(0, None, host="127.0.0.1")
    wait_until(lambda: ep in reading.readers.values(), what="the UDP endpoint's read loop")
    ep.close()
    assert ep.wait_closed(DEADLINE)
    # (the UDP thread removes its entry right after posting its closing event)
    wait_until(lambda: not [r for r in list(reading.readers.values()) if r is ep or r in ours],
               what="no entry for an ended read loop")
