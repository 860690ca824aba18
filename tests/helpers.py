# -*- coding: utf-8 -*-
"""Helpers of the pytest suite (CPython 3).

The helpers the Jython suite uses too live in testkit.py (standard library,
Python 2.7 syntax) and are imported here under the names the tests use.
"""
import http.client
import inspect
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request

from testkit import (DEADLINE, CallLog, OverlapMeter, Recorder, engine_threads, raw_client,  # noqa: F401
                     recv_until, wait_until)
from tcpcom.httpserver import HTTPListener


# -- HTTP over loopback (test_http.py, test_httpserver.py; the served fixture: conftest.py) --

#: text with umlauts, an emoji (4 UTF-8 bytes), a dash and a fraction
TEXT = u"Grüße aus Zürich 😀 – ½"


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
    """All the peer sends until it closes (bytes; linear also for many MiB)."""
    data = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(data)
        data += chunk


def raw_exchange(port, data, methods=("GET",)):
    """Send raw ``data`` on a new connection; read_responses() for ``methods``."""
    s = raw_client(port)
    try:
        s.sendall(data)
        return read_responses(s, list(methods))
    finally:
        s.close()


def check_still_serving(port):
    """The server on ``port`` still answers a request with 200."""
    status, _, body = get("http://127.0.0.1:%d/alive" % port)
    assert status == 200, status


# -- Ctrl-C as Python's threading may raise it (test_closing.py, test_cli.py, test_xtcompat.py) ---

def ctrl_c():
    """Ctrl-C in the form Python's threading may give it.  Landing between a Condition's
    release and its re-acquire (in Queue.get(), Event.wait(), Thread.start()), the
    KeyboardInterrupt leaves the ``with`` around the wait, whose exit then raises this while
    handling it (CPython issues 78667 and 118433; CI saw it in the CLI)."""
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        raise RuntimeError("release unlocked lock")


#: the same for a child script: the source of ``ctrl_c()``
CTRL_C_AS_AN_ERROR = inspect.getsource(ctrl_c)


# -- child processes (test_samples_cli.py, test_xtcompat.py, test_http.py) --------------------

#: the repository; its samples; the environment of a child Python that imports this tree's tcpcom
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "samples")
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1")


class Proc(object):
    """A child Python (``args`` after the interpreter) whose stdout lines are collected by a thread."""

    def __init__(self, args, stdin=None, keep_stdin=False):
        """``stdin``: text given at once (then the end of input); ``keep_stdin``: the input stays
        open for :meth:`type` (a user who has not typed yet)."""
        piped = stdin is not None or keep_stdin
        self.p = subprocess.Popen([sys.executable] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.PIPE if piped else subprocess.DEVNULL,
                                  env=ENV, cwd=ROOT)
        self.lines = []
        self.cond = threading.Condition()
        if stdin is not None:
            self.p.stdin.write(stdin.encode("utf-8"))
            self.p.stdin.close()
        self.t = threading.Thread(target=self._read)
        self.t.daemon = True
        self.t.start()

    def _read(self):
        for raw in self.p.stdout:
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
                self.cond.notify_all()

    def wait_line(self, pattern, timeout=DEADLINE):
        rx = re.compile(pattern)
        with self.cond:
            ok = self.cond.wait_for(lambda: any(rx.search(l) for l in self.lines), timeout)
            assert ok, "no line matching %r in %r" % (pattern, self.lines)
            return [rx.search(l) for l in self.lines if rx.search(l)][0]

    def finish(self, timeout=DEADLINE):
        """Wait for the exit and the last line; returns the exit status.  Killed after
        ``timeout`` s (TimeoutExpired is raised).  Safe to call again."""
        try:
            return self.p.wait(timeout)
        finally:
            self.kill()
            self.t.join(timeout)
            if not self.t.is_alive():
                self.p.stdout.close()

    def type(self, text):
        self.p.stdin.write(text.encode("utf-8"))
        self.p.stdin.flush()

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        if self.p.stdin is not None and not self.p.stdin.closed:
            self.p.stdin.close()
