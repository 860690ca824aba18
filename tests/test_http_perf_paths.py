"""The HTTP server's fast paths with a new connection per request (issue 15): the same
guarantees (a bounded linger, no response lost at the close, ordered events), fewer hops."""
import collections
import socket
import threading

import pytest

from helpers import DEADLINE, engine_threads, raw_client, read_to_eof, wait_until
from tcpcom.engine import Handler, Listener, connection, lifecycle
from tcpcom.engine.deadlines import watchdog
from tcpcom.httpserver import HTTPListener


class CloseOnFirstMessage(Handler):
    """Closes the connection from its own callback, i.e. on the connection's reader thread."""

    def __init__(self):
        Handler.__init__(self)
        self.conns = []
        self.lost = threading.Event()

    def message_received(self, conn, message):
        self.conns.append(conn)
        conn.send(b"bye")
        conn.close()

    def connection_lost(self, conn, reason):
        self.lost.set()


def _linger_case(monkeypatch, idle, most, keep_sending):
    """A close on the reader thread while the peer (never closing) sends or stays quiet:
    the connection must end within the bound ``min(idle, most)`` (plus slack), not at 30 s
    (the send timeout's check) or never."""
    monkeypatch.setattr(lifecycle, "LINGER_IDLE", idle)
    monkeypatch.setattr(lifecycle, "LINGER_MAX", most)
    before = engine_threads()
    h = CloseOnFirstMessage()
    lst = Listener(0, lambda conn: h, host="127.0.0.1", framing=None, encoding=None)
    stop = threading.Event()
    s = raw_client(lst.port)
    try:
        s.sendall(b"go")
        assert h.lost.wait(DEADLINE)
        conn = h.conns[0]
        assert conn.state == "closing"  # lingering on its reader thread
        data = b""
        while not data.endswith(b"bye"):
            data += s.recv(100)

        def send_on():  # a pacing loop, not a synchronisation: the peer keeps talking
            while not stop.is_set():
                try:
                    s.sendall(b"more")
                except (socket.error, OSError):
                    return
                stop.wait(0.02)
        if keep_sending:
            t = threading.Thread(target=send_on)
            t.daemon = True
            t.start()
        # well past the bound, far short of the other bound and of the 30 s send timeout
        wait_until(lambda: conn.state == "closed", 5.0, "the end of the linger")
    finally:
        stop.set()
        s.close()
        lst.close()
    wait_until(lambda: set(engine_threads()) <= set(before))


def test_a_close_on_the_reader_thread_lingers_at_most_linger_max_while_the_peer_keeps_sending(monkeypatch):
    _linger_case(monkeypatch, idle=60.0, most=0.3, keep_sending=True)


def test_a_close_on_the_reader_thread_lingers_at_most_the_idle_bound_when_the_peer_is_quiet(monkeypatch):
    _linger_case(monkeypatch, idle=0.3, most=60.0, keep_sending=False)


def test_a_close_does_not_wake_the_watchdog_when_its_next_check_comes_earlier(monkeypatch):
    """The linger asks the watchdog for a check at the first moment it can end, not now: a close
    wakes the waiting watchdog only if it would sleep past that moment (a wake-up per request
    was a context switch and ~20 us of CPU at a new connection per request)."""
    calls = []
    real_watch = watchdog.watch

    def watch(target, when):
        calls.append(when - lifecycle.monotonic())
        return real_watch(target, when)
    monkeypatch.setattr(watchdog, "watch", watch)
    h = CloseOnFirstMessage()
    lst = Listener(0, lambda conn: h, host="127.0.0.1", framing=None, encoding=None)
    try:
        s = raw_client(lst.port)
        s.sendall(b"go")
        assert h.lost.wait(DEADLINE)
        assert read_to_eof(s) == b"bye"
        s.close()
        wait_until(lambda: h.conns[0].state == "closed")
    finally:
        lst.close()
    # start() asked for the send timeout's check (30 s); the close for the linger's (LINGER_IDLE)
    assert calls and min(calls) > lifecycle.LINGER_IDLE * 0.5, calls


def test_http_responses_are_complete_with_a_new_connection_per_request():
    """No response lost at the close: every client reads the whole response, then the end."""
    page = "x" * 5000
    server = HTTPListener(0, lambda request, conn: page, host="127.0.0.1")
    try:
        def one():
            s = raw_client(server.port)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = read_to_eof(s)
            s.close()
            return data
        for _ in range(20):
            data = one()
            assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(page.encode()), data[:200]
    finally:
        server.close()


def _server_connection_ends(monkeypatch, request, within=DEADLINE):
    """Send ``request`` (its client never closes its side); returns (what it read until the
    server's end of the stream, whether the server's connection was then over ``within`` s)."""
    monkeypatch.setattr(lifecycle, "LINGER_IDLE", 60.0)  # a lingering close would not end in time
    monkeypatch.setattr(lifecycle, "LINGER_MAX", 60.0)
    conns = []

    def app(request, conn):
        conns.append(conn)
        return "hi"
    server = HTTPListener(0, app, host="127.0.0.1")
    s = raw_client(server.port)
    try:
        s.sendall(request)
        data = read_to_eof(s)
        try:
            wait_until(lambda: conns[0].state == "closed", within)
            return data, True
        except AssertionError:
            return data, False
    finally:
        s.close()
        server.close()


def test_a_connection_close_request_ends_its_connection_without_waiting_for_the_client(monkeypatch):
    """The client said it sends nothing more (Connection: close): once the response is sent the
    connection is over, as nginx does -- no reader thread waits for the client's own close."""
    data, ended = _server_connection_ends(
        monkeypatch, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"hi")
    assert ended


def test_a_close_the_client_did_not_ask_for_still_lingers(monkeypatch):
    """A request after the Connection: close one (the client may send more): the connection
    reads and discards until the client closes, so that no reset destroys the response."""
    data, ended = _server_connection_ends(
        monkeypatch, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        1.0)  # (it ends at 60 s; a close without linger would end it in milliseconds)
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"hi") and data.count(b"HTTP/1.1 ") == 1
    assert not ended


def test_http_connections_do_not_wait_for_the_listeners_executor():
    """The HTTP server's handler of a connection is set on the accept thread: a connection
    never waits for the listener's executor (busy here with a slow callback), nor hops to it."""
    server = HTTPListener(0, lambda request, conn: "hi", host="127.0.0.1")
    entered, release = threading.Event(), threading.Event()

    def slow():
        entered.set()
        release.wait(DEADLINE)
    blocker = threading.Thread(target=server.listener.executor.post, args=(slow, (), True))
    blocker.daemon = True
    blocker.start()  # (inline: the executor's callback runs on that thread, and holds it)
    try:
        assert entered.wait(DEADLINE)
        s = raw_client(server.port)
        s.settimeout(3.0)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_to_eof(s)
        s.close()
        assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"hi"), data
    finally:
        release.set()
        server.close()


def test_closing_a_listener_ends_its_blocked_accept_at_once():
    """Where shutdown() wakes a blocked accept() (Linux) the accept thread has no timeout to
    fall back on (it saved a poll() per connection): close() must still return at once."""
    from tcpcom._compat import monotonic
    lst = Listener(0, None, host="127.0.0.1")
    s = raw_client(lst.port)  # one accept done: the thread is blocked in the next one
    wait_until(lambda: len(lst.connections) == 1)
    t0 = monotonic()
    lst.close()
    assert monotonic() - t0 < 0.5  # (the old fallback timeout was 1 s)
    assert not [n for n in engine_threads() if n.startswith("tcpcom-listen")]
    s.close()


def test_the_date_header_is_made_once_per_second_and_stays_current(monkeypatch):
    import email.utils
    from tcpcom import httpcodec
    now = [1000000000.25]
    monkeypatch.setattr(httpcodec.time, "time", lambda: now[0])
    made = []
    real = email.utils.formatdate
    monkeypatch.setattr(email.utils, "formatdate", lambda *a, **k: made.append(a) or real(*a, **k))

    def date():
        head = httpcodec.build_response(200, b"ok").split(b"\r\n")
        return [h for h in head if h.startswith(b"Date: ")][0]
    first = date()
    assert first == b"Date: Sun, 09 Sep 2001 01:46:40 GMT"
    now[0] += 0.5
    assert date() == first and len(made) == 1  # the same second: no new formatdate()
    now[0] += 1.0
    assert date() == b"Date: Sun, 09 Sep 2001 01:46:41 GMT"


# -- system calls a short connection does not need (each lets the other threads run) ----------

_Socket = socket.socket  # (the fixture below replaces socket.socket)


class _CountingSocket(_Socket):
    """A socket that counts the calls the engine makes on it which may let other threads run."""

    def _count(self, name):
        calls = self.__dict__.setdefault("calls", collections.Counter())
        calls[name] += 1

    def getsockname(self):
        self._count("getsockname")
        return _Socket.getsockname(self)

    def shutdown(self, how):
        self._count("shutdown")
        return _Socket.shutdown(self, how)

    def recv(self, *args):
        self._count("recv")
        return _Socket.recv(self, *args)


@pytest.fixture
def accepted(monkeypatch):
    """accept(handler, **options): a Listener whose accepted sockets count their calls, and a
    raw client connected to it -- (listener, client socket, the listener's connections)."""
    monkeypatch.setattr(socket, "socket", _CountingSocket)  # (accept makes socket.socket objects)
    opened = []

    def accept(handler=None, **options):
        made = []
        lst = Listener(0, lambda conn: made.append(conn) or handler, framing=None, encoding=None, **options)
        opened.append(lst)
        s = raw_client(lst.port)
        opened.append(s)
        return lst, s, made
    yield accept
    for x in opened:
        x.close()


def _calls(conn):
    return conn.sock.__dict__.get("calls", {})


def test_a_listener_on_one_address_gives_its_connections_their_address_without_asking(accepted):
    lst, s, made = accepted(host="127.0.0.1")
    wait_until(lambda: made)
    conn = made[0]
    assert (conn.local_address, conn.local_port) == ("127.0.0.1", lst.port)
    assert conn.local_address == s.getpeername()[0] and conn.remote_port == s.getsockname()[1]
    assert _calls(conn).get("getsockname", 0) == 0


def test_a_listener_on_all_addresses_asks_for_a_connections_address_only_when_it_is_read(accepted):
    """(binds 0.0.0.0: on all addresses is the case; the client connects over loopback)"""
    seen = []

    class Look(Handler):
        def connection_made(self, conn):
            before = _calls(conn).get("getsockname", 0)
            first, second = conn.local_address, conn.local_address
            seen.append((before, first, second, _calls(conn).get("getsockname", 0)))
    lst, s, made = accepted(Look(), host="0.0.0.0")
    assert lst.address == "0.0.0.0"
    wait_until(lambda: seen)
    assert seen[0] == (0, "127.0.0.1", "127.0.0.1", 1)  # asked once, when first read
    assert made[0].info["local_address"] == "127.0.0.1"


def test_a_connections_address_first_read_after_its_close_is_the_listeners(accepted):
    lst, s, made = accepted(host="0.0.0.0")
    wait_until(lambda: made)
    s.close()  # the peer ends it: the socket closes before anybody read the address
    wait_until(lambda: made[0].state == "lost")
    assert made[0].local_address == "0.0.0.0"


@pytest.mark.skipif(not connection._CLOSE_SENDS_END, reason="Python 2 and Jython shut down, then read the end")
def test_a_close_without_linger_from_a_callback_ends_with_no_shutdown_and_no_read_of_the_end(accepted):
    """The HTTP server's close after a Connection: close request, at the engine: the reader
    thread closes the socket when the callback returns (the close sends the FIN); the peer
    reads everything, then the end (not a reset), and the closing event comes once."""
    class ReplyAndClose(Handler):
        def __init__(self):
            Handler.__init__(self)
            self.lost = []

        def message_received(self, conn, message):
            conn.send(b"bye")
            conn.close(None, linger=False)

        def connection_lost(self, conn, reason):
            self.lost.append(reason)
    h = ReplyAndClose()
    lst, s, made = accepted(h, host="127.0.0.1")
    s.sendall(b"go")
    assert read_to_eof(s) == b"bye"
    wait_until(lambda: made[0].state == "closed")
    assert h.lost == [None]
    calls = _calls(made[0])
    assert calls.get("shutdown", 0) == 0 and calls.get("recv", 0) == 1, dict(calls)
