"""Callbacks that raise, block, or call blocking methods: no deadlock, no lost event."""
import logging
import socket
import threading

import pytest

from helpers import Recorder, raw_client, recv_until, wait_until
from tcpcom.engine import Handler, Listener, connect
from tcpcom.tcp import TCPClient, TCPServer

EVENT = 10.0


class Bystander(object):
    """A TCPServer/TCPClient pair that keeps exchanging messages while a test misbehaves
    elsewhere; check() asserts that every one of its events arrived, in order."""

    def __init__(self, n=100):
        self.n = n
        self.srec = Recorder("bystander-server")

        def on_server(state, msg):
            self.srec(state, msg)
            if state == "MESSAGE":
                self.server.sendMessage(msg)
        self.server = TCPServer(0, on_server, host="127.0.0.1")
        self.crec = Recorder("bystander-client")
        self.client = TCPClient("127.0.0.1", self.server.getPort(), self.crec)
        assert self.client.connect()
        self.thread = threading.Thread(target=self._run, name="test-bystander")
        self.thread.start()

    def _run(self):
        for i in range(self.n):
            self.client.sendMessage("m%d" % i)

    def check(self):
        self.thread.join(EVENT)
        want = ["m%d" % i for i in range(self.n)]
        assert self.crec.wait_messages(self.n, EVENT) == want
        assert self.srec.messages() == want
        self.client.disconnect()
        self.server.terminate()
        assert self.crec.states() == ["CONNECTING", "CONNECTED"] + ["MESSAGE"] * self.n + ["DISCONNECTED"]
        assert self.srec.states()[:2] == ["LISTENING", "CONNECTED"]
        assert self.srec.states()[-1] == "TERMINATED"
        assert not self.srec.overlap and not self.crec.overlap


def test_callbacks_that_raise_are_logged_and_delivery_goes_on(caplog):
    """Every engine handler method, on_connection, and a TCPServer/TCPClient stateChanged that
    raise on every call: each is logged with its traceback, all later events are still
    delivered, the listener keeps accepting; an on_connection returning a non-handler closes
    only that connection, with a logged error."""
    by = Bystander()

    class Raiser(Handler):
        def connection_made(self, conn):
            raise RuntimeError("bug in made")

        def message_received(self, conn, message):
            got.append(message)
            conn.send_message(message)
            raise RuntimeError("bug in received")

        def connection_lost(self, conn, reason):
            lost.append(reason)
            raise RuntimeError("bug in lost")

    got, lost, calls = [], [], [0]

    def on_connection(conn):
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("bug in on_connection")
        if calls[0] == 2:
            return 5  # not a handler
        return Raiser()

    listener = Listener(0, on_connection, host="127.0.0.1")
    states = []

    def bad_cb(state, msg):
        states.append(state)
        if state == "MESSAGE":
            server.sendMessage(msg)
        raise ValueError("student bug in %s" % state)
    server = TCPServer(0, bad_cb, host="127.0.0.1")
    try:
        with caplog.at_level(logging.ERROR, logger="tcpcom"):
            for _ in range(2):  # closed at once by the failing on_connection
                s = raw_client(listener.port)
                assert s.recv(10) == b""
                s.close()
            s = raw_client(listener.port)
            s.sendall(b"a\0b\0c\0")
            assert recv_until(s, 3) == b"a\0b\0c\0"
            s.close()
            wait_until(lambda: lost == [None])
            assert got == ["a", "b", "c"]
            crec = Recorder("client")

            def client_cb(state, msg):
                crec(state, msg)
                raise KeyError("client bug")
            c = TCPClient("127.0.0.1", server.getPort(), client_cb)
            assert c.connect()
            assert c.sendMessage("ping", 5) == "ping"
            c.disconnect()
            wait_until(lambda: states.count("LISTENING") == 2)
        text = caplog.text
        for bug in ("bug in on_connection", "bug in made", "bug in received", "bug in lost",
                    "student bug in MESSAGE", "client bug"):
            assert bug in text, bug
        assert "Traceback" in text
        assert "not 5" in text
        assert crec.states() == ["CONNECTING", "CONNECTED", "MESSAGE", "DISCONNECTED"]
    finally:
        listener.close()
        server.terminate()
    assert states == ["LISTENING", "CONNECTED", "MESSAGE", "LISTENING", "TERMINATED"]
    by.check()


def test_a_blocked_callback_stalls_nothing_else(figures):
    """One connection's callback blocks until the test releases it (it stays blocked while
    all of the following happen): another connection on the same Listener is echoed 50 times,
    a new client connects and is served, and a TCPServer/TCPClient pair exchanges 100
    messages; then the blocked connection gets its queued messages, in order."""
    release = threading.Event()
    blocked = threading.Event()
    seen = []

    class Echo(Handler):
        def message_received(self, conn, message):
            if message == "block":
                blocked.set()
                assert release.wait(60)
            seen.append((conn.remote_port, message))
            conn.send_message(message)

    listener = Listener(0, Echo, host="127.0.0.1")
    try:
        a = raw_client(listener.port)
        a.sendall(b"block\0after1\0after2\0")
        assert blocked.wait(EVENT)
        by = Bystander()
        b = raw_client(listener.port)
        for i in range(50):
            b.sendall(b"b%d\0" % i)
            assert recv_until(b, 1) == b"b%d\0" % i
        by.check()
        c = raw_client(listener.port)
        c.sendall(b"new\0")
        assert recv_until(c, 1) == b"new\0"
        assert not release.is_set()
        release.set()
        assert recv_until(a, 3) == b"block\0after1\0after2\0"
        figures.update(round_trips_while_blocked=51, bystander_messages=100)
        for s in (a, b, c):
            s.close()
    finally:
        release.set()
        listener.close()


def test_blocking_scheduled_callbacks_of_many_objects_do_not_starve_others(figures):
    """24 TCPServers whose LISTENING callback blocks (more than the shared pool's 16 workers):
    a 25th server still gets LISTENING and serves a client while they are blocked."""
    n = 24
    release = threading.Event()
    entered = []
    lock = threading.Lock()

    def blocking(state, msg):
        if state == "LISTENING":
            with lock:
                entered.append(msg)
            release.wait(60)
    servers = []
    try:
        servers = [TCPServer(0, blocking, host="127.0.0.1") for _ in range(n)]
        rec = Recorder("free")

        def free(state, msg):
            rec(state, msg)
            if state == "MESSAGE":
                other.sendMessage(msg)
        other = TCPServer(0, free, host="127.0.0.1")
        servers.append(other)
        rec.wait_state("LISTENING", 1, EVENT)
        c = TCPClient("127.0.0.1", other.getPort(), None)
        assert c.connect()
        assert c.sendMessage("hi", 5) == "hi"
        c.disconnect()
        figures.update(blocked_objects=n, blocked_at_check=len(entered))
    finally:
        release.set()
        for s in servers:
            s.terminate()


def test_blocking_methods_called_from_inside_callbacks(figures):
    """From inside callbacks: TCPServer.terminate() (TERMINATED delivered, same port re-bindable
    at once), TCPServer.disconnect() (LISTENING), TCPClient.disconnect() (DISCONNECTED),
    TCPClient.connect() of a new client, TCPClient.sendMessage(msg, responseTime) (returns
    the reply), engine Connection.request() from a server handler, Connection.close() and
    Listener.close() from its own handler: no deadlock, and a bystander pair loses no event."""
    by = Bystander(200)
    results = {}

    # a server that answers, used as the far end
    def answer(state, msg):
        if state == "MESSAGE":
            far.sendMessage("re:" + msg)
    far = TCPServer(0, answer, host="127.0.0.1")
    try:
        # 1. client callback: sendMessage(msg, responseTime), connect() a second client, disconnect()
        crec = Recorder("client")
        second = []

        def client_cb(state, msg):
            crec(state, msg)
            if state == "MESSAGE" and msg == "re:start":
                results["reply"] = client.sendMessage("inner", 5)
                other = TCPServer(0, lambda s, m: None, host="127.0.0.1")
                c2 = TCPClient("127.0.0.1", other.getPort(), None)
                results["connect"] = c2.connect()
                c2.disconnect()
                other.terminate()
                second.append(other)
                client.disconnect()
        client = TCPClient("127.0.0.1", far.getPort(), client_cb)
        assert client.connect()
        client.sendMessage("start")
        crec.wait_state("DISCONNECTED", 1, EVENT)
        assert results == {"reply": "re:inner", "connect": True}
        # the reply came back from sendMessage(); its MESSAGE event would follow the callback,
        # after disconnect() was asked for: no event of a connection comes after its close
        assert crec.messages() == ["re:start"]
        assert crec.states()[-1] == "DISCONNECTED"

        # 2. server callback: disconnect(), then terminate() and re-bind the same port
        srec = Recorder("server")

        def server_cb(state, msg):
            srec(state, msg)
            if state == "MESSAGE" and msg == "kick":
                server.disconnect()
            elif state == "MESSAGE" and msg == "stop":
                server.terminate()
                results["terminated_inside"] = server.isTerminated()
        server = TCPServer(0, server_cb, host="127.0.0.1")
        port = server.getPort()
        kicked = Recorder("kicked")
        c = TCPClient("127.0.0.1", port, kicked)
        assert c.connect()
        c.sendMessage("kick")
        srec.wait_state("LISTENING", 2, EVENT)
        kicked.wait_state("DISCONNECTED", 1, EVENT)
        assert c.connect()
        c.sendMessage("stop")
        srec.wait_state("TERMINATED", 1, EVENT)
        assert srec.states() == ["LISTENING", "CONNECTED", "MESSAGE", "LISTENING", "CONNECTED",
                                 "MESSAGE", "TERMINATED"]
        again = TCPServer(port, None, host="127.0.0.1")
        assert not again.isTerminated(), "port %d not re-bindable after terminate() in a callback" % port
        again.terminate()
        c.disconnect()

        # 3. engine: request() from a server handler to its client, close() from inside,
        #    Listener.close() from inside a handler
        class Asker(Handler):
            def message_received(self, conn, message):
                if message == "ask":
                    results["request"] = conn.request("question?", 5)
                elif message == "close":
                    conn.close()
                elif message == "shutdown":
                    listener.close()

        class Answerer(Handler):
            def message_received(self, conn, message):
                if message == "question?":
                    conn.send_message("answer!")
        listener = Listener(0, Asker, host="127.0.0.1")
        lost = threading.Event()
        conn = connect("127.0.0.1", listener.port, Answerer())
        conn.send_message("ask")
        wait_until(lambda: "request" in results, EVENT)
        assert results["request"] == "answer!"
        conn.send_message("close")
        assert conn.wait_closed(EVENT)
        closed = threading.Event()
        listener.on_closed = closed.set
        conn = connect("127.0.0.1", listener.port, None)
        conn.send_message("shutdown")
        assert closed.wait(EVENT)
        assert conn.wait_closed(EVENT)
        with pytest.raises(socket.error):
            socket.create_connection(("127.0.0.1", listener.port), 2).close()
        assert results["terminated_inside"] is True
    finally:
        far.terminate()
    by.check()
    figures.update(bystander_messages=200)


def test_dispatcher_adds_a_worker_when_all_are_blocked():
    """Regression (Dispatcher): with every worker busy in a blocking callback, a task scheduled
    for another object still runs (a worker is added after stall_timeout) instead of waiting
    for the blocked ones; the extra worker ends again when idle."""
    from tcpcom.dispatch import Dispatcher
    d = Dispatcher(max_workers=1, idle_timeout=0.2, stall_timeout=0.05, name="test-disp")
    release, ran = threading.Event(), threading.Event()
    try:
        d.schedule(lambda: release.wait(30))
        d.schedule(ran.set)
        assert ran.wait(EVENT)
        assert not release.is_set()
        wait_until(lambda: d.worker_count == 1, EVENT)  # the extra one left when idle
    finally:
        release.set()
    wait_until(lambda: d.worker_count == 0, EVENT)
