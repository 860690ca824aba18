"""request() reads its own reply on the calling thread while requests follow each other
closely (tcpcom.engine.connection.CALLER_READS): no thread switch per round trip.  What
must not change: every message still reaches the handler, in order, never on the caller's
thread; what the peer sends between requests, or its hang-up, is noticed without another
request; a close ends a request that waits."""
import socket
import threading
import time

import pytest

from helpers import DEADLINE, wait_until
from tcpcom.engine import Handler, Listener, connect
from tcpcom.engine import connection as connection_module
from tcpcom.engine import lifecycle
from tcpcom.engine.outbound import Outbound

pytestmark = pytest.mark.skipif(connection_module.CALLER_READS is None,
                                reason="this interpreter keeps every read on the reader thread")


class Answer(Handler):
    """Server side: "q<i>" gets the reply "r<i>" and a push "p<i>" in one send (one segment,
    so the push is never taken for the next request's reply); "silent" gets nothing."""

    def message_received(self, conn, message):
        if message.startswith("q"):
            conn.send(("r%s\0p%s\0" % (message[1:], message[1:])).encode("ascii"))


class Seen(Handler):
    def __init__(self):
        Handler.__init__(self)
        self.messages, self.threads, self.lost = [], set(), []
        self.cond = threading.Condition()

    def message_received(self, conn, message):
        with self.cond:
            self.messages.append(message)
            self.threads.add(threading.current_thread().ident)
            self.cond.notify_all()

    def connection_lost(self, conn, reason):
        with self.cond:
            self.lost.append(reason)
            self.cond.notify_all()

    def wait(self, predicate, what):
        with self.cond:
            assert self.cond.wait_for(predicate, DEADLINE), what


@pytest.fixture
def pair(closing):
    server = Listener(0, lambda conn: Answer(), host="127.0.0.1")
    closing(server)
    seen = Seen()
    client = connect("127.0.0.1", server.port, seen)
    closing(client)
    return server, client, seen


def warm_up(client, n=100):
    """Requests in a row: from some point on the callers read their replies themselves."""
    for i in range(n):
        assert client.request("q%d" % i, DEADLINE) == "r%d" % i
    assert client._callers.requests > 0, "no caller ever read its own reply: the path under test was not taken"


def test_every_message_reaches_the_handler_in_order_and_never_on_the_callers_thread(pair):
    server, client, seen = pair
    warm_up(client, 300)
    expected = [x for i in range(300) for x in ("r%d" % i, "p%d" % i)]
    seen.wait(lambda: len(seen.messages) >= len(expected), "all replies and pushes delivered")
    assert seen.messages == expected
    assert threading.current_thread().ident not in seen.threads


def test_what_the_peer_sends_between_requests_is_delivered_without_another_request(pair):
    server, client, seen = pair
    warm_up(client)
    seen.wait(lambda: len(seen.messages) >= 200, "the warm-up delivered")
    wait_until(lambda: server.connections, what="the server side")
    server.connections[0].send_message("unasked")
    seen.wait(lambda: "unasked" in seen.messages, "a message between requests is read by the reader thread")


def test_a_hang_up_between_requests_ends_the_connection(pair):
    server, client, seen = pair
    warm_up(client)
    wait_until(lambda: server.connections, what="the server side")
    server.connections[0].close()
    seen.wait(lambda: seen.lost, "connection_lost after the peer hung up")
    assert seen.lost == [None] and client.is_done()
    assert client.request("q", 0.5) is None


SLOW = 0.2  # s: how long RawPeer takes to answer "slow"


class RawPeer(object):
    """A raw server socket that answers "q<i>" with "r<i>" at once and "slow" with "late" after
    SLOW s, ignores "silent", and at the end of the stream closes its socket only if
    ``close_at_end``."""

    def __init__(self, close_at_end):
        self.listening = socket.socket()
        self.listening.bind(("127.0.0.1", 0))
        self.listening.listen(1)
        self.port = self.listening.getsockname()[1]
        self.close_at_end = close_at_end
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._serve)
        self.thread.daemon = True
        self.thread.start()

    def close(self):
        self.release.set()

    def _serve(self):
        sock, _ = self.listening.accept()
        sock.settimeout(3 * DEADLINE)
        buf = b""
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                buf += data
                while b"\0" in buf:
                    msg, buf = buf.split(b"\0", 1)
                    if msg.startswith(b"q"):
                        sock.sendall(b"r" + msg[1:] + b"\0")
                    elif msg == b"slow":  # a server that takes its time (many CALLER_READS)
                        self.release.wait(SLOW)
                        sock.sendall(b"late\0")
            if not self.close_at_end:
                self.release.wait(3 * DEADLINE)  # keeps its socket open
        except OSError:
            pass
        finally:
            sock.close()
            self.listening.close()


def parked_client(close_at_end, monkeypatch, closing):
    """A client whose reader thread has left the socket to request() callers, for a long time."""
    monkeypatch.setattr(connection_module, "CALLER_READS", 3 * DEADLINE)
    peer = RawPeer(close_at_end)
    seen = Seen()
    client = connect("127.0.0.1", peer.port, seen)
    closing(client)
    warm_up(client)
    closing(peer)
    return client, seen


def close_when_it_reads(client):
    """Close ``client`` (from another thread) as soon as a request reads its reply itself."""
    before = client._callers.requests

    def run():
        wait_until(lambda: client._callers.requests > before, what="the request reads its reply itself")
        client.close()
    t = threading.Thread(target=run)
    t.start()
    return t


def test_a_close_from_another_thread_ends_a_request_that_reads_its_reply(monkeypatch, closing):
    for name in ("LINGER_IDLE", "LINGER_MAX"):  # no end of the linger comes to the rescue
        monkeypatch.setattr(lifecycle, name, 3 * DEADLINE)
    client, seen = parked_client(False, monkeypatch, closing)  # the peer never answers the end
    closer = close_when_it_reads(client)
    started = time.time()
    assert client.request("silent", 3 * DEADLINE) is None
    assert time.time() - started < DEADLINE, "the close did not end the request's wait"
    closer.join(DEADLINE)
    seen.wait(lambda: seen.lost, "one connection_lost")
    assert seen.lost == [None]


def test_a_close_wakes_the_parked_reader_for_the_linger(monkeypatch, closing):
    client, seen = parked_client(True, monkeypatch, closing)  # the peer closes at the end
    client.close()  # no request under way: only the reader thread can read the peer's end
    # left parked it would wait 3 x DEADLINE; woken, it reads the peer's end at once
    wait_until(lambda: client.state == "closed", timeout=DEADLINE, what="the linger ended")


def test_a_reply_that_takes_longer_than_the_park_is_delivered_without_more_traffic(closing):
    """The caller holds the socket while it waits for a slow reply; the parked reader thread
    stops waiting for callers meanwhile (no new request for CALLER_READS) and waits for the
    socket.  The reply the caller then reads must be delivered when the reader thread gets
    the socket back -- it used to wait for the next message from the peer, or the close."""
    peer = RawPeer(False)
    closing(peer)
    seen = Seen()
    client = connect("127.0.0.1", peer.port, seen)
    closing(client)
    warm_up(client)
    before = client._callers.requests
    assert client.request("slow", DEADLINE) == "late"
    assert client._callers.requests > before, "the caller did not read its reply itself"
    seen.wait(lambda: "late" in seen.messages, "the slow reply delivered with nothing else coming")


def test_replies_a_caller_read_are_delivered_before_a_close_that_follows(pair):
    server, client, seen = pair
    warm_up(client)  # the last replies were read by this thread: their delivery waits for the reader
    client.close()
    seen.wait(lambda: seen.lost, "connection_lost")
    # every reply (and its push) that request() returned was also an event, before the close
    assert seen.messages == [x for i in range(100) for x in ("r%d" % i, "p%d" % i)]


def test_a_tcpclient_reports_every_reply_as_message_before_disconnected():
    from tcpcom import TCPClient, TCPServer
    events = []
    done = threading.Event()

    def on_server(state, msg):
        if state == TCPServer.MESSAGE:
            server.sendMessage("echo " + msg)

    def on_client(state, msg):
        events.append((state, msg))
        if state == TCPClient.DISCONNECTED:
            done.set()
    server = TCPServer(0, on_server, host="127.0.0.1")
    try:
        client = TCPClient("127.0.0.1", server.getPort(), on_client)
        assert client.connect()
        for i in range(50):
            assert client.sendMessage("m%d" % i, DEADLINE) == "echo m%d" % i
        client.disconnect()
        assert done.wait(DEADLINE)
    finally:
        server.terminate()
    messages = [m for s, m in events if s == TCPClient.MESSAGE]
    assert messages == ["echo m%d" % i for i in range(50)]
    assert events[-1] == (TCPClient.DISCONNECTED, "")


def test_a_request_made_while_the_reader_thread_delivers_gets_its_reply_read_at_once(monkeypatch, closing):
    """A request() that finds the reader thread busy (here: delivering a pushed message) asks it
    to leave the socket to callers and waits for its reply.  When the reader thread parks it
    wakes that request, which reads its reply at once.  The caller used to look again only
    after CALLER_READS (5 ms, a stall the bench's round trips showed); here that is made longer
    than the test's deadline, so a request left to its next look fails the test."""
    monkeypatch.setattr(connection_module, "CALLER_READS", 3 * DEADLINE)
    ls = socket.socket()
    closing(ls)
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    entered, go = threading.Event(), threading.Event()

    class Blocks(Seen):
        def message_received(self, conn, message):
            Seen.message_received(self, conn, message)
            if message == "push":
                entered.set()
                go.wait(DEADLINE)
    seen = Blocks()
    client = connect("127.0.0.1", ls.getsockname()[1], seen)
    closing(client)
    peer, _ = ls.accept()
    closing(peer)
    peer.settimeout(DEADLINE)
    peer.sendall(b"push\0")
    assert entered.wait(DEADLINE)
    got = []
    t = threading.Thread(target=lambda: got.append(client.request("q", 3 * DEADLINE)))
    t.daemon = True
    t.start()
    try:
        data = b""
        while not data.endswith(b"q\0"):
            more = peer.recv(100)
            assert more, "the client hung up"
            data += more
        peer.sendall(b"a\0")
        wait_until(lambda: client._callers is not None and client._callers.park_next,
                   what="the caller asked the reader thread for the socket")
    finally:
        go.set()
    t.join(DEADLINE)
    assert got == ["a"], "the request was not woken when the reader thread left it the socket"
    client.close()  # (the parked reader thread would deliver "a" only after CALLER_READS)
    seen.wait(lambda: seen.messages == ["push", "a"], "both messages delivered")


def test_a_request_whose_reply_came_during_its_send_still_leaves_the_socket_to_callers(pair, monkeypatch):
    """A send lets the other threads run: on a busy machine the whole round trip (the peer's
    answer, the reader thread reading it and handing it over) can happen before the thread
    that sent runs again.  Its request() must have asked for the socket before the send:
    asked after, it found its reply there and never asked, and requests in a row never
    read their replies themselves (seen on a loaded CI machine)."""
    server, client, seen = pair
    send = Outbound.send_message

    def send_and_let_the_round_trip_happen(out, message, parts=None):
        send(out, message, parts)
        if out is client._out:
            # (or the reader thread left the socket to callers: then this thread reads the reply)
            wait_until(lambda: not client._waiters or client._callers.unpark is not None,
                       what="the reply handed over during the send")
    monkeypatch.setattr(Outbound, "send_message", send_and_let_the_round_trip_happen)
    warm_up(client, 20)


def test_requests_in_lockstep_with_the_reader_thread_still_read_their_replies_themselves(closing):
    """A handler that lets other threads run (it prints, say) lets the requesting thread make
    its next request() while the reader thread is still delivering: the request finds the
    socket held and waits for its reply.  If that happens after every reply the reader thread
    never finds no request waiting; it must park all the same, and wake the waiting request
    to read its reply itself (seen with a handler that wrote to a file)."""
    n = 20
    server = Listener(0, lambda conn: Answer(), host="127.0.0.1")
    closing(server)

    class Lockstep(Seen):
        def message_received(self, conn, message):
            Seen.message_received(self, conn, message)
            if message.startswith("r") and int(message[1:]) < n - 1:
                # hold the reader thread until the next request() waits (or read its own reply)
                wait_until(lambda: conn._waiters or conn._callers.requests, what="the next request")
    client = connect("127.0.0.1", server.port, Lockstep())
    closing(client)
    warm_up(client, n)


def test_requests_from_several_threads_each_get_a_reply_and_every_reply_is_delivered_once(closing):
    """A request() that finds the socket free and no other request waiting registers no waiter:
    the first message it reads is its reply, and what comes after it in the same read answers
    the requests that registered meanwhile.  Several threads at once: every request gets an
    answer (none is lost, none given twice), and the handler sees each once, in the order sent."""
    sent = []

    class Echo(Handler):
        def message_received(self, conn, message):
            sent.append(message)  # (one reader thread per connection: the order of the sends)
            conn.send_message(message)
    server = Listener(0, Echo, host="127.0.0.1")
    closing(server)
    seen = Seen()
    client = connect("127.0.0.1", server.port, seen)
    closing(client)
    for i in range(20):  # the reader thread leaves the socket to callers
        assert client.request("w%d" % i, DEADLINE) == "w%d" % i
    threads, n, per = [], 4, 150
    got = [[] for _ in range(n)]

    def run(k):
        for i in range(per):
            got[k].append(client.request("t%d-%d" % (k, i), DEADLINE))
    for k in range(n):
        threads.append(threading.Thread(target=run, args=(k,)))
        threads[-1].daemon = True
        threads[-1].start()
    for t in threads:
        t.join(3 * DEADLINE)
        assert not t.is_alive(), "a request() never returned"
    replies = [r for g in got for r in g]
    assert None not in replies, "a request got no reply"
    assert sorted(replies) == sorted("t%d-%d" % (k, i) for k in range(n) for i in range(per))
    seen.wait(lambda: len(seen.messages) >= len(sent), "every reply delivered")
    assert seen.messages == sent


class Batches(Handler):
    """Records each delivery (the engine's batch hook: one call per delivery)."""

    def __init__(self):
        Handler.__init__(self)
        self.batches = []

    def messages_received(self, conn, messages):
        self.batches.append(list(messages))


def unstarted(closing, handler, dispatcher=None):
    """A connection whose reader thread never starts: the test calls what its readers call."""
    from tcpcom.engine.connection import Connection, _CallerReads
    ls = socket.socket()
    closing(ls)
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    peer = socket.create_connection(ls.getsockname())
    closing(peer)
    sock, _ = ls.accept()
    conn = Connection(sock, handler, dispatcher=dispatcher)
    closing(conn)
    conn._callers = _CallerReads()  # (what the first request() makes)
    return conn


def test_what_callers_read_until_the_reader_thread_delivers_is_one_delivery(closing):
    """Each caller's read used to queue a delivery of its own for the reader thread (a lock,
    a queue entry and four calls on the reader thread per reply); what callers read while a
    delivery is queued now joins it."""
    h = Batches()
    conn = unstarted(closing, h)
    conn._caller_received(b"r1\0", False)
    conn._caller_received(b"r2\0p2\0", False)
    conn._caller_received(b"r3\0", False)
    assert len(conn.executor._queue) == 1
    conn.executor.run_deferred()  # (the parked reader thread's call)
    assert h.batches == [["r1", "r2", "p2", "r3"]]
    conn._caller_received(b"r4\0", False)  # after a delivery: a new one
    conn.executor.run_deferred()
    assert h.batches[1:] == [["r4"]]


def test_what_callers_read_after_the_reader_thread_read_comes_after_it(closing):
    """A caller reads r1, the reader thread then reads m2 itself, then a caller reads r3.
    With a dispatcher that delivers later (an EventPump) the first delivery is still queued
    when r3 comes: r3 must not join it, or it would be delivered before m2."""
    from tcpcom.dispatch import EventPump
    h = Batches()
    pump = EventPump()
    conn = unstarted(closing, h, pump)
    conn._caller_received(b"r1\0", False)
    conn._received(b"m2\0")
    conn._caller_received(b"r3\0", False)
    seen = lambda: [m for b in h.batches for m in b]  # noqa: E731
    deadline = time.time() + DEADLINE
    while len(seen()) < 3 and time.time() < deadline:
        pump.pump(0.05)
    assert seen() == ["r1", "m2", "r3"]


class Blocking(Handler):
    """Holds the delivery of the first message until the test says go."""

    def __init__(self):
        Handler.__init__(self)
        self.messages, self.lost = [], threading.Event()
        self.inside, self.go = threading.Event(), threading.Event()

    def message_received(self, conn, message):
        self.messages.append(message)
        if len(self.messages) == 1:
            self.inside.set()
            assert self.go.wait(DEADLINE)

    def connection_lost(self, conn, reason):
        self.lost.set()


def close_while_the_reader_thread_delivers_the_first(conn, h, close):
    """The parked reader thread delivers what callers read; while ``h`` holds the first message,
    another thread calls ``close``; then the delivery goes on, and the closing event comes."""
    reader = threading.Thread(target=conn.executor.run_deferred)  # (the parked reader's call)
    reader.start()
    assert h.inside.wait(DEADLINE)  # the reader thread is delivering the first
    closer = threading.Thread(target=close)
    closer.start()
    wait_until(lambda: conn.is_done(), what="the close")
    h.go.set()
    reader.join(DEADLINE)
    closer.join(DEADLINE)
    assert h.lost.wait(DEADLINE)


def test_replies_the_reader_thread_is_delivering_when_a_close_comes_are_all_delivered(closing):
    """close() delivers what callers read before it closes -- but when the reader thread is
    delivering those replies at that moment, close() cannot, and the close used to stop that
    delivery after the message under way: replies request() had returned were never events
    (seen as a TCPClient's missing MESSAGE before DISCONNECTED, on a loaded CI machine)."""
    h = Blocking()
    conn = unstarted(closing, h)
    conn._caller_received(b"r1\0r2\0", False)  # two replies callers read: one queued delivery
    close_while_the_reader_thread_delivers_the_first(conn, h, conn.close)
    assert h.messages == ["r1", "r2"]
    assert not conn.delivering  # and nothing after that


def test_a_close_from_the_handler_itself_still_ends_the_delivery_of_what_callers_read(closing):
    class CloseAtFirst(Blocking):
        def message_received(self, conn, message):
            self.messages.append(message)
            conn.close()

    h = CloseAtFirst()
    conn = unstarted(closing, h)
    conn._caller_received(b"r1\0r2\0", False)
    conn.executor.run_deferred()
    assert h.lost.wait(DEADLINE)
    assert h.messages == ["r1"]  # the handler closed it: nothing is delivered after its close()


def test_a_reconnecting_connection_closed_while_the_reader_thread_delivers_what_callers_read_delivers_it_all(closing):
    """The same race through a ReconnectingConnection (a TCPClient with autoReconnect): its
    handler's batch checks the reconnecting connection's ``delivering``, which used to turn
    False as soon as it was closed, so the batch stopped after its first message."""
    from tcpcom.engine.redial import ReconnectingConnection, _Link

    class FaceLike(Blocking):  # as tcpcom.tcp's handler: a batch that stops once a close came
        def messages_received(self, rc, messages):
            for m in messages:
                Blocking.message_received(self, rc, m)
                if not rc.delivering:
                    return

    h = FaceLike()
    rc = ReconnectingConnection("127.0.0.1", 1, h, start=False)
    conn = unstarted(closing, None)
    relay = _Link(rc)
    relay.made = True
    conn.handler = relay
    rc._conn = conn  # (what a dial that succeeded sets)
    conn._caller_received(b"r1\0r2\0", False)
    close_while_the_reader_thread_delivers_the_first(conn, h, rc.close)
    assert h.messages == ["r1", "r2"]
    assert not rc.delivering
