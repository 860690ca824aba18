"""TCPClient(..., autoReconnect=seconds): a client that comes back after its server restarts."""
from helpers import DEADLINE, Recorder, engine_threads, wait_until
from tcpcom import TCPClient, TCPServer


def _echo_server(port):
    holder = []

    def on_server(state, msg):
        if state == "MESSAGE":
            wait_until(lambda: holder, DEADLINE)
            holder[0].sendMessage("echo " + msg)
    holder.append(TCPServer(port, on_server, host="127.0.0.1"))
    return holder[0]


def test_the_client_comes_back_after_its_server_restarts_twenty_times():
    before = engine_threads()
    server = _echo_server(0)
    port = server.getPort()
    rec = Recorder("client")
    client = TCPClient("127.0.0.1", port, rec, autoReconnect=0.2)
    try:
        assert client.connect()
        for cycle in range(1, 21):
            wait_until(lambda: client.isConnected(), DEADLINE, "connected again (cycle %d)" % cycle)
            assert client.sendMessage("ping %d" % cycle, 5) == "echo ping %d" % cycle
            server.terminate()  # the classmate stops the server ...
            rec.wait_state("DISCONNECTED", cycle)
            assert client.sendMessage("while away") is None  # nothing is queued
            server = _echo_server(port)  # ... and starts it again on the same port
            rec.wait_state("CONNECTED", cycle + 1)
        wait_until(lambda: client.isConnected(), DEADLINE)
        assert client.sendMessage("last", 5) == "echo last"
        states = [s for s in rec.states() if s != "MESSAGE"]
        # one CONNECTED per connection, one DISCONNECTED per loss, one CONNECTING per outage
        assert states[:2] == ["CONNECTING", "CONNECTED"]
        assert states[2:] == ["DISCONNECTED", "CONNECTING", "CONNECTED"] * 20
        client.disconnect()
        assert rec.states()[-1] == "DISCONNECTED"
        assert not client.isConnected() and not client.isConnecting()
    finally:
        client.disconnect()
        server.terminate()
    wait_until(lambda: set(engine_threads()) <= set(before), DEADLINE, "no thread left")


def test_disconnect_while_it_is_away_stops_the_dialling():
    before = engine_threads()
    server = _echo_server(0)
    rec = Recorder("client")
    client = TCPClient("127.0.0.1", server.getPort(), rec, autoReconnect=0.05)
    try:
        assert client.connect()
        server.terminate()
        rec.wait_state("DISCONNECTED")
        wait_until(lambda: client.isConnecting(), DEADLINE)
        client.disconnect()
        assert not client.isConnecting()
    finally:
        client.disconnect()
        server.terminate()
    wait_until(lambda: set(engine_threads()) <= set(before), DEADLINE, "no redial thread left")
    assert rec.states().count("CONNECTED") == 1


def test_without_auto_reconnect_a_lost_connection_stays_lost():
    server = _echo_server(0)
    port = server.getPort()
    rec = Recorder("client")
    client = TCPClient("127.0.0.1", port, rec)
    try:
        assert client.connect()
        assert client.sendMessage("hi", 5) == "echo hi"  # (a server that says nothing and hangs up is occupied)
        server.terminate()
        rec.wait_state("DISCONNECTED")
        server = _echo_server(port)
        assert not client.isConnected() and not client.isConnecting()
        assert rec.states() == ["CONNECTING", "CONNECTED", "MESSAGE", "DISCONNECTED"]
    finally:
        client.disconnect()
        server.terminate()
