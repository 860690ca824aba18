# -*- coding: utf-8 -*-
"""The engine's HTTP server over loopback (tcpcom/httpserver.py: HTTPListener, Response).

The tcpcom face on top of it, HTTPServer and HTTPClient, is tested in test_http.py.
"""
import json
import logging
import socket
import threading

import pytest

from helpers import (DEADLINE, TEXT, CallLog, check_still_serving, get, raw_client, raw_exchange, read_responses,
                     read_to_eof, wait_until)
from tcpcom.engine import watchdog
from tcpcom.httpserver import HTTPListener, Response


# -- responses: types, lengths, charsets ---------------------------------------------------

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


# -- requests: paths -----------------------------------------------------------------------

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


# -- methods -------------------------------------------------------------------------------

def test_engine_passes_every_method_unless_restricted(served):
    s = served(lambda req, conn: req.method + " " + req.text())
    status, _, body = get(s.url(), b"payload", "PUT")
    assert (status, body) == (200, b"PUT payload")
    r = served(methods=("GET",))
    status, headers, _ = get(r.url(), b"x", "POST")
    assert status == 405 and headers["Allow"] == "GET"


# -- bad input: statuses, and the server goes on -------------------------------------------

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


# -- timeouts ------------------------------------------------------------------------------

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


# -- keep-alive, pipelining, HTTP/1.0, 100-continue ----------------------------------------

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


# -- parallel clients, serialized and concurrent handlers ----------------------------------

def test_ten_parallel_clients_while_others_hold_connections_open(served):
    calls = CallLog("reply", hold=0.02)

    def reply(req, conn):
        calls.record("request", req.path)
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
    assert calls.meter.most == 1  # serialize=True: never two handler calls at once
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
