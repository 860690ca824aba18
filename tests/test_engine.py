"""The public engine: multi-connection listener, handlers, framing, dispatch."""
import logging
import socket
import threading

import pytest

from helpers import DEADLINE, CallLog, engine_threads, raw_client, read_to_eof, recv_until, wait_until
from tcpcom.dispatch import EventPump
from tcpcom.engine import (Connection, ConnectionClosedError, DeadlineExceeded, Handler, Listener,
                           PortInUseError, ReadTimeout, connect)


class Log(Handler, CallLog):
    """Records every handler call; wait() with a deadline; ``overlap`` if two ever ran at once."""

    def __init__(self, conn=None):
        Handler.__init__(self, conn)
        CallLog.__init__(self, "log")
        self.calls = self.events

    def connection_made(self, conn):
        self.record("made", conn.id)

    def message_received(self, conn, message):
        self.record("msg", message)

    def connection_lost(self, conn, reason):
        self.record("lost", reason)

    def messages(self):
        return CallLog.messages(self, "msg")

    def wait(self, pred, timeout=DEADLINE):
        return self.wait_for(pred, timeout)


def lost(calls):
    return any(k == "lost" for k, _ in calls)


@pytest.fixture
def echo_listener():
    class Echo(Handler):
        def message_received(self, conn, message):
            conn.send_message(message)
    lst = Listener(0, Echo, host="127.0.0.1")
    yield lst
    lst.close()


def test_many_connections_each_with_its_own_handler(echo_listener):
    clients = []
    for i in range(20):
        h = Log()
        clients.append((connect("127.0.0.1", echo_listener.port, h), h))
    for round_ in range(5):
        for i, (c, h) in enumerate(clients):
            c.send_message("c%d-r%d" % (i, round_))
    for i, (c, h) in enumerate(clients):
        h.wait(lambda calls: len([1 for k, _ in calls if k == "msg"]) >= 5)
        assert h.messages() == ["c%d-r%d" % (i, r) for r in range(5)]
        assert not h.overlap
    assert len(echo_listener.connections) == 20
    ids = set(c.id for c in echo_listener.connections)
    assert len(ids) == 20
    for c, h in clients:
        c.close()  # (returns before the closing event when the reader is still in a callback)
        h.wait(lambda calls: ("lost", None) in calls)
        assert h.calls[-1] == ("lost", None)


def test_qsys_style_event_function():
    events = []
    done = threading.Event()

    def socket_handler(conn, event, data):
        events.append((event, data))
        if event == Connection.DATA:
            conn.send(data.upper() + "\n")
        if event in (Connection.CLOSED, Connection.ERROR, Connection.TIMEOUT):
            done.set()

    def on_connection(conn):  # like TcpSocketServer.EventHandler
        conn.read_timeout = 10
        conn.handler = socket_handler
    lst = Listener(0, on_connection, host="127.0.0.1", framing="line")
    try:
        s = raw_client(lst.port)
        s.sendall(b"hello\r\nworld\n")
        assert recv_until(s, 2, b"\n") == b"HELLO\nWORLD\n"
        s.close()
        assert done.wait(DEADLINE)
        assert events == [("connected", None), ("data", "hello"), ("data", "world"), ("closed", None)]
    finally:
        lst.close()


def test_connection_info(echo_listener):
    h = Log()
    c = connect("127.0.0.1", echo_listener.port, h)
    wait_until(lambda: echo_listener.connections)
    server_side = echo_listener.connections[0]
    assert server_side.remote_address == "127.0.0.1"
    assert server_side.remote_port == c.local_port
    assert server_side.local_port == echo_listener.port
    assert c.remote_port == echo_listener.port
    assert server_side.info["id"] == server_side.id
    assert server_side.listener is echo_listener
    c.close()


def test_raw_framing_delivers_text_decoded_incrementally():
    got = Log()
    lst = Listener(0, lambda conn: got, host="127.0.0.1", framing=None)
    try:
        s = raw_client(lst.port)
        data = u"\u00e4\u00f6\u00fc\U0001F600".encode("utf-8")
        for i in range(len(data)):  # one byte at a time: characters split across reads
            s.sendall(data[i:i + 1])
        got.wait(lambda calls: "".join(m for k, m in calls if k == "msg") == u"\u00e4\u00f6\u00fc\U0001F600")
        s.close()
    finally:
        lst.close()


def test_bytes_mode_and_invalid_utf8_is_lossless():
    got_bytes, got_text = Log(), Log()
    lb = Listener(0, lambda conn: got_bytes, host="127.0.0.1", encoding=None)
    lt = Listener(0, lambda conn: got_text, host="127.0.0.1")
    try:
        for lst in (lb, lt):
            s = raw_client(lst.port)
            s.sendall(b"\xff\xfeok\0")
            s.close()
        got_bytes.wait(lambda c: got_bytes.messages())
        got_text.wait(lambda c: got_text.messages())
        assert got_bytes.messages() == [b"\xff\xfeok"]
        text = got_text.messages()[0]
        assert text.encode("utf-8", "surrogateescape") == b"\xff\xfeok"
    finally:
        lb.close()
        lt.close()


def test_max_connections_refuses_cleanly_with_an_event():
    refused = []
    ev = threading.Event()
    lst = Listener(0, Log, host="127.0.0.1", max_connections=2,
                   on_refused=lambda addr: (refused.append(addr), ev.set()))
    try:
        a, b = raw_client(lst.port), raw_client(lst.port)
        wait_until(lambda: len(lst.connections) == 2)
        c = raw_client(lst.port)
        assert ev.wait(DEADLINE)
        assert c.recv(10) == b""  # closed at once
        assert refused[0][0] == "127.0.0.1"
        a.close()
        wait_until(lambda: len(lst.connections) == 1)
        d = raw_client(lst.port)
        wait_until(lambda: len(lst.connections) == 2)
        for s in (b, c, d):
            s.close()
    finally:
        lst.close()


def test_read_timeout_closes_an_idle_connection():
    h = Log()
    lst = Listener(0, lambda conn: h, host="127.0.0.1", read_timeout=0.1)
    try:
        s = raw_client(lst.port)
        calls = h.wait(lost)
        assert isinstance(calls[-1][1], ReadTimeout)
        assert s.recv(10) == b""
        s.close()
    finally:
        lst.close()


def test_serialize_runs_handlers_one_at_a_time():
    slow = CallLog("slow", hold=0.002)  # every call stays 2 ms inside its counted section

    class Slow(Handler):
        def message_received(self, conn, message):
            slow.record("msg", message)
    lst = Listener(0, Slow, host="127.0.0.1", serialize=True)
    try:
        socks = [raw_client(lst.port) for _ in range(4)]
        for s in socks:
            s.sendall(b"x\0" * 10)
        slow.wait_messages(40, state="msg")
        assert slow.meter.most == 1
    finally:
        lst.close()


def test_slow_handler_of_one_connection_does_not_stall_another(echo_listener):
    release = threading.Event()
    blocked = threading.Event()

    class Blocking(Handler):
        def message_received(self, conn, message):
            blocked.set()
            release.wait(DEADLINE)
    lst = Listener(0, Blocking, host="127.0.0.1")
    try:
        s = raw_client(lst.port)
        s.sendall(b"block\0")
        assert blocked.wait(DEADLINE)
        h = Log()
        c = connect("127.0.0.1", echo_listener.port, h)
        assert c.request("ping", DEADLINE) == "ping"  # the echo listener still serves
        c.close()
    finally:
        release.set()
        lst.close()


def test_port_in_use_raises():
    lst = Listener(0, None, host="127.0.0.1")
    try:
        with pytest.raises(PortInUseError) as info:
            Listener(lst.port, None, host="127.0.0.1")
        assert "in use" in str(info.value)
    finally:
        lst.close()


def test_send_on_closed_connection_raises_clear_error(echo_listener):
    c = connect("127.0.0.1", echo_listener.port, Log())
    c.close()
    with pytest.raises(ConnectionClosedError) as info:
        c.send_message("x")
    assert "closed" in str(info.value)


def test_close_ends_all_threads_and_on_closed_fires():
    closed = threading.Event()
    before = engine_threads()
    lst = Listener(0, Log, host="127.0.0.1", on_closed=closed.set)
    socks = [raw_client(lst.port) for _ in range(5)]
    wait_until(lambda: len(lst.connections) == 5)
    lst.close()
    assert not [n for n in engine_threads() if n.startswith("tcpcom-listen")]  # accepting has ended
    assert closed.wait(DEADLINE)
    for s in socks:
        assert s.recv(10) == b""  # the graceful close: the end of the stream ...
        s.close()
    wait_until(lambda: set(engine_threads()) <= set(before))  # ... and each reader ends when its peer closes
    lst.close()  # twice is fine


def test_a_closed_connection_lingers_at_most_the_idle_bound_when_the_peer_never_closes(monkeypatch):
    from tcpcom.engine import lifecycle
    monkeypatch.setattr(lifecycle, "LINGER_IDLE", 0.2)
    monkeypatch.setattr(lifecycle, "LINGER_MAX", 60.0)  # so that only the idle bound can end it in time
    before = engine_threads()
    lst = Listener(0, Log, host="127.0.0.1")
    s = raw_client(lst.port)
    wait_until(lambda: len(lst.connections) == 1)
    conn = lst.connections[0]
    lst.close()
    assert conn.state == "closing"
    assert s.recv(10) == b""  # FIN, but this peer keeps its side open
    # well past 0.2 s, far short of 60 s
    wait_until(lambda: conn.state == "closed" and set(engine_threads()) <= set(before), 5.0)
    s.close()


def test_handler_exception_is_logged_and_connection_goes_on(caplog):
    class Bad(Handler):
        def message_received(self, conn, message):
            if message == "bad":
                raise ValueError("oops")
            conn.send_message(message)
    lst = Listener(0, Bad, host="127.0.0.1")
    try:
        c = connect("127.0.0.1", lst.port, Log())
        with caplog.at_level(logging.ERROR, logger="tcpcom"):
            c.send_message("bad")
            assert c.request("good", DEADLINE) == "good"
        assert "oops" in caplog.text
        c.close()
    finally:
        lst.close()


def test_on_connection_that_raises_closes_that_connection(caplog):
    def boom(conn):
        raise RuntimeError("factory failed")
    lst = Listener(0, boom, host="127.0.0.1")
    try:
        with caplog.at_level(logging.ERROR, logger="tcpcom"):
            s = raw_client(lst.port)
            assert s.recv(10) == b""
        assert "factory failed" in caplog.text
        s.close()
    finally:
        lst.close()


def test_event_pump_delivers_on_the_pumping_thread(echo_listener):
    pump = EventPump()
    h = Log()
    threads = []
    orig = h.message_received

    def rec(conn, message):
        threads.append(threading.current_thread())
        orig(conn, message)
    h.message_received = rec
    c = connect("127.0.0.1", echo_listener.port, h, dispatcher=pump)
    c.send_message("a")
    c.send_message("b")
    assert pump.pump_until(lambda: len(h.messages()) == 2, DEADLINE)
    assert h.messages() == ["a", "b"]
    assert set(threads) == {threading.current_thread()}
    c.close()
    pump.pump_until(lambda: lost(h.calls), DEADLINE)
    assert h.calls[-1] == ("lost", None)


def test_request_from_inside_own_callback_does_not_deadlock(echo_listener):
    answers = []

    class Asker(Handler):
        def message_received(self, conn, message):
            if message == "start":
                answers.append(conn.request("inner", DEADLINE))
            answers.append(message)
    h = Asker()
    c = connect("127.0.0.1", echo_listener.port, h)
    c.send_message("start")
    wait_until(lambda: len(answers) == 3)
    assert answers == ["inner", "start", "inner"]
    c.close()


def test_connect_unresolvable_and_refused():
    with pytest.raises(socket.gaierror):
        connect("no-such-host.invalid", 80, Log())
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(socket.error):
        connect("127.0.0.1", port, Log())


class _ThreadLog(Handler):
    """Records, per connection, the reader thread and whether it saw itself as a reader."""

    def __init__(self, conn=None):
        Handler.__init__(self, conn)

    def connection_made(self, conn):
        from tcpcom.engine import current_reader
        _ThreadLog.made.append((conn.id, threading.current_thread(), threading.current_thread().name,
                                current_reader() is not None))

    def connection_lost(self, conn, reason):
        _ThreadLog.lost.append(conn.id)


def test_accepted_connections_reuse_a_spare_reader_thread_released_when_the_linger_ends():
    # a connection per request (HTTP Connection: close) must not pay a new thread each time
    _ThreadLog.made, _ThreadLog.lost = [], []
    before = engine_threads()
    lst = Listener(0, _ThreadLog, host="127.0.0.1")
    try:
        s = raw_client(lst.port)
        wait_until(lambda: len(_ThreadLog.made) == 1)
        s.close()
        wait_until(lambda: len(_ThreadLog.lost) == 1 and not lst.connections)
        s = raw_client(lst.port)
        wait_until(lambda: len(_ThreadLog.made) == 2)
        (id1, t1, name1, in1), (id2, t2, name2, in2) = _ThreadLog.made
        assert t2 is t1  # the first connection's reader thread, kept as a spare
        assert (name1, name2) == ("tcpcom-conn-" + id1, "tcpcom-conn-" + id2)
        assert in1 and in2
        conn = lst.connections[0]
        lst.close()
        assert not conn.is_open
        assert s.recv(10) == b""
        s.close()  # the peer closes too: the linger ends, the thread is no connection's any more
        wait_until(lambda: conn._reader.done)
        wait_until(lambda: t2.name.startswith("tcpcom-spare") or not t2.is_alive())
        wait_until(lambda: set(engine_threads()) <= set(before))
    finally:
        lst.close()


def test_a_non_daemon_listener_reuses_spare_reader_threads_of_its_own_and_ends_them_when_closed():
    # the tcpcom faces' listeners are not daemons (they keep a script alive): a connection
    # per request must not pay a new thread there either, and close() must not leave a
    # waiting non-daemon spare that holds the program's end for its idle time
    _ThreadLog.made, _ThreadLog.lost = [], []
    lst = Listener(0, _ThreadLog, host="127.0.0.1", daemon=False)
    lst.spares.idle_timeout = 3600  # out of reach: only close() can end a waiting spare
    try:
        s = raw_client(lst.port)
        wait_until(lambda: len(_ThreadLog.made) == 1)
        t1 = _ThreadLog.made[0][1]
        assert not t1.daemon
        s.close()
        wait_until(lambda: t1.name.startswith("tcpcom-spare"))  # its linger is over: it waits as a spare
        s = raw_client(lst.port)
        wait_until(lambda: len(_ThreadLog.made) == 2)
        assert _ThreadLog.made[1][1] is t1
        s.close()
        wait_until(lambda: t1.name.startswith("tcpcom-spare"))
    finally:
        lst.close()
    wait_until(lambda: not t1.is_alive(), what="the waiting spare ended by close()")


def test_watchdog_is_woken_only_for_a_deadline_earlier_than_its_own_wake_up():
    # short-lived connections each add a far deadline (send timeout): no wake-up for those
    from tcpcom._compat import monotonic
    from tcpcom.engine.deadlines import Watchdog

    class Fake(object):
        ended = False

        def __init__(self):
            self.checked = threading.Event()

        def watch_ended(self):
            return self.ended

        def check_deadlines(self, now):
            self.checked.set()
            return None

    wd = Watchdog()
    first, later, soon = Fake(), Fake(), Fake()
    wd.watch(first, monotonic() + 60)
    wait_until(lambda: wd._wake_at is not None)      # waiting, at most 5 s
    woke_at = wd._wake_at
    wd.watch(later, monotonic() + 30)                 # after its own wake-up: left asleep
    assert wd._wake_at == woke_at
    wd.watch(soon, monotonic())                       # due now: woken
    assert soon.checked.wait(DEADLINE)
    assert not first.checked.is_set() and not later.checked.is_set()
    first.ended = later.ended = True
    wd.forget(first)
    wd.forget(later)


class _Target(object):
    """A watchdog target that never comes due in a test (checks far in the future)."""
    ended = False

    def watch_ended(self):
        return self.ended

    def check_deadlines(self, now):
        return None


def test_the_watchdog_lets_go_of_a_forgotten_target_at_once_while_many_others_are_watched():
    import weakref
    from tcpcom._compat import monotonic
    from tcpcom.engine.deadlines import Watchdog

    wd = Watchdog()
    far = monotonic() + 3600
    live = [_Target() for _ in range(300)]
    for t in live:
        wd.watch(t, far)
    gone = _Target()
    wd.watch(gone, far)
    wd.watch(gone, far - 1)  # an earlier check supersedes the first: neither entry may keep it
    ref = weakref.ref(gone)
    gone.ended = True
    wd.forget(gone)
    del gone
    assert ref() is None, "a forgotten target is kept by the watchdog until its deadline"
    for t in live:
        t.ended = True
        wd.forget(t)
    assert not wd._due and not [e for e in wd._heap if e[2] is not None]


def test_forgetting_targets_while_others_are_watched_costs_the_same_however_many_are_watched(
        monkeypatch):
    # connections that close while others stay: each forget() used to copy and re-sort the
    # whole heap when it held 256 entries or fewer (200 connections at a time: 115k more
    # instructions per connection); stale entries now go in one pass once they could be half
    from tcpcom._compat import monotonic
    from tcpcom.engine import deadlines

    passes = []
    heapify = deadlines.heapq.heapify
    monkeypatch.setattr(deadlines.heapq, "heapify", lambda h: passes.append(len(h)) or heapify(h))
    wd = deadlines.Watchdog()
    far = monotonic() + 3600
    staying = [_Target() for _ in range(200)]
    for t in staying:
        wd.watch(t, far)
    for i in range(1000):
        t = _Target()
        wd.watch(t, far)
        t.ended = True
        wd.forget(t)
    assert len(passes) <= 10, "%d passes over the heap for 1,000 forgotten targets" % len(passes)
    assert len(wd._heap) <= 2 * len(staying) + 1
    for t in staying:
        t.ended = True
        wd.forget(t)


# -- deadlines and the event pump (from test_http.py: added with the HTTP server) --------------

def test_set_deadline_sends_the_farewell_and_closes():
    lost = []
    done = threading.Event()

    class H(object):
        def connection_made(self, conn):
            conn.set_deadline(0.1, b"bye\n", "test deadline")

        def message_received(self, conn, message):
            pass

        def connection_lost(self, conn, reason):
            lost.append(reason)
            done.set()
    lst = Listener(0, lambda conn: H(), host="127.0.0.1")
    try:
        sock = raw_client(lst.port)
        sock.sendall(b"data that does not restart the clock")
        assert read_to_eof(sock) == b"bye\n"
        sock.close()
        assert done.wait(DEADLINE)
        assert isinstance(lost[0], DeadlineExceeded) and "test deadline" in str(lost[0])
    finally:
        lst.close()


def test_set_deadline_none_cancels():
    events = []
    armed = threading.Event()

    class H(object):
        def connection_made(self, conn):
            conn.set_deadline(0.2)
            armed.set()

        def message_received(self, conn, message):
            conn.set_deadline(None)
            threading.Event().wait(0.5)  # well past the cancelled deadline
            conn.send(b"still open")

        def connection_lost(self, conn, reason):
            events.append(reason)
    lst = Listener(0, lambda conn: H(), host="127.0.0.1", framing=None, encoding=None)
    try:
        sock = raw_client(lst.port)
        assert armed.wait(DEADLINE)
        sock.sendall(b"x")
        assert sock.recv(100) == b"still open"
        sock.close()
        wait_until(lambda: events)
        assert events == [None]
    finally:
        lst.close()


def test_engine_listener_with_an_event_pump_and_per_connection_executors():
    # on_connection runs on the pumping thread; choosing the handler must not wait for the pump
    from tcpcom.dispatch import EventPump
    from tcpcom.engine import Handler
    pump = EventPump()
    got = []

    class Echo(Handler):
        def message_received(self, conn, message):
            got.append(message)
            conn.send_message(message.upper())
    lst = Listener(0, lambda conn: Echo(), host="127.0.0.1", dispatcher=pump)
    try:
        sock = raw_client(lst.port)
        sock.sendall(b"hi\0")
        assert pump.pump_until(lambda: got, DEADLINE)
        assert sock.recv(10) == b"HI\0"
        sock.close()
    finally:
        lst.close()
