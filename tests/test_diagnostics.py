# -*- coding: utf-8 -*-
"""tcpcom.diagnostics: how log lines quote user data (excerpt), the last-resort
log handler and the console write (each written once, used by tcpcom, its
command line and xtcompat)."""
import io
import logging
import os
import shutil
import subprocess
import threading

import pytest

from helpers import DEADLINE, ROOT, get, wait_until
from tcpcom import cli
from tcpcom._compat import to_bytes
from tcpcom.diagnostics import EXCERPT, LastResort, console_write, excerpt, install_last_resort


class AsciiConsole(object):
    """A console that cannot show anything but ASCII (Python 2 / Jython on a pipe)."""
    encoding = "ascii"

    def __init__(self):
        self.written = []

    def write(self, text):
        text.encode("ascii")  # raises UnicodeEncodeError as such a console does
        self.written.append(text)

    def flush(self):
        pass


# -- excerpt: how a log line quotes user data -------------------------------------------


def test_excerpt_of_short_text_is_its_repr():
    assert excerpt(u"hello") == "'hello'"
    assert excerpt(u"") == "''"
    assert excerpt(u"x" * EXCERPT) == repr(u"x" * EXCERPT)


def test_excerpt_of_long_text_is_cut_marked_and_measured():
    assert excerpt(u"a" * 1000000) == u"'" + u"a" * 60 + u"\u2026' (1,000,000 characters)"
    assert excerpt(u"Grüße " * 20, 10) == u"'Grüße Grüß\u2026' (120 characters)"


def test_excerpt_of_bytes_counts_bytes():
    assert excerpt(b"\0" * 100, 4) == u"b'\\x00\\x00\\x00\\x00\u2026' (100 bytes)"
    assert excerpt(bytearray(b"ab")) == "b'ab'"
    assert excerpt(memoryview(b"x" * 70)).endswith(u"\u2026' (70 bytes)")


def test_excerpt_of_anything_else_is_its_repr_cut():
    assert excerpt(42) == "42"
    assert excerpt(None) == "None"
    big = list(range(100000))
    assert excerpt(big) == repr(big)[:60] + u"\u2026 (%s characters of repr)" % "{:,}".format(len(repr(big)))


def test_excerpt_survives_a_broken_repr():
    class Broken(object):
        def __repr__(self):
            raise RuntimeError("no")
    assert excerpt(Broken()) == "<Broken: repr failed: no>"


def test_to_bytes_quotes_an_excerpt_of_what_it_cannot_send():
    with pytest.raises(TypeError) as e:
        to_bytes(list(range(100000)))
    assert len(str(e.value)) < 200 and "characters of repr" in str(e.value)


# -- the console write ---------------------------------------------------------------


def test_console_write_escapes_what_the_console_cannot_show():
    out = AsciiConsole()
    console_write(out, u"Grüezi \u2026\n")
    assert out.written == [u"Gr\\xfcezi \\u2026\n"]


def test_console_write_passes_what_the_console_shows():
    out = io.StringIO()
    console_write(out, u"Grüezi\n")
    assert out.getvalue() == u"Grüezi\n"


def test_the_command_line_and_xtcompat_write_through_it(monkeypatch):
    out = AsciiConsole()
    monkeypatch.setattr("sys.stdout", out)
    cli._say("client", "MESSAGE", u"Grüße")
    assert out.written and u"Gr\\xfc\\xdfe" in out.written[0]

    from xtcompat.console import ConsoleHandler
    con = AsciiConsole()
    handler = ConsoleHandler(con)
    handler.emit(logging.LogRecord("xtcompat", logging.INFO, __file__, 1, u"Grüße", None, None))
    assert con.written == [u"Gr\\xfc\\xdfe\n"]


# -- the last-resort handler (Python 2.7 / Jython have no logging.lastResort) -----------


def unconfigure(monkeypatch, *handlers):
    """The root logger as in a program that configured no logging (or ``handlers``): pytest's
    are put aside.  Called inside the test: pytest adds its own after the fixtures ran."""
    monkeypatch.setattr(logging.getLogger(), "handlers", list(handlers))


def _record(name, msg="port 5000 is in use", level=logging.WARNING):
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_last_resort_writes_the_message_when_logging_is_not_configured(monkeypatch):
    unconfigure(monkeypatch)
    out = io.StringIO()
    LastResort("tcpcom", out).handle(_record("tcpcom.xtcompat"))
    assert out.getvalue() == "port 5000 is in use\n"


def test_last_resort_is_silent_once_the_program_configured_logging(monkeypatch):
    unconfigure(monkeypatch, logging.NullHandler())
    out = io.StringIO()
    LastResort("tcpcom", out).handle(_record("tcpcom.server"))
    assert out.getvalue() == ""


def test_last_resort_is_silent_where_a_logger_below_it_has_a_handler(monkeypatch):
    unconfigure(monkeypatch)
    below = logging.getLogger("tcpcom.test-diagnostics-below")
    below.addHandler(logging.NullHandler())
    try:
        out = io.StringIO()
        LastResort("tcpcom", out).handle(_record("tcpcom.test-diagnostics-below.x"))
        assert out.getvalue() == ""
    finally:
        below.handlers[:] = []


def test_last_resort_shows_warnings_and_errors_not_debug_and_info(monkeypatch):
    unconfigure(monkeypatch)
    out = io.StringIO()
    top = logging.getLogger("tcpcom-test-diagnostics-levels")
    top.addHandler(LastResort(top.name, out))
    top.setLevel(logging.DEBUG)
    try:
        log = logging.getLogger(top.name + ".face")
        log.debug("d")
        log.info("i")
        log.warning("w")
        log.error("e")
        assert out.getvalue() == "w\ne\n"
    finally:
        top.handlers[:] = []


def test_install_last_resort_puts_one_handler_once():
    name = "tcpcom-test-diagnostics-install"
    first = install_last_resort(name)
    try:
        assert install_last_resort(name) is first
        assert logging.getLogger(name).handlers == [first]
    finally:
        logging.getLogger(name).handlers[:] = []


def _python27():
    """A working Python 2.7: pyenv's (its shim may refuse to run), else one on PATH."""
    pyenv = os.path.join(os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv"), "versions")
    if os.path.isdir(pyenv):
        for name in sorted(os.listdir(pyenv), reverse=True):
            exe = os.path.join(pyenv, name, "bin", "python")
            if name.startswith("2.7") and os.path.exists(exe):
                return exe
    exe = shutil.which("python2.7")
    if exe and subprocess.run([exe, "-c", "pass"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=30).returncode == 0:
        return exe
    return None


PY27 = _python27()


@pytest.mark.skipif(PY27 is None, reason="no python2.7 on this machine")
def test_python27_shows_each_warning_of_tcpcom_and_xtcompat_once_on_stderr():
    # one handler for both faces: an xtcompat warning is neither lost nor shown twice
    script = (
        "from tcpcom.tcp import TCPServer\n"
        "from xtcompat import XTWriteConnection, XTStopAll\n"
        "s = TCPServer(0, None, host='127.0.0.1')\n"
        "s.sendMessage(u'hello')\n"
        "XTWriteConnection('c-none', 'data')\n"
        "s.terminate()\n"
        "XTStopAll()\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.run([PY27, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                       cwd=ROOT, timeout=60)
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, err
    assert "No handlers could be found" not in err
    assert err.count("sendMessage('hello'): no client is connected") == 1, err  # 'hello', not u'hello'
    assert err.count("XTWriteConnection('c-none') failed with error 106") == 1, err


# -- every log line that quotes user data quotes a short, marked excerpt (issue 13.3) ----

#: a 1 MB text: the whole of it must never reach a log line
BIG = u"a" * 1000000
MARK = u"\u2026' (1,000,000 characters)"


def _logged(caplog):
    """Everything logged, as the lines a handler would write."""
    return "\n".join(caplog.text.splitlines())


def test_tcpserver_send_message_with_nobody_connected_logs_an_excerpt(caplog):
    from tcpcom.tcp import TCPServer
    server = TCPServer(0, None, host="127.0.0.1")
    try:
        with caplog.at_level(logging.WARNING, logger="tcpcom"):
            server.sendMessage(BIG)
    finally:
        server.terminate()
    text = _logged(caplog)
    assert len(text) < 500, "%d characters logged" % len(text)  # checked first: a failure shows no 1 MB
    assert "no client is connected" in text and MARK in text


def test_tcpclient_send_message_when_not_connected_logs_an_excerpt(caplog):
    from tcpcom.tcp import TCPClient
    client = TCPClient("127.0.0.1", 9, None)  # never connected
    with caplog.at_level(logging.WARNING, logger="tcpcom"):
        assert client.sendMessage(BIG) is None
    text = _logged(caplog)
    assert len(text) < 500, "%d characters logged" % len(text)
    assert "not connected" in text and MARK in text


def test_xtwriteconnection_logs_an_excerpt_of_what_it_was_given(caplog):
    from xtcompat import XTWriteConnection
    with caplog.at_level(logging.WARNING, logger="tcpcom"):
        assert XTWriteConnection("c-none", BIG) is False  # no such connection: the data is not quoted
        assert XTWriteConnection(BIG, "c-none") is False  # the arguments swapped: the "ID" is 1 MB
    text = _logged(caplog)
    assert len(text) < 800, "%d characters logged" % len(text)
    assert text.count("failed with error 106") == 2 and MARK in text


def test_xtcompat_errors_quote_an_excerpt_of_wrong_data():
    from xtcompat import XTWriteConnection
    with pytest.raises(TypeError) as e:
        XTWriteConnection("c-none", list(range(100000)))
    assert len(str(e.value)) < 300, "%d characters" % len(str(e.value))
    assert "characters of repr" in str(e.value)


def test_a_raising_state_changed_quotes_an_excerpt_of_the_message(caplog):
    from tcpcom.tcp import TCPClient, TCPServer
    done = threading.Event()

    def onServer(state, msg):
        if state == "MESSAGE":
            done.set()
            raise ValueError("a typo in the callback")

    server = TCPServer(0, onServer, host="127.0.0.1")
    client = TCPClient("127.0.0.1", server.getPort(), None)
    try:
        with caplog.at_level(logging.WARNING, logger="tcpcom"):
            assert client.connect(DEADLINE)
            client.sendMessage(BIG)
            assert done.wait(DEADLINE)
            wait_until(lambda: "raised" in caplog.text, what="the callback's error logged")
    finally:
        client.disconnect()
        server.terminate()
    raised = [r.getMessage() for r in caplog.records if "raised" in r.getMessage()]
    assert raised and len(raised[0]) < 300, [len(m) for m in raised]
    assert MARK in raised[0]


def test_http_log_lines_quote_an_excerpt_of_a_long_path(caplog):
    from tcpcom.httpserver import HTTPListener

    def app(request, conn):
        raise ValueError("a typo in the page handler")

    server = HTTPListener(0, app, host="127.0.0.1")
    path = "/" + "p" * 5000
    try:
        with caplog.at_level(logging.DEBUG, logger="tcpcom.httpserver"):
            status, _, _ = get("http://127.0.0.1:%d%s" % (server.port, path))
            assert status == 500
            wait_until(lambda: "-> 500" in caplog.text, what="the request logged")
    finally:
        server.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "tcpcom.httpserver"]
    assert all(len(line) < 300 for line in lines), [len(line) for line in lines]
    assert any(u"\u2026 (5,001 characters)" in line and "answering 500" in line for line in lines), lines
