# -*- coding: utf-8 -*-
"""HTTP over loopback: the tcpcom face, HTTPServer and HTTPClient (tcpcom/http.py).

The engine's HTTP server under it, HTTPListener, is tested in test_httpserver.py.
"""
import http.client
import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest

from helpers import DEADLINE, TEXT, OverlapMeter, check_still_serving, get, raw_exchange, wait_until
from tcpcom import HTTPClient, HTTPServer
from tcpcom.engine import Listener, PortInUseError
from tcpcom.http import HTTPClientError
from tcpcom.httpserver import Response


# -- helpers -------------------------------------------------------------------

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


# -- requests: query, forms ---------------------------------------------------------

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


# -- limits: statuses, and the server goes on -----------------------------------------


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


# -- serialized handlers ---------------------------------------------------------------


def test_state_handler_from_serialized_on_sent_does_not_overlap_handlers(tcpcom_server):
    log = []
    meter = OverlapMeter()

    def after():
        with meter:
            log.append("after")
            threading.Event().wait(0.01)

    def handler(ip, filename, params):
        with meter:
            log.append("handler")
        return "x", after
    srv = tcpcom_server(handler)
    threads = [threading.Thread(target=get, args=("http://127.0.0.1:%d/" % srv.getPort(),)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE * 2)
    wait_until(lambda: log.count("after") == 6)
    assert not meter.overlap


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


def test_with_debug_logging_each_request_is_logged_and_without_it_nothing(tcpcom_server, caplog, capsys):
    # (the line is made only when it is shown: logged, or printed with isVerbose)
    srv = tcpcom_server(lambda ip, filename, params: "x")
    with caplog.at_level(logging.DEBUG, logger="tcpcom.http"):
        get("http://127.0.0.1:%d/logged" % srv.getPort())
    assert any("GET /logged from 127.0.0.1" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tcpcom.http"):
        get("http://127.0.0.1:%d/quiet" % srv.getPort())
    assert not [r for r in caplog.records if "/quiet" in r.getMessage()]
    assert "/quiet" not in capsys.readouterr().out


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


# -- the sample ----------------------------------------------------------------------------

def test_sample_sensor_page():
    import os
    import signal
    from helpers import SAMPLES, Proc
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
