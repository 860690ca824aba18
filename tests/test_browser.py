# -*- coding: utf-8 -*-
"""A real browser (Debian's chromium, headless) against our HTTP server.

Skipped only when chromium is not installed (.ci/run installs it).
"""
import os
import shutil
import signal
import subprocess
import threading

import pytest

from tcpcom import HTTPServer
from tcpcom.httpserver import HTTPListener, Response

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"),
    pytest.mark.timeout(180),
]
BROWSER_TIMEOUT = 90  # seconds for one chromium run; a cold start on a loaded machine is slow

TEXT = u"Grüße aus Zürich 😀 – Ærø ½"


def dump_dom(url, profile, virtual_time_ms=None):
    """Load ``url`` in headless chromium and return the DOM it ends with (text)."""
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-quic", "--disable-dev-shm-usage", "--user-data-dir=%s" % profile]
    if virtual_time_ms:
        # lets scripts, form submissions and the navigations they cause finish first
        args.append("--virtual-time-budget=%d" % virtual_time_ms)
    args += ["--dump-dom", url]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = p.communicate(timeout=BROWSER_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)  # chromium and every helper process it started
        p.communicate()
        raise AssertionError("chromium did not finish within %d s" % BROWSER_TIMEOUT)
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # helpers that outlive the browser process
        except OSError:
            pass
    assert p.returncode == 0, err.decode("utf-8", "replace")[-2000:]
    return out.decode("utf-8")


@pytest.fixture
def profile(tmp_path):
    return str(tmp_path / "chromium-profile")


class Pages(object):
    """A tcpcom HTTPServer whose handler serves a dict of pages and records requests."""

    def __init__(self, pages):
        self.pages = pages
        self.seen = []
        self.cond = threading.Condition()
        self.server = HTTPServer(self.handler, port=0, host="127.0.0.1")
        self.base = "http://127.0.0.1:%d" % self.server.getPort()

    def handler(self, clientIP, filename, params):
        with self.cond:
            self.seen.append((filename, params))
            self.cond.notify_all()
        page = self.pages.get(filename)
        if page is None:
            return 404, "not found"
        return page(params) if callable(page) else page


@pytest.fixture
def pages():
    made = []

    def make(pages):
        p = Pages(pages)
        made.append(p)
        return p
    yield make
    for p in made:
        p.server.terminate()


def test_page_with_non_ascii_text(pages, profile):
    site = pages({"/": u"<!DOCTYPE html><html><head><title>Test</title></head>"
                      u"<body><h1 id='t'>%s</h1></body></html>" % TEXT})
    dom = dump_dom(site.base + "/", profile)
    # no <meta charset>: the browser must take UTF-8 from our Content-Type header
    assert u'<h1 id="t">%s</h1>' % TEXT in dom
    assert ("/", ()) in site.seen


def test_form_submission_reaches_the_handler(pages, profile):
    form_page = (u'<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
                 u'<body onload="document.getElementById(\'f\').submit()">'
                 u'<form id="f" method="post" action="/led?from=page">'
                 u'<input name="text" value="%s &amp; mehr">'
                 u'<button name="led" value="on">Ein</button></form></body></html>' % TEXT)

    def result(params):
        return u"<html><body><p id='r'>%s</p></body></html>" % u" | ".join(u"%s=%s" % p for p in params)
    site = pages({"/": form_page, "/led": result})
    dom = dump_dom(site.base + "/", profile, virtual_time_ms=10000)
    fields = ((u"from", u"page"), (u"text", TEXT + u" & mehr"))
    assert ("/led", fields) in site.seen  # the handler got the form's fields, decoded
    assert u"from=page | text=%s &amp; mehr</p>" % TEXT in dom  # and the browser showed its answer


def test_scripts_and_json_load_in_parallel_with_a_serialized_handler(profile):
    # The page pulls several scripts (the browser opens parallel connections) and
    # fetches JSON; each adds to the DOM, so the dump shows that all of them arrived.
    scripts = 6
    head = "".join('<script src="/s%d.js"></script>' % i for i in range(scripts))
    page = (u"<!DOCTYPE html><html><head>%s</head><body><div id='out'></div><script>"
            u"fetch('/data').then(r => r.json()).then(d => {"
            u"  var p = document.createElement('p'); p.id = 'json'; p.textContent = d.text;"
            u"  document.body.appendChild(p); });"
            u"</script></body></html>" % head)
    conns = set()

    def app(request, conn):
        conns.add(conn.id)
        if request.path == "/":
            return page
        if request.path == "/data":
            return {"text": TEXT}
        if request.path.startswith("/s") and request.path.endswith(".js"):
            n = request.path[2:-3]
            return Response(200, u"document.write('<p class=\"s\">script %s: ä</p>');" % n,
                            "application/javascript")
        return 404, "not found"
    server = HTTPListener(0, app, host="127.0.0.1")
    try:
        dom = dump_dom("http://127.0.0.1:%d/" % server.port, profile, virtual_time_ms=10000)
    finally:
        server.close()
    for i in range(scripts):
        assert u"script %d: ä" % i in dom
    assert u'<p id="json">%s</p>' % TEXT in dom
