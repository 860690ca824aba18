"""Faults survived: peers that vanish, stall or idle; limits reached; descriptors run out."""
import logging
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest

from helpers import DEADLINE, Recorder, raw_client, recv_until, wait_until
from tcpcom.engine import (Connection, ConnectionClosedError, Handler, Listener, ReadTimeout,
                           SendTimeout, connect)
from tcpcom.tcp import TCPClient, TCPServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEND_TIMEOUT = 3.0
EVENT = 10.0   # generous bound for "within a bounded time" on a loaded 2-core machine


class Events(Handler):
    """Records handler calls of every connection of a listener."""

    def __init__(self):
        Handler.__init__(self)
        self.cond = threading.Condition()
        self.made, self.msgs, self.lost = [], [], []
        self.echo = True

    def __call__(self, conn):  # used as on_connection
        return self

    def connection_made(self, conn):
        with self.cond:
            self.made.append(conn)
            self.cond.notify_all()

    def message_received(self, conn, message):
        with self.cond:
            self.msgs.append((conn, message))
            self.cond.notify_all()
        if self.echo:
            conn.send_message(message)

    def connection_lost(self, conn, reason):
        with self.cond:
            self.lost.append((conn, reason))
            self.cond.notify_all()

    def wait(self, pred, timeout=EVENT):
        with self.cond:
            ok = self.cond.wait_for(pred, timeout)
        assert ok, "timed out: made=%d msgs=%r lost=%r" % (len(self.made), self.msgs[-5:], self.lost)


def echo_round_trip(port, text=u"still served \u00e4"):
    s = raw_client(port)
    try:
        s.sendall(text.encode("utf-8") + b"\0")
        assert recv_until(s, 1) == text.encode("utf-8") + b"\0"
    finally:
        s.close()


def rst_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


CHILD_CLIENT = r"""
import socket, sys, threading
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"hello\0partial message")
print("ready", flush=True)
threading.Event().wait(60)
"""

CHILD_SERVER = r"""
import socket, threading
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
print(srv.getsockname()[1], flush=True)
c, _ = srv.accept()
c.sendall(b"from child\0")
threading.Event().wait(60)
"""


def spawn(code, *args):
    return subprocess.Popen([sys.executable, "-c", code] + [str(a) for a in args],
                            stdout=subprocess.PIPE, universal_newlines=True)


def kill(child):
    if child.poll() is None:
        child.send_signal(signal.SIGKILL)
    child.wait(EVENT)
    child.stdout.close()


# -- slow consumer ------------------------------------------------------------------

def test_slow_consumer_is_closed_by_send_timeout_memory_bounded_others_served(figures):
    """A peer that stops reading while the server pushes 64 KiB messages at it: the pushing
    send blocks (no queue grows: pushed bytes stay within the kernel socket buffers, Python
    heap growth measured with tracemalloc), other connections keep being echoed meanwhile,
    and after send_timeout (3 s here, 30 s by default) the connection is closed with
    SendTimeout and the blocked sender gets ConnectionClosedError."""
    ev = Events()
    pushed = [0]
    outcome = []
    push_started = threading.Event()
    chunk = u"\u00e9" * 32768  # 64 KiB of UTF-8 per message

    def push(conn):
        push_started.set()
        try:
            while True:
                conn.send_message(chunk)
                pushed[0] += 65537
        except ConnectionClosedError as e:
            outcome.append(e)

    class Pusher(Events):
        def message_received(self, conn, message):
            if message == "push":
                threading.Thread(target=push, args=(conn,), name="test-pusher").start()
            else:
                Events.message_received(self, conn, message)

    ev = Pusher()
    listener = Listener(0, ev, host="127.0.0.1", send_timeout=SEND_TIMEOUT)
    tracemalloc.start()
    try:
        other = raw_client(listener.port)
        slow = raw_client(listener.port)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        base = tracemalloc.get_traced_memory()[0]
        slow.sendall(b"push\0")  # ... and never read again
        assert push_started.wait(EVENT)
        rounds = 0
        for i in range(200):  # another connection, while the push is blocked
            other.sendall(b"other %d\0" % i)
            assert recv_until(other, 1) == b"other %d\0" % i
            rounds += 1
        slow_open_meanwhile = not ev.lost and not outcome
        other.close()
        ev.wait(lambda: any(c.remote_port == slow.getsockname()[1] for c, _ in ev.lost))
        reason = [r for c, r in ev.lost if c.remote_port == slow.getsockname()[1]][0]
        assert isinstance(reason, SendTimeout), reason
        wait_until(lambda: outcome, EVENT)
        assert isinstance(outcome[0], ConnectionClosedError)
        peak = tracemalloc.get_traced_memory()[1] - base
        assert pushed[0] < 64 * 1024 * 1024, "pushed %d bytes into a peer that does not read" % pushed[0]
        assert peak < 16 * 1024 * 1024, "heap grew by %d bytes" % peak
        echo_round_trip(listener.port)
        figures.update(send_timeout_s=SEND_TIMEOUT, bytes_accepted_before_block=pushed[0],
                       heap_peak_growth_kib=peak // 1024, other_round_trips=rounds,
                       round_trips_done_while_the_push_was_blocked=slow_open_meanwhile)
        slow.close()
    finally:
        tracemalloc.stop()
        listener.close()


# -- peers that vanish ----------------------------------------------------------------

def test_sigkilled_client_process_gives_lost_and_next_client_is_served(caplog, figures):
    """A child process connects, sends a message and half of another, and is SIGKILLed:
    the engine handler gets connection_lost, TCPServer goes back to LISTENING, both serve
    the next client; the cut-off partial message is logged (not silently dropped)."""
    ev = Events()
    listener = Listener(0, ev, host="127.0.0.1")
    rec = Recorder("server")
    server = TCPServer(0, rec, host="127.0.0.1")
    try:
        with caplog.at_level(logging.INFO, logger="tcpcom"):
            for port, wait_msg, wait_lost in (
                    (listener.port, lambda: ev.wait(lambda: ev.msgs), lambda: ev.wait(lambda: ev.lost)),
                    (server.getPort(), lambda: rec.wait_messages(1, EVENT),
                     lambda: rec.wait_state("LISTENING", 2, EVENT))):
                child = spawn(CHILD_CLIENT, port)
                try:
                    assert child.stdout.readline().strip() == "ready"
                    wait_msg()
                    start = time.monotonic()
                    child.send_signal(signal.SIGKILL)
                    wait_lost()
                    figures.setdefault("seconds_to_event", []).append(round(time.monotonic() - start, 3))
                finally:
                    kill(child)
        assert [m for _, m in ev.msgs] == ["hello"]
        assert rec.messages() == ["hello"]
        assert sum("incomplete message" in r.getMessage() for r in caplog.records) == 2
        echo_round_trip(listener.port)
        c = TCPClient("127.0.0.1", server.getPort(), None)
        assert c.connect()
        c.disconnect()
    finally:
        listener.close()
        server.terminate()


def test_sigkilled_server_process_gives_disconnected():
    """TCPClient and an engine connection to a child-process server that is SIGKILLed:
    DISCONNECTED / connection_lost arrive, isConnected() is False, sending is a clear no-op."""
    child = spawn(CHILD_SERVER)
    try:
        port = int(child.stdout.readline())
        rec = Recorder("client")
        c = TCPClient("127.0.0.1", port, rec)
        assert c.connect()
        rec.wait_messages(1, EVENT)
        child.send_signal(signal.SIGKILL)
        rec.wait_state("DISCONNECTED", 1, EVENT)
        assert not c.isConnected()
        assert c.sendMessage("x") is None
    finally:
        kill(child)
    child = spawn(CHILD_SERVER)
    try:
        port = int(child.stdout.readline())
        ev = Events()
        conn = connect("127.0.0.1", port, ev)
        ev.wait(lambda: ev.msgs)
        child.send_signal(signal.SIGKILL)
        ev.wait(lambda: ev.lost)
        assert not conn.is_open
        with pytest.raises(ConnectionClosedError):
            conn.send_message("x")
    finally:
        kill(child)


def test_rst_in_the_middle_of_a_message(figures):
    """A peer sends a message and part of the next, then resets (SO_LINGER 0): the engine
    reports connection_lost (reason None or ConnectionResetError, Q-SYS style 'error'),
    TCPServer returns to LISTENING, and both serve the next client. Repeated 20 times."""
    ev = Events()
    listener = Listener(0, ev, host="127.0.0.1")
    rec = Recorder("server")
    server = TCPServer(0, rec, host="127.0.0.1")
    rounds = 20
    try:
        for i in range(rounds):
            for port in (listener.port, server.getPort()):
                s = raw_client(port)
                s.sendall(b"whole %d\0" % i + b"x" * 30000)
                if port == listener.port:
                    ev.wait(lambda: len(ev.msgs) > i)
                else:
                    rec.wait_messages(i + 1, EVENT)
                rst_close(s)
            ev.wait(lambda: len(ev.lost) > i)
            rec.wait_state("LISTENING", i + 2, EVENT)
        for _, reason in ev.lost:
            assert reason is None or isinstance(reason, (ConnectionResetError, socket.error)), reason
        echo_round_trip(listener.port)
        figures.update(resets=2 * rounds)
    finally:
        listener.close()
        server.terminate()


def test_half_close_gets_every_echo_then_the_close():
    """A peer sends three messages then shuts down its sending side: it still receives all
    three echoes, then EOF; the handler gets connection_lost(None). A TCPClient whose server
    half-closes gets the last message, then DISCONNECTED."""
    ev = Events()
    listener = Listener(0, ev, host="127.0.0.1")
    try:
        s = raw_client(listener.port)
        s.sendall(b"a\0b\0c\0")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        assert data == b"a\0b\0c\0"
        ev.wait(lambda: ev.lost)
        assert ev.lost[0][1] is None
        s.close()
    finally:
        listener.close()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    rec = Recorder("client")
    try:
        c = TCPClient("127.0.0.1", srv.getsockname()[1], rec)
        holder = []
        t = threading.Thread(target=lambda: holder.append(srv.accept()[0]))
        t.start()
        assert c.connect()
        t.join(EVENT)
        holder[0].sendall(b"last words\0")
        holder[0].shutdown(socket.SHUT_WR)
        rec.wait_state("DISCONNECTED", 1, EVENT)
        assert rec.states() == ["CONNECTING", "CONNECTED", "MESSAGE", "DISCONNECTED"]
        assert rec.messages() == ["last words"]
        holder[0].close()
    finally:
        srv.close()


def test_connection_dropped_while_our_side_is_sending():
    """The server streams 64 KiB messages to a peer that resets after reading a little:
    the sender gets ConnectionClosedError (engine) / a logged warning (TCPServer.sendMessage)
    within a bounded time, the events follow, and the next client is served."""
    ev = Events()
    errors = []
    started = threading.Event()

    def stream(send, catch):
        started.set()
        try:
            for _ in range(100000):
                send(u"\u00fc" * 32768)
        except catch as e:
            errors.append(e)
        else:
            errors.append("never failed")

    class Streamer(Events):
        def connection_made(self, conn):
            Events.connection_made(self, conn)
            threading.Thread(target=stream, args=(conn.send_message, ConnectionClosedError)).start()

    ev = Streamer()
    listener = Listener(0, ev, host="127.0.0.1")
    try:
        s = raw_client(listener.port)
        assert started.wait(EVENT)
        s.recv(100000)
        rst_close(s)
        wait_until(lambda: errors, EVENT)
        assert isinstance(errors[0], ConnectionClosedError)
        ev.wait(lambda: ev.lost)
        assert ev.lost[0][1] is not None
        s2 = raw_client(listener.port)  # the next client is served (streamed to) as well
        assert s2.recv(100000)
        rst_close(s2)
        wait_until(lambda: len(errors) == 2, EVENT)
        assert isinstance(errors[1], ConnectionClosedError)
    finally:
        listener.close()

    rec = Recorder("server")
    server_sent = threading.Event()

    def cb(state, msg):
        rec(state, msg)
        if state == "CONNECTED":
            threading.Thread(target=lambda: [server.sendMessage(u"\u00fc" * 32768) for _ in range(300)]
                             + [server_sent.set()]).start()
    server = TCPServer(0, cb, host="127.0.0.1")
    try:
        s = raw_client(server.getPort())
        rec.wait_state("CONNECTED", 1, EVENT)
        s.recv(100000)
        rst_close(s)
        rec.wait_state("LISTENING", 2, EVENT)
        assert server_sent.wait(EVENT), "TCPServer.sendMessage hung after the peer vanished"
        c = TCPClient("127.0.0.1", server.getPort(), None)
        assert c.connect()
        c.disconnect()
    finally:
        server.terminate()


# -- idle peers, keepalive ----------------------------------------------------------------

def test_idle_peer_is_dropped_by_read_timeout_and_set_timeout():
    """A peer that connects and goes silent (as a half-open connection looks from here):
    engine read_timeout closes it with ReadTimeout (Q-SYS style event 'timeout'), the peer
    sees EOF; TCPServer.setTimeout does the same and the server goes back to LISTENING."""
    seen = []
    got = threading.Event()

    def qsys(conn, event, data):
        seen.append(event)
        if event in (Connection.TIMEOUT, Connection.CLOSED, Connection.ERROR):
            got.set()
    listener = Listener(0, lambda conn: qsys, host="127.0.0.1", read_timeout=0.3)
    rec = Recorder("server")
    server = TCPServer(0, rec, host="127.0.0.1")
    server.setTimeout(0.3)
    try:
        s = raw_client(listener.port)
        assert got.wait(EVENT)
        assert seen == [Connection.CONNECTED, Connection.TIMEOUT]
        assert s.recv(10) == b""
        s.close()
        s = raw_client(server.getPort())
        rec.wait_state("LISTENING", 2, EVENT)
        assert rec.states() == ["LISTENING", "CONNECTED", "LISTENING"]
        assert s.recv(10) == b""
        s.close()
    finally:
        listener.close()
        server.terminate()


def test_tcp_keepalive_on_accepted_and_outgoing_sockets():
    """SO_KEEPALIVE is set on sockets the Listener accepts, on connect() sockets, and on both
    ends of a TCPServer/TCPClient pair (so a vanished peer is eventually detected by the OS)."""
    ev = Events()
    listener = Listener(0, ev, host="127.0.0.1")
    server = TCPServer(0, None, host="127.0.0.1")
    try:
        out = connect("127.0.0.1", listener.port, None)
        ev.wait(lambda: ev.made)
        c = TCPClient("127.0.0.1", server.getPort(), None)
        assert c.connect()
        wait_until(lambda: server.isConnected())
        socks = [ev.made[0].sock, out.sock, c._conn.sock, server._current().sock]
        assert [s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) for s in socks] == [1, 1, 1, 1]
        out.close()
        c.disconnect()
    finally:
        listener.close()
        server.terminate()


# -- running out ------------------------------------------------------------------------------

def test_connections_past_the_maximum_are_refused_with_an_event(figures):
    """Listener(max_connections=3): of 6 clients 3 are served, 3 are closed at once (the peer
    sees EOF) and on_refused(address) is called for each; after one served client leaves, a
    new one is served. TCPServer (one client): the second client gets SERVER_OCCUPIED and
    the first is still served."""
    ev = Events()
    refused = []
    listener = Listener(0, ev, host="127.0.0.1", max_connections=3,
                        on_refused=lambda addr: refused.append(addr))
    try:
        socks = []
        for i in range(6):
            s = raw_client(listener.port)
            socks.append(s)
            if i < 3:
                ev.wait(lambda: len(ev.made) == i + 1)
        wait_until(lambda: len(refused) == 3, EVENT)
        assert sorted(a[1] for a in refused) == sorted(s.getsockname()[1] for s in socks[3:])
        for s in socks[3:]:
            try:
                assert s.recv(10) == b""
            except ConnectionResetError:
                pass
        for s in socks[:3]:
            s.sendall(b"x\0")
            assert recv_until(s, 1) == b"x\0"
        socks[0].close()
        ev.wait(lambda: ev.lost)
        wait_until(lambda: len(listener.connections) == 2)
        echo_round_trip(listener.port)
        figures.update(max_connections=3, clients=6, refused=len(refused))
        for s in socks:
            s.close()
    finally:
        listener.close()
    rec = Recorder("server")
    server = TCPServer(0, rec, host="127.0.0.1")
    try:
        first = TCPClient("127.0.0.1", server.getPort(), None)
        assert first.connect()
        r2 = Recorder("second")
        second = TCPClient("127.0.0.1", server.getPort(), r2)
        assert not second.connect()
        assert r2.states() == ["CONNECTING", "SERVER_OCCUPIED"]
        first.sendMessage("still here")
        rec.wait_messages(1, EVENT)
        first.disconnect()
    finally:
        server.terminate()


CHILD_FD = r"""
import logging, os, resource, sys, threading
sys.path.insert(0, sys.argv[1])
logging.basicConfig(level=logging.ERROR)
from tcpcom.engine import Handler, Listener
class Echo(Handler):
    def message_received(self, conn, m):
        conn.send_message(m)
reported = []
def on_refused(addr, error=None):
    if error is not None and not reported:
        reported.append(error)
        print("EXHAUSTED %s" % error.errno, flush=True)
lst = Listener(0, Echo, host="127.0.0.1", on_refused=on_refused)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
limit = len(os.listdir("/proc/self/fd")) + 4
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
print("PORT %d %d" % (lst.port, limit), flush=True)
sys.stdin.read()
lst.close()
print("CLOSED", flush=True)
"""


def test_fd_exhaustion_is_reported_and_the_listener_recovers(tmp_path, figures):
    """A child process lowers RLIMIT_NOFILE and runs an engine echo Listener; the parent
    connects until accept() fails with EMFILE: the child logs it and calls
    on_refused(None, error) (no crash, no dead thread); when the served clients close, the
    waiting connection is accepted and echoed, and a new client is served too."""
    err = open(str(tmp_path / "child.err"), "w+")
    child = subprocess.Popen([sys.executable, "-c", CHILD_FD, ROOT], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=err)
    out_fd = child.stdout.fileno()
    buf = [b""]

    def line(timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in buf[0]:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([out_fd], [], [], left)[0]:
                return None
            data = os.read(out_fd, 4096)
            if not data:
                return None
            buf[0] += data
        first, buf[0] = buf[0].split(b"\n", 1)
        return first.decode()

    served, stuck = [], None
    try:
        head = line(EVENT).split()
        port, limit = int(head[1]), int(head[2])
        for i in range(40):
            s = raw_client(port)
            s.sendall(b"ping %d\0" % i)
            ready = select.select([s, out_fd], [], [], EVENT)[0]
            if s in ready:
                assert recv_until(s, 1) == b"ping %d\0" % i
                served.append(s)
                continue
            assert ready, "neither an echo nor a report within %s s" % EVENT
            stuck = s
            break
        assert stuck is not None, "descriptors never ran out"
        report = line(EVENT)
        assert report == "EXHAUSTED 24", report
        for s in served:
            s.close()
        stuck.settimeout(EVENT * 2)
        assert recv_until(stuck, 1) == b"ping %d\0" % len(served)
        stuck.close()
        echo_round_trip(port)
        assert child.poll() is None
        child.stdin.close()
        assert line(EVENT) == "CLOSED"
        assert child.wait(EVENT) == 0
        err.seek(0)
        log = err.read()
        assert "cannot accept" in log and "Traceback" not in log, log
        figures.update(rlimit_nofile=limit, served_before_exhaustion=len(served), recovered=True)
    finally:
        for s in served + [stuck]:
            if s is not None:
                s.close()
        if child.poll() is None:
            child.kill()
        child.wait(EVENT)
        child.stdout.close()
        err.close()
