"""A burst of connections is held by the listening socket's backlog (issue 15).

Clients that connect at the same moment (devices after a power cut, a class
after "now connect!") are completed and queued by the system until the
accept thread takes them.  A backlog smaller than the burst makes the system
drop the other handshakes: those clients wait for a retransmission (1 s,
then 3 s, 7 s, ...) and, while the queue stays full, fail.  With the old
default of 128, 2,000 clients at once lost 474 connections.
"""
import errno
import os
import resource
import selectors
import socket
import sys
import time

import pytest

import tcpcom.engine.listener as listener_module
from tcpcom.engine import DEFAULT_BACKLOG, Handler, Listener

BURST = 2000
SOMAXCONN_FILE = "/proc/sys/net/core/somaxconn"


class Echo(Handler):
    def message_received(self, conn, message):
        conn.send_message(message)


def _room_for(fds):
    """Raise this test process's file limit (the test's, never the library's) or skip."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= fds:
        return
    if hard != resource.RLIM_INFINITY and hard < fds:
        pytest.skip("the file limit (%d) is below the %d sockets this burst needs" % (hard, fds))
    resource.setrlimit(resource.RLIMIT_NOFILE, (fds, hard))


def _connect_all(port, n):
    """``n`` non-blocking connects, every one issued before any is waited for."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", port))
        assert err in (0, errno.EINPROGRESS, errno.EAGAIN), os.strerror(err)
        socks.append(s)
    return socks


def _wait_connected(socks, deadline):
    """How many of ``socks`` completed their handshake within ``deadline`` s (an error fails the test)."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_WRITE)
    done = 0
    end = time.monotonic() + deadline
    while done < len(socks) and time.monotonic() < end:
        for key, _ in sel.select(0.2):
            s = key.fileobj
            sel.unregister(s)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            assert err == 0, "connection %d failed: %s" % (done, os.strerror(err))
            done += 1
    sel.close()
    return done


def _round_trips(socks, deadline):
    """Each socket sends one message and reads its echo; returns how many were echoed."""
    sel = selectors.DefaultSelector()
    expect, got = {}, {}
    for i, s in enumerate(socks):
        expect[s] = ("burst %d" % i).encode() + b"\0"
        got[s] = b""
        s.send(expect[s])  # 10 bytes into an empty send buffer: never partial
        sel.register(s, selectors.EVENT_READ)
    echoed = 0
    end = time.monotonic() + deadline
    while echoed < len(socks) and time.monotonic() < end:
        for key, _ in sel.select(0.2):
            s = key.fileobj
            data = s.recv(65536)
            assert data, "the server closed a connection of the burst instead of answering"
            got[s] += data
            if got[s].endswith(b"\0"):
                assert got[s] == expect[s]
                sel.unregister(s)
                echoed += 1
    sel.close()
    return echoed


@pytest.mark.skipif(not os.path.exists(SOMAXCONN_FILE), reason="needs Linux (net.core.somaxconn)")
@pytest.mark.timeout(120)
def test_a_burst_of_2000_connections_is_queued_by_default_until_accepted_and_all_are_served():
    with open(SOMAXCONN_FILE) as f:
        somaxconn = int(f.read())
    if somaxconn < BURST:
        pytest.skip("net.core.somaxconn is %d: the system caps every backlog below this burst" % somaxconn)
    _room_for(2 * BURST + 200)  # the clients' sockets and the server's, in this one process
    listener = Listener(0, Echo, host="127.0.0.1", start=False)  # the defaults, but not accepting yet
    socks = []
    try:
        socks = _connect_all(listener.port, BURST)
        # nothing is accepted yet: every handshake the system completes waits in the backlog
        queued = _wait_connected(socks, 10.0)
        assert queued == BURST, ("only %d of %d simultaneous connections were completed while the accept "
                                 "thread was busy: the backlog held too few" % (queued, BURST))
        listener.start()
        echoed = _round_trips(socks, 60.0)
        assert echoed == BURST, "%d of %d connections of the burst were served" % (echoed, BURST)
    finally:
        for s in socks:
            s.close()
        listener.close()


def test_the_default_backlog_holds_thousands_and_every_face_keeps_it(monkeypatch):
    assert DEFAULT_BACKLOG >= 4096
    seen = []
    real = listener_module.bind_socket

    def recording(*args, **kwargs):
        seen.append(kwargs.get("backlog"))
        return real(*args, **kwargs)

    monkeypatch.setattr(listener_module, "bind_socket", recording)
    from tcpcom import TCPServer
    from tcpcom.http import HTTPServer
    from tcpcom.httpserver import HTTPListener
    from xtcompat import XTStartHTMLListener, XTStartTCPListener, XTStopHTMLListener, XTStopTCPListener

    server = TCPServer(0, None, host="127.0.0.1")
    server.terminate()
    web = HTTPServer(lambda ip, name, params: "hi", port=0, host="127.0.0.1")
    web.terminate()
    HTTPListener(0, host="127.0.0.1").close()
    lid = XTStartTCPListener(0, host="127.0.0.1")
    assert lid and XTStopTCPListener(lid)
    lid = XTStartHTMLListener(0, host="127.0.0.1")
    assert lid and XTStopHTMLListener(lid)
    assert seen == [DEFAULT_BACKLOG] * 5, seen


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-v"]))
