"""Closing while the peer still sends: every byte handed to a send before the close arrives.

Each scenario counts the bytes the program handed to its sends before it closed and the bytes
the peer received, and records both (docs/RELIABILITY.md); they must be equal.
"""
import socket
import threading
import time

import pytest

from helpers import DEADLINE, raw_client, wait_until
from rel_helpers import FULL, scaled
from tcpcom import TCPClient, TCPServer
from tcpcom.engine import Handler, Listener, connect

ROUNDS = scaled(3, 20)


def _slow_reader(counts, done, ready, chunk=4096, pause=0.0005):
    """A peer that reads a little at a time, reports status all the while, and closes
    when the other side has closed; returns its port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def run():
        s, _ = srv.accept()
        srv.close()
        ready.set()
        s.settimeout(0.002)
        stop = time.monotonic() + 120
        try:
            while time.monotonic() < stop:
                try:
                    data = s.recv(chunk)
                    time.sleep(pause)
                except socket.timeout:
                    s.sendall(b"status ok\r\n")
                    continue
                if not data:
                    break
                counts.append(len(data))
                s.sendall(b"status ok\r\n")
        except OSError:
            pass
        finally:
            s.close()
            done.set()
    threading.Thread(target=run, daemon=True).start()
    return srv.getsockname()[1]


@pytest.mark.parametrize("face", ["engine", "xtcompat"])
def test_close_while_the_peer_reports_status_every_byte_arrives(figures, face):
    """A program writes 3,000 lines to a device that reads slowly and keeps sending status
    lines, then closes (engine Connection.close(), XTCloseConnection); repeated ROUNDS times."""
    sent = received = 0
    line = b"set level 50 on the dimmer in the hall; " * 10 + b"\r\n"
    for _ in range(ROUNDS):
        counts, done, ready = [], threading.Event(), threading.Event()
        port = _slow_reader(counts, done, ready)
        if face == "engine":
            conn = connect("127.0.0.1", port, None, framing="line")
            for _ in range(3000):
                conn.send(line)
            conn.close()
        else:
            from xtcompat import XTCloseConnection, XTOpenTCPConnection, XTWriteConnection
            cid = XTOpenTCPConnection("127.0.0.1", port, "\r\n")
            assert all(XTWriteConnection(cid, line) for _ in range(3000))
            XTCloseConnection(cid)
        sent += 3000 * len(line)
        assert done.wait(6 * DEADLINE)
        received += sum(counts)
    figures.update(rounds=ROUNDS, bytes_sent=sent, bytes_received=received, equal=sent == received, full=FULL)
    assert received == sent


def test_tcpclient_disconnect_while_the_server_echoes_every_message_arrives(figures):
    """A TCPClient sends 2,000 messages to an echo server whose callback takes about 1 ms,
    then disconnect() while the echoes still flow; repeated ROUNDS times."""
    got = []

    def on_server(state, msg):
        if state == "MESSAGE":
            time.sleep(0.001)
            got.append(len(msg.encode("utf-8")) + 1)
            server.sendMessage("echo: " + msg)
    server = TCPServer(0, on_server, host="127.0.0.1")
    sent = 0
    try:
        for r in range(ROUNDS):
            del got[:]
            client = TCPClient("127.0.0.1", server.getPort(), None)
            assert client.connect()
            for i in range(2000):
                msg = "round %d message %d" % (r, i)
                client.sendMessage(msg)
                sent += len(msg) + 1
            client.disconnect()
            deadline = time.monotonic() + 6 * DEADLINE
            while len(got) < 2000 and time.monotonic() < deadline:
                threading.Event().wait(0.01)
            assert len(got) == 2000
            figures["bytes_received"] = figures.get("bytes_received", 0) + sum(got)
    finally:
        server.terminate()
    figures.update(rounds=ROUNDS, bytes_sent=sent, equal=sent == figures["bytes_received"], full=FULL)
    assert figures["bytes_received"] == sent


def test_listener_close_while_clients_send_every_reply_arrives(figures):
    """An engine Listener answers 20 clients that keep sending; it is closed while they send:
    each client still reads every answer the server handed to a send before the close."""
    answered = {}
    lock = threading.Lock()

    ended = []

    class Answer(Handler):
        def message_received(self, conn, message):
            conn.send_message("ok " + message)
            with lock:
                answered[conn.remote_port] = answered.get(conn.remote_port, 0) + 1

        def connection_lost(self, conn, reason):
            with lock:
                ended.append(conn)

    lst = Listener(0, Answer, host="127.0.0.1")
    clients = [raw_client(lst.port) for _ in range(20)]
    stop = threading.Event()
    replies = {}

    def talk(s):
        port = s.getsockname()[1]
        buf = b""
        i = 0
        s.settimeout(6 * DEADLINE)
        try:
            while True:
                if not stop.is_set():
                    s.sendall(b"q%d\0" % i)
                    i += 1
                data = s.recv(65536)
                if not data:
                    break
                buf += data
        except OSError:
            pass
        replies[port] = buf.count(b"\0")
        s.close()
    threads = [threading.Thread(target=talk, args=(s,)) for s in clients]
    for t in threads:
        t.start()
    deadline = time.monotonic() + DEADLINE
    while sum(answered.values()) < 2000 and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    lst.close()
    stop.set()
    for t in threads:
        t.join(6 * DEADLINE)
    # a reply is counted after its send returned: a client can read it (and end) before the
    # handler counts it; connection_lost comes after the connection's last message_received
    wait_until(lambda: len(ended) == 20, what="every connection's end delivered")
    sent = sum(answered.values())
    got = sum(replies.values())
    figures.update(clients=20, replies_sent=sent, replies_received=got, equal=sent == got, full=FULL)
    assert got == sent
    assert replies == dict((p, answered.get(p, 0)) for p in replies)
