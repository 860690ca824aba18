"""The docstrings of the tcpcom face are its reference: ``help(TCPServer)`` answers what
docs/en/reference.md answers (the page is made from them with autodoc).

Each check below names a promise of the reference and fails when the docstring that makes
it is removed or loses it.
"""
import inspect
import os
import pydoc
import re

import pytest

import tcpcom
from tcpcom import HTTPClient, HTTPServer, TCPClient, TCPServer
from tcpcom import http as tcpcom_http, tcp as tcpcom_tcp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(ROOT, "docs", "en", "reference.md")


def star_names():
    namespace = {}
    exec("from tcpcom import *", namespace)
    return sorted(name for name in namespace if not name.startswith("_"))


def own_doc(value):
    """The docstring written for this object itself (not one inherited from ``object``)."""
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, property):
        value = value.fget
    return (getattr(value, "__doc__", None) or "").strip()


def public_callables(cls):
    """(name, member) for each public method, static method and property the class defines
    or inherits from a tcpcom class."""
    found = {}
    for klass in reversed(cls.__mro__):
        if klass is object:
            continue
        for name, value in vars(klass).items():
            if name.startswith("_"):
                continue
            if isinstance(value, (staticmethod, classmethod, property)) or inspect.isfunction(value):
                found[name] = value
    return sorted(found.items())


def help_text(obj):
    """What ``help(obj)`` shows, with pydoc's margins and line breaks folded to single spaces."""
    text = pydoc.render_doc(obj, renderer=pydoc.plaintext)
    lines = [re.sub(r"^[\s|]*", "", line) for line in text.splitlines()]
    return re.sub(r"\s+", " ", " ".join(lines))


def folded(text):
    return re.sub(r"\s+", " ", text)


# -- every public name and method has a docstring -------------------------------------

def test_from_tcpcom_import_star_gives_the_four_classes():
    assert star_names() == ["HTTPClient", "HTTPServer", "TCPClient", "TCPServer"]


@pytest.mark.parametrize("name", star_names())
def test_every_name_of_the_star_import_has_a_docstring(name):
    assert own_doc(getattr(tcpcom, name)), "%s has no docstring" % name


@pytest.mark.parametrize("cls", [TCPServer, TCPClient, HTTPServer, HTTPClient], ids=lambda c: c.__name__)
def test_every_public_method_has_a_docstring(cls):
    missing = [name for name, value in public_callables(cls) if not own_doc(value)]
    assert not missing, "%s: no docstring for %s" % (cls.__name__, ", ".join(missing))


def test_the_module_functions_of_the_reference_have_docstrings():
    for fn in (tcpcom_tcp.getIPAddress, tcpcom_tcp.close_all, tcpcom_http.HTTPClientError):
        assert own_doc(fn), fn
    assert own_doc(tcpcom), "the package tcpcom has no docstring"


# -- help() answers what the reference answers ------------------------------------------

STATE_ROWS = {
    # class: {state: what its msg is, as the class docstring's table says}
    TCPServer: {"PORT_IN_USE": "the port", "LISTENING": "the port", "CONNECTED": "the client's IP",
                "MESSAGE": "the text", "TERMINATED": '``""``'},
    TCPClient: {"CONNECTING": '"ip:port"', "CONNECTION_FAILED": '"ip:port"', "CONNECTED": '"ip:port"',
                "SERVER_OCCUPIED": '"ip:port"', "DISCONNECTED": '``""``', "MESSAGE": "the text"},
}


@pytest.mark.parametrize("cls", [TCPServer, TCPClient], ids=lambda c: c.__name__)
def test_the_class_docstring_has_a_row_for_every_state_constant(cls):
    constants = sorted(k for k, v in vars(cls).items() if k.isupper() and v == k)
    assert sorted(STATE_ROWS[cls]) == constants, "a state constant was added or removed: update the table"
    text = help_text(cls)
    for state, msg in sorted(STATE_ROWS[cls].items()):
        row = "``%s`` %s " % (state, msg)
        assert row in text, "help(%s) has no row %r in its table of states" % (cls.__name__, row)


# (class, promise, words help() must contain): one concrete fact each from the reference
FACTS = [
    (TCPServer, "one client at a time", "its ``TCPClient`` reports ``SERVER_OCCUPIED``"),
    (TCPServer, "states are strings equal to their names", 'each a string equal to its name'),
    (TCPServer, "events that come early", "may be delivered before ``server = TCPServer(...)`` has been assigned"),
    (TCPServer, "the thread a callback runs on", "all on the thread that calls ``pump()``"),
    (TCPServer, "a callback that raises", "is logged with its traceback (logger ``tcpcom.server``)"),
    (TCPServer, "the wire format", "its text as UTF-8 followed by one ``\\0`` byte"),
    (TCPServer, "nothing after a close", "no ``MESSAGE`` of that connection is delivered"),
    (TCPServer, "program lifetime", "keeps the program running, also after the script's last line"),
    (TCPServer, "a port in use is an event", "A port that is taken is the ``PORT_IN_USE`` event, not an exception"),
    (TCPServer, "terminate frees the port", "the port is free when this returns"),
    (TCPServer, "terminate's last event", "``TERMINATED`` is delivered before it returns"),
    (TCPServer, "sendMessage without a client", "With no client connected nothing is sent and a warning is logged"),
    (TCPServer, "setTimeout", "Disconnect a client that sends nothing for ``timeout`` seconds"),
    (TCPServer, "the host argument", '``"127.0.0.1"``: this machine only'),
    (TCPClient, "connect's result", "True once connected, False after CONNECTION_FAILED or SERVER_OCCUPIED"),
    (TCPClient, "connect's timeout", "0 means 10 s"),
    (TCPClient, "one DISCONNECTED per CONNECTED", "Every ``CONNECTED`` is followed by exactly one ``DISCONNECTED``"),
    (TCPClient, "the occupied server's late hang-up", "within ``OCCUPIED_GRACE`` (2 s"),
    (TCPClient, "connect's events on the caller's thread", "``connect()`` normally delivers its events on the calling thread"),
    (TCPClient, "sendMessage with a responseTime", "it returns the server's next message, which is also delivered as a ``MESSAGE`` event"),
    (TCPClient, "disconnect waits for its event", "``DISCONNECTED`` is delivered before this returns"),
    (TCPClient, "autoReconnect", "then less and less often (at most every 30 s)"),
    (TCPClient, "a failed connection is not an exception", "it never raises for that"),
    (HTTPServer, "the request handler", "``requestHandler(clientIP, filename, params)``"),
    (HTTPServer, "the handler's answer as JSON", "a dict or list 200, JSON"),
    (HTTPServer, "other methods", "Other methods get 405"),
    (HTTPServer, "a handler that raises", "A handler that raises gets 500"),
    (HTTPServer, "handler calls one at a time", "its calls run one at a time, so a handler may keep global state without locks"),
    (HTTPServer, "a port in use raises", "A port that is taken raises ``tcpcom.engine.PortInUseError``"),
    (HTTPServer, "the limits", "``maxBody`` (1 MiB: 413)"),
    (HTTPServer, "terminate from the handler", "the server stops right after that request's response has been sent"),
    (HTTPClient, "an error status is an answer", "the error page's body"),
    (HTTPClient, "an unreachable server raises", "raises ``HTTPClientError`` with the reason"),
    (HTTPClient, "the timeout bounds the whole request", "``HTTPClient.timeout`` (10 s) bounds each request as a whole"),
]


@pytest.mark.parametrize("cls, promise, words", FACTS, ids=["%s: %s" % (f[0].__name__, f[1]) for f in FACTS])
def test_help_answers_what_the_reference_answers(cls, promise, words):
    assert folded(words) in help_text(cls), "help(%s) no longer says (%s): %r" % (cls.__name__, promise, words)


# -- the docstrings render everywhere ---------------------------------------------------

def documented_objects():
    """Every object whose docstring the reference page shows (or help() of the four classes)."""
    objs = [("tcpcom", tcpcom), ("tcpcom.tcp", tcpcom_tcp), ("tcpcom.http", tcpcom_http),
            ("getIPAddress", tcpcom_tcp.getIPAddress), ("close_all", tcpcom_tcp.close_all),
            ("HTTPClientError", tcpcom_http.HTTPClientError)]
    for cls in (TCPServer, TCPClient, HTTPServer, HTTPClient):
        objs.append((cls.__name__, cls))
        objs.extend(("%s.%s" % (cls.__name__, name), value) for name, value in public_callables(cls))
    return objs


def test_docstrings_are_ascii_for_jython():
    # tcp.py and http.py have no coding line: a non-ASCII docstring is a SyntaxError on Jython 2.7
    bad = [name for name, obj in documented_objects() if re.search(r"[^\x00-\x7f]", own_doc(obj))]
    assert not bad, "non-ASCII docstrings: %s" % ", ".join(bad)


def test_docstrings_are_valid_restructuredtext():
    # autodoc renders them with -W (a warning fails the docs build); plain docutils finds the
    # same indentation and table mistakes in a moment
    core = pytest.importorskip("docutils.core")
    problems = []
    for name, obj in documented_objects():
        doc = inspect.cleandoc(own_doc(obj))
        tree = core.publish_doctree(doc, settings_overrides={"report_level": 5, "halt_level": 5})
        nodes = tree.findall() if hasattr(tree, "findall") else tree.traverse()
        messages = [node.astext().splitlines()[0] for node in nodes
                    if node.tagname == "system_message" and int(node["level"]) >= 2]
        if messages:
            problems.append("%s: %s" % (name, "; ".join(messages)))
    assert not problems, "\n".join(problems)


# -- the reference page is made from these docstrings -----------------------------------

@pytest.mark.parametrize("name", ["TCPServer", "TCPClient", "HTTPServer", "HTTPClient"])
def test_the_reference_page_shows_the_docstrings(name):
    with open(REFERENCE) as f:
        page = f.read()
    assert re.search(r"\.\. autoclass:: tcpcom\.%s\n\s+:members:" % name, page), \
        "docs/en/reference.md must show %s with autodoc (.. autoclass:: tcpcom.%s / :members:)" % (name, name)
