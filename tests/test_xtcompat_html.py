"""xtcompat's HTML listener: XTStartHTMLListener, XTPageRequest, XTStopHTMLListener."""
import json
import logging
import threading

import pytest

from helpers import DEADLINE, CallLog, get
from xtcompat import *  # noqa: F401,F403  -- as a ported script does

try:
    from urllib.parse import urlencode
    from urllib.request import urlopen
except ImportError:  # pragma: no cover
    pass


class Pages(object):
    def __init__(self, answer=None):
        self.calls = []
        self.answer = answer

    def XTPageRequest(self, thePath, theRequestInfo):
        self.calls.append((thePath, theRequestInfo))
        if self.answer is not None:
            return self.answer(thePath, theRequestInfo)
        return u"<p>Lampe: \u00fcber 50 %</p>"


@pytest.fixture
def pages():
    p = Pages()
    XTRegisterHandlers(p)
    yield p
    XTStopAll()
    XTRegisterHandlers(None)


def url(lid, path):
    return "http://127.0.0.1:%d%s" % (XTGetListenerPort(lid), path)


def test_page_request_gets_path_and_info(pages):
    lid = XTStartHTMLListener(0, host="127.0.0.1")
    assert lid != 0
    status, headers, body = get(url(lid, "/status/lamp?room=K%C3%BCche&on=1+2"))
    assert status == 200
    assert body.decode("utf-8") == u"<p>Lampe: \u00fcber 50 %</p>"
    assert int(headers["Content-Length"]) == len(body)
    assert "charset=utf-8" in headers["Content-Type"]
    path, info = pages.calls[0]
    assert path == "/status/lamp"
    assert info[xtKeyMethod] == "GET"
    assert info[xtKeyQuery] == {"room": u"K\u00fcche", "on": "1 2"}
    assert info[xtKeyRemoteAddress] == "127.0.0.1"
    assert isinstance(info[xtKeyRemotePort], int) and info[xtKeyRemotePort] != XTGetListenerPort(lid)
    assert info[xtKeyUniqueId].startswith("c")
    assert info[xtKeyHeaders]["host"].startswith("127.0.0.1")
    assert info[xtKeyFormData] == {} and info[xtKeyPostData] == ""


def test_form_post_reaches_the_script(pages):
    lid = XTStartHTMLListener(0, host="127.0.0.1")
    body = urlencode({"unit": "Lampe", "value": u"\u00e4 50"}).encode("ascii")
    status, _, _ = get(url(lid, "/set"), data=body)
    assert status == 200
    path, info = pages.calls[0]
    assert path == "/set" and info[xtKeyMethod] == "POST"
    assert info[xtKeyFormData] == {"unit": "Lampe", "value": u"\u00e4 50"}
    assert info[xtKeyPostData] == body.decode("ascii")


@pytest.mark.parametrize("answer,status,ctype,text", [
    (lambda p, i: (404, "no such unit"), 404, "text/html", "no such unit"),
    (lambda p, i: (201, "ok", "text/plain"), 201, "text/plain", "ok"),
    (lambda p, i: {"level": 50}, 200, "application/json", None),
])
def test_return_forms(pages, answer, status, ctype, text):
    pages.answer = answer
    lid = XTStartHTMLListener(0, host="127.0.0.1")
    got, headers, body = get(url(lid, "/x"))
    assert got == status
    assert headers["Content-Type"].startswith(ctype)
    if text is not None:
        assert body.decode("utf-8") == text
    else:
        assert json.loads(body.decode("utf-8")) == {"level": 50}


def test_handler_that_raises_gets_500_and_the_listener_goes_on(pages, caplog):
    def answer(path, info):
        if path == "/boom":
            raise ValueError("plugin bug")
        return "fine"
    pages.answer = answer
    lid = XTStartHTMLListener(0, host="127.0.0.1")
    with caplog.at_level(logging.ERROR):
        assert get(url(lid, "/boom"))[0] == 500
    assert "plugin bug" in caplog.text
    assert get(url(lid, "/ok"))[2] == b"fine"


def test_missing_handler_answers_501_and_logs_once(caplog):
    XTRegisterHandlers({})
    try:
        lid = XTStartHTMLListener(0, host="127.0.0.1")
        with caplog.at_level(logging.WARNING):
            assert get(url(lid, "/"))[0] == 501
            assert get(url(lid, "/again"))[0] == 501
        assert caplog.text.count("no XTPageRequest") == 1
    finally:
        XTStopAll()
        XTRegisterHandlers(None)


@pytest.mark.parametrize("port", [80, 1023, 65536, -1, "8080"])
def test_invalid_port_returns_0_with_107(port, caplog):
    with caplog.at_level(logging.ERROR):
        assert XTStartHTMLListener(port) == 0
    assert "107" in caplog.text


def test_port_in_use_returns_0(pages, caplog):
    lid = XTStartHTMLListener(0, host="127.0.0.1")
    with caplog.at_level(logging.ERROR):
        assert XTStartHTMLListener(XTGetListenerPort(lid), host="127.0.0.1") == 0
    assert "in use" in caplog.text


def test_stop_html_listener(pages):
    lid = XTStartHTMLListener(0, host="127.0.0.1")
    u = url(lid, "/")
    assert get(u)[0] == 200
    assert XTStopHTMLListener(lid) is True
    with pytest.raises(IOError):
        urlopen(u, timeout=DEADLINE)
    assert XTStopHTMLListener(lid) is False  # already stopped
    tcp = XTStartTCPListener(0, host="127.0.0.1")
    assert XTStopHTMLListener(tcp) is False  # not an HTML listener
    XTStopTCPListener(tcp)


def test_page_requests_run_one_at_a_time_while_clients_are_parallel(pages):
    answers = CallLog("answers", hold=0.01)

    def answer(path, info):
        answers.record("page", path)
        return path
    pages.answer = answer
    lid = XTStartHTMLListener(0, host="127.0.0.1")
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(get(url(lid, "/%d" % i))[2]))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    assert sorted(results) == sorted(("/%d" % i).encode() for i in range(8))
    assert answers.meter.most == 1


def test_sample_status_page():
    import os
    import re
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, os.path.join(root, "samples", "xtension_status_page.py"),
                          "--port", "0", "--host", "127.0.0.1", "--run-seconds", "60"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        line = b""
        while b"LISTENING" not in line:
            line = p.stdout.readline()
            assert line, "the sample ended early"
        base = "http://127.0.0.1:%s" % re.search(rb"http=(\d+)", line).group(1).decode()
        page = get(base + "/")[2].decode("utf-8")
        assert u"K\u00fcche" in page and "<form" in page
        assert json.loads(get(base + "/status.json")[2].decode("utf-8"))[u"K\u00fcche"] == "off"
        status, _, _ = get(base + "/toggle", data=urlencode({"unit": u"K\u00fcche"}).encode("ascii"))
        assert status == 200
        assert json.loads(get(base + "/status.json")[2].decode("utf-8"))[u"K\u00fcche"] == "on"
        assert get(base + "/nothing")[0] == 404
        p.send_signal(2)  # Ctrl-C
        assert p.wait(DEADLINE) == 0
        out = p.stdout.read().decode("utf-8")
        assert u"K\u00fcche switched on by 127.0.0.1" in out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
