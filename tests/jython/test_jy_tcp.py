# -*- coding: utf-8 -*-
"""TCPServer / TCPClient (the TigerJython face) under Jython 2.7 and CPython 3."""
from __future__ import absolute_import, print_function

import socket
import threading
import unittest

from jyutil import (DEADLINE, JYTHON, PY2, Recorder, engine_threads, raw_client, raw_listener,
                    recv_until, text_type, utf8, wait_until)

from tcpcom import TCPClient, TCPServer
from tcpcom._compat import LOSSLESS_ERRORS

GREETING = u"Grüezi, Jürg! Ça va? 3 € — 😀"


class Base(unittest.TestCase):
    def setUp(self):
        self.cleanups = []

    def tearDown(self):
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception:
                pass

    def echo_server(self, prefix=u"echo: ", **kw):
        rec = Recorder("server")

        def on_event(state, msg):
            if state == TCPServer.MESSAGE:
                server.sendMessage(prefix + msg)

        rec.on_event = on_event
        server = TCPServer(0, rec, host="127.0.0.1", **kw)
        self.cleanups.append(server.terminate)
        rec.wait_state(TCPServer.LISTENING)
        return server, rec

    def client(self, port, name="client", **kw):
        rec = Recorder(name)
        c = TCPClient("127.0.0.1", port, rec, **kw)
        self.cleanups.append(c.disconnect)
        return c, rec


class RoundTrip(Base):
    def test_unicode_text_round_trip(self):
        server, srec = self.echo_server()
        c, crec = self.client(server.getPort())
        self.assertTrue(c.connect(DEADLINE))
        reply = c.sendMessage(GREETING, DEADLINE)
        self.assertEqual(reply, u"echo: " + GREETING)
        self.assertEqual(srec.wait_messages(1), [GREETING])
        self.assertIsInstance(srec.messages()[0], text_type)
        self.assertEqual(crec.wait_messages(1), [u"echo: " + GREETING])

    def test_utf8_byte_string_is_sent_unchanged_and_arrives_as_text(self):
        # On Jython a str literal from a UTF-8 source file is such a byte string.
        server, srec = self.echo_server()
        c, crec = self.client(server.getPort())
        self.assertTrue(c.connect(DEADLINE))
        self.assertEqual(c.sendMessage(utf8(GREETING), DEADLINE), u"echo: " + GREETING)
        self.assertEqual(srec.wait_messages(1), [GREETING])

    def test_plain_str_and_unicode_both_work_and_compare_equal_to_str_literals(self):
        server, srec = self.echo_server(prefix=u"")
        c, crec = self.client(server.getPort())
        self.assertTrue(c.connect(DEADLINE))
        c.sendMessage("on")
        c.sendMessage(u"on")
        msgs = srec.wait_messages(2)
        self.assertEqual(msgs, ["on", "on"])
        self.assertTrue(msgs[0] == "on" and "echo " + msgs[1] == "echo on")

    def test_many_messages_in_order(self):
        server, srec = self.echo_server(prefix=u"")
        c, crec = self.client(server.getPort())
        self.assertTrue(c.connect(DEADLINE))
        sent = [u"%d ä" % i for i in range(200)]
        for m in sent:
            c.sendMessage(m)
        self.assertEqual(crec.wait_messages(200), sent)
        self.assertFalse(srec.overlap or crec.overlap)

    def test_wire_format_is_utf8_plus_nul(self):
        # what an original tcpcom peer (or any raw socket) sees and sends
        lsock = raw_listener()
        self.cleanups.append(lsock.close)
        c, crec = self.client(lsock.getsockname()[1])
        result = {}

        def original_style_peer():
            conn, _ = lsock.accept()
            conn.settimeout(DEADLINE)
            data = recv_until(conn, 2)
            result["wire"] = data
            # the original puts the script's byte string on the wire unchanged
            conn.sendall(data)
            conn.close()

        t = threading.Thread(target=original_style_peer)
        t.daemon = True
        t.start()
        self.assertTrue(c.connect(DEADLINE))
        c.sendMessage(GREETING)
        c.sendMessage(utf8(u"zwei ö"))
        self.assertEqual(crec.wait_messages(2), [GREETING, u"zwei ö"])
        t.join(DEADLINE)
        self.assertEqual(result["wire"], utf8(GREETING) + b"\0" + utf8(u"zwei ö") + b"\0")

    def test_byte_string_that_is_not_utf8(self):
        # Jython stores a str literal as Latin-1 code points when a program such as
        # TigerJython hands it the source as text: "Grüezi" is 'Gr\xfcezi'. The
        # TigerJython face sends such a str as the text it shows (UTF-8 on the wire);
        # on Python 3, bytes are bytes and go out unchanged.
        lsock = raw_listener()
        self.cleanups.append(lsock.close)
        c, crec = self.client(lsock.getsockname()[1])
        self.assertTrue(c.connect(DEADLINE))
        conn, _ = lsock.accept()
        self.cleanups.append(conn.close)
        conn.settimeout(DEADLINE)
        c.sendMessage(b"Gr\xfcezi")
        expected = utf8(u"Grüezi") if PY2 else b"Gr\xfcezi"
        self.assertEqual(recv_until(conn, 1), expected + b"\0")

    def test_original_style_client_bytes_arrive_as_text(self):
        server, srec = self.echo_server()
        s = raw_client(server.getPort())
        self.cleanups.append(s.close)
        s.sendall(utf8(u"Grüße") + b"\0")
        self.assertEqual(recv_until(s, 1), utf8(u"echo: Grüße") + b"\0")
        self.assertEqual(srec.messages(), [u"Grüße"])

    def test_invalid_utf8_is_delivered_not_dropped(self):
        server, srec = self.echo_server(prefix=u"")
        s = raw_client(server.getPort())
        self.cleanups.append(s.close)
        s.sendall(b"a\xffb\0")
        msg = srec.wait_messages(1)[0]
        recv_until(s, 1)  # the echo, so that it is not sent to a closed socket
        self.assertEqual(msg, b"a\xffb".decode("utf-8", LOSSLESS_ERRORS))
        if PY2:  # no surrogateescape on Jython or CPython 2.7: U+FFFD replaces the bad byte
            self.assertEqual(msg, u"a\ufffdb")
        else:
            self.assertEqual(msg.encode("utf-8", "surrogateescape"), b"a\xffb")

    def test_send_message_with_response_inside_callback(self):
        server, srec = self.echo_server()
        got = []
        done = threading.Event()

        def on_event(state, msg):
            if state == TCPClient.MESSAGE and msg == u"echo: first":
                got.append(c.sendMessage(u"zweite ä", DEADLINE))
                done.set()

        c, crec = self.client(server.getPort())
        crec.on_event = on_event
        self.assertTrue(c.connect(DEADLINE))
        c.sendMessage(u"first")
        self.assertTrue(done.wait(DEADLINE))
        self.assertEqual(got, [u"echo: zweite ä"])


class LifeCycle(Base):
    def test_second_client_gets_server_occupied(self):
        server, srec = self.echo_server()
        c1, r1 = self.client(server.getPort(), "c1")
        self.assertTrue(c1.connect(DEADLINE))
        c2, r2 = self.client(server.getPort(), "c2", occupiedWait=DEADLINE)  # ends at the hang-up
        self.assertFalse(c2.connect(DEADLINE))
        self.assertEqual(r2.states(), ["CONNECTING", "SERVER_OCCUPIED"])
        self.assertFalse(c2.isConnected())
        self.assertEqual(c1.sendMessage(u"still there?", DEADLINE), u"echo: still there?")

    def test_server_disconnect_wakes_the_blocked_reader(self):
        # Jython: shutdown() does not wake recv(); the engine must, or this hangs
        server, srec = self.echo_server()
        c, crec = self.client(server.getPort())
        self.assertTrue(c.connect(DEADLINE))
        srec.wait_state("CONNECTED")
        server.disconnect()
        srec.wait_state("LISTENING", 2)
        crec.wait_state("DISCONNECTED")
        self.assertFalse(c.isConnected())
        self.assertTrue(c.connect(DEADLINE))  # the server takes the next client

    def test_client_disconnect_returns_with_event_delivered(self):
        server, srec = self.echo_server()
        c, crec = self.client(server.getPort())
        self.assertTrue(c.connect(DEADLINE))
        c.disconnect()
        self.assertEqual(crec.states()[-1], "DISCONNECTED")
        srec.wait_state("LISTENING", 2)

    def test_terminate_ends_everything_and_frees_the_port(self):
        server, srec = self.echo_server()
        port = server.getPort()
        c, crec = self.client(port)
        self.assertTrue(c.connect(DEADLINE))
        server.terminate()
        # the port is free when terminate() returns: a plain socket binds it at once
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen(1)
        finally:
            s.close()
        self.assertEqual(srec.states()[-1], "TERMINATED")
        self.assertTrue(server.isTerminated())
        crec.wait_state("DISCONNECTED")
        wait_until(lambda: not engine_threads(), what="engine threads ended")

    def test_terminate_and_rebind_the_same_port_repeatedly(self):
        port = 0
        for round_ in range(4):
            rec = Recorder("server%d" % round_)
            server = TCPServer(port, rec, host="127.0.0.1")
            self.cleanups.append(server.terminate)
            rec.wait_for(lambda ev: ev and ev[0][0] in ("LISTENING", "PORT_IN_USE"))
            self.assertEqual(rec.states()[0], "LISTENING", "round %d" % round_)
            port = server.getPort()
            c, crec = self.client(port)
            self.assertTrue(c.connect(DEADLINE))
            c.sendMessage(u"runde %d ü" % round_)
            rec.wait_messages(1)
            server.terminate()
            crec.wait_state("DISCONNECTED")

    def test_port_in_use(self):
        server, srec = self.echo_server()
        rec = Recorder("second")
        other = TCPServer(server.getPort(), rec, host="127.0.0.1")
        self.cleanups.append(other.terminate)
        rec.wait_state("PORT_IN_USE")
        self.assertTrue(other.isTerminated())
        self.assertEqual(rec.messages("PORT_IN_USE"), [str(server.getPort())])

    def test_terminate_twice_and_from_a_callback(self):
        rec = Recorder("server")
        rec.on_event = lambda state, msg: server.terminate() if state == "CONNECTED" else None
        server = TCPServer(0, rec, host="127.0.0.1")
        self.cleanups.append(server.terminate)
        c, crec = self.client(server.getPort())
        c.connect(DEADLINE)
        rec.wait_state("TERMINATED")
        server.terminate()
        self.assertEqual(rec.states().count("TERMINATED"), 1)

    def test_connection_failed(self):
        s = raw_listener()
        port = s.getsockname()[1]
        s.close()
        wait_until(lambda: _refused(port), what="port %d refusing" % port)
        c, crec = self.client(port)
        self.assertFalse(c.connect(DEADLINE))
        self.assertEqual(crec.states(), ["CONNECTING", "CONNECTION_FAILED"])

    def test_read_timeout_disconnects_a_silent_client(self):
        server, srec = self.echo_server()
        c, crec = self.client(server.getPort())
        self.assertTrue(c.connect(DEADLINE))
        srec.wait_state("CONNECTED")
        server.setTimeout(0.3)
        crec.wait_state("DISCONNECTED")
        srec.wait_state("LISTENING", 2)


def _refused(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), DEADLINE)
    except (socket.error, OSError):
        return True
    s.close()
    return False


if __name__ == "__main__":
    unittest.main()
