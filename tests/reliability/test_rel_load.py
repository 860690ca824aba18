"""Load, with nothing lost: many connections, many messages, echoed byte-identical."""
import collections
import selectors
import socket
import threading
import time

import pytest

from rel_helpers import FULL, Payloads, StreamDigest, is_utf8, scaled
from tcpcom.engine import Handler, Listener, connect
from tcpcom.tcp import TCPClient, TCPServer

CONNECTIONS = 100
MESSAGES = scaled(1000, 10000)          # per connection
WINDOW = 512 * 1024                    # bytes a client may have in flight unechoed


class DigestEcho(Handler):
    """Server side: echoes every message and digests what it received."""

    registry = None

    def connection_made(self, conn):
        self.digest = StreamDigest()
        self.registry[conn.remote_port] = self

    def message_received(self, conn, message):
        try:
            data = message.encode("utf-8")
            valid = True
        except UnicodeEncodeError:
            data = message.encode("utf-8", "surrogateescape")
            valid = False
        self.digest.add(data, valid)
        conn.send_message(message)

    def connection_lost(self, conn, reason):
        self.reason = reason


class Peer(object):
    """One client connection driven by the selector loop (an oracle independent of tcpcom)."""

    delim = b"\0"   # the message delimiter (a subclass may use another, e.g. an XTension boundary)

    def __init__(self, sock, seed, n):
        self.sock = sock
        self.payloads = Payloads(seed)
        self.left = n
        self.out = bytearray()
        self.pending = collections.deque()
        self.in_flight = 0
        self.carry = bytearray()
        self.sent = StreamDigest()
        self.echoed = 0
        self.mismatch = None
        self.writes = 0

    def fill(self):
        while self.left and self.in_flight < WINDOW and len(self.out) < 256 * 1024:
            m = self.payloads.next()
            self.sent.add(m, is_utf8(m))
            self.pending.append(m)
            self.in_flight += len(m) + len(self.delim)
            self.out += m
            self.out += self.delim
            self.left -= 1

    def write(self):
        self.fill()
        if not self.out:
            return
        n = self.sock.send(memoryview(self.out)[:self.payloads.write_size()])
        self.writes += 1
        del self.out[:n]

    def read(self):
        data = self.sock.recv(262144)
        if not data:
            raise AssertionError("server closed a connection early")
        start = len(self.carry)
        self.carry += data
        d = self.delim
        i = self.carry.find(d, max(0, start - len(d) + 1))
        pos = 0
        while i >= 0:
            got = self.carry[pos:i]
            want = self.pending.popleft() if self.pending else None
            if want is None or got != want:
                self.mismatch = self.mismatch or (self.echoed, len(got), None if want is None else len(want))
            self.in_flight -= len(got) + len(d)
            self.echoed += 1
            pos = i + len(d)
            i = self.carry.find(d, pos)
        if pos:
            del self.carry[:pos]

    @property
    def done(self):
        return not self.left and not self.out and not self.pending


def drive(peers, deadline):
    """Run every peer until all its messages were echoed; one thread, non-blocking sockets.
    A peer waits for echoes (stops writing) while WINDOW bytes are unechoed."""
    sel = selectors.DefaultSelector()
    both = selectors.EVENT_READ | selectors.EVENT_WRITE
    for p in peers:
        p.sock.setblocking(False)
        p.writing = True
        sel.register(p.sock, both, p)
    active = len(peers)
    progress = time.monotonic()
    try:
        while active:
            now = time.monotonic()
            if now > deadline or now - progress > 30:
                raise AssertionError("load stalled or did not finish in time: %d connections still "
                                     "busy; echoes so far %r" % (active, [p.echoed for p in peers]))
            for key, mask in sel.select(1.0):
                progress = time.monotonic()
                p = key.data
                if mask & selectors.EVENT_READ:
                    p.read()
                    if p.mismatch:
                        raise AssertionError("echo #%d differs: got %d bytes, expected %s" % p.mismatch)
                if mask & selectors.EVENT_WRITE:
                    p.write()
                if p.done:
                    sel.unregister(p.sock)
                    active -= 1
                    continue
                want = bool(p.out) or (p.left > 0 and p.in_flight < WINDOW)
                if want != p.writing:
                    p.writing = want
                    sel.modify(p.sock, both if want else selectors.EVENT_READ, p)
    finally:
        sel.close()


@pytest.mark.timeout(scaled(240, 24 * 3600))
def test_engine_100_connections_every_message_once_in_order_identical(figures):
    """100 concurrent connections through one engine Listener, each sending random messages
    (0 B..64 KiB, log-uniform sizes, text with non-ASCII, ASCII and binary) in random-sized
    writes (1 B..128 KiB); the server echoes. Checked: every echo arrives exactly once, in order,
    byte-identical (client side, compared message by message); the server received exactly the
    sent stream (count, bytes, valid-UTF-8 count and an order-sensitive MD5 per connection)."""
    registry = {}
    handler = type("Echo", (DigestEcho,), {"registry": registry})
    listener = Listener(0, handler, host="127.0.0.1")
    peers = []
    try:
        for i in range(CONNECTIONS):
            s = socket.create_connection(("127.0.0.1", listener.port), 10)
            peers.append(Peer(s, 1000 + i, MESSAGES))
        start = time.monotonic()
        drive(peers, start + scaled(200, 24 * 3600))
        took = time.monotonic() - start
        assert [p.mismatch for p in peers if p.mismatch] == []
        assert all(p.echoed == MESSAGES for p in peers)
        ports = [p.sock.getsockname()[1] for p in peers]
        deadline = time.monotonic() + 10
        while len(registry) < CONNECTIONS and time.monotonic() < deadline:
            threading.Event().wait(0.01)
        for p, port in zip(peers, ports):
            assert registry[port].digest.result() == p.sent.result()
        total = sum(p.sent.nbytes for p in peers)
        figures.update(connections=CONNECTIONS, messages_per_connection=MESSAGES,
                       messages=CONNECTIONS * MESSAGES, bytes_each_way=total,
                       invalid_utf8_messages=sum(p.sent.count - p.sent.valid_text for p in peers),
                       writes=sum(p.writes for p in peers), seconds=round(took, 1),
                       mib_per_s_each_way=round(total / 1048576.0 / max(took, 1e-9), 1), full=FULL)
    finally:
        for p in peers:
            p.sock.close()
        listener.close()
    assert listener.connections == []


@pytest.mark.timeout(scaled(120, 3600))
def test_tcpcom_face_sequential_clients_every_message_once_in_order(figures):
    """TCPServer echo, many TCPClients one after another (the face serves one at a time), each
    sending random messages (0 B..64 KiB, non-ASCII, ASCII and binary) with sendMessage;
    checked on both sides: every message exactly once, in order, identical (text on the server,
    the echo on the client), and the server back to LISTENING after each client."""
    clients = scaled(20, 200)
    per_client = scaled(100, 2000)
    got = []
    cond = threading.Condition()
    server_got = []

    def on_server(state, msg):
        if state == TCPServer.MESSAGE:
            server_got.append(msg)
            server.sendMessage(msg)
        with cond:
            got.append(("S", state))
            cond.notify_all()

    server = TCPServer(0, on_server, host="127.0.0.1")
    total = 0
    start = time.monotonic()
    try:
        for c in range(clients):
            payloads = Payloads(50 + c)
            sent = [bytes(payloads.next()).decode("utf-8", "surrogateescape") for _ in range(per_client)]
            echoed = []
            ev = threading.Event()

            def on_client(state, msg, echoed=echoed, ev=ev, n=len(sent)):
                if state == TCPClient.MESSAGE:
                    echoed.append(msg)
                    if len(echoed) == n:
                        ev.set()

            del server_got[:]
            client = TCPClient("127.0.0.1", server.getPort(), on_client)
            assert client.connect(), "client %d could not connect" % c
            for m in sent:
                client.sendMessage(m)
            assert ev.wait(30), "client %d: %d of %d echoes" % (c, len(echoed), len(sent))
            assert echoed == sent
            assert server_got == sent
            total += sum(len(m.encode("utf-8", "surrogateescape")) for m in sent)
            client.disconnect()
            with cond:
                ok = cond.wait_for(lambda: got.count(("S", "LISTENING")) >= c + 2, 10)
            assert ok, "server did not return to LISTENING after client %d" % c
        figures.update(clients=clients, messages_per_client=per_client, messages=clients * per_client,
                       bytes_each_way=total, seconds=round(time.monotonic() - start, 1), full=FULL)
    finally:
        server.terminate()


def test_many_senders_on_one_connection_never_interleave(figures):
    """8 threads call send_message concurrently on one engine connection and 8 threads call
    TCPClient.sendMessage concurrently (messages of 1 B..64 KiB, each filled with its sender's
    byte); checked on the receiver: every message whole (one sender's byte only, right length),
    none lost, each sender's messages in its own order."""
    threads_n = scaled(8, 16)
    per_thread = scaled(150, 2000)
    received = []
    done = threading.Event()
    expected = threads_n * per_thread * 2

    class Collect(Handler):
        def message_received(self, conn, message):
            received.append(message)
            if len(received) == expected:
                done.set()

    listener = Listener(0, Collect, host="127.0.0.1", encoding=None)
    try:
        conn = connect("127.0.0.1", listener.port)
        client = TCPClient("127.0.0.1", listener.port, None)
        assert client.connect()

        def sender(k, send):
            rng = Payloads(k).rng
            for i in range(per_thread):
                size = rng.randrange(1, 65536)
                body = (b"%c%06d:" % (65 + k, i)).ljust(size, bytes(bytearray([65 + k])))
                send(body if send is conn.send_message else body.decode("ascii"))

        workers = [threading.Thread(target=sender, args=(k, conn.send_message)) for k in range(threads_n)]
        workers += [threading.Thread(target=sender, args=(threads_n + k, client.sendMessage))
                    for k in range(threads_n)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        assert done.wait(30), "%d of %d messages arrived" % (len(received), expected)
        last = {}
        for m in received:
            k = m[0]
            head, _, _ = m.partition(b":")
            i = int(head[1:])
            assert m[len(head) + 1:] == bytes(bytearray([k])) * (len(m) - len(head) - 1), "interleaved"
            assert last.get(k, -1) == i - 1, "sender %c: %d after %d" % (k, i, last.get(k, -1))
            last[k] = i
        assert len(last) == 2 * threads_n
        figures.update(sender_threads=2 * threads_n, messages=expected,
                       bytes=sum(len(m) for m in received), full=FULL)
        conn.close()
        client.disconnect()
    finally:
        listener.close()
