"""1,000 create/terminate cycles: no leaked threads, descriptors or memory; the port re-binds."""
import gc
import threading
import time
import tracemalloc

import pytest

from helpers import engine_threads
from rel_helpers import FULL, fd_count, rss_kib, scaled, settle
from tcpcom.engine import Handler, Listener, connect
from tcpcom.tcp import TCPClient, TCPServer

CYCLES = scaled(1000, 1000)
WARMUP = 20


def measure_cycles(cycle, n, figures):
    for i in range(WARMUP):
        cycle(i)
    # a closed connection's reader lingers until the peer has closed too (ms here): let the
    # last warm-up cycle's readers end before counting
    settle(lambda: not [t for t in engine_threads() if t.startswith("tcpcom-conn")])
    gc.collect()
    tracemalloc.start()
    try:
        base_threads = engine_threads()
        base_fds = fd_count()
        base_rss = rss_kib()
        base_mem = tracemalloc.get_traced_memory()[0]
        start = time.monotonic()
        for i in range(n):
            cycle(i)
        took = time.monotonic() - start
        threads = settle(lambda: engine_threads() == base_threads) and engine_threads()
        fds = settle(lambda: fd_count() <= base_fds) and fd_count()
        gc.collect()
        mem = tracemalloc.get_traced_memory()[0] - base_mem
        workers = [t.name for t in threading.enumerate() if t.name.startswith("tcpcom-dispatch")]
    finally:
        tracemalloc.stop()
    figures.update(cycles=n, seconds=round(took, 1), threads_before=len(base_threads),
                   threads_after=len(engine_threads()), fds_before=base_fds, fds_after=fd_count(),
                   python_heap_growth_bytes=mem, rss_growth_kib=rss_kib() - base_rss,
                   shared_pool_workers_after=len(workers), full=FULL)
    assert threads == base_threads, "threads left: %r" % sorted(set(engine_threads()) - set(base_threads))
    assert fds is not False and fds <= base_fds, "descriptors: %d before, %d after" % (base_fds, fd_count())
    # before the watchdog fix this was ~44 KB per cycle; one small object per cycle is >= 64 B
    assert mem < 64 * n, "Python heap grew by %d bytes over %d cycles" % (mem, n)
    assert len(workers) <= 18


@pytest.mark.timeout(scaled(180, 900))
def test_tcpserver_tcpclient_create_terminate_cycles_on_one_port(figures):
    """Each cycle: TCPServer on the same port (re-bound every time: never PORT_IN_USE),
    a TCPClient connects, sendMessage(msg, responseTime) gets its echo, disconnect(),
    terminate(). Threads (engine threads by name), file descriptors (/proc/self/fd) and the
    Python heap (tracemalloc) are measured before and after; RSS growth is reported."""
    first = TCPServer(0, None, host="127.0.0.1")
    port = first.getPort()
    first.terminate()
    holder = {}

    def on_server(state, msg):
        if state == "MESSAGE":
            holder["server"].sendMessage(msg)

    def cycle(i):
        server = TCPServer(port, on_server, host="127.0.0.1")
        holder["server"] = server
        assert not server.isTerminated(), "cycle %d: port %d could not be re-bound" % (i, port)
        client = TCPClient("127.0.0.1", port, None, occupiedWait=0.002)  # (the 80 ms default x 1,000)
        assert client.connect(), "cycle %d: connect failed" % i
        assert client.sendMessage("cycle %d" % i, 10) == "cycle %d" % i
        client.disconnect()
        server.terminate()
        holder.clear()

    measure_cycles(cycle, CYCLES, figures)
    figures["port"] = "same port every cycle"


@pytest.mark.timeout(scaled(180, 900))
def test_engine_listener_connect_close_cycles_on_one_port(figures):
    """Each cycle: an engine Listener on the same port, three connect() clients each doing a
    request() round trip, then every connection and the listener closed (close() returns
    after their threads ended). Threads, descriptors and heap measured before and after."""
    class Echo(Handler):
        def message_received(self, conn, message):
            conn.send_message(message)

    first = Listener(0, Echo, host="127.0.0.1")
    port = first.port
    first.close()

    def cycle(i):
        listener = Listener(port, Echo, host="127.0.0.1")
        conns = [connect("127.0.0.1", port, None) for _ in range(3)]
        for k, c in enumerate(conns):
            assert c.request("%d/%d" % (i, k), 10) == "%d/%d" % (i, k)
        for c in conns:
            c.close()
        listener.close()

    measure_cycles(cycle, CYCLES, figures)


def test_closed_connections_are_freed_before_their_send_timeout_deadline():
    """Regression (watchdog): a closed connection used to stay referenced by the timeout
    watchdog until its send-timeout deadline (30 s by default), ~22 KB each, so a server with
    a high connection rate held tens of MB; now it is freed when it closes."""
    import weakref

    class Echo(Handler):
        def message_received(self, conn, message):
            conn.send_message(message)
    listener = Listener(0, Echo, host="127.0.0.1", send_timeout=30, read_timeout=60)
    try:
        refs = []
        for i in range(5):
            c = connect("127.0.0.1", listener.port, None, send_timeout=30, read_timeout=60)
            assert c.request("x", 10) == "x"
            server_side = listener.connections[0]
            refs += [weakref.ref(c), weakref.ref(server_side)]
            c.close()
            assert server_side.wait_closed(10)
            del c, server_side
            settle(lambda: not listener.connections)
        assert settle(lambda: all(r() is None for r in refs)), \
            "%d of %d closed connections still referenced" % (sum(r() is not None for r in refs), len(refs))
    finally:
        listener.close()
