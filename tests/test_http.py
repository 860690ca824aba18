# -*- coding: utf-8 -*-
"""HTTP over loopback: the engine's HTTPListener, the tcpcom HTTPServer/HTTPClient."""
import http.client
import json
import logging
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest

from helpers import DEADLINE, raw_client, wait_until
from tcpcom import HTTPClient, HTTPServer
from tcpcom.engine import DeadlineExceeded, Listener, PortInUseError, watchdog
from tcpcom.http import HTTPClientError
from tcpcom.httpserver import HTTPListener, Response

TEXT = u"Grüße aus Zürich 😀 – ½"


# -- helpers -------------------------------------------------------------------

class Served(object):
    """An HTTPListener on 127.0.0.1 whose app records the requests it sees."""

    def __init__(self, reply=None, **options):
        self.requests = []
        self.conns = []
        self.cond = threading.Condition()
        self.reply = reply or (lambda request, conn: "ok " + request.path)
        options.setdefault("host", "127.0.0.1")
        self.server = HTTPListener(0, self._app, **options)
        self.port = self.server.port

    def _app(self, request, conn):
        with self.cond:
            self.requests.append(request)
            self.conns.append(conn.id)
            self.cond.notify_all()
        return self.reply(request, conn)

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def http(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEADLINE)

    def wait_requests(self, n):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.requests) >= n, DEADLINE), self.requests
            return list(self.requests)

    def close(self):
        self.server.close()


@pytest.fixture
def served():
    made = []

    def make(reply=None, **options):
        s = Served(reply, **options)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


@pytest.fixture
def tcpcom_server():
    made = []

    def make(handler, **options):
        options.setdefault("host", "127.0.0.1")
        s = HTTPServer(handler, port=0, **options)
        made.append(s)
        return s
    yield make
    for s in made:
        s.terminate()


def get(url, data=None, method=None):
    """(status, headers, body bytes) for any status."""
    req = urllib.request.Request(url, data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=DEADLINE) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers, e.read()


def read_responses(sock, methods):
    """Read one response per entry of ``methods`` (the request methods, for HEAD)
    from a raw socket; returns ([(status, headers, body)], rest, eof)."""
    buf = b""
    out = []
    eof = False
    while len(out) < len(methods):
        while len(out) < len(methods):
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            lines = buf[:end].decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers = dict((k.lower(), v) for k, v in (line.split(": ", 1) for line in lines[1:]))
            if methods[len(out)] == "HEAD" or status in (100, 204, 304):
                length = 0
            else:
                length = int(headers.get("content-length", "0"))
            if len(buf) < end + 4 + length:
                break
            out.append((status, headers, buf[end + 4:end + 4 + length]))
            buf = buf[end + 4 + length:]
        if len(out) == len(methods):
            break
        chunk = sock.recv(65536)
        if not chunk:
            eof = True
            break
        buf += chunk
    return out, buf, eof


def read_to_eof(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def raw_exchange(port, data, methods=("GET",)):
    s = raw_client(port)
    try:
        s.sendall(data)
        return read_responses(s, list(methods))
    finally:
        s.close()


# -- responses: types, lengths, charsets ------------------------------------------

def test_content_length_counts_bytes_with_umlauts_and_emoji(served):
    s = served(lambda req, conn: u"<p>%s</p>" % TEXT)
    status, headers, body = get(s.url())
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    page = (u"<p>%s</p>" % TEXT).encode("utf-8")
    assert int(headers["Content-Length"]) == len(body) == len(page) == len(u"<p>%s</p>" % TEXT) + 9
    assert body.decode("utf-8") == u"<p>%s</p>" % TEXT


def test_dict_and_list_are_json_with_charset(served):
    answers = {"/d": {"text": TEXT, "n": [1, 2.5, None]}, "/l": [TEXT, True]}
    s = served(lambda req, conn: answers[req.path])
    for path, value in answers.items():
        status, headers, body = get(s.url(path))
        assert status == 200
        assert headers["Content-Type"] == "application/json; charset=utf-8"
        assert int(headers["Content-Length"]) == len(body)
        assert json.loads(body.decode("utf-8")) == value


def test_code_body_and_content_type_forms(served):
    answers = {
        "/two": (404, u"nicht gefunden: ä"),
        "/three": (201, u"a,b\nä,ö\n", "text/csv"),
        "/json-text": (200, '{"a": 1}', "application/json"),
        "/bytes": (200, b"\x00\xff", "application/octet-stream"),
        "/number": 21.5,
        "/response": Response(302, "", None, {"Location": "/there", "X-Extra": "1"}),
    }
    s = served(lambda req, conn: answers[req.path])
    c = s.http()
    expected = {"/two": (404, "text/html; charset=utf-8"), "/three": (201, "text/csv; charset=utf-8"),
                "/json-text": (200, "application/json; charset=utf-8"),
                "/bytes": (200, "application/octet-stream"), "/number": (200, "text/html; charset=utf-8"),
                "/response": (302, None)}
    for path, (code, ctype) in expected.items():
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        assert r.status == code, path
        assert r.getheader("Content-Type") == ctype, path
        assert int(r.getheader("Content-Length")) == len(body)
    c.request("GET", "/three")
    assert c.getresponse().read().decode("utf-8") == u"a,b\nä,ö\n"
    c.request("GET", "/response")
    r = c.getresponse()
    r.read()
    assert r.getheader("Location") == "/there" and r.getheader("X-Extra") == "1"
    c.close()


def test_head_sends_headers_without_body_and_keeps_the_connection(served):
    s = served(lambda req, conn: u"<p>%s</p>" % TEXT)
    c = s.http()
    c.request("HEAD", "/")
    r = c.getresponse()
    assert r.status == 200
    assert int(r.getheader("Content-Length")) == len((u"<p>%s</p>" % TEXT).encode("utf-8"))
    assert r.read() == b""
    c.request("GET", "/")  # the same connection goes on: no stray body bytes
    assert c.getresponse().read().decode("utf-8") == u"<p>%s</p>" % TEXT
    assert [r.method for r in s.requests] == ["HEAD", "GET"]
    assert len(set(s.conns)) == 1
    c.close()


def test_server_header_and_date(served):
    s = served(server_name="Klassenzimmer")
    status, headers, _ = get(s.url())
    assert headers["Server"] == "Klassenzimmer"
    assert headers["Date"].endswith("GMT")


# -- requests: query, forms, paths -------------------------------------------------

def test_query_is_percent_decoded_and_malformed_escapes_do_not_crash(tcpcom_server):
    seen = []
    srv = tcpcom_server(lambda ip, filename, params: seen.append((filename, params)) or "ok")
    base = "http://127.0.0.1:%d" % srv.getPort()
    assert get(base + "/w%C3%BCrfel?name=J%C3%BCrg+M%C3%BCller&x=a%2Bb&bad=%zz&cut=%4&empty=&flag")[0] == 200
    assert get(base + "/next?q=%E2%82%AC%20%F0%9F%98%80")[0] == 200
    assert seen[0] == (u"/würfel", ((u"name", u"Jürg Müller"), (u"x", u"a+b"), (u"bad", u"%zz"),
                                    (u"cut", u"%4"), (u"empty", u""), (u"flag", u"")))
    assert seen[1] == (u"/next", ((u"q", u"€ 😀"),))


def test_invalid_utf8_in_escapes_becomes_replacement_characters(tcpcom_server):
    seen = []
    srv = tcpcom_server(lambda ip, filename, params: seen.append(params) or "ok")
    assert get("http://127.0.0.1:%d/?v=%%FF%%C3" % srv.getPort())[0] == 200
    assert seen == [((u"v", u"\ufffd\ufffd"),)]


def test_post_form_fields_follow_the_query_params(tcpcom_server):
    seen = []
    srv = tcpcom_server(lambda ip, filename, params: seen.append((filename, params)) or "done")
    body = urllib.parse.urlencode([("button", "an"), ("text", u"Grüße & mehr")]).encode("ascii")
    status, _, reply = get("http://127.0.0.1:%d/led?src=form" % srv.getPort(), body)
    assert (status, reply) == (200, b"done")
    assert seen == [(u"/led", ((u"src", u"form"), (u"button", u"an"), (u"text", u"Grüße & mehr")))]


def test_post_body_that_is_not_a_form_gives_no_fields(tcpcom_server):
    seen = []
    srv = tcpcom_server(lambda ip, filename, params: seen.append(params) or "ok")
    c = http.client.HTTPConnection("127.0.0.1", srv.getPort(), timeout=DEADLINE)
    c.request("POST", "/?a=1", body=b"b=2", headers={"Content-Type": "text/plain"})
    assert c.getresponse().status == 200
    assert seen == [((u"a", u"1"),)]
    c.close()


def test_dot_dot_and_encoded_separators_reach_the_handler_as_text(served, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    s = served(lambda req, conn: "handler saw " + req.path)
    targets = ["/../../../../etc/passwd", "/%2e%2e/%2E%2E/etc/passwd", "/a%2Fb%5Cc",
               "/..%2f..%2f" + str(secret).lstrip("/")]
    got = []
    for target in targets:
        (status, _, body), = raw_exchange(s.port, ("GET %s HTTP/1.1\r\nHost: x\r\n"
                                                   "Connection: close\r\n\r\n" % target).encode())[0]
        got.append((status, body.decode()))
    paths = [r.path for r in s.wait_requests(len(targets))]
    assert paths == ["/../../../../etc/passwd", "/../../etc/passwd", "/a/b\\c", "/../../" + str(secret).lstrip("/")]
    for (status, body), path in zip(got, paths):
        assert status == 200 and body == "handler saw " + path
        assert "root:" not in body and "TOP SECRET" not in body


# -- methods ------------------------------------------------------------------------

def test_other_methods_get_405_or_501_with_allow(tcpcom_server):
    srv = tcpcom_server(lambda ip, filename, params: "ok")
    url = "http://127.0.0.1:%d/x" % srv.getPort()
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        status, headers, _ = get(url, b"data" if method in ("PUT", "PATCH") else None, method)
        assert status == 405, method
        assert headers["Allow"] == "GET, HEAD, POST"
    status, headers, _ = get(url, None, "BREW")
    assert status == 501 and headers["Allow"] == "GET, HEAD, POST"
    assert get(url)[0] == 200  # still serving


def test_engine_passes_every_method_unless_restricted(served):
    s = served(lambda req, conn: req.method + " " + req.text())
    status, _, body = get(s.url(), b"payload", "PUT")
    assert (status, body) == (200, b"PUT payload")
    r = served(methods=("GET",))
    status, headers, _ = get(r.url(), b"x", "POST")
    assert status == 405 and headers["Allow"] == "GET"


# -- bad input: statuses, and the server goes on -------------------------------------

def check_still_serving(port):
    status, _, body = get("http://127.0.0.1:%d/alive" % port)
    assert status == 200, status


@pytest.mark.parametrize("raw,status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /x HTTP/1.1 extra\r\n\r\n", 400),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # a TLS ClientHello
    (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 70000 + b"\r\n\r\n", 431),
    (b"POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n" + b"x" * 1000, 413),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501),
    (b"GET / HTTP/2.0\r\n\r\n", 505),
])
def test_bad_input_gets_its_status_and_close_and_the_server_goes_on(served, raw, status):
    s = served()
    sock = raw_client(s.port)
    sock.sendall(raw)
    (got, headers, body), = read_responses(sock, ["GET"])[0]
    assert got == status
    assert headers["connection"] == "close"
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert body.decode("utf-8").startswith("%d " % status)
    assert read_to_eof(sock) == b""  # then the server closes
    sock.close()
    assert s.requests == []
    check_still_serving(s.port)


def test_413_reaches_a_client_that_sends_its_whole_body(tcpcom_server):
    # the server answers before the body is read; lingering keeps the reply from being reset
    srv = tcpcom_server(lambda ip, filename, params: "ok", maxBody=1000)
    c = http.client.HTTPConnection("127.0.0.1", srv.getPort(), timeout=DEADLINE)
    c.request("POST", "/", body=b"v=" + b"x" * (8 * 1024 * 1024),
              headers={"Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse()
    assert r.status == 413
    assert b"1000" in r.read()
    c.close()
    check_still_serving(srv.getPort())


def test_small_limits_are_parameters(tcpcom_server):
    srv = tcpcom_server(lambda ip, filename, params: "ok", maxRequestLine=100, maxHeaderBytes=200)
    port = srv.getPort()
    assert raw_exchange(port, b"GET /" + b"a" * 120 + b" HTTP/1.1\r\n\r\n")[0][0][0] == 414
    assert raw_exchange(port, b"GET / HTTP/1.1\r\nX: " + b"b" * 250 + b"\r\n\r\n")[0][0][0] == 431
    assert raw_exchange(port, b"GET /" + b"a" * 80 + b" HTTP/1.1\r\n\r\n")[0][0][0] == 200


def test_handler_that_raises_gets_500_and_the_traceback_is_logged(served, caplog):
    def reply(req, conn):
        if req.path == "/boom":
            raise RuntimeError("sensor unplugged")
        return "fine"
    s = served(reply)
    with caplog.at_level(logging.ERROR, logger="tcpcom"):
        c = s.http()
        c.request("GET", "/boom")
        r = c.getresponse()
        assert r.status == 500
        assert r.read().startswith(b"500 ")
        c.request("GET", "/ok")  # the same connection goes on
        assert c.getresponse().read() == b"fine"
        c.close()
    assert "sensor unplugged" in caplog.text and "Traceback" in caplog.text


def test_answer_that_is_not_a_response_gets_500(served, caplog):
    answers = {"/set": set([1]), "/tuple": ("a", "b", "c"), "/status": (99, "x"),
               "/inject": Response(200, "x", None, {"X-Bad": "a\r\nInjected: 1"}),
               "/json": {"f": object()}}
    s = served(lambda req, conn: answers[req.path])
    with caplog.at_level(logging.ERROR, logger="tcpcom"):
        for path in answers:
            status, headers, _ = get(s.url(path))
            assert status == 500, path
            assert "Injected" not in headers
    assert "not a response" in caplog.text or "cannot send" in caplog.text


def test_none_answer_sends_an_empty_page_and_warns_once(served, caplog):
    s = served(lambda req, conn: None)
    with caplog.at_level(logging.WARNING, logger="tcpcom"):
        assert get(s.url("/a"))[:3:2] == (200, b"")
        assert get(s.url("/b"))[:3:2] == (200, b"")
    assert caplog.text.count("forget to return") == 1


# -- timeouts -------------------------------------------------------------------------

def test_client_that_sends_nothing_gets_408(served):
    s = served(request_timeout=0.3)
    sock = raw_client(s.port)
    data = read_to_eof(sock)
    sock.close()
    assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"Connection: close\r\n" in data
    check_still_serving(s.port)


def test_slowloris_sending_a_byte_at_a_time_is_cut_off_with_408(served):
    # each byte comes well within the timeout, so a per-read timeout would never fire
    s = served(request_timeout=1.0)
    sock = raw_client(s.port)
    request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 400 + b"\r\n\r\n"
    pause = threading.Event()
    sent = 0
    closed = False
    for i in range(len(request)):  # bounded: ~400 bytes, 0.05 s apart = at most ~20 s
        try:
            sock.sendall(request[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        sent += 1
        pause.wait(0.05)
        if sent % 5 == 0:
            sock.setblocking(False)
            try:
                peek = sock.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                peek = None
            finally:
                sock.setblocking(True)
                sock.settimeout(DEADLINE)
            if peek is not None:
                closed = True
                break
    assert closed and sent < len(request)
    data = b""
    try:
        data = read_to_eof(sock)
    except ConnectionResetError:
        pass
    sock.close()
    assert data.startswith(b"HTTP/1.1 408 ")
    assert s.requests == []
    check_still_serving(s.port)


def test_idle_keep_alive_connection_is_closed_quietly(served):
    s = served(keep_alive_timeout=0.3)
    sock = raw_client(s.port)
    sock.sendall(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
    (status, headers, body), = read_responses(sock, ["GET"])[0]
    assert (status, headers["connection"]) == (200, "keep-alive")
    assert read_to_eof(sock) == b""  # closed without a 408
    sock.close()


def test_slow_handler_is_not_cut_off_by_the_request_timeout(served):
    def slow(req, conn):
        threading.Event().wait(1.5)  # longer than request_timeout: the deadline must be off
        return "late but fine"
    s = served(slow, request_timeout=0.5)
    assert get(s.url())[::2] == (200, b"late but fine")


def test_request_deadline_restarts_for_each_request_on_a_kept_connection(served):
    s = served(request_timeout=0.6, keep_alive_timeout=5)
    c = s.http()
    for i in range(3):
        threading.Event().wait(0.4)  # idle longer than half the request timeout between requests
        c.request("GET", "/%d" % i)
        assert c.getresponse().read() == ("ok /%d" % i).encode()
    assert len(set(s.conns)) == 1
    c.close()


# -- keep-alive, pipelining, HTTP/1.0, 100-continue -------------------------------------

def test_pipelined_requests_are_answered_in_order_on_one_connection(served):
    s = served(lambda req, conn: "%s %s %s" % (req.method, req.path, req.text()))
    pipeline = (b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
                b"HEAD /2 HTTP/1.1\r\nHost: x\r\n\r\n"
                b"POST /3 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                b"GET /4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    sock = raw_client(s.port)
    sock.sendall(pipeline)
    responses, rest, _ = read_responses(sock, ["GET", "HEAD", "POST", "GET"])
    assert [(st, b) for st, _, b in responses] == [(200, b"GET /1 "), (200, b""), (200, b"POST /3 hello"),
                                                   (200, b"GET /4 ")]
    assert [h["connection"] for _, h, _ in responses] == ["keep-alive"] * 3 + ["close"]
    assert rest == b"" and read_to_eof(sock) == b""
    sock.close()
    assert len(set(s.conns)) == 1


def test_pipelined_requests_split_at_every_byte(served):
    s = served(lambda req, conn: req.path)
    pipeline = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"
    sock = raw_client(s.port)
    for i in range(len(pipeline)):
        sock.sendall(pipeline[i:i + 1])
    responses, _, _ = read_responses(sock, ["GET", "GET"])
    assert [b for _, _, b in responses] == [b"/a", b"/b"]
    sock.close()


def test_http10_closes_unless_keep_alive_is_asked(served):
    s = served()
    sock = raw_client(s.port)
    sock.sendall(b"GET /old HTTP/1.0\r\n\r\n")
    (status, headers, body), = read_responses(sock, ["GET"])[0]
    assert (status, headers["connection"], body) == (200, "close", b"ok /old")
    assert read_to_eof(sock) == b""
    sock.close()
    sock = raw_client(s.port)
    sock.sendall(b"GET /k1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /k2 HTTP/1.0\r\n\r\n")
    responses, _, _ = read_responses(sock, ["GET", "GET"])
    assert [(h["connection"], b) for _, h, b in responses] == [("keep-alive", b"ok /k1"), ("close", b"ok /k2")]
    sock.close()


def test_connection_close_request_ends_the_connection_without_waiting_for_the_client(served):
    # nothing more will come (the client said so and nothing is buffered): the server
    # closes at once instead of lingering until the client closes or the linger deadline
    conns = []
    s = served(lambda req, conn: conns.append(conn) or "bye")
    sock = raw_client(s.port)
    sock.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    (status, headers, body), = read_responses(sock, ["GET"])[0]
    assert (status, headers["connection"], body) == (200, "close", b"bye")
    assert read_to_eof(sock) == b""
    assert conns[0].wait_closed(DEADLINE)   # while the client still holds its socket open
    assert conns[0].close_reason is None    # not the linger deadline
    sock.close()


def test_pipelined_data_after_a_close_request_is_lingered_over(served):
    s = served(lambda req, conn: "first")
    sock = raw_client(s.port)
    sock.sendall(b"GET /1 HTTP/1.1\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\n\r\n")
    (status, _, body), = read_responses(sock, ["GET"])[0]
    assert (status, body) == (200, b"first")
    assert read_to_eof(sock) == b""  # the response arrived intact, no reset
    sock.close()
    assert [r.path for r in s.wait_requests(1)] == ["/1"]

def test_expect_100_continue(served):
    s = served(lambda req, conn: req.text().upper())
    sock = raw_client(s.port)
    sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    (status, _, _), = read_responses(sock, ["POST"])[0]
    assert status == 100
    sock.sendall(b"hello")
    (status, _, body), = read_responses(sock, ["POST"])[0]
    assert (status, body) == (200, b"HELLO")
    sock.close()


# -- parallel clients, serialized and concurrent handlers -------------------------------

def test_ten_parallel_clients_while_others_hold_connections_open(served):
    active = [0, 0]
    lock = threading.Lock()

    def reply(req, conn):
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        threading.Event().wait(0.02)
        with lock:
            active[0] -= 1
        return u"page %s %s" % (req.path, TEXT)
    s = served(reply)
    idle = raw_client(s.port)                 # connected, sends nothing
    partial = raw_client(s.port)
    partial.sendall(b"GET /half HTTP/1.1\r\nHo")  # a request that never completes
    wait_until(lambda: len(s.server.connections) == 2)
    results = {}

    def fetch(i):
        results[i] = get(s.url("/p%d" % i))
    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE * 2)
    assert sorted(results) == list(range(10))
    for i, (status, _, body) in results.items():
        assert (status, body.decode("utf-8")) == (200, u"page /p%d %s" % (i, TEXT))
    assert active[1] == 1  # serialize=True: never two handler calls at once
    assert len(s.server.connections) >= 2  # the idle ones were not closed to make room
    idle.close()
    partial.close()


def test_concurrent_handlers_when_not_serialized(served):
    barrier = threading.Barrier(3, timeout=DEADLINE)

    def reply(req, conn):
        barrier.wait()  # only passes if three handler calls run at the same time
        return "together"
    s = served(reply, serialize=False)
    results = []
    threads = [threading.Thread(target=lambda: results.append(get(s.url())[::2])) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE * 2)
    assert results == [(200, b"together")] * 3


def test_serialized_handlers_still_write_in_parallel(served):
    # A client that does not read its large response must not hold up the others.
    big = b"x" * (32 * 1024 * 1024)
    s = served(lambda req, conn: big if req.path == "/big" else "small")
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.settimeout(DEADLINE)
    slow.connect(("127.0.0.1", s.port))
    slow.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    s.wait_requests(1)
    for i in range(3):
        assert get(s.url("/s%d" % i))[::2] == (200, b"small")
    slow.close()


def test_state_handler_from_serialized_on_sent_does_not_overlap_handlers(tcpcom_server):
    log = []
    lock = threading.Lock()
    state = {"active": 0, "overlap": False}

    def enter(name):
        with lock:
            state["active"] += 1
            state["overlap"] = state["overlap"] or state["active"] > 1
            log.append(name)

    def leave():
        with lock:
            state["active"] -= 1

    def after():
        enter("after")
        threading.Event().wait(0.01)
        leave()

    def handler(ip, filename, params):
        enter("handler")
        leave()
        return "x", after
    srv = tcpcom_server(handler)
    threads = [threading.Thread(target=get, args=("http://127.0.0.1:%d/" % srv.getPort(),)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE * 2)
    wait_until(lambda: log.count("after") == 6)
    assert not state["overlap"]


# -- the tcpcom face ---------------------------------------------------------------------

def test_from_tcpcom_import_star_gives_the_http_classes():
    ns = {}
    exec("from tcpcom import *", ns)
    assert ns["HTTPServer"] is HTTPServer and ns["HTTPClient"] is HTTPClient
    assert "TCPServer" in ns and "TCPClient" in ns


def test_handler_gets_client_ip_filename_and_params(tcpcom_server):
    seen = []

    def handler(clientIP, filename, params):
        seen.append((clientIP, filename, params, srv.getClientIP()))
        return u"<h1>%s</h1>" % TEXT
    srv = tcpcom_server(handler)
    status, headers, body = get("http://127.0.0.1:%d/index.html?a=1&b=zwei" % srv.getPort())
    assert (status, body.decode("utf-8")) == (200, u"<h1>%s</h1>" % TEXT)
    assert headers["Server"] == "PYSERVER"
    assert seen == [("127.0.0.1", "/index.html", (("a", "1"), ("b", "zwei")), "127.0.0.1")]
    assert srv.getClientIP() == "127.0.0.1"


def test_state_handler_is_called_after_the_response_was_sent(tcpcom_server):
    received = threading.Event()
    called = []

    def stateHandler():
        # blocks until the client has the page: if it ran before sending, this would time out
        called.append(received.wait(DEADLINE))
    srv = tcpcom_server(lambda ip, filename, params: ("<p>LED on</p>", stateHandler))
    assert get("http://127.0.0.1:%d/on" % srv.getPort())[::2] == (200, b"<p>LED on</p>")
    received.set()
    wait_until(lambda: called)
    assert called == [True]


def test_text_with_none_state_handler_and_json_answers(tcpcom_server):
    def handler(ip, filename, params):
        if filename == "/json":
            return {"temp": 21.5, "unit": u"°C"}
        if filename == "/missing":
            return 404, "no such page"
        return u"<p>%s</p>" % TEXT, None
    srv = tcpcom_server(handler)
    base = "http://127.0.0.1:%d" % srv.getPort()
    assert get(base + "/")[::2] == (200, (u"<p>%s</p>" % TEXT).encode("utf-8"))
    status, headers, body = get(base + "/json")
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(body.decode("utf-8")) == {"temp": 21.5, "unit": u"°C"}
    assert get(base + "/missing")[::2] == (404, b"no such page")


def test_head_calls_the_handler_and_drops_the_body(tcpcom_server):
    seen = []
    srv = tcpcom_server(lambda ip, filename, params: seen.append(filename) or u"<p>%s</p>" % TEXT)
    status, headers, body = get("http://127.0.0.1:%d/h" % srv.getPort(), None, "HEAD")
    assert (status, body, seen) == (200, b"", ["/h"])
    assert int(headers["Content-Length"]) == len((u"<p>%s</p>" % TEXT).encode("utf-8"))


def test_terminate_frees_the_port_and_is_safe_twice(tcpcom_server):
    srv = tcpcom_server(lambda ip, filename, params: "x")
    port = srv.getPort()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
    c.request("GET", "/")
    assert c.getresponse().read() == b"x"  # a kept-alive connection is open
    assert not srv.isTerminated()
    srv.terminate()
    srv.terminate()
    assert srv.isTerminated()
    again = Listener(port, host="127.0.0.1")  # the port is free at once
    again.close()
    c.close()


def test_terminate_from_the_handler(tcpcom_server):
    def handler(ip, filename, params):
        return "bye", srv.terminate
    srv = tcpcom_server(handler)
    assert get("http://127.0.0.1:%d/" % srv.getPort())[::2] == (200, b"bye")
    wait_until(srv.isTerminated)
    wait_until(lambda: srv._listener.is_closed)


def test_port_in_use_raises(tcpcom_server):
    srv = tcpcom_server(lambda ip, filename, params: "x")
    with pytest.raises(PortInUseError):
        HTTPServer(lambda ip, filename, params: "y", port=srv.getPort(), host="127.0.0.1")


def test_bad_arguments_are_clear():
    with pytest.raises(TypeError):
        HTTPServer(None, port=0)
    with pytest.raises(TypeError):
        HTTPServer("not a function", port=0)
    with pytest.raises(ValueError):
        HTTPServer(lambda ip, f, p: "x", port=70000)


def test_static_helpers():
    assert HTTPServer.getVersion()
    ip = HTTPServer.getServerIP()
    assert len(ip.split(".")) == 4


def test_verbose_prints_requests(tcpcom_server, capsys):
    srv = tcpcom_server(lambda ip, filename, params: "x", isVerbose=True)
    get("http://127.0.0.1:%d/v?x=1" % srv.getPort())
    out = capsys.readouterr().out
    assert "HTTPServer-> " in out and "GET /v?x=1 from 127.0.0.1" in out


# -- HTTPClient ------------------------------------------------------------------------

@pytest.fixture
def echo_server(tcpcom_server):
    def handler(ip, filename, params):
        return json.dumps({"path": filename, "params": [list(p) for p in params]}, ensure_ascii=False)
    return tcpcom_server(handler)


def test_get_request_with_dict_and_string_data(echo_server):
    base = "127.0.0.1:%d" % echo_server.getPort()  # no scheme: http:// is assumed
    r = HTTPClient.getRequest("http://" + base + "/g", {"name": u"Jürg", "n": 3})
    assert json.loads(r) == {"path": "/g", "params": [["name", u"Jürg"], ["n", "3"]]}
    r = HTTPClient.getRequest(base + "/g?a=1", "b=2&c=drei")
    assert json.loads(r)["params"] == [["a", "1"], ["b", "2"], ["c", "drei"]]
    r = HTTPClient.getRequest(base + u"/straße")  # non-ASCII in the URL is escaped
    assert json.loads(r)["path"] == u"/straße"


def test_post_request_with_dict_and_string_data(echo_server):
    url = "http://127.0.0.1:%d/p?q=0" % echo_server.getPort()
    r = HTTPClient.postRequest(url, {"led": "on", "text": u"ä & ö"})
    assert json.loads(r) == {"path": "/p", "params": [["q", "0"], ["led", "on"], ["text", u"ä & ö"]]}
    r = HTTPClient.postRequest(url, "x=1&y=%C3%BC")
    assert json.loads(r)["params"] == [["q", "0"], ["x", "1"], ["y", u"ü"]]
    assert json.loads(HTTPClient.postRequest(url))["params"] == [["q", "0"]]


def test_delete_request_returns_the_error_page_body(echo_server):
    r = HTTPClient.deleteRequest("http://127.0.0.1:%d/item" % echo_server.getPort())
    assert r.startswith("405 Method Not Allowed")


def test_delete_request_reaches_a_server_that_allows_it(served):
    s = served(lambda req, conn: "deleted %s [%s]" % (req.path, req.text()))
    assert HTTPClient.deleteRequest(s.url("/item/7")) == "deleted /item/7 []"
    assert HTTPClient.deleteRequest(s.url("/item/8"), {"why": "old"}) == "deleted /item/8 [why=old]"


def test_client_decodes_the_declared_charset(served):
    s = served(lambda req, conn: Response(200, u"Grüße".encode("latin-1"), "text/plain; charset=iso-8859-1"))
    assert HTTPClient.getRequest(s.url()) == u"Grüße"


def test_client_raises_a_clear_error_when_nobody_listens():
    lst = Listener(0, host="127.0.0.1")
    port = lst.port
    lst.close()
    with pytest.raises(HTTPClientError) as info:
        HTTPClient.getRequest("http://127.0.0.1:%d/" % port)
    assert "cannot reach" in str(info.value)
    assert isinstance(info.value, IOError)


def test_extract_json():
    assert HTTPClient.extractJSON('<p>{not json}</p> var x = {"a": {"b": [1, 2]}, "c": "}"} tail {"d": 1}') \
        == {"a": {"b": [1, 2]}, "c": "}"}
    assert HTTPClient.extractJSON(u'{"t": "ä"}') == {"t": u"ä"}
    assert HTTPClient.extractJSON(b'x {"n": 1}') == {"n": 1}
    assert HTTPClient.extractJSON("no object here [1, 2]") is None
    assert HTTPClient.extractJSON("{{{{") is None
    assert HTTPClient.extractJSON("") is None
    assert HTTPClient.extractJSON(None) is None


def test_extract_json_from_a_served_json_answer(tcpcom_server):
    srv = tcpcom_server(lambda ip, filename, params: {"temperature": 22.5})
    assert HTTPClient.extractJSON(HTTPClient.getRequest("127.0.0.1:%d/" % srv.getPort())) == {"temperature": 22.5}


# -- the engine additions: deadlines -------------------------------------------------------

def test_set_deadline_sends_the_farewell_and_closes():
    lost = []
    done = threading.Event()

    class H(object):
        def connection_made(self, conn):
            conn.set_deadline(0.1, b"bye\n", "test deadline")

        def message_received(self, conn, message):
            pass

        def connection_lost(self, conn, reason):
            lost.append(reason)
            done.set()
    lst = Listener(0, lambda conn: H(), host="127.0.0.1")
    try:
        sock = raw_client(lst.port)
        sock.sendall(b"data that does not restart the clock")
        assert read_to_eof(sock) == b"bye\n"
        sock.close()
        assert done.wait(DEADLINE)
        assert isinstance(lost[0], DeadlineExceeded) and "test deadline" in str(lost[0])
    finally:
        lst.close()


def test_set_deadline_none_cancels():
    events = []
    armed = threading.Event()

    class H(object):
        def connection_made(self, conn):
            conn.set_deadline(0.2)
            armed.set()

        def message_received(self, conn, message):
            conn.set_deadline(None)
            threading.Event().wait(0.5)  # well past the cancelled deadline
            conn.send(b"still open")

        def connection_lost(self, conn, reason):
            events.append(reason)
    lst = Listener(0, lambda conn: H(), host="127.0.0.1", framing=None, encoding=None)
    try:
        sock = raw_client(lst.port)
        assert armed.wait(DEADLINE)
        sock.sendall(b"x")
        assert sock.recv(100) == b"still open"
        sock.close()
        wait_until(lambda: events)
        assert events == [None]
    finally:
        lst.close()


def test_many_deadlines_keep_the_watchdog_small(served):
    s = served(keep_alive_timeout=30, request_timeout=30)
    c = s.http()
    for i in range(200):
        c.request("GET", "/")
        c.getresponse().read()
    # every request re-arms the deadline; the watchdog holds about one check per connection
    conn, = s.server.connections
    with watchdog._cond:
        assert len([e for e in watchdog._heap if e[2] is conn]) <= 2
    c.close()


# -- the sample ----------------------------------------------------------------------------

def test_sample_sensor_page():
    import os
    import signal
    from test_samples_cli import SAMPLES, Proc
    p = Proc([os.path.join(SAMPLES, "sensor_page.py"), "0"])
    try:
        port = int(p.wait_line(r"serving on port (\d+)").group(1))
        base = "http://127.0.0.1:%d" % port
        status, headers, body = get(base + "/")
        page = body.decode("utf-8")
        assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
        assert u"Temperatur" in page and u"°C" in page and '<b id="led">off</b>' in page
        form = urllib.parse.urlencode({"led": "on"}).encode("ascii")
        status, _, body = get(base + "/", form)
        assert status == 200 and '<b id="led">on</b>' in body.decode("utf-8")
        p.wait_line("LED switched on")  # the stateHandler ran after the page was sent
        status, headers, body = get(base + "/data.json")
        data = json.loads(body.decode("utf-8"))
        assert data["led"] == "on" and isinstance(data["temperature"], float)
        assert get(base + "/missing")[0] == 404
        p.p.send_signal(signal.SIGINT)
        assert p.finish() == 0
        p.wait_line("terminated")
    finally:
        p.kill()


# -- other interpreters (Jython 2.7 is TigerJython's) -------------------------------------

SMOKE = r'''# -*- coding: utf-8 -*-
from __future__ import print_function
import sys
sys.path.insert(0, sys.argv[1])
from tcpcom import *
from tcpcom.httpserver import HTTPListener

calls = []
def handler(ip, filename, params):
    calls.append((ip, filename, params))
    if filename == "/json":
        return {"a": u"\u00e4"}
    return u"<p>Gr\u00fc\u00dfe %s %r</p>" % (filename, params), (lambda: calls.append("after"))

srv = HTTPServer(handler, port=0, host="127.0.0.1")
base = "127.0.0.1:%d" % srv.getPort()
r = HTTPClient.getRequest(base + "/x?x=1+2")
assert r.startswith(u"<p>Gr\u00fc\u00dfe /x"), repr(r)
r = HTTPClient.postRequest(base + "/form", {"a": u"\u00e4 b"})
assert ("127.0.0.1", u"/form", ((u"a", u"\u00e4 b"),)) in calls, calls
assert HTTPClient.deleteRequest(base + "/form").startswith("405")
assert HTTPClient.extractJSON(HTTPClient.getRequest(base + "/json")) == {u"a": u"\u00e4"}
srv.terminate()
assert srv.isTerminated()
lst = HTTPListener(0, lambda req, conn: (201, req.method, "text/plain"), host="127.0.0.1")
assert HTTPClient.getRequest("127.0.0.1:%d/" % lst.port) == u"GET"
lst.close()

import socket
def read_until(sock, end):
    data = b""
    while not data.endswith(end):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data
lst = HTTPListener(0, lambda req, conn: "ok", host="127.0.0.1", request_timeout=0.5)
s = socket.create_connection(("127.0.0.1", lst.port))
s.settimeout(20)
data = read_until(s, b"never")  # the server sends 408 and closes
assert data.startswith(b"HTTP/1.1 408 "), data
k = socket.create_connection(("127.0.0.1", lst.port))
k.settimeout(20)
k.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
assert read_until(k, b"\r\n\r\nok").endswith(b"ok")
lst.close()  # with a kept-alive connection open: must not hang
assert k.recv(10) == b""
print("SMOKE-OK")
'''


def _interpreters():
    from test_httpcodec import interpreters
    return interpreters() or [pytest.param("none", None, marks=pytest.mark.skip(
        "no jython / python2.7 / python3.8 here"))]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("label,cmd", _interpreters())
def test_http_runs_under_other_interpreters(label, cmd, tmp_path):
    import os
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = tmp_path / "smoke_http.py"
    script.write_text(SMOKE, encoding="utf-8")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run(cmd + [str(script), root], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=150, env=env)
    assert b"SMOKE-OK" in out.stdout, out.stdout.decode("utf-8", "replace")


def test_handlers_run_on_the_pumping_thread_with_an_event_pump():
    from tcpcom.dispatch import EventPump
    pump = EventPump()
    threads = []
    server = HTTPListener(0, lambda req, conn: threads.append(threading.current_thread().name) or "pumped",
                          host="127.0.0.1", dispatcher=pump)
    try:
        results = []
        t = threading.Thread(target=lambda: results.append(get("http://127.0.0.1:%d/" % server.port)[::2]))
        t.start()
        assert pump.pump_until(lambda: results, DEADLINE)
        t.join(DEADLINE)
        assert results == [(200, b"pumped")]
        assert threads == [threading.current_thread().name]
    finally:
        server.close()


def test_engine_listener_with_an_event_pump_and_per_connection_executors():
    # on_connection runs on the pumping thread; choosing the handler must not wait for the pump
    from tcpcom.dispatch import EventPump
    from tcpcom.engine import Handler
    pump = EventPump()
    got = []

    class Echo(Handler):
        def message_received(self, conn, message):
            got.append(message)
            conn.send_message(message.upper())
    lst = Listener(0, lambda conn: Echo(), host="127.0.0.1", dispatcher=pump)
    try:
        sock = raw_client(lst.port)
        sock.sendall(b"hi\0")
        assert pump.pump_until(lambda: got, DEADLINE)
        assert sock.recv(10) == b"HI\0"
        sock.close()
    finally:
        lst.close()


def test_an_http_server_script_keeps_serving_after_its_last_line():
    # As with the original (whose HTTPServer is a TCPServer thread): a
    # classroom script that only creates the server must keep serving.
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = (
        "import sys\n"
        "from tcpcom import HTTPServer\n"
        "def onRequest(clientIP, filename, params):\n"
        "    if filename == '/stop':\n"
        "        server.terminate()\n"
        "    return 'page ' + filename\n"
        "server = HTTPServer(onRequest, port=0, host='127.0.0.1')\n"
        "sys.stdout.write('%d\\n' % server.getPort())\n"
        "sys.stdout.flush()\n")
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=root,
                         env=dict(os.environ, PYTHONPATH=root))
    try:
        port = int(p.stdout.readline())
        base = "http://127.0.0.1:%d" % port
        assert urllib.request.urlopen(base + "/a", timeout=DEADLINE).read() == b"page /a"
        assert p.poll() is None  # the script's last line has run; the server still serves
        # terminate() from the handler: that request still gets its page, then the server stops
        assert urllib.request.urlopen(base + "/stop", timeout=DEADLINE).read() == b"page /stop"
        assert p.wait(DEADLINE) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
