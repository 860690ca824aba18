# -*- coding: utf-8 -*-
"""The statements of the documentation's "TigerJython / Jython" section about HTTP hold.

The section was the README's; it lives in docs/en/tigerjython.md now (the
README became a landing page), and this test reads it wherever it is
(SECTION_FILES, the first file that has the heading).  Runs under Jython 2.7
(where the statements are about) and CPython 3.  The first test reads the
section itself, so that the page and these tests cannot drift apart
silently: if the section stops making a statement (or says again that
Jython has no HTTP server), it fails and this file is to be brought in line.
Each other test checks one of the statements.
"""
from __future__ import absolute_import, print_function

import io
import json
import os
import socket
import subprocess
import threading
import unittest

from jyutil import DEADLINE, IMPL, JYTHON, ROOT, monotonic, other_interpreter, wait_until

from tcpcom import HTTPClient, HTTPServer
from tcpcom.http import HTTPClientError

try:  # pytest collects this module too: the other interpreter's JVM start needs more than 60 s
    import pytest
    pytestmark = pytest.mark.timeout(300)
except ImportError:
    pass

#: seconds to wait for the other interpreter to start and print its port
STARTUP = 120.0


#: where the section may be, in this order (the English page is where it moved to)
SECTION_FILES = ("docs/en/tigerjython.md", "README.md")
HEADING = u"TigerJython / Jython"


def jython_section():
    """The "TigerJython / Jython" section (with its subsections), its whitespace made single spaces.

    The section ends at the next heading of its level or higher, outside code fences (a ``#``
    comment in a fence is no heading)."""
    for name in SECTION_FILES:
        path = os.path.join(ROOT, *name.split("/"))
        if not os.path.isfile(path):
            continue
        with io.open(path, encoding="utf-8") as f:
            lines = f.read().split(u"\n")
        level, taken, fence = None, [], None
        for line in lines:
            stripped = line.strip()
            if fence is not None:
                if stripped.startswith(fence):
                    fence = None
            elif stripped.startswith(u"```") or stripped.startswith(u"~~~"):
                fence = stripped[:3]
            elif line.startswith(u"#"):
                hashes = len(line) - len(line.lstrip(u"#"))
                if level is None and line[hashes:].strip() == HEADING:
                    level = hashes
                elif level is not None and hashes <= level:
                    break
            if level is not None:
                taken.append(line)
        if level is not None:
            return u" ".join(u"\n".join(taken).split())
    raise AssertionError("no '%s' heading in %s" % (HEADING, ", ".join(SECTION_FILES)))


def handler(clientIP, filename, params):
    """The page every test serves: what arrived, as JSON text with umlauts."""
    if filename == "/missing":
        return 404, u"<p>Nicht gefunden: %s</p>" % filename
    if filename == "/json":
        return {"Temperatur": u"21 °C"}
    return json.dumps({"ip": clientIP, "path": filename, "params": [list(p) for p in params],
                       "impl": IMPL, "text": u"Grüße"}, ensure_ascii=False)


class TheSectionStillSaysIt(unittest.TestCase):
    def test_the_jython_section_makes_the_http_statements_checked_here(self):
        section = jython_section()
        self.assertFalse(u"no HTTP server" in section, "the README says Jython has no HTTP server again")
        for statement in (u"`HTTPServer` and `HTTPClient` work on Jython 2.7.3", u"umlauts",
                          u"query and form", u"JSON", u"error pages", u"#fragment",
                          u"`HTTPClient.timeout` bounding the whole request",
                          u"A Jython `HTTPServer` answers a CPython `HTTPClient` and the other way round",
                          u"test_jy_readme.py"):
            self.assertTrue(statement in section, "the Jython section no longer says %r" % statement)


class HTTPInOneInterpreter(unittest.TestCase):
    """HTTPServer and HTTPClient of this interpreter (Jython under jython) talk to each other."""

    def setUp(self):
        self.saved_timeout = HTTPClient.timeout
        HTTPClient.timeout = DEADLINE
        self.server = HTTPServer(handler, port=0, host="127.0.0.1")
        self.base = "http://127.0.0.1:%d" % self.server.getPort()

    def tearDown(self):
        HTTPClient.timeout = self.saved_timeout
        self.server.terminate()

    def test_umlauts_query_and_form_parameters(self):
        got = json.loads(HTTPClient.getRequest(self.base + u"/straße", {"name": u"Jürg", "n": 3}))
        self.assertEqual(got["path"], u"/straße")
        self.assertEqual(sorted(got["params"]), [[u"n", u"3"], [u"name", u"Jürg"]])  # a dict: any order
        self.assertEqual(got["text"], u"Grüße")
        self.assertEqual(got["ip"], u"127.0.0.1")
        got = json.loads(HTTPClient.postRequest(self.base + "/form?q=0", {"led": u"än"}))
        self.assertEqual(got["params"], [[u"q", u"0"], [u"led", u"än"]])

    def test_json_answers_and_error_pages(self):
        self.assertEqual(HTTPClient.extractJSON(HTTPClient.getRequest(self.base + "/json")),
                         {u"Temperatur": u"21 °C"})
        self.assertEqual(HTTPClient.getRequest(self.base + "/missing"), u"<p>Nicht gefunden: /missing</p>")

    def test_the_fragment_stays_home_and_the_query_goes_before_it(self):
        got = json.loads(HTTPClient.getRequest(self.base + "/page#top", {"name": "Anna"}))
        self.assertEqual((got["path"], got["params"]), (u"/page", [[u"name", u"Anna"]]))

    def test_the_timeout_bounds_the_whole_request(self):
        # a server that sends its answer one byte every 0.3 s: 30 bytes take 9 s
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        stop = threading.Event()

        def trickle():
            conn, _ = listener.accept()
            try:
                conn.settimeout(DEADLINE)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:  # Jython: None after the end
                        return
                    data += chunk
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\nConnection: close\r\n\r\n")
                for _ in range(30):
                    if stop.wait(0.3):
                        return
                    conn.sendall(b"x")
            except (socket.error, IOError):
                pass  # the client gave up: what this test wants
            finally:
                conn.close()
        t = threading.Thread(target=trickle)
        t.daemon = True
        t.start()
        HTTPClient.getRequest(self.base + "/warm-up")  # Jython: the first request loads urllib2 (slow)
        HTTPClient.timeout = 1.0
        started = monotonic()
        try:
            self.assertRaises(HTTPClientError, HTTPClient.getRequest, "http://127.0.0.1:%d/slow" % port)
            took = monotonic() - started
            self.assertTrue(took < 6.0, "the request took %.1f s with HTTPClient.timeout = 1" % took)
        finally:
            stop.set()
            listener.close()
            t.join(DEADLINE)


#: run by the other interpreter: serve, ask our server, print both as ASCII lines, serve until told to stop
PEER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from tcpcom import HTTPClient, HTTPServer
from tcpcom._compat import JYTHON
impl = "Jython" if JYTHON else "CPython"
def handler(clientIP, filename, params):
    return json.dumps({"impl": impl, "path": filename, "params": [list(p) for p in params],
                       "text": u"Gr\\u00fc\\u00dfe"}, ensure_ascii=False)
server = HTTPServer(handler, port=0, host="127.0.0.1")
HTTPClient.timeout = 60
answer = HTTPClient.getRequest("http://127.0.0.1:%s/from-the-other" % sys.argv[2], {"name": u"J\\u00fcrg"})
sys.stdout.write("ANSWER %s\\n" % json.dumps(json.loads(answer)))
sys.stdout.write("PORT %d\\n" % server.getPort())
sys.stdout.flush()
sys.stdin.readline()
server.terminate()
"""


class HTTPBetweenJythonAndCPython(unittest.TestCase):
    """One process of the other interpreter: its HTTPClient asks our HTTPServer, our HTTPClient asks its."""

    def test_each_interpreter_answers_the_others_http_client(self):
        exe = other_interpreter()
        if not exe:
            self.skipTest("no %s to talk to" % ("python3" if JYTHON else "jython"))
        server = HTTPServer(handler, port=0, host="127.0.0.1")
        saved_timeout = HTTPClient.timeout
        proc = subprocess.Popen([exe, "-c", PEER, ROOT, str(server.getPort())], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines, errors = [], []
        got_lines = threading.Event()

        def read(stream, into):
            for raw in iter(stream.readline, b""):
                into.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
                if len(lines) >= 2:
                    got_lines.set()
            got_lines.set()
        readers = [threading.Thread(target=read, args=(proc.stdout, lines)),
                   threading.Thread(target=read, args=(proc.stderr, errors))]
        for t in readers:
            t.daemon = True
            t.start()
        try:
            got_lines.wait(STARTUP)
            if len(lines) < 2:
                self.fail("the other interpreter printed %r; its stderr:\n%s" % (lines, "\n".join(errors)))
            # the other interpreter's HTTPClient asked our HTTPServer
            answer = json.loads(lines[0].split(" ", 1)[1])
            self.assertEqual(answer["impl"], IMPL)
            self.assertEqual(answer["path"], u"/from-the-other")
            self.assertEqual(answer["params"], [[u"name", u"Jürg"]])
            self.assertEqual(answer["text"], u"Grüße")
            # our HTTPClient asks the other interpreter's HTTPServer
            HTTPClient.timeout = DEADLINE
            port = int(lines[1].split()[1])
            theirs = json.loads(HTTPClient.getRequest("http://127.0.0.1:%d/from-%s#top" % (port, IMPL),
                                                      {"city": u"Zürich"}))
            self.assertNotEqual(theirs["impl"], IMPL)
            self.assertEqual(theirs["path"], u"/from-" + IMPL)
            self.assertEqual(theirs["params"], [[u"city", u"Zürich"]])
            self.assertEqual(theirs["text"], u"Grüße")
            proc.stdin.write(b"stop\n")
            proc.stdin.flush()
            wait_until(lambda: proc.poll() is not None, DEADLINE, "the other interpreter's end")
            self.assertEqual(proc.poll(), 0, "\n".join(errors))
        finally:
            HTTPClient.timeout = saved_timeout
            server.terminate()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for t in readers:
                t.join(DEADLINE)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                stream.close()


if __name__ == "__main__":  # pragma: no cover
    unittest.main()
