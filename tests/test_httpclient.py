# -*- coding: utf-8 -*-
"""HTTPClient against a raw loopback server that records what arrives and answers as slowly as asked."""
import socket
import threading
import time

import pytest

from helpers import DEADLINE
from tcpcom import HTTPClient
from tcpcom.http import HTTPClientError


class RawHTTPServer(object):
    """Accepts connections on 127.0.0.1; records each request's head; answers with ``answer``.

    ``answer`` is a list of byte strings sent one after the other with ``pause``
    seconds between them (a trickling server when they are single bytes).
    """

    def __init__(self, body=b"ok", pause=0.0, trickle_head=False, length=None):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" \
            % (len(body) if length is None else length)
        if trickle_head:
            self.chunks = [head[i:i + 1] for i in range(len(head))] + [body]
        elif pause:
            self.chunks = [head] + [body[i:i + 1] for i in range(len(body))]
        else:
            self.chunks = [head + body]
        self.pause = pause
        self.requests = []
        self.cond = threading.Condition()
        self.stopped = threading.Event()
        self.client_gone = threading.Event()  # a send failed: the client closed its end
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve)
        self.thread.daemon = True
        self.thread.start()

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def _serve(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                self._answer(conn)
            except OSError:
                self.client_gone.set()  # the client gave up: that is what the timeout tests want
            finally:
                conn.close()

    def _answer(self, conn):
        conn.settimeout(DEADLINE)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        with self.cond:
            self.requests.append(data.split(b"\r\n\r\n", 1)[0].decode("latin-1"))
            self.cond.notify_all()
        for i, chunk in enumerate(self.chunks):
            if i and self.pause and self.stopped.wait(self.pause):
                return
            conn.sendall(chunk)

    def request_line(self, index=0):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.requests) > index, DEADLINE)
            return self.requests[index].split("\r\n")[0]

    def close(self):
        self.stopped.set()
        self.sock.close()
        self.thread.join(DEADLINE)


@pytest.fixture
def raw_server():
    servers = []

    def make(*args, **kwargs):
        servers.append(RawHTTPServer(*args, **kwargs))
        return servers[-1]
    yield make
    for s in servers:
        s.close()


@pytest.fixture(autouse=True)
def _restore_timeout():
    saved = HTTPClient.timeout
    yield
    HTTPClient.timeout = saved


# -- item 1: the query goes before the fragment, the fragment is never sent ------------

def test_get_request_puts_the_query_before_the_fragment_and_never_sends_the_fragment(raw_server):
    s = raw_server()
    assert HTTPClient.getRequest(s.url("/page#top"), {"name": "Anna"}) == "ok"
    assert s.request_line(0) == "GET /page?name=Anna HTTP/1.1"


def test_get_request_adds_to_an_existing_query_before_the_fragment(raw_server):
    s = raw_server()
    HTTPClient.getRequest(s.url("/page?a=1#part-2"), "b=2")
    assert s.request_line(0) == "GET /page?a=1&b=2 HTTP/1.1"
    HTTPClient.getRequest(s.url("/page#top"))  # no data: the fragment still stays home
    assert s.request_line(1) == "GET /page HTTP/1.1"


def test_a_hash_inside_the_data_is_escaped_not_taken_for_a_fragment(raw_server):
    s = raw_server()
    HTTPClient.getRequest(s.url("/p#x"), {"tag": "#1"})
    assert s.request_line(0) == "GET /p?tag=%231 HTTP/1.1"


def test_post_and_delete_never_send_the_fragment(raw_server):
    s = raw_server()
    HTTPClient.postRequest(s.url("/form?q=0#end"), {"led": "on"})
    assert s.request_line(0) == "POST /form?q=0 HTTP/1.1"
    HTTPClient.deleteRequest(s.url("/item/7#x"))
    assert s.request_line(1) == "DELETE /item/7 HTTP/1.1"


# -- item 2: HTTPClient.timeout bounds the whole request --------------------------------

def test_timeout_bounds_the_whole_request_against_a_body_trickling_in(raw_server):
    # one byte every 0.3 s for 30 bytes: 9 s in all, each read well within 0.5 s
    s = raw_server(body=b"x" * 30, pause=0.3)
    HTTPClient.timeout = 0.5
    start = time.monotonic()
    with pytest.raises(HTTPClientError) as info:
        HTTPClient.getRequest(s.url("/slow"))
    took = time.monotonic() - start
    assert took < 4.0, "the request took %.1f s with HTTPClient.timeout = 0.5" % took
    assert "0.5 s" in str(info.value) and "HTTPClient.timeout" in str(info.value)
    assert isinstance(info.value, IOError)
    # the request was not left running behind the caller's back: its socket was closed
    assert s.client_gone.wait(DEADLINE)


def test_timeout_bounds_the_whole_request_against_a_head_trickling_in(raw_server):
    s = raw_server(trickle_head=True, pause=0.3)  # the status line and headers a byte at a time
    HTTPClient.timeout = 0.5
    start = time.monotonic()
    with pytest.raises(HTTPClientError):
        HTTPClient.postRequest(s.url("/slow"), {"a": 1})
    assert time.monotonic() - start < 4.0


def test_a_request_that_finishes_within_the_timeout_returns_its_body(raw_server):
    s = raw_server(body=b"abc", pause=0.05)
    HTTPClient.timeout = DEADLINE
    assert HTTPClient.getRequest(s.url("/")) == "abc"


def test_timeout_none_means_no_limit(raw_server):
    s = raw_server(body=b"slow but sure")
    HTTPClient.timeout = None
    assert HTTPClient.getRequest(s.url("/")) == "slow but sure"


def test_a_server_that_hangs_up_in_the_middle_of_the_body_gives_an_httpclienterror(raw_server):
    s = raw_server(body=b"half", length=8)
    with pytest.raises(HTTPClientError) as info:
        HTTPClient.getRequest(s.url("/"))
    assert "reading the answer" in str(info.value)


# -- what else a new user trips over -------------------------------------------------------

@pytest.mark.parametrize("data", [5, 2.5, object(), ["ab", "c"]], ids=["int", "float", "object", "list of strings"])
def test_data_that_is_no_form_gets_a_type_error_that_shows_the_forms_accepted(data):
    for request in (HTTPClient.getRequest, HTTPClient.postRequest):
        with pytest.raises(TypeError) as info:
            request("http://127.0.0.1:1/", data)
        assert "data must be a dict" in str(info.value) and "string" in str(info.value)


@pytest.mark.parametrize("value", ["5", True, [5]])
def test_a_timeout_that_is_no_number_is_named_in_the_error(value):
    HTTPClient.timeout = value
    with pytest.raises(TypeError) as info:
        HTTPClient.getRequest("http://127.0.0.1:1/")
    assert "HTTPClient.timeout must be a number of seconds" in str(info.value)
