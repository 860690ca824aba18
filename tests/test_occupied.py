"""SERVER_OCCUPIED against servers that hang up on a second client late.

A one-client server turns a second client away by accepting it and closing
it; nothing else on the wire says "occupied".  The original tcpcom's accept
loop does that milliseconds after the handshake (on Jython), or only once
its CONNECTED callback has returned.  TCPClient has two lines of defence:

1. ``connect()`` watches the fresh connection for the occupied wait: a
   hang-up within it gives ``CONNECTING, SERVER_OCCUPIED`` and False;
2. after ``connect()`` returned True, a hang-up without a single byte from
   the server within ``OCCUPIED_GRACE`` (2 s, the original client's watch)
   gives ``CONNECTED, SERVER_OCCUPIED, DISCONNECTED``.

Which line catches a late hang-up depends on timing; the verdict,
SERVER_OCCUPIED, must not.  So these tests never assert which line caught
a hang-up that came "after some milliseconds", only that one did: the
outcome is one of the two shapes above, never a bare DISCONNECTED.  Where
a test needs one line for sure it orders the events itself (the server
hangs up only when the test says so), never by the clock.  The one bound
left is the 2 s window itself: a hang-up the server's thread delays by
more than that is, by the rule, a plain DISCONNECTED.
"""
import os
import random
import socket
import subprocess
import sys
import threading

import pytest

from helpers import DEADLINE, Recorder, raw_client, wait_until
from testkit import raw_listener
from tcpcom import EventPump, TCPClient, TCPServer
from tcpcom import tcp as tcp_module

FIRST_LINE = ["CONNECTING", "SERVER_OCCUPIED"]
SECOND_LINE = ["CONNECTING", "CONNECTED", "SERVER_OCCUPIED", "DISCONNECTED"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def hang_up(conn):
    """What the original does with a client it turns away: shutdown, then close."""
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except (socket.error, OSError):
        pass
    conn.close()


class OriginalStyleServer(object):
    """An accept loop built like the original tcpcom's TCPServer.run().

    The first client is held, and ``on_connected()`` -- the CONNECTED
    callback -- runs on the accept thread itself; every further client is
    accepted, then ``before_hang_up()`` runs (a delay, or a wait for the
    test), then it is shut down and closed.
    """

    def __init__(self, on_connected=None, before_hang_up=None):
        self.lsock = raw_listener()
        self.lsock.settimeout(None)
        self.port = self.lsock.getsockname()[1]
        self.on_connected = on_connected
        self.before_hang_up = before_hang_up
        self.held = None
        self.holding = threading.Event()
        self.refused = 0
        self.stopping = False
        self.error = None
        self.thread = threading.Thread(target=self._run)
        self.thread.daemon = True
        self.thread.start()

    def _run(self):
        try:
            while True:
                conn, _ = self.lsock.accept()
                if self.stopping:
                    conn.close()
                    return
                if self.held is not None:
                    if self.before_hang_up is not None:
                        self.before_hang_up()
                    hang_up(conn)
                    self.refused += 1
                    continue
                self.held = conn
                self.holding.set()
                if self.on_connected is not None:
                    self.on_connected()
        except Exception as e:  # seen by close()
            self.error = e

    def close(self):
        self.stopping = True
        try:
            socket.create_connection(("127.0.0.1", self.port), DEADLINE).close()  # out of accept()
        except (socket.error, OSError):
            pass
        self.thread.join(DEADLINE)
        self.lsock.close()
        if self.held is not None:
            self.held.close()
        assert self.error is None, self.error


@pytest.fixture
def servers():
    made = []

    def make(**kw):
        s = OriginalStyleServer(**kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def attempt(port, **kw):
    """One second client with the default settings; returns (connect() result, its states at the end)."""
    rec = Recorder("second")
    c = TCPClient("127.0.0.1", port, rec, **kw)
    ok = c.connect()
    if ok:
        rec.wait_state("DISCONNECTED")
    else:
        rec.wait_for(lambda ev: len(ev) >= 2)
    assert not c.isConnected()
    return ok, rec


def assert_occupied(ok, rec, port, where):
    """SERVER_OCCUPIED from one line of defence or the other, never a bare DISCONNECTED."""
    assert rec.states() == (SECOND_LINE if ok else FIRST_LINE), "%s: %r" % (where, rec.events)
    assert ("SERVER_OCCUPIED", "127.0.0.1:%d" % port) in rec.events


def held_server(servers, **kw):
    """A server of ours kept busy by a first (raw) client."""
    server = servers(**kw)
    first = raw_client(server.port)
    assert server.holding.wait(DEADLINE)
    return server, first


# -- late hang-ups: the verdict is SERVER_OCCUPIED whichever line catches it ---------

def test_hang_up_0_to_40_ms_after_accept_is_server_occupied(servers):
    rng = random.Random()
    delays = []

    def late():
        delays.append(rng.uniform(0, 0.040))
        threading.Event().wait(delays[-1])  # the server's behaviour under test: a late hang-up
    server, first = held_server(servers, before_hang_up=late)
    try:
        for i in range(8):
            ok, rec = attempt(server.port)
            assert_occupied(ok, rec, server.port, "attempt %d, hang-up %.1f ms after accept" % (i, delays[-1] * 1000))
        assert server.refused == 8
    finally:
        first.close()


def test_hang_up_150_ms_after_accept_is_server_occupied(servers):
    server, first = held_server(servers, before_hang_up=lambda: threading.Event().wait(0.150))
    try:
        for i in range(3):
            ok, rec = attempt(server.port)
            assert_occupied(ok, rec, server.port, "attempt %d" % i)
    finally:
        first.close()


def test_accept_loop_busy_in_a_connected_callback_gives_server_occupied(servers):
    # As the original: the accept thread runs the CONNECTED callback of the first
    # client; a second client's handshake completes meanwhile (the system does it),
    # and the hang-up comes only when the callback returns -- here, when the test says.
    busy = threading.Event()
    release = threading.Event()

    def slow_connected():
        busy.set()
        release.wait(DEADLINE)
    server = servers(on_connected=slow_connected)
    first = raw_client(server.port)
    try:
        assert busy.wait(DEADLINE)
        rec = Recorder("second")
        c = TCPClient("127.0.0.1", server.port, rec)
        assert c.connect() is True  # nobody can hang up while the accept thread is busy
        assert c.isConnected()
        release.set()
        rec.wait_state("DISCONNECTED")
        assert rec.states() == SECOND_LINE
        assert rec.events[2] == ("SERVER_OCCUPIED", "127.0.0.1:%d" % server.port)
        assert not c.isConnected()
        assert c.sendMessage("anyone?") is None
    finally:
        release.set()
        first.close()


# -- the second line of defence, step by step -----------------------------------------

class HangUpOnCue(object):
    """Accepts one client and hangs up on it when ``go`` is set, after sending ``send`` (bytes)."""

    def __init__(self, send=b""):
        self.lsock = raw_listener()
        self.port = self.lsock.getsockname()[1]
        self.go = threading.Event()
        self.send = send
        self.thread = threading.Thread(target=self._run)
        self.thread.daemon = True
        self.thread.start()

    def _run(self):
        conn, _ = self.lsock.accept()
        self.go.wait(DEADLINE)
        if self.send:
            conn.sendall(self.send)
        hang_up(conn)

    def close(self):
        self.go.set()
        self.thread.join(DEADLINE)
        self.lsock.close()


@pytest.fixture
def cue():
    made = []

    def make(**kw):
        s = HangUpOnCue(**kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


class WindowEnd(object):
    """``checked`` is set once a client's window has ended (the watchdog looked at the
    socket); that look waits for ``allowed`` first, so a test can order it after an event."""

    def __init__(self, monkeypatch):
        self.checked = threading.Event()
        self.allowed = threading.Event()
        self.allowed.set()
        original = tcp_module._ClientSide.check_deadlines
        end = self

        def check(side, now):
            end.allowed.wait(DEADLINE)
            try:
                return original(side, now)
            finally:
                end.checked.set()
        monkeypatch.setattr(tcp_module._ClientSide, "check_deadlines", check)


@pytest.fixture
def window_end(monkeypatch):
    return WindowEnd(monkeypatch)


def test_hang_up_without_a_byte_after_connect_returned_is_server_occupied_then_disconnected(cue):
    server = cue()
    seen = []
    rec = Recorder("client")

    def stateChanged(state, msg):
        seen.append((state, c.isConnected()))  # before the test can see the event
        rec(state, msg)
    c = TCPClient("127.0.0.1", server.port, stateChanged)
    assert c.connect() is True  # the server hangs up only on cue: the first line cannot see it
    server.go.set()
    rec.wait_state("DISCONNECTED")
    assert rec.states() == SECOND_LINE
    assert rec.events[2] == ("SERVER_OCCUPIED", "127.0.0.1:%d" % server.port)
    assert rec.events[3] == ("DISCONNECTED", "")
    # isConnected() is False from SERVER_OCCUPIED on
    assert seen[2:] == [("SERVER_OCCUPIED", False), ("DISCONNECTED", False)]


def test_the_verdict_does_not_depend_on_when_the_event_is_delivered(cue, window_end):
    # The events wait for a pump: the closing event is delivered after the window
    # ended, but the server had hung up within it -- the socket decides, not the
    # time of delivery.
    server = cue()
    pump = EventPump()
    rec = Recorder("client")
    c = TCPClient("127.0.0.1", server.port, rec, dispatcher=pump)
    c.OCCUPIED_GRACE = 0.05
    window_end.allowed.clear()  # the window's end waits for the hang-up below
    assert c.connect() is True
    server.go.set()
    wait_until(lambda: not c.isConnected(), what="the client saw the hang-up")
    window_end.allowed.set()
    assert window_end.checked.wait(DEADLINE), "the window did not end"
    assert rec.states() == []  # nothing delivered yet
    assert pump.pump_until(lambda: "DISCONNECTED" in rec.states(), DEADLINE)
    assert rec.states() == SECOND_LINE


def test_a_hang_up_after_the_window_is_a_plain_disconnected(cue, window_end):
    server = cue()
    rec = Recorder("client")
    c = TCPClient("127.0.0.1", server.port, rec)
    c.OCCUPIED_GRACE = 0.05  # the rule, on a shorter clock
    assert c.connect() is True
    assert window_end.checked.wait(DEADLINE), "the window did not end"
    server.go.set()
    rec.wait_state("DISCONNECTED")
    assert rec.states() == ["CONNECTING", "CONNECTED", "DISCONNECTED"]


def test_a_server_that_sent_a_message_then_hung_up_is_not_occupied(cue):
    server = cue(send=b"bye\0")
    server.go.set()  # it may hang up at once: the message comes first
    rec = Recorder("client")
    c = TCPClient("127.0.0.1", server.port, rec)
    assert c.connect() is True
    rec.wait_state("DISCONNECTED")
    assert rec.states() == ["CONNECTING", "CONNECTED", "MESSAGE", "DISCONNECTED"]
    assert rec.messages() == ["bye"]


def test_a_server_that_sent_part_of_a_message_then_hung_up_is_not_occupied(cue):
    server = cue(send=b"no delimiter")
    server.go.set()
    rec = Recorder("client")
    c = TCPClient("127.0.0.1", server.port, rec)
    assert c.connect() is True
    rec.wait_state("DISCONNECTED")
    assert rec.states() == ["CONNECTING", "CONNECTED", "DISCONNECTED"]


def test_our_own_disconnect_within_the_window_is_not_occupied():
    srec = Recorder("server")
    server = TCPServer(0, srec, host="127.0.0.1")
    try:
        rec = Recorder("client")
        c = TCPClient("127.0.0.1", server.getPort(), rec)
        assert c.connect() is True
        c.disconnect()
        assert rec.states() == ["CONNECTING", "CONNECTED", "DISCONNECTED"]
    finally:
        server.terminate()


def test_a_second_client_of_our_tcpserver_is_told_server_occupied():
    srec = Recorder("server")
    server = TCPServer(0, srec, host="127.0.0.1")
    try:
        first = TCPClient("127.0.0.1", server.getPort(), None)
        assert first.connect()
        srec.wait_state("CONNECTED")
        for i in range(3):
            ok, rec = attempt(server.getPort())
            assert_occupied(ok, rec, server.getPort(), "attempt %d" % i)
        assert first.isConnected()
    finally:
        server.terminate()


# -- the first line's default, and its measurement ----------------------------------------

def test_the_default_wait_covers_the_measured_late_hang_ups():
    # Figure 1b in docs/PERFORMANCE.md: the original on Jython hangs up on a second
    # client up to ~20 ms after the handshake, also with a CPU kept busy; the default
    # waits at least that long however fast the handshake was, and not near the
    # original's 2 s.
    c = TCPClient("127.0.0.1", 1, None)
    assert c.getOccupiedWait(0.00005) == TCPClient.OCCUPIED_WAIT_MIN
    assert 0.05 <= TCPClient.OCCUPIED_WAIT_MIN <= 0.1
    assert c.getOccupiedWait(1.0) == TCPClient.OCCUPIED_WAIT_MAX == 2.0
    c.occupiedWait = 0.3
    assert c.getOccupiedWait(0.00005) == 0.3


@pytest.mark.timeout(120)
def test_quick_occupied_bench_prints_its_tables():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "occupied.py"), "--quick"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=110, cwd=ROOT)
    out = proc.stdout
    assert proc.returncode == 0, out
    for title in ("when the hang-up reaches a raw second client", "false CONNECTED",
                  "connect() to a free TCPServer"):
        assert title in out, out
    for row in ("TCPServer (ours)", "accept loop, hang-up 0-40 ms (random)", "accept loop, hang-up 150 ms",
                "accept loop busy 150 ms in CONNECTED"):
        assert "| " + row in out, row
    assert "Traceback" not in out, out
