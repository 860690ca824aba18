# -*- coding: utf-8 -*-
"""Connections that heal: an outgoing connection that dials again by itself once lost
(tcpcom.engine.ReconnectingConnection)."""
import os
import socket
import struct
import threading
import time

import pytest

from helpers import DEADLINE, CallLog, Proc, engine_threads, wait_until
from tcpcom import TCPClient, TCPServer
from tcpcom.engine import (OCCUPIED, REFUSED, Backoff, ConnectError, ConnectionClosedError, Handler, Listener,
                           ReadTimeout, ReconnectHandler, ReconnectingConnection, ReconnectingError,
                           ReconnectState)


class Log(ReconnectHandler, CallLog):
    """Records every event as (kind, value) with the time it was delivered in ``times``."""

    def __init__(self):
        CallLog.__init__(self, "redial")
        self.times = []

    def _rec(self, kind, value):
        with self.cond:
            self.times.append((kind, time.monotonic()))
        self.record(kind, value)

    def connection_made(self, conn):
        self._rec("made", conn.connection.id)

    def message_received(self, conn, message):
        self._rec("msg", message)

    def connection_lost(self, conn, reason):
        self._rec("lost", reason)

    def reconnecting(self, conn, attempt, delay, reason):
        self._rec("reconnecting", (attempt, delay, reason))

    def gave_up(self, conn, reason):
        self._rec("gave_up", reason)

    def count(self, kind):
        with self.cond:
            return sum(1 for k, _ in self.events if k == kind)

    def wait_count(self, kind, n, timeout=DEADLINE):
        return self.wait_for(lambda ev: sum(1 for k, _ in ev if k == kind) >= n, timeout)

    def of(self, kind):
        with self.cond:
            return [v for k, v in self.events if k == kind]


class Greeter(Handler):
    """The server side: greets every connection, answers every message with 'echo ...'."""

    def __init__(self, seen):
        Handler.__init__(self)
        self.seen = seen

    def connection_made(self, conn):
        conn.send_message("hello")

    def message_received(self, conn, message):
        self.seen.append(message)
        conn.send_message("echo " + message)


def dead_port():
    """A port of 127.0.0.1 on which nobody listens."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def redial_threads():
    return [n for n in engine_threads() if n.startswith("tcpcom-redial")]


def fd_count():
    return len(os.listdir("/proc/self/fd"))


# -- the back-off itself ---------------------------------------------------------------------

def test_back_off_doubles_up_to_its_ceiling_and_jitter_only_shortens_a_wait():
    b = Backoff(0.5, 4.0, 2.0, 0.0)
    assert [b.delay_for(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert Backoff(0.5, 4.0, 2.0, 0.25, rand=lambda: 1.0).delay_for(1) == 0.375
    assert Backoff(0.5, 4.0, 2.0, 0.25, rand=lambda: 0.0).delay_for(3) == 2.0
    assert Backoff(1.0, 30.0).ceiling(10 ** 6) == 30.0  # a long outage: no overflow
    with pytest.raises(ValueError):
        Backoff(jitter=1.5)
    with pytest.raises(ValueError):
        Backoff(delay=-1)
    with pytest.raises(TypeError):
        ReconnectingConnection("127.0.0.1", 1, delay="soon", start=False)
    with pytest.raises(ValueError):
        ReconnectingConnection("127.0.0.1", 1, max_attempts=0, start=False)
    with pytest.raises(TypeError) as e:
        ReconnectingConnection("127.0.0.1", 1, framming="line", start=False)  # a typo is named at once
    assert "'framming'" in str(e.value) and "framing" in str(e.value)


# -- the server goes away and comes back -------------------------------------------------------

def test_comes_back_after_its_server_restarts_on_the_same_port_twenty_times_messages_flow_both_ways(closing):
    seen = []
    server = Listener(0, lambda conn: Greeter(seen), host="127.0.0.1")
    port = server.port
    log = Log()
    rc = ReconnectingConnection("127.0.0.1", port, log, delay=0.1, max_delay=0.4, jitter=0.1)
    closing(rc)
    log.wait_count("made", 1)
    first_dial_sufficed = 0
    for cycle in range(1, 21):
        log.wait_count("msg", 2 * cycle - 1)  # the greeting of this connection
        rc.send_message("ping %d" % cycle)
        log.wait_count("msg", 2 * cycle)
        assert log.of("msg")[-2:] == ["hello", "echo ping %d" % cycle]
        before = len(log.of("reconnecting"))
        server.close()  # the server is terminated ...
        log.wait_count("lost", cycle)
        restart_before_first_dial = rc.state == ReconnectState.WAITING and rc.attempt == 0
        server = Listener(port, lambda conn: Greeter(seen), host="127.0.0.1")  # ... and started again
        log.wait_count("made", cycle + 1)
        if restart_before_first_dial:  # back on the first dial, after the first (short) delay
            first_dial_sufficed += 1
            assert [a for a, _, _ in log.of("reconnecting")[before:]] == [1]
        attempt, delay, reason = log.of("reconnecting")[before]
        assert attempt == 1 and 0.09 <= delay <= 0.1 and reason is None  # the short first delay
    log.wait_count("msg", 41)
    rc.send_message("last")
    log.wait_count("msg", 42)
    assert seen == ["ping %d" % i for i in range(1, 21)] + ["last"]
    assert first_dial_sufficed > 0
    kinds = [k for k in log.states() if k in ("made", "lost")]
    assert kinds == ["made", "lost"] * 20 + ["made"]  # one connected event per connection, never two
    assert len(set(log.of("made"))) == 21  # a new connection each time ...
    assert rc.id.startswith("r") and rc.connects == 21  # ... under the one, lasting object
    rc.close()
    server.close()
    assert rc.wait_closed(DEADLINE)
    log.wait_count("lost", 21)
    assert log.states()[-1] == "lost" and log.of("lost")[-1] is None
    wait_until(lambda: not redial_threads(), what="no redial thread left")


def test_a_reset_and_the_engines_read_timeout_are_losses_too(closing):
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(5)
    lst.settimeout(DEADLINE)
    try:
        log = Log()
        rc = ReconnectingConnection("127.0.0.1", lst.getsockname()[1], log, delay=0.05, read_timeout=0.3)
        closing(rc)
        peer, _ = lst.accept()
        log.wait_count("made", 1)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # a reset
        second, _ = lst.accept()
        log.wait_count("made", 2)
        assert isinstance(log.of("lost")[0], (socket.error, OSError))
        # the second peer says nothing: the read timeout ends it, and it dials again
        third, _ = lst.accept()
        log.wait_count("made", 3)
        assert isinstance(log.of("lost")[1], ReadTimeout)
        assert [r for _, _, r in log.of("reconnecting")[:2]] == log.of("lost")[:2]
        rc.close()
        for s in (second, third):
            s.close()
    finally:
        lst.close()


# -- while the port stays dead -------------------------------------------------------------------

def test_back_off_grows_to_the_ceiling_in_the_recorded_delays_and_the_timestamps(closing):
    log = Log()
    rc = ReconnectingConnection("127.0.0.1", dead_port(), log, delay=0.05, factor=2.0, max_delay=0.4,
                                jitter=0.25)
    closing(rc)
    log.wait_count("reconnecting", 8)
    rc.close()
    events = log.of("reconnecting")
    attempts = [a for a, _, _ in events]
    delays = [d for _, d, _ in events]
    assert attempts[:8] == list(range(2, 10))  # the first dial was at once
    assert all(isinstance(r, ConnectError) and r.kind == REFUSED for _, _, r in events)
    ceilings = [0.05, 0.1, 0.2, 0.4, 0.4, 0.4, 0.4, 0.4]
    for d, top in zip(delays, ceilings):
        assert top * 0.75 <= d <= top, (delays, ceilings)
    assert delays[0] < delays[1] < delays[2] < delays[3]  # growth until the ceiling
    # a dial comes only after its wait, so the failures are reported no earlier than the waits
    # allow (up to 20 ms: the only slack here is the first report's own delivery)
    times = [t for k, t in log.times if k == "reconnecting"]
    for i in range(7):
        assert times[i + 1] - times[0] >= sum(delays[:i + 1]) - 0.02, (i, times, delays)


def test_the_process_stays_near_idle_while_a_dead_port_is_retried(closing):
    log = Log()
    rc = ReconnectingConnection("127.0.0.1", dead_port(), log, delay=0.01, max_delay=0.05, jitter=0.2)
    closing(rc)
    log.wait_count("reconnecting", 5)  # at the ceiling: about 20 dials a second
    n0, cpu0, wall0 = log.count("reconnecting"), time.process_time(), time.monotonic()
    threading.Event().wait(1.5)  # the window measured (not a synchronisation)
    n1, cpu1, wall1 = log.count("reconnecting"), time.process_time(), time.monotonic()
    rc.close()
    assert n1 - n0 >= 5, "it kept dialing"
    share = (cpu1 - cpu0) / (wall1 - wall0)
    assert share < 0.25, "the process used %.0f%% of a CPU while retrying" % (share * 100)


def test_gives_up_after_max_attempts_with_one_last_event_and_nothing_left(closing):
    log = Log()
    rc = ReconnectingConnection("127.0.0.1", dead_port(), log, delay=0.01, max_delay=0.02, max_attempts=3)
    closing(rc)
    log.wait_count("gave_up", 1)
    assert rc.wait_closed(DEADLINE)
    assert log.states() == ["reconnecting", "reconnecting", "gave_up"]
    assert rc.state == ReconnectState.CLOSED and rc.is_done()
    assert isinstance(rc.close_reason, ConnectError) and rc.close_reason is log.of("gave_up")[0]
    wait_until(lambda: not redial_threads(), what="no redial thread left")
    with pytest.raises(ConnectionClosedError) as e:
        rc.send_message("x")
    assert not isinstance(e.value, ReconnectingError) and "closed" in str(e.value)


def test_a_failure_that_is_not_the_networks_is_not_retried_for_ever(closing, monkeypatch):
    import tcpcom.engine.redial as redial

    def broken(*args, **kw):
        raise RuntimeError("a bug")
    monkeypatch.setattr(redial, "connect", broken)
    log = Log()
    rc = ReconnectingConnection("127.0.0.1", dead_port(), log, delay=0.01)
    closing(rc)
    log.wait_count("gave_up", 1)
    assert log.states() == ["gave_up"] and isinstance(rc.close_reason, RuntimeError)


# -- sending while it is away ----------------------------------------------------------------------

def test_a_send_while_reconnecting_fails_at_once_saying_so_and_nothing_is_queued(closing):
    seen = []
    server = Listener(0, lambda conn: Greeter(seen), host="127.0.0.1")
    closing(server)
    log = Log()
    rc = ReconnectingConnection("127.0.0.1", server.port, log, delay=0.3, max_delay=0.3, jitter=0.0)
    closing(rc)
    log.wait_count("made", 1)
    wait_until(lambda: server.connections, what="the server has its connection")
    for c in server.connections:
        c.close()  # the peer closes: the client waits 0.3 s before it dials again
    log.wait_count("reconnecting", 1)
    assert rc.state == ReconnectState.WAITING
    start = time.monotonic()
    with pytest.raises(ReconnectingError) as e:
        rc.send_message("lost in the gap")
    assert time.monotonic() - start < 0.3  # at once, not after waiting for the return
    assert isinstance(e.value, ConnectionClosedError)
    assert "reconnecting" in str(e.value) and "nothing was sent" in str(e.value)
    with pytest.raises(ReconnectingError):
        rc.send(b"raw")
    log.wait_count("made", 2)
    rc.send_message("after")
    log.wait_for(lambda ev: ("msg", "echo after") in ev)
    assert seen == ["after"]  # the failed send was not queued for later


def test_send_before_start_says_to_start_it(closing):
    rc = ReconnectingConnection("127.0.0.1", dead_port(), None, start=False)
    closing(rc)
    with pytest.raises(ReconnectingError) as e:
        rc.send_message("x")
    assert "start()" in str(e.value)
    assert rc.state == ReconnectState.IDLE and not redial_threads()


# -- the program's own close ----------------------------------------------------------------------

def test_the_programs_own_close_never_redials_and_its_closing_event_is_the_last(closing):
    accepted = []
    server = Listener(0, lambda conn: accepted.append(conn.id), host="127.0.0.1")
    closing(server)
    log = Log()
    rc = ReconnectingConnection("127.0.0.1", server.port, log, delay=0.02)
    log.wait_count("made", 1)
    rc.close()
    assert rc.wait_closed(DEADLINE)
    threading.Event().wait(0.3)  # fifteen times the delay: a redial would have come (an observation window)
    assert len(accepted) == 1
    assert log.states() == ["made", "lost"] and log.of("lost") == [None]
    assert rc.state == ReconnectState.CLOSED and rc.close_reason is None
    rc.close()  # twice is harmless


def test_close_while_waiting_ends_its_thread_at_once_and_stops_the_dials(closing):
    log = Log()
    rc = ReconnectingConnection("127.0.0.1", dead_port(), log, delay=0.01, factor=6000.0, max_delay=60.0,
                                jitter=0.0)
    closing(rc)
    log.wait_count("reconnecting", 2)  # the next dial is due in 60 s
    assert redial_threads() and rc.state == ReconnectState.WAITING
    rc.close()
    assert rc.wait_closed(DEADLINE)  # woken, not when the dial was due
    assert not redial_threads()
    n = log.count("reconnecting")
    assert rc.state == ReconnectState.CLOSED and rc.next_dial_in is None
    threading.Event().wait(0.2)  # an observation window: nothing follows the close
    assert log.count("reconnecting") == n


def test_close_from_its_own_callbacks(closing):
    server = Listener(0, Handler, host="127.0.0.1")
    closing(server)

    class Quitter(Log):
        def reconnecting(self, conn, attempt, delay, reason):
            Log.reconnecting(self, conn, attempt, delay, reason)
            conn.close()
    log = Quitter()
    # (the dial does not wait for the callback: a delay long enough for a loaded machine to
    # deliver it first -- 0.01 s once let a dial in before the close, with two suites running)
    rc = ReconnectingConnection("127.0.0.1", server.port, log, delay=0.3)
    closing(rc)
    log.wait_count("made", 1)
    wait_until(lambda: server.connections, what="the server has its connection")
    for c in server.connections:
        c.close()
    log.wait_count("reconnecting", 1)
    wait_until(rc.is_done, what="closed by its callback")
    assert rc.wait_closed(DEADLINE)
    threading.Event().wait(0.6)  # two delays: no dial follows
    assert log.states() == ["made", "lost", "reconnecting"] and rc.connects == 1
    assert len(server.connections) == 0


KEEPS_ALIVE = r"""
import sys
from tcpcom.engine import ReconnectHandler, ReconnectingConnection

class Once(ReconnectHandler):
    def connection_made(self, conn):
        print("connected"); sys.stdout.flush()
        conn.close()
    def reconnecting(self, conn, attempt, delay, reason):
        print("retry %d" % attempt); sys.stdout.flush()

ReconnectingConnection("127.0.0.1", int(sys.argv[1]), Once(), delay=0.05, max_delay=0.1, daemon=False)
print("main ends"); sys.stdout.flush()
"""


def test_with_daemon_false_a_script_stays_alive_while_it_reconnects():
    port = dead_port()
    p = Proc(["-c", KEEPS_ALIVE, str(port)])
    server = None
    try:
        p.wait_line("main ends")
        p.wait_line("retry 3")  # the main thread is over; the reconnecting keeps the program alive
        assert p.p.poll() is None
        server = Listener(port, Handler, host="127.0.0.1")
        assert p.finish() == 0  # connected, closed by its handler: then nothing keeps it alive
        p.wait_line("connected")
    finally:
        p.kill()
        if server is not None:
            server.close()


# -- an occupied server ------------------------------------------------------------------------------

def test_an_occupied_server_means_try_again_later(closing):
    server = TCPServer(0, None, host="127.0.0.1")
    first = TCPClient("127.0.0.1", server.getPort(), None)
    try:
        assert first.connect(DEADLINE)
        log = Log()
        rc = ReconnectingConnection("127.0.0.1", server.getPort(), log, delay=0.05, max_delay=0.2,
                                    occupied_wait=0.5)
        closing(rc)
        log.wait_for(lambda ev: any(k == "reconnecting" and getattr(v[2], "kind", None) == OCCUPIED
                                    for k, v in ev))
        assert rc.state != ReconnectState.CLOSED
        first.disconnect()  # the server is free again
        log.wait_count("made", 1)
        rc.send_message("me now")
        assert rc.is_open
    finally:
        first.disconnect()
        server.terminate()


# -- Q-SYS style, dial() ----------------------------------------------------------------------------

def test_a_qsys_style_function_hears_reconnect_and_gave_up(closing):
    server = Listener(0, lambda conn: Greeter([]), host="127.0.0.1")
    port = server.port
    events = []
    cond = threading.Condition()

    def handler(conn, event, data):
        with cond:
            events.append(event)
            cond.notify_all()

    rc = ReconnectingConnection("127.0.0.1", port, handler, delay=0.01, max_delay=0.02, max_attempts=2)
    closing(rc)
    with cond:
        assert cond.wait_for(lambda: rc.DATA in events, DEADLINE)
    server.close()
    with cond:
        assert cond.wait_for(lambda: rc.GAVE_UP in events, DEADLINE), events
    assert events == [rc.CONNECTED, rc.DATA, rc.CLOSED, rc.RECONNECT, rc.RECONNECT, rc.GAVE_UP]
    assert (rc.RECONNECT, rc.GAVE_UP) == ("reconnect", "gave_up")


def test_dial_connects_on_the_calling_thread_or_raises_and_may_keep_trying(closing):
    rc = ReconnectingConnection("127.0.0.1", dead_port(), None, delay=0.01, start=False)
    closing(rc)
    with pytest.raises(ConnectError) as e:
        rc.dial()
    assert e.value.kind == REFUSED and rc.state == ReconnectState.IDLE and not redial_threads()
    log = Log()
    rc.handler = log
    with pytest.raises(ConnectError):
        rc.dial(keep_trying=True)
    log.wait_count("reconnecting", 2)  # the dials go on in the background
    rc.close()
    server = Listener(0, Handler, host="127.0.0.1")
    closing(server)
    rc2 = ReconnectingConnection("127.0.0.1", server.port, None, start=False)
    closing(rc2)
    conn = rc2.dial()
    assert conn is rc2.connection and rc2.is_open and rc2.state == ReconnectState.OPEN
    assert rc2.dial() is conn  # connected already


# -- nothing left behind -------------------------------------------------------------------------------

def test_no_thread_or_descriptor_left_after_100_loss_and_return_cycles(closing):
    wait_until(lambda: not redial_threads(), what="a quiet start")
    threads_before = [n for n in engine_threads() if not n.startswith("tcpcom-conn")]
    fds_before = fd_count()
    server = Listener(0, Handler, host="127.0.0.1")
    log = Log()
    rc = ReconnectingConnection("127.0.0.1", server.port, log, delay=0.002, max_delay=0.01)
    for cycle in range(1, 101):
        log.wait_count("made", cycle)
        wait_until(lambda: server.connections, what="the server has its connection")
        for c in server.connections:
            c.close()  # the peer closes it
        log.wait_count("lost", cycle)
    log.wait_count("made", 101)
    assert [k for k in log.states() if k in ("made", "lost")] == ["made", "lost"] * 100 + ["made"]
    rc.close()  # the server stays: its side ends when the client's close reaches it
    assert rc.wait_closed(DEADLINE)
    wait_until(lambda: not redial_threads() and not [n for n in engine_threads() if n.startswith("tcpcom-conn")],
               what="every redial and connection thread ended")
    server.close()
    assert [n for n in engine_threads() if not n.startswith("tcpcom-conn")] == threads_before
    wait_until(lambda: fd_count() <= fds_before, what="descriptors back to %d (now %d)" % (fds_before, fd_count()))
