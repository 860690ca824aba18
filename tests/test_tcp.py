"""TCPServer and TCPClient: every state and method, over loopback."""
import logging
import socket
import threading

import pytest

from helpers import DEADLINE, Recorder, engine_threads, raw_client, recv_until, wait_until
from tcpcom import TCPClient, TCPServer
from tcpcom._version import __version__

OCCUPIED_WAIT = 0.5  # generous for the SERVER_OCCUPIED tests: they check correctness, bench/ speed


@pytest.fixture
def server():
    rec = Recorder("server")
    srv = TCPServer(0, rec, host="127.0.0.1")
    srv.rec = rec
    rec.wait_state("LISTENING")
    yield srv
    srv.terminate()


def make_client(port, **kw):
    rec = Recorder("client")
    c = TCPClient("127.0.0.1", port, rec, **kw)
    c.rec = rec
    return c


def test_constants_are_their_own_names():
    for name in ("PORT_IN_USE", "CONNECTED", "LISTENING", "TERMINATED", "MESSAGE"):
        assert getattr(TCPServer, name) == name
    for name in ("CONNECTING", "CONNECTION_FAILED", "CONNECTED", "SERVER_OCCUPIED", "DISCONNECTED", "MESSAGE"):
        assert getattr(TCPClient, name) == name
    assert TCPServer.getVersion() == TCPClient.getVersion() == __version__


def test_star_import_gives_the_classes():
    ns = {}
    exec("from tcpcom import *", ns)
    assert ns["TCPServer"] is TCPServer and ns["TCPClient"] is TCPClient


def test_listening_reports_the_real_port(server):
    assert server.getPort() > 0
    assert server.rec.events[0] == ("LISTENING", str(server.getPort()))
    assert not server.isConnected() and not server.isTerminated()


def test_round_trip_with_umlauts_both_ways(server):
    c = make_client(server.getPort())
    assert c.connect()
    assert c.isConnected()
    assert c.rec.states() == ["CONNECTING", "CONNECTED"]
    assert c.rec.events[0][1] == "127.0.0.1:%d" % server.getPort()
    server.rec.wait_state("CONNECTED")
    assert ("CONNECTED", "127.0.0.1") in server.rec.events
    assert server.isConnected()
    c.sendMessage(u"Gr\u00fc\u00dfe \U0001F600")
    assert server.rec.wait_messages(1) == [u"Gr\u00fc\u00dfe \U0001F600"]
    server.sendMessage(u"\u00e4\u00f6\u00fc")
    assert c.rec.wait_messages(1) == [u"\u00e4\u00f6\u00fc"]
    c.disconnect()
    c.rec.wait_state("DISCONNECTED")
    assert not c.isConnected()
    server.rec.wait_state("LISTENING", 2)
    assert server.rec.events[-1] == ("LISTENING", str(server.getPort()))
    assert not server.isConnected()


def test_server_event_order_and_never_concurrent(server):
    c = make_client(server.getPort())
    assert c.connect()
    for i in range(200):
        c.sendMessage("m%d" % i)
    assert server.rec.wait_messages(200) == ["m%d" % i for i in range(200)]
    c.disconnect()
    server.rec.wait_state("LISTENING", 2)
    server.terminate()
    server.rec.wait_state("TERMINATED")
    states = server.rec.states()
    assert states[:2] == ["LISTENING", "CONNECTED"]
    assert states[-2:] == ["LISTENING", "TERMINATED"]
    assert not server.rec.overlap


def test_send_message_with_response_time_returns_the_reply():
    def echo(state, msg):
        if state == "MESSAGE":
            srv.sendMessage("re:" + msg)
    srv = TCPServer(0, echo, host="127.0.0.1")
    try:
        c = make_client(srv.getPort())
        assert c.connect()
        for i in range(50):
            assert c.sendMessage("q%d" % i, 2) == "re:q%d" % i
        # the reply is also delivered as a MESSAGE event
        assert c.rec.wait_messages(50)[-1] == "re:q49"
        c.disconnect()
    finally:
        srv.terminate()


def test_reply_that_arrives_before_the_wait_is_not_missed():
    # The server answers instantly; the reply may be read before the client
    # starts waiting.  The waiter is registered before sending.
    srv = TCPServer(0, lambda s, m: s == "MESSAGE" and srv.sendMessage(m), host="127.0.0.1")
    try:
        c = make_client(srv.getPort())
        assert c.connect()
        assert all(c.sendMessage(str(i), 2) == str(i) for i in range(300))
    finally:
        srv.terminate()


def test_response_time_times_out_with_none(server):
    c = make_client(server.getPort())
    assert c.connect()
    assert c.sendMessage("nobody answers", 0.05) is None
    c.disconnect()


def test_send_message_without_response_time_returns_none(server):
    c = make_client(server.getPort())
    assert c.connect()
    assert c.sendMessage("x") is None
    c.disconnect()


def test_second_client_gets_server_occupied(server):
    c1 = make_client(server.getPort())
    assert c1.connect()
    c2 = make_client(server.getPort(), occupiedWait=OCCUPIED_WAIT)
    assert c2.connect() is False
    assert c2.rec.states() == ["CONNECTING", "SERVER_OCCUPIED"]
    assert c2.rec.events[1][1] == "127.0.0.1:%d" % server.getPort()
    assert not c2.isConnected()
    # the first client is unaffected
    c1.sendMessage("still here")
    assert server.rec.wait_messages(1) == ["still here"]
    assert server.rec.states().count("CONNECTED") == 1


def test_occupied_against_a_server_that_closes_like_the_original():
    # The original tcpcom accepts a second client, then shutdown()+close().
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(5)

    def original():
        conn, _ = lsock.accept()
        conn.shutdown(socket.SHUT_RDWR)
        conn.close()
    t = threading.Thread(target=original)
    t.start()
    try:
        c = make_client(lsock.getsockname()[1], occupiedWait=OCCUPIED_WAIT)
        assert c.connect() is False
        assert c.rec.states() == ["CONNECTING", "SERVER_OCCUPIED"]
        assert not c.isConnected()
    finally:
        t.join(DEADLINE)
        lsock.close()


def test_connection_failed_when_nobody_listens():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    c = make_client(port)
    assert c.connect() is False
    assert c.rec.states() == ["CONNECTING", "CONNECTION_FAILED"]
    assert c.rec.events[1][1] == "127.0.0.1:%d" % port
    assert not c.isConnected() and not c.isConnecting()


def test_connection_failed_for_unresolvable_host():
    rec = Recorder()
    c = TCPClient("no-such-host.invalid", 5000, rec)
    assert c.connect(2) is False
    assert rec.states() == ["CONNECTING", "CONNECTION_FAILED"]


def test_is_connecting_is_true_only_during_connect(server):
    seen = []
    c = TCPClient("127.0.0.1", server.getPort(), lambda s, m: seen.append((s, c.isConnecting())))
    assert not c.isConnecting()
    assert c.connect()
    assert seen[0] == ("CONNECTING", True)
    assert not c.isConnecting()


def test_client_sees_disconnected_when_server_disconnects(server):
    c = make_client(server.getPort())
    assert c.connect()
    server.rec.wait_state("CONNECTED")
    server.disconnect()
    c.rec.wait_state("DISCONNECTED")
    assert not c.isConnected()
    assert c.rec.events[-1] == ("DISCONNECTED", "")
    server.rec.wait_state("LISTENING", 2)
    # and the server serves the next client
    c2 = make_client(server.getPort())
    assert c2.connect()
    server.rec.wait_state("CONNECTED", 2)


def test_client_sees_disconnected_when_server_terminates(server):
    c = make_client(server.getPort())
    assert c.connect()
    server.terminate()
    c.rec.wait_state("DISCONNECTED")
    assert not c.isConnected()
    server.rec.wait_state("TERMINATED")
    assert server.isTerminated()


def test_messages_split_and_coalesced_on_the_wire(server):
    s = raw_client(server.getPort())
    server.rec.wait_state("CONNECTED")
    s.sendall(b"one\0tw")
    s.sendall(b"o\0three\0four")
    s.sendall(u"\0f\u00fcnf".encode("utf-8")[:-1])
    s.sendall(u"\u00fcnf".encode("utf-8")[-1:] + b"\0")
    assert server.rec.wait_messages(5) == ["one", "two", "three", "four", u"f\u00fcnf"]
    server.sendMessage("a")
    server.sendMessage(u"\u00e4")
    assert recv_until(s, 2) == b"a\0" + u"\u00e4".encode("utf-8") + b"\0"
    s.close()


def test_port_in_use_is_reported_and_terminated():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        rec = Recorder()
        srv = TCPServer(port, rec, host="127.0.0.1")
        rec.wait_state("PORT_IN_USE")
        assert rec.events == [("PORT_IN_USE", str(port))]
        assert srv.isTerminated()
        srv.terminate()  # harmless
    finally:
        holder.close()


def test_terminate_frees_the_port_at_once_and_ends_all_threads():
    before = engine_threads()
    for _ in range(20):
        rec = Recorder()
        srv = TCPServer(0, rec, host="127.0.0.1")
        port = srv.getPort()
        c = make_client(port)
        assert c.connect()
        srv.terminate()
        # accepting has ended when terminate() returns; the connection's reader ends as soon
        # as the client has answered the close (its own reader lingers as long)
        assert not [n for n in engine_threads() if n.startswith("tcpcom-listen") and n not in before]
        rec2 = Recorder()
        srv2 = TCPServer(port, rec2, host="127.0.0.1")
        rec2.wait_state("LISTENING")
        assert "PORT_IN_USE" not in rec2.states()
        srv2.terminate()
        rec.wait_state("TERMINATED")
        c.disconnect()
    wait_until(lambda: set(engine_threads()) <= set(before))


def test_terminate_twice_and_before_listening():
    rec = Recorder()
    srv = TCPServer(0, rec, host="127.0.0.1")
    srv.terminate()  # very likely before LISTENING was delivered
    srv.terminate()
    rec.wait_state("TERMINATED")
    assert rec.states() == ["LISTENING", "TERMINATED"]
    assert srv.isTerminated()


def test_terminate_from_inside_a_callback():
    rec = Recorder()

    def cb(state, msg):
        rec(state, msg)
        if state == "MESSAGE" and msg == "stop":
            srv.terminate()
    srv = TCPServer(0, cb, host="127.0.0.1")
    c = make_client(srv.getPort())
    assert c.connect()
    c.sendMessage("stop")
    rec.wait_state("TERMINATED")
    c.rec.wait_state("DISCONNECTED")
    assert srv.isTerminated()
    wait_until(lambda: not [n for n in engine_threads() if str(srv.getPort()) in n])


def test_disconnect_and_connect_from_inside_client_callbacks(server):
    # The first server may not have seen the hang-up yet when the client
    # reconnects, so the client moves on to a second server.
    other = Recorder("other")
    srv2 = TCPServer(0, other, host="127.0.0.1")
    rec = Recorder("client")

    def cb(state, msg):
        rec(state, msg)
        if state == "MESSAGE":
            c.disconnect()
        elif state == "DISCONNECTED" and c.port == server.getPort():
            c.port = srv2.getPort()
            c.connect()
    c = TCPClient("127.0.0.1", server.getPort(), cb)
    try:
        assert c.connect()
        server.rec.wait_state("CONNECTED")
        server.sendMessage("bye")
        rec.wait_state("CONNECTED", 2)
        other.wait_state("CONNECTED")
        assert c.isConnected()
        assert rec.states() == ["CONNECTING", "CONNECTED", "MESSAGE", "DISCONNECTED", "CONNECTING", "CONNECTED"]
    finally:
        c.disconnect()
        srv2.terminate()


def test_send_message_with_response_time_inside_a_callback():
    # A client's MESSAGE callback asks the server something and waits for it:
    # the callback runs on the client's reader thread, which must not deadlock.
    def srv_cb(state, msg):
        if state == "CONNECTED":
            srv.sendMessage("hello")
        elif state == "MESSAGE":
            srv.sendMessage("answer to " + msg)
    srv = TCPServer(0, srv_cb, host="127.0.0.1")
    answers = []
    rec = Recorder("client")

    def cb(state, msg):
        rec(state, msg)
        if state == "MESSAGE" and msg == "hello":
            answers.append(c.sendMessage("question", 2))
    c = TCPClient("127.0.0.1", srv.getPort(), cb)
    try:
        assert c.connect()
        assert rec.wait_messages(2) == ["hello", "answer to question"]
        assert answers == ["answer to question"]
    finally:
        c.disconnect()
        srv.terminate()


def test_set_timeout_disconnects_a_silent_client(server):
    server.setTimeout(0.2)
    c = make_client(server.getPort())
    assert c.connect()
    server.rec.wait_state("CONNECTED")
    c.rec.wait_state("DISCONNECTED")
    server.rec.wait_state("LISTENING", 2)
    server.setTimeout(0)  # never
    c2 = make_client(server.getPort())
    assert c2.connect()
    assert c2.sendMessage("x") is None
    server.rec.wait_messages(1)
    assert c2.isConnected()


def test_set_timeout_with_no_number_says_so_at_once_and_the_server_goes_on(server):
    # (it used to be kept, and each client accepted later was closed at once by the error)
    with pytest.raises(TypeError, match="timeout must be a number"):
        server.setTimeout("5")
    c = make_client(server.getPort())
    assert c.connect()
    assert c.sendMessage("x") is None
    assert server.rec.wait_messages(1) == ["x"]


def test_callback_that_raises_is_logged_and_the_engine_goes_on(caplog):
    got = []

    def cb(state, msg):
        if state == "MESSAGE":
            got.append(msg)
            if msg == "boom":
                raise RuntimeError("student bug")
    srv = TCPServer(0, cb, host="127.0.0.1")
    try:
        c = make_client(srv.getPort())
        assert c.connect()
        with caplog.at_level(logging.ERROR, logger="tcpcom"):
            c.sendMessage("boom")
            c.sendMessage("after")
            wait_until(lambda: got == ["boom", "after"])
        assert any("student bug" in (r.exc_text or "") or (r.exc_info and "student bug" in str(r.exc_info[1]))
                   for r in caplog.records)
    finally:
        srv.terminate()


def test_message_larger_than_maximum_closes_that_connection(caplog):
    rec = Recorder()
    srv = TCPServer(0, rec, host="127.0.0.1", maxMessageSize=1000)
    try:
        s = raw_client(srv.getPort())
        rec.wait_state("CONNECTED")
        with caplog.at_level(logging.ERROR, logger="tcpcom"):
            s.sendall(b"ok\0" + b"x" * 5000)
            rec.wait_state("LISTENING", 2)
        assert rec.messages() == ["ok"]
        assert any("maximum" in r.getMessage() for r in caplog.records)
        assert s.recv(10) == b""  # the server closed it
        c = make_client(srv.getPort())
        assert c.connect()  # and serves the next client
    finally:
        srv.terminate()


def test_concurrent_senders_never_interleave(server):
    c = make_client(server.getPort())
    assert c.connect()
    big = {k: k * 20000 for k in "abcd"}

    def send(k):
        for _ in range(10):
            c.sendMessage(big[k])
    threads = [threading.Thread(target=send, args=(k,)) for k in big]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    msgs = server.rec.wait_messages(40)
    assert sorted(msgs) == sorted(v for v in big.values() for _ in range(10))


def test_tcp_nodelay_is_set(server):
    c = make_client(server.getPort())
    assert c.connect()
    assert c._conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_send_when_not_connected_warns_and_returns_none(caplog):
    c = make_client(1)
    with caplog.at_level(logging.WARNING, logger="tcpcom"):
        assert c.sendMessage("lost?") is None
    assert "not connected" in caplog.text


def test_send_none_is_a_clear_error(server):
    c = make_client(server.getPort())
    with pytest.raises(TypeError):
        c.sendMessage(None)
    with pytest.raises(TypeError):
        server.sendMessage(None)


@pytest.mark.parametrize("port", [-1, 65536, "5000", 5.0, None, True])
def test_bad_ports_raise_clear_errors(port):
    with pytest.raises((TypeError, ValueError)) as info:
        TCPServer(port, Recorder())
    assert "port" in str(info.value)
    with pytest.raises((TypeError, ValueError)):
        TCPClient("127.0.0.1", port, Recorder())


def test_callback_must_be_callable():
    with pytest.raises(TypeError):
        TCPServer(0, "not a function")
    with pytest.raises(TypeError):
        TCPClient("127.0.0.1", 5000, 42)


def test_end_of_block_as_third_argument():
    rec = Recorder()
    srv = TCPServer(0, rec, "\n", host="127.0.0.1")
    try:
        s = raw_client(srv.getPort())
        s.sendall(b"line one\nline two\n")
        assert rec.wait_messages(2) == ["line one", "line two"]
        srv.sendMessage("back")
        assert recv_until(s, 1, b"\n") == b"back\n"
        s.close()
    finally:
        srv.terminate()
    srv2 = TCPServer(0, Recorder(), True, host="127.0.0.1")  # a bool there is isVerbose
    assert srv2.isVerbose and srv2.endOfBlock == b"\0"
    srv2.terminate()
    with pytest.raises(TypeError):
        TCPServer(0, Recorder(), "")


def test_verbose_prints_in_the_classic_style(capsys):
    rec = Recorder()
    srv = TCPServer(0, rec, isVerbose=True, host="127.0.0.1")
    rec.wait_state("LISTENING")
    srv.terminate()
    rec.wait_state("TERMINATED")
    assert "   TCPServer-> " in capsys.readouterr().out


def test_loop_forever_returns_after_terminate_and_on_ctrl_c(monkeypatch):
    rec = Recorder()
    srv = TCPServer(0, rec, host="127.0.0.1")
    threading.Timer(0.1, srv.terminate).start()
    srv.loopForever()
    assert srv.isTerminated()

    srv2 = TCPServer(0, rec, host="127.0.0.1")

    class FakeEvent(object):
        def wait(self, timeout):
            raise KeyboardInterrupt
    monkeypatch.setattr(threading, "Event", FakeEvent)
    srv2.loopForever()
    assert srv2.isTerminated()


def test_get_ip_address_is_an_ipv4_address():
    ip = TCPServer.getIPAddress()
    socket.inet_aton(ip)


def test_disconnect_twice_and_before_connect():
    c = make_client(1)
    c.disconnect()
    c.disconnect()
    assert not c.isConnected()


def test_no_client_thread_outlives_disconnect(server):
    for i in range(10):
        c = make_client(server.getPort())
        assert c.connect()
        reader = c._conn._reader
        assert reader.name in engine_threads()
        c.disconnect()
        assert c.rec.events[-1] == ("DISCONNECTED", "")  # delivered before disconnect() returned
        # the reader reads on until the server has closed its side too (the graceful close)
        wait_until(lambda: not reader.is_alive())
        assert reader.name not in engine_threads()
        server.rec.wait_state("LISTENING", 2 + i)


def test_shared_threads_stay_bounded():
    from tcpcom.dispatch import default_dispatcher
    servers = [TCPServer(0, Recorder(), host="127.0.0.1") for _ in range(40)]
    clients = []
    try:
        for srv in servers:
            c = make_client(srv.getPort())
            assert c.connect()
            clients.append(c)
        d = default_dispatcher()
        assert d.worker_count <= d.max_workers
        shared = [t for t in threading.enumerate() if t.name.startswith(("tcpcom-dispatch", "tcpcom-watchdog"))]
        assert len(shared) <= d.max_workers + 1
    finally:
        for c in clients:
            c.disconnect()
        for srv in servers:
            srv.terminate()


def test_event_pump_delivers_face_callbacks_on_the_pumping_thread(server):
    from tcpcom import EventPump
    pump = EventPump()
    rec = Recorder("client")
    c = TCPClient("127.0.0.1", server.getPort(), rec, dispatcher=pump)
    assert c.connect()
    server.rec.wait_state("CONNECTED")
    server.sendMessage("to the GUI")
    assert pump.pump_until(lambda: "MESSAGE" in rec.states(), DEADLINE)
    assert rec.states() == ["CONNECTING", "CONNECTED", "MESSAGE"]
    assert rec.threads == {threading.current_thread().name}
    c.disconnect()
    pump.pump_until(lambda: "DISCONNECTED" in rec.states(), DEADLINE)
    assert rec.states()[-1] == "DISCONNECTED"


def test_get_ip_address_prefers_a_network_interface_over_loopback(monkeypatch):
    # /etc/hosts often maps the host name to 127.0.1.1: the interfaces must win.
    from tcpcom.engine import hostinfo
    monkeypatch.setattr(hostinfo, "_interface_addresses", lambda: ["127.0.0.1", "192.0.2.7"])
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("127.0.1.1", 0))])
    assert TCPServer.getIPAddress() == "192.0.2.7"
    monkeypatch.setattr(hostinfo, "_interface_addresses", lambda: [])
    assert TCPServer.getIPAddress() == "127.0.1.1"
