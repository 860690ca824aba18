"""HTTP server over real sockets: bad requests, slowloris, smuggling shapes, clients that
vanish, security defaults."""
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from helpers import DEADLINE, raw_client
from rel_helpers import settle
from tcpcom.engine import local_addresses
from tcpcom.http import HTTPServer
from tcpcom.httpserver import (DEFAULT_KEEP_ALIVE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
                               DEFAULT_REQUEST_TIMEOUT, HTTPListener)

EVENT = 10.0


class App(object):
    """Records the paths it is asked for; /boom raises, /big answers 8 MiB."""

    def __init__(self):
        self.paths = []
        self.lock = threading.Lock()

    def __call__(self, request, conn):
        with self.lock:
            self.paths.append(request.path)
        if request.path == "/boom":
            raise RuntimeError("handler bug")
        if request.path == "/big":
            return b"B" * (8 * 1024 * 1024)
        return "ok " + request.path


@pytest.fixture
def server():
    made = []

    def make(**options):
        options.setdefault("host", "127.0.0.1")
        app = App()
        srv = HTTPListener(0, app, **options)
        srv.app_obj = app
        made.append(srv)
        return srv
    yield make
    for s in made:
        s.close()


def read_response(sock, head=False):
    """One response: (status, headers dict, body); None if the connection ended first."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    end = buf.index(b"\r\n\r\n")
    lines = buf[:end].decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = dict((k.lower(), v) for k, v in (line.split(": ", 1) for line in lines[1:]))
    length = 0 if head else int(headers.get("content-length", "0"))
    body = buf[end + 4:]
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body[:length]


def read_eof(sock):
    """True when the server closes (EOF or reset) after what was read."""
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    return True


def get(port, path="/alive", host="127.0.0.1"):
    s = raw_client(port, host)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode("ascii"))
        return read_response(s)
    finally:
        s.close()


def exchange(port, data):
    """Send ``data`` (in a thread: the server may answer before it has all of it) and read
    the response; then the server must close. Returns (status, headers, body)."""
    s = raw_client(port)
    errors = []

    def send():
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            errors.append(e)
    t = threading.Thread(target=send)
    t.start()
    try:
        resp = read_response(s)
        assert resp is not None, "closed without a response to %r" % data[:60]
        assert read_eof(s)
        t.join(EVENT)
        assert not t.is_alive()
        return resp
    finally:
        s.close()


# -- bad requests ---------------------------------------------------------------------

BAD = [
    ("malformed request line", b"GARBAGE\r\n\r\n", 400),
    ("request line with extra part", b"GET /x HTTP/1.1 extra\r\n\r\n", 400),
    ("binary junk", b"\x00\x01\x02\xff\xfe junk\r\n\r\n", 400),
    ("TLS ClientHello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, 400),
    ("header without colon", b"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
    ("unsupported version", b"GET / HTTP/2.0\r\n\r\n", 505),
    ("request line 9 KB", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
    ("very long URL 1 MiB", b"GET /?q=" + b"u" * (1 << 20) + b" HTTP/1.1\r\n\r\n", 414),
    ("one header of 70 KB", b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 70000 + b"\r\n\r\n", 431),
    ("header flood: 101 lines", b"GET / HTTP/1.1\r\n" + b"".join(
        b"X-%d: v\r\n" % i for i in range(101)) + b"\r\n", 431),
    ("header flood: 20,000 lines, 300 KB", b"GET / HTTP/1.1\r\n" + b"".join(
        b"X-%d: v\r\n" % i for i in range(20000)) + b"\r\n", 431),
    ("body too large", b"POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n" + b"x" * 1000000, 413),
]


def test_bad_requests_get_their_status_and_close_and_the_server_goes_on(server, figures):
    """Over real sockets: malformed request lines and binary junk (400), an unsupported
    version (505), a 9 KB request line and a 1 MiB URL (414), a 70 KB header and header floods
    of 101 and 20,000 lines (431), a too-large body (413): each gets its status with
    Connection: close and the server closes that connection; the handler never sees them; a
    keep-alive connection opened before is served before and after each on the same
    connection; a client too slow gets 408; a handler that raises gets 500 and the connection
    goes on."""
    srv = server(request_timeout=1.0, keep_alive_timeout=60)
    app = srv.app_obj
    keep = raw_client(srv.port)
    sent = 0
    for name, data, status in BAD:
        keep.sendall(b"GET /keep HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(keep)[0] == 200
        got, headers, body = exchange(srv.port, data)
        assert (name, got) == (name, status)
        assert headers["connection"] == "close"
        assert body.decode("utf-8").startswith("%d " % status)
        sent += len(data)
    keep.sendall(b"GET /keep HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(keep)[0] == 200
    assert app.paths == ["/keep"] * (len(BAD) + 1)
    # too slow: half a request, then nothing
    s = raw_client(srv.port)
    s.sendall(b"GET /slow HTTP/1.1\r\nHo")
    got = read_response(s)
    assert got[0] == 408 and got[1]["connection"] == "close"
    assert read_eof(s)
    s.close()
    # a handler that raises: 500, and the connection goes on
    keep.sendall(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(keep)[0] == 500
    keep.sendall(b"GET /keep HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(keep)[0] == 200
    keep.close()
    assert get(srv.port)[0] == 200
    figures.update(bad_requests=len(BAD) + 2, bytes_sent=sent, statuses="400 505 414 431 413 408 500",
                   longest_url_bytes=1 << 20, most_header_lines=20000)


# -- slowloris --------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_slowloris_connections_are_timed_out_while_a_normal_client_is_served(server, figures):
    """50 connections each send a request one byte every 0.5 s (a request of 80 bytes would
    take 40 s); request_timeout is 1.5 s. Checked: every one is closed by the server (408
    response or reset) long before its request is complete, the handler never sees one of
    them, and normal clients are served meanwhile (requests made while slow connections are
    still open)."""
    n, interval, timeout = 50, 0.5, 1.5
    srv = server(request_timeout=timeout)
    request = b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 40 + b"\r\n\r\n"
    sel = selectors.DefaultSelector()
    conns = {}
    start = time.monotonic()
    for i in range(n):
        s = raw_client(srv.port)
        s.setblocking(False)
        conns[s] = {"sent": 0, "next": time.monotonic(), "data": b"", "closed": None, "opened": time.monotonic()}
        sel.register(s, selectors.EVENT_READ)
    normal = 0
    deadline = start + 30
    try:
        while any(c["closed"] is None for c in conns.values()):
            now = time.monotonic()
            assert now < deadline, "slow connections not timed out: %d open" % sum(
                1 for c in conns.values() if c["closed"] is None)
            for s, c in conns.items():
                if c["closed"] is None and not c["data"] and now >= c["next"] and c["sent"] < len(request):
                    try:
                        s.send(request[c["sent"]:c["sent"] + 1])
                        c["sent"] += 1
                    except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                        pass
                    c["next"] = now + interval
            for key, _ in sel.select(0.1):
                s = key.fileobj
                c = conns[s]
                try:
                    chunk = s.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    c["data"] += chunk
                else:
                    c["closed"] = time.monotonic()
                    sel.unregister(s)
            if any(c["closed"] is None for c in conns.values()) and normal < 5:
                assert get(srv.port, "/normal")[0] == 200
                normal += 1
    finally:
        sel.close()
        for s in conns:
            s.close()
    assert srv.app_obj.paths.count("/slow") == 0
    assert srv.app_obj.paths.count("/normal") == normal
    assert normal >= 1
    assert all(c["sent"] < len(request) for c in conns.values())
    got_408 = sum(1 for c in conns.values() if c["data"].startswith(b"HTTP/1.1 408 "))
    assert all(c["data"] == b"" or c["data"].startswith(b"HTTP/1.1 408 ") for c in conns.values())
    assert got_408 >= 1
    assert get(srv.port)[0] == 200
    figures.update(slow_connections=n, byte_interval_s=interval, request_timeout_s=timeout,
                   answered_408=got_408, most_bytes_sent_by_one=max(c["sent"] for c in conns.values()),
                   request_bytes=len(request), normal_requests_served_meanwhile=normal,
                   longest_open_s=round(max(c["closed"] - c["opened"] for c in conns.values()), 2))


# -- request smuggling shapes -------------------------------------------------------------

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
SMUGGLING = [
    ("conflicting Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
     b"Content-Length: 41\r\n\r\nhello" + SMUGGLED, 400),
    ("Content-Length list", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 41\r\n\r\nhello" + SMUGGLED, 400),
    ("Content-Length + Transfer-Encoding", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED, 400),
    ("Transfer-Encoding + Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
     b"Content-Length: 4\r\n\r\n0\r\n\r\n" + SMUGGLED, 400),
    ("Transfer-Encoding chunked", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED, 501),
    ("Transfer-Encoding gzip, chunked", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
     b"0\r\n\r\n" + SMUGGLED, 501),
    ("Transfer-Encoding twice", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
     b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n" + SMUGGLED, 501),
    ("space before the colon", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n"
     b"0\r\n\r\n" + SMUGGLED, 400),
    ("obsolete line folding", b"POST / HTTP/1.1\r\nHost: x\r\nX: a\r\n Transfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n" + SMUGGLED, 400),
    ("negative Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n" + SMUGGLED, 400),
    ("Content-Length +5", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello" + SMUGGLED, 400),
    ("hex Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello" + SMUGGLED, 400),
    ("bare LF in a header value", b"POST / HTTP/1.1\r\nHost: x\r\nX: a\rTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n" + SMUGGLED, 400),
]


def test_request_smuggling_shapes_get_400_or_501_and_nothing_is_smuggled(server, figures):
    """Request smuggling shapes over a socket, each followed by a hidden second request:
    conflicting or listed Content-Length, Content-Length with Transfer-Encoding (either
    order), Transfer-Encoding chunked / gzip,chunked / twice, whitespace before the colon,
    obsolete line folding, signed or hex lengths, a bare CR: each gets 400 (ambiguous framing)
    or 501 (a transfer coding the server does not support) with Connection: close, the
    connection is closed, the hidden request never reaches the handler, and the server goes
    on."""
    srv = server()
    statuses = {}
    for name, data, status in SMUGGLING:
        got, headers, _ = exchange(srv.port, data)
        assert (name, got) == (name, status)
        assert headers["connection"] == "close"
        statuses[got] = statuses.get(got, 0) + 1
    assert srv.app_obj.paths == []
    assert get(srv.port)[0] == 200
    figures.update(shapes=len(SMUGGLING), answered=", ".join("%d x%d" % kv for kv in sorted(statuses.items())),
                   smuggled_requests_seen_by_handler=0)


# -- clients that vanish ------------------------------------------------------------------

CHILD = r"""
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
print("ready", flush=True)
sys.stdin.read()
"""


def rst(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_clients_that_vanish_mid_request_or_mid_response(server, figures):
    """Clients that vanish: close after half the headers, reset (RST) after half the headers
    or half the body, a SIGKILLed child process mid-body, a reset after reading 64 KiB of an
    8 MiB response, a close right after sending a request without reading: after each the
    server drops the connection (no connection left open), the handler was called only for
    complete requests, and the next client is served."""
    srv = server()
    cases = 0

    def settled():
        assert settle(lambda: srv.connections == []), srv.connections
        assert get(srv.port)[0] == 200

    s = raw_client(srv.port)
    s.sendall(b"GET /half HTTP/1.1\r\nHo")
    s.close()
    settled()
    s = raw_client(srv.port)
    s.sendall(b"GET /half HTTP/1.1\r\nHo")
    rst(s)
    settled()
    s = raw_client(srv.port)
    s.sendall(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 500)
    rst(s)
    settled()
    assert settle(lambda: srv.connections == [])  # the check's own connection has gone too
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(srv.port)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline().strip() == b"ready"
        assert settle(lambda: len(srv.connections) == 1)
        os.kill(p.pid, signal.SIGKILL)
    finally:
        p.kill()
        p.wait()
    settled()
    cases += 4
    # mid-response: the handler answers 8 MiB, the client reads 64 KiB and resets
    for _ in range(3):
        s = raw_client(srv.port)
        s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while len(got) < 65536:
            chunk = s.recv(65536)
            assert chunk
            got += chunk
        rst(s)
        settled()
        cases += 1
    # a request, then gone without reading
    for _ in range(3):
        s = raw_client(srv.port)
        s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        s.close()
        settled()
        cases += 1
    paths = srv.app_obj.paths
    assert "/half" not in paths and "/body" not in paths and "/upload" not in paths
    assert 3 <= paths.count("/big") <= 6
    figures.update(vanishing_clients=cases, response_bytes_abandoned=8 * 1024 * 1024)


# -- security defaults --------------------------------------------------------------------


def _non_loopback():
    for ip in local_addresses():
        if not ip.startswith("127."):
            return ip
    return None


def test_http_listeners_default_interfaces_and_one_address(figures):
    """HTTPListener and HTTPServer bind all interfaces by default (:: taking IPv4 and IPv6, or
    0.0.0.0 where the system has no IPv6); with
    host='127.0.0.1' only loopback: served via 127.0.0.1, refused via the machine's
    non-loopback address (when it has one)."""
    bound = {}
    made = []
    try:
        for name, make, sock_of in (
                ("HTTPListener", lambda **kw: HTTPListener(0, App(), **kw), lambda o: o.listener.sock),
                ("HTTPServer", lambda **kw: HTTPServer(lambda ip, filename, params: "ok", port=0, **kw),
                 lambda o: o._listener.listener.sock)):
            a = make()
            made.append(a)
            bound[name + " default"] = sock_of(a).getsockname()[0]
            assert bound[name + " default"] in ("::", "0.0.0.0")
            b = make(host="127.0.0.1")
            made.append(b)
            bound[name + " host=127.0.0.1"] = sock_of(b).getsockname()[0]
            assert bound[name + " host=127.0.0.1"] == "127.0.0.1"
            port = sock_of(b).getsockname()[1]
            assert get(port)[0] == 200
            other = _non_loopback()
            if other is None:
                bound["other address"] = "none on this machine: not checked"
            else:
                with pytest.raises(OSError):
                    socket.create_connection((other, port), 5).close()
                bound["refused via"] = other
    finally:
        for m in made:
            m.close() if hasattr(m, "close") else m.terminate()
    figures.update(bound)


def test_http_limits_on_by_default_and_enforced(server, figures):
    """At the default values: request line 8 KiB (414 at 8 KiB + 1), header section 64 KiB
    (431), 100 header lines (431 at 101), body 1 MiB (413 at 1 MiB + 1), request timeout 10 s
    and keep-alive idle 5 s (the deadline armed on a fresh / an idle kept connection, with its
    408 farewell), 256 connections (the 257th is closed at once while 256 are open). The
    tcpcom HTTPServer has the same defaults."""
    srv = HTTPListener(0, App(), host="127.0.0.1")
    conns = []
    try:
        assert (srv.max_request_line, srv.max_header_bytes, srv.max_headers, srv.max_body) == \
            (8192, 65536, 100, 1048576)
        assert srv.request_timeout == DEFAULT_REQUEST_TIMEOUT == 10.0
        assert srv.keep_alive_timeout == DEFAULT_KEEP_ALIVE_TIMEOUT == 5.0
        assert srv.listener.max_connections == DEFAULT_MAX_CONNECTIONS == 256
        line = b"GET /" + b"a" * (8193 - len(b"GET / HTTP/1.1")) + b" HTTP/1.1\r\n\r\n"
        assert exchange(srv.port, line)[0] == 414
        assert exchange(srv.port, b"GET / HTTP/1.1\r\nX: " + b"h" * 65536 + b"\r\n\r\n")[0] == 431
        assert exchange(srv.port, b"GET / HTTP/1.1\r\n" + b"X: v\r\n" * 101 + b"\r\n")[0] == 431
        assert exchange(srv.port, b"POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n")[0] == 413
        # request timeout and keep-alive idle time: the deadlines the engine arms
        s = raw_client(srv.port)
        mine = s.getsockname()[1]
        assert settle(lambda: [c for c in srv.connections if c.remote_port == mine])
        conn = [c for c in srv.connections if c.remote_port == mine][0]
        assert settle(lambda: conn._deadline is not None)
        assert conn._deadline[2] == "no complete request within 10 s"
        assert conn._deadline[1].startswith(b"HTTP/1.1 408 ")
        s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[0] == 200
        assert settle(lambda: conn._deadline is not None and "keep-alive" in conn._deadline[2])
        assert conn._deadline[2] == "keep-alive connection idle for 5 s"
        s.close()
        assert settle(lambda: srv.connections == [])
    finally:
        srv.close()
    # 256 connections open: the next is closed at once (a long request timeout here, so that
    # no idle connection is timed out while a loaded machine opens them)
    srv = HTTPListener(0, App(), host="127.0.0.1", request_timeout=300)
    try:
        assert srv.listener.max_connections == 256
        for _ in range(256):
            conns.append(raw_client(srv.port))
        assert settle(lambda: len(srv.connections) == 256), len(srv.connections)
        extra = raw_client(srv.port)
        try:
            assert extra.recv(100) == b""
        except ConnectionResetError:
            pass  # closed at once, too
        extra.close()
        assert len(srv.connections) == 256
        conns.pop().close()
        assert settle(lambda: len(srv.connections) == 255), len(srv.connections)
        assert get(srv.port)[0] == 200
    finally:
        for c in conns:
            c.close()
        srv.close()
    face = HTTPServer(lambda ip, filename, params: "ok", port=0, host="127.0.0.1")
    try:
        inner = face._listener
        assert (inner.max_request_line, inner.max_header_bytes, inner.max_body, inner.request_timeout,
                inner.keep_alive_timeout, inner.listener.max_connections) == \
            (8192, 65536, 1048576, 10.0, 5.0, 256)
    finally:
        face.terminate()
    figures.update(max_request_line=8192, max_header_bytes=65536, max_headers=100, max_body=1048576,
                   request_timeout_s=10, keep_alive_timeout_s=5, max_connections=256)
