"""Every sample and the command line, run as a user would run them."""
import os
import re
import signal
import subprocess
import sys
import threading


from helpers import DEADLINE, ENV, ROOT, SAMPLES, Proc, raw_client, recv_until
from tcpcom import TCPClient, TCPServer
from tcpcom._version import __version__

def test_cli_demo_runs_and_exits_by_itself():
    p = Proc(["-m", "tcpcom", "demo"])
    assert p.finish() == 0
    text = "\n".join(p.lines)
    for state in ("LISTENING", "CONNECTING", "CONNECTED", "MESSAGE", "DISCONNECTED", "TERMINATED"):
        assert state in text
    assert "returned 'got: Hello'" in text
    assert u"Gr\u00fcezi" in text


def test_cli_version_and_help():
    out = subprocess.check_output([sys.executable, "-m", "tcpcom", "--version"], env=ENV, cwd=ROOT)
    assert __version__ in out.decode()
    out = subprocess.check_output([sys.executable, "-m", "tcpcom", "--help"], env=ENV, cwd=ROOT)
    assert b"demo" in out and b"server" in out and b"client" in out


def test_cli_server_prints_events_and_echoes():
    p = Proc(["-m", "tcpcom", "server", "0", "--echo", "--host", "127.0.0.1"])
    try:
        port = int(p.wait_line(r"LISTENING +(\d+)").group(1))
        s = raw_client(port)
        s.sendall(u"hallo \u00e4\0".encode("utf-8"))
        assert recv_until(s, 1) == u"hallo \u00e4\0".encode("utf-8")
        p.wait_line(u"MESSAGE +hallo \u00e4")
        s.close()
        p.p.send_signal(signal.SIGINT)
        assert p.finish() == 0
        p.wait_line("TERMINATED")
    finally:
        p.kill()


def test_cli_client_sends_typed_lines():
    got = []
    ev = threading.Event()

    def cb(state, msg):
        if state == "MESSAGE":
            got.append(msg)
            srv.sendMessage("ack " + msg)
            if len(got) == 2:
                ev.set()
    srv = TCPServer(0, cb, host="127.0.0.1")
    try:
        p = Proc(["-m", "tcpcom", "client", "127.0.0.1", str(srv.getPort())], stdin="eins\nzwei\n")
        assert ev.wait(DEADLINE)
        assert got == ["eins", "zwei"]
        assert p.finish() == 0
        assert "CONNECTED" in "\n".join(p.lines)
    finally:
        srv.terminate()


def start_echo_sample():
    p = Proc([os.path.join(SAMPLES, "echo_server.py"), "0"])
    port = int(p.wait_line(r"ready on port (\d+)").group(1))  # printed once `server` is assigned
    return p, port


def test_sample_echo_server_and_request_client():
    p, port = start_echo_sample()
    try:
        q = Proc([os.path.join(SAMPLES, "request_client.py"), "127.0.0.1", str(port), "eins", u"zw\u00f6i"])
        assert q.finish() == 0
        text = "\n".join(q.lines)
        assert "asked 'eins', got 'eins'" in text
        assert u"got 'zw\u00f6i'" in text
        p.wait_line("MESSAGE eins")
        p.p.send_signal(signal.SIGINT)  # loopForever ends on Ctrl-C and terminates
        assert p.finish() == 0
        p.wait_line("TERMINATED")
    finally:
        p.kill()


def test_sample_chat_pair():
    r, w = os.pipe()  # the server's keyboard
    server = subprocess.Popen([sys.executable, os.path.join(SAMPLES, "chat_server.py"), "0"], stdin=r,
                              stdout=subprocess.PIPE, env=ENV, cwd=ROOT)
    os.close(r)
    client = None
    try:
        port = int(re.search(rb"LISTENING (\d+)", server.stdout.readline()).group(1))
        client = Proc([os.path.join(SAMPLES, "chat_client.py"), "127.0.0.1", str(port), str(DEADLINE)],
                      stdin=u"hi there\nsch\u00f6n\n")
        assert server.stdout.readline().startswith(b"CONNECTED")
        assert server.stdout.readline() == b"client says: hi there\n"
        assert server.stdout.readline() == u"client says: sch\u00f6n\n".encode("utf-8")
        os.write(w, b"bye\n")
        os.close(w)  # the server's input ends: it terminates, the client sees it go
        assert server.wait(DEADLINE) == 0
        assert client.finish() == 0
        assert client.lines[-2:] == ["server says: bye", "DISCONNECTED "]
    finally:
        for p in (server, client and client.p):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        server.stdout.close()


def test_sample_chat_server_sends_typed_lines_to_client():
    # The server side reads stdin; here it gets its lines only once a client is on.
    r, w = os.pipe()
    p = subprocess.Popen([sys.executable, os.path.join(SAMPLES, "chat_server.py"), "0"], stdin=r,
                         stdout=subprocess.PIPE, env=ENV, cwd=ROOT)
    os.close(r)
    try:
        port = int(re.search(rb"LISTENING (\d+)", p.stdout.readline()).group(1))
        got = []
        ev = threading.Event()
        c = TCPClient("127.0.0.1", port, lambda s, m: s == "MESSAGE" and (got.append(m), ev.set()))
        assert c.connect()
        assert p.stdout.readline().startswith(b"CONNECTED")  # the server has its client: now type
        os.write(w, u"gr\u00fc\u00df dich\n".encode("utf-8"))
        assert ev.wait(DEADLINE)
        assert got == [u"gr\u00fc\u00df dich"]
        os.close(w)  # end of input: the server terminates
        assert p.wait(DEADLINE) == 0
        c.disconnect()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()


def test_sample_engine_multi_echo():
    p = Proc([os.path.join(SAMPLES, "engine_multi_echo.py"), "0", "30"])
    try:
        port = int(p.wait_line(r"LISTENING (\d+)").group(1))
        socks = [raw_client(port) for _ in range(3)]
        for i, s in enumerate(socks):
            assert b"welcome" in recv_until(s, 1, b"\r\n")
            s.sendall(b"hello %d\n" % i)
        for i, s in enumerate(socks):
            assert re.match(rb"c\d+ #1: HELLO %d\r\n" % i, recv_until(s, 1, b"\r\n"))
            s.close()
        p.wait_line("closed c")
        p.p.send_signal(signal.SIGINT)
        assert p.finish() == 0
        p.wait_line("total messages: 3")
    finally:
        p.kill()


SERVER_SCRIPT = r"""
import sys
from tcpcom import *

def onStateChanged(state, msg):
    sys.stdout.write("%s %s\n" % (state, msg))  # one write: the main thread prints too
    sys.stdout.flush()
    if state == "MESSAGE" and msg == "quit":
        server.terminate()

server = TCPServer(0, stateChanged=onStateChanged)
sys.stdout.write("script ends here\n")
"""


def test_a_server_script_keeps_running_after_its_last_line_until_terminated():
    # As with the original (its server thread is not a daemon): a classroom
    # script that only creates the server must keep serving.
    p = Proc(["-c", SERVER_SCRIPT])
    try:
        port = int(p.wait_line(r"LISTENING (\d+)").group(1))
        p.wait_line("script ends here")
        c = TCPClient("127.0.0.1", port, lambda s, m: None)
        assert c.connect()
        c.sendMessage("hello")
        p.wait_line("MESSAGE hello")
        assert p.p.poll() is None  # still running
        c.sendMessage("quit")
        assert p.finish() == 0
        p.wait_line("TERMINATED")
        c.disconnect()
    finally:
        p.kill()


class Device(object):
    """A device that speaks lines on a fixed port and forgets its settings when it restarts."""

    def __init__(self, port=0, boot=1):
        from tcpcom.engine import Listener
        self.boot = boot
        self.heard = []
        self.cond = threading.Condition()
        self.listener = Listener(port, self._handler, host="127.0.0.1", framing="line")
        self.port = self.listener.port

    def _handler(self, conn):
        volume = ["?"]

        def on_event(conn, event, data):
            if event != conn.DATA:
                return
            with self.cond:
                self.heard.append(data)
                self.cond.notify_all()
            if data.startswith("VOLUME "):
                volume[0] = data.split()[1]
                conn.send_message("OK " + data)
            elif data == "STATUS?":
                conn.send_message("STATUS boot=%d volume=%s" % (self.boot, volume[0]))
        return on_event

    def wait_heard(self, line):
        with self.cond:
            assert self.cond.wait_for(lambda: line in self.heard, DEADLINE), self.heard

    def close(self):
        self.listener.close()


def test_sample_device_keeper_sets_a_restarted_device_up_again():
    device = Device()
    port = device.port
    p = Proc([os.path.join(SAMPLES, "device_keeper.py"), "127.0.0.1", str(port), "--volume", "35",
              "--poll", "0.3", "--run-seconds", "60"])
    try:
        p.wait_line(r"CONNECTED 127\.0\.0\.1:%d \(connection 1\)" % port)
        device.wait_heard("VOLUME 35")
        p.wait_line(r"device: STATUS boot=%d volume=35" % device.boot)
        device.close()  # the device restarts ...
        p.wait_line(r"LOST: the device closed the connection")
        p.wait_line(r"RETRY 1 in 0\.\d s")
        p.wait_line(r"not polled: .*reconnecting")  # the poll says it is away, nothing is queued
        device = Device(port, boot=2)  # ... and is back on the same port, its settings forgotten
        p.wait_line(r"CONNECTED 127\.0\.0\.1:%d \(connection 2\)" % port)
        device.wait_heard("VOLUME 35")  # set up again
        p.wait_line(r"device: STATUS boot=%d volume=35" % device.boot)
        assert device.heard[0] == "VOLUME 35"  # no question asked while away came late
        p.p.send_signal(signal.SIGINT)
        assert p.finish() == 0
        p.wait_line(r"STOPPED \(interrupted\) after 2 connections")
        assert "Traceback" not in "\n".join(p.lines)
    finally:
        p.kill()
        device.close()
