"""A callback with a bug is logged under the name the user wrote, with its arguments and traceback.

A typo in a ``stateChanged`` callback (a NameError) must be logged as
``stateChanged('CONNECTED', '127.0.0.1') raised`` -- not as the engine's
internal wrapper ("callback _emit raised") -- for every state of every face:
TCPServer, TCPClient, HTTPServer's requestHandler and stateHandler,
xtcompat's XT... event functions, the engine's handler methods
(``Echo.connection_made raised``) and UDP handlers.  Each time the engine
goes on: the later events still come.
"""
import logging
import re
import socket
import threading

import pytest

from helpers import DEADLINE, get, raw_client, wait_until
from tcpcom import HTTPServer, TCPClient, TCPServer
from tcpcom.dispatch import Dispatcher, SerialExecutor
from tcpcom.engine import Handler, Listener, connect
from tcpcom.udp import UDPEndpoint
import xtcompat
from xtcompat import api

#: names of internal wrappers that must never be what a log line blames
INTERNALS = ("_emit", "_made", "_lost", "_deliver", "_on_closed", "on_sent", "_app", "_page_request",
             "_closed_event", "_ServerSide", "_ClientSide", "_PendingHandler", "FunctionHandler",
             "_FunctionHandler", "callback")


def typo(*args):
    undefined_name  # noqa: F821 -- the user's typo, raises NameError


def blamed(caplog, text):
    """The error records whose message contains ``text``; each must carry the NameError's traceback."""
    found = [r for r in caplog.records if r.levelno >= logging.ERROR and text in r.getMessage()]
    for r in found:
        assert r.exc_info and r.exc_info[0] is NameError, r.getMessage()
    return found


def wait_blamed(caplog, text):
    wait_until(lambda: blamed(caplog, text), DEADLINE, "a log line with %r; lines so far: %r"
               % (text, [r.getMessage() for r in caplog.records]))
    return blamed(caplog, text)


def assert_no_internal_names(caplog):
    internal = re.compile(r"(?<!\w)(%s)(?!\w)" % "|".join(re.escape(n) for n in INTERNALS))
    for r in caplog.records:
        if r.levelno >= logging.ERROR:
            assert not internal.search(r.getMessage()), r.getMessage()


@pytest.fixture
def errors(caplog):
    with caplog.at_level(logging.ERROR):
        yield caplog


# -- the tcpcom face ------------------------------------------------------------------


def test_tcpserver_names_stateChanged_with_its_arguments_for_every_state(errors):
    seen = []

    def stateChanged(state, msg):
        seen.append(state)
        typo()
    server = TCPServer(0, stateChanged, host="127.0.0.1")
    port = server.getPort()
    try:
        s = raw_client(port)
        s.sendall(b"hello\0")
        wait_until(lambda: "MESSAGE" in seen)
        s.close()
        wait_until(lambda: seen.count("LISTENING") == 2, what="LISTENING after the client left")
    finally:
        server.terminate()
    assert seen == ["LISTENING", "CONNECTED", "MESSAGE", "LISTENING", "TERMINATED"]  # the engine went on
    for call in ("stateChanged('LISTENING', '%d')" % port, "stateChanged('CONNECTED', '127.0.0.1')",
                 "stateChanged('MESSAGE', 'hello')", "stateChanged('TERMINATED', '')"):
        assert wait_blamed(errors, call + " raised")
    assert len(blamed(errors, "stateChanged('LISTENING', '%d') raised" % port)) == 2
    assert_no_internal_names(errors)


def test_tcpserver_on_a_port_in_use_names_stateChanged_PORT_IN_USE(errors):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        server = TCPServer(port, typo, host="127.0.0.1")
        assert wait_blamed(errors, "stateChanged('PORT_IN_USE', '%d') raised" % port)
        assert server.isTerminated()
    finally:
        taken.close()
    assert_no_internal_names(errors)


def test_a_callback_with_another_name_is_still_called_stateChanged_and_its_own_name_is_given(errors):
    def onChange(state, msg):
        typo()
    server = TCPServer(0, onChange, host="127.0.0.1")
    try:
        records = wait_blamed(errors, "stateChanged('LISTENING', '%d') raised" % server.getPort())
        assert "onChange" in records[0].getMessage()
    finally:
        server.terminate()


def test_tcpclient_names_stateChanged_with_its_arguments_for_every_state(errors):
    server = TCPServer(0, None, host="127.0.0.1")
    port = server.getPort()
    where = "127.0.0.1:%d" % port
    seen = []

    def stateChanged(state, msg):
        seen.append(state)
        typo()
    client = TCPClient("127.0.0.1", port, stateChanged)
    try:
        assert client.connect(DEADLINE)
        wait_until(server.isConnected)
        server.sendMessage("hi there")
        wait_until(lambda: "MESSAGE" in seen)
        client.disconnect()
    finally:
        server.terminate()
    assert seen == ["CONNECTING", "CONNECTED", "MESSAGE", "DISCONNECTED"]
    for call in ("stateChanged('CONNECTING', '%s')" % where, "stateChanged('CONNECTED', '%s')" % where,
                 "stateChanged('MESSAGE', 'hi there')", "stateChanged('DISCONNECTED', '')"):
        assert wait_blamed(errors, call + " raised")
    assert_no_internal_names(errors)


def test_tcpclient_names_stateChanged_for_CONNECTION_FAILED_and_SERVER_OCCUPIED(errors):
    nobody = socket.socket()  # bound, not listening: a connect is refused
    nobody.bind(("127.0.0.1", 0))
    closed_port = nobody.getsockname()[1]
    server = TCPServer(0, None, host="127.0.0.1")
    port = server.getPort()
    first = TCPClient("127.0.0.1", port, None)
    try:
        assert not TCPClient("127.0.0.1", closed_port, typo).connect(DEADLINE)
        assert wait_blamed(errors, "stateChanged('CONNECTION_FAILED', '127.0.0.1:%d') raised" % closed_port)
        assert first.connect(DEADLINE)
        wait_until(server.isConnected)
        assert not TCPClient("127.0.0.1", port, typo, occupiedWait=2.0).connect(DEADLINE)
        assert wait_blamed(errors, "stateChanged('SERVER_OCCUPIED', '127.0.0.1:%d') raised" % port)
    finally:
        first.disconnect()
        server.terminate()
        nobody.close()
    assert_no_internal_names(errors)


def test_a_long_message_is_quoted_as_a_short_excerpt(errors):
    server = TCPServer(0, typo, host="127.0.0.1")
    try:
        s = raw_client(server.getPort())
        s.sendall(b"x" * 100000 + b"\0")
        records = wait_blamed(errors, "stateChanged('MESSAGE', 'xxxx")
        assert len(records[0].getMessage()) < 300
        s.close()
    finally:
        server.terminate()


# -- HTTPServer ------------------------------------------------------------------------


def test_httpserver_names_requestHandler_with_its_arguments_and_answers_500(errors):
    server = HTTPServer(typo, port=0, host="127.0.0.1")
    try:
        status, _, _ = get("http://127.0.0.1:%d/page?a=1" % server.getPort())
        assert status == 500
        assert wait_blamed(errors, "requestHandler('127.0.0.1', '/page', (('a', '1'),)) raised")
        assert get("http://127.0.0.1:%d/again" % server.getPort())[0] == 500  # still serving
    finally:
        server.terminate()
    assert_no_internal_names(errors)


def test_httpserver_names_the_stateHandler(errors):
    server = HTTPServer(lambda ip, name, params: ("the page", typo), port=0, host="127.0.0.1")
    try:
        status, _, body = get("http://127.0.0.1:%d/" % server.getPort())
        assert (status, body) == (200, b"the page")
        assert wait_blamed(errors, "stateHandler() raised")
    finally:
        server.terminate()
    assert_no_internal_names(errors)


# -- xtcompat ------------------------------------------------------------------------


class TypoScript(object):
    """Every event function of a plugin has the same typo (XTNewConnection first accepts)."""

    def __init__(self):
        self.calls = []

    def _typo(self, name):
        self.calls.append(name)
        typo()

    def XTNewConnection(self, theConnectionID, theConnectionInfo):
        self.calls.append("XTNewConnection")
        return True

    def XTDataAvailable(self, theData, theConnectionID, theConnectionInfo):
        self._typo("XTDataAvailable")

    def XTSocketError(self, theConnectionID, theConnectionInfo):
        self._typo("XTSocketError")

    def XTReceivedDatagram(self, theData, theListenerID, theDatagramInfo):
        self._typo("XTReceivedDatagram")

    def XTPageRequest(self, thePath, theRequestInfo):
        self._typo("XTPageRequest")


@pytest.fixture
def typo_script():
    script = TypoScript()
    xtcompat.XTRegisterHandlers(script)
    yield script
    xtcompat.XTStopAll()
    api._face.stop_requested.clear()
    xtcompat.XTRegisterHandlers(None)


def test_xtcompat_names_each_event_function_that_raises(errors, typo_script):
    lid = xtcompat.XTStartTCPListener(0, "\n", host="127.0.0.1")
    s = raw_client(xtcompat.XTGetListenerPort(lid))
    s.sendall(b"hello\n")
    assert wait_blamed(errors, "XTDataAvailable")
    s.close()
    assert wait_blamed(errors, "XTSocketError")

    uid = xtcompat.XTStartUDPListener(0, host="127.0.0.1")
    assert xtcompat.XTSendDatagram(uid, "127.0.0.1", xtcompat.XTGetListenerPort(uid), "ping")
    assert wait_blamed(errors, "XTReceivedDatagram")

    hid = xtcompat.XTStartHTMLListener(0, host="127.0.0.1")
    assert get("http://127.0.0.1:%d/x" % xtcompat.XTGetListenerPort(hid))[0] == 500
    assert wait_blamed(errors, "XTPageRequest")
    assert_no_internal_names(errors)


def test_xtcompat_names_XTNewConnection_that_raises(errors, typo_script):
    typo_script.XTNewConnection = lambda cid, info: typo()
    lid = xtcompat.XTStartTCPListener(0, "\n", host="127.0.0.1")
    s = raw_client(xtcompat.XTGetListenerPort(lid))
    try:
        assert s.recv(10) == b""  # refused
        assert wait_blamed(errors, "XTNewConnection")
    finally:
        s.close()


# -- the engine ----------------------------------------------------------------------


class Echo(Handler):
    """A handler whose every method has the typo."""

    def connection_made(self, conn):
        typo()

    def message_received(self, conn, message):
        typo()

    def connection_lost(self, conn, reason):
        typo()


class Batch(Handler):
    def messages_received(self, conn, messages):
        typo()


def test_engine_names_the_handler_method_that_raised_on_an_accepted_connection(errors):
    listener = Listener(0, lambda conn: Echo(), host="127.0.0.1")
    try:
        s = raw_client(listener.port)
        s.sendall(b"one\0")
        assert wait_blamed(errors, "Echo.message_received raised")
        s.sendall(b"two\0")  # the engine went on
        wait_until(lambda: len(blamed(errors, "Echo.message_received raised")) == 2)
        s.close()
        assert wait_blamed(errors, "Echo.connection_lost raised")
        assert blamed(errors, "Echo.connection_made raised")
    finally:
        listener.close()
    assert_no_internal_names(errors)


def test_engine_names_the_handler_method_on_a_connection_it_made(errors):
    listener = Listener(0, None, host="127.0.0.1")
    try:
        conn = connect("127.0.0.1", listener.port, Echo())
        assert wait_blamed(errors, "Echo.connection_made raised")
        conn.close()
        assert wait_blamed(errors, "Echo.connection_lost raised")
    finally:
        listener.close()
    assert_no_internal_names(errors)


def test_engine_names_the_batch_hook(errors):
    listener = Listener(0, Batch, host="127.0.0.1")
    try:
        s = raw_client(listener.port)
        s.sendall(b"one\0two\0")
        assert wait_blamed(errors, "Batch.messages_received raised")
        s.close()
    finally:
        listener.close()
    assert_no_internal_names(errors)


def test_engine_names_a_qsys_style_function_with_its_event(errors):
    def on_event(conn, event, data):
        typo()
    listener = Listener(0, lambda conn: on_event, host="127.0.0.1")
    try:
        s = raw_client(listener.port)
        s.sendall(b"hello\0")
        assert wait_blamed(errors, "on_event(<Connection")
        assert wait_blamed(errors, "'connected'")
        assert wait_blamed(errors, "'data', 'hello'")
        s.close()
        assert wait_blamed(errors, "'closed'")
    finally:
        listener.close()
    assert_no_internal_names(errors)


def test_udp_names_the_handler_method_or_function(errors):
    class Receiver(object):
        def datagram_received(self, endpoint, data, address):
            typo()

        def endpoint_closed(self, endpoint, reason):
            typo()

    def on_datagram(endpoint, data, address):
        typo()
    a = UDPEndpoint(0, Receiver(), host="127.0.0.1")
    b = UDPEndpoint(0, on_datagram, host="127.0.0.1")
    try:
        a.send("ping", "127.0.0.1", a.port)
        b.send("ping", "127.0.0.1", b.port)
        assert wait_blamed(errors, "Receiver.datagram_received raised")
        assert wait_blamed(errors, "on_datagram(<UDPEndpoint")
    finally:
        a.close()
        b.close()
    assert wait_blamed(errors, "Receiver.endpoint_closed raised")
    assert_no_internal_names(errors)


def test_the_dispatcher_names_a_method_by_its_class(errors):
    class Sensor(object):
        def reading(self):
            typo()
    done = threading.Event()
    ex = SerialExecutor(Dispatcher())
    ex.post(Sensor().reading)
    ex.post(done.set)
    assert done.wait(DEADLINE)
    assert wait_blamed(errors, "Sensor.reading raised")
