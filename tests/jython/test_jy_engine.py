# -*- coding: utf-8 -*-
"""The engine's multi-connection Listener and connect() under Jython 2.7 and CPython 3."""
from __future__ import absolute_import, print_function

import logging
import struct
import threading
import unittest

from jyutil import DEADLINE, Recorder, engine_threads, raw_client, recv_until, text_type, utf8, wait_until

from tcpcom.engine import (BIG_SEND, Connection, ConnectionClosedError, Handler, Listener, ReadTimeout,
                           SendTimeout, connect)
from tcpcom.framing import MessageTooLarge


class Echo(Handler):
    """One instance per connection: answers with its own number."""
    count = [0]

    def connection_made(self, conn):
        Echo.count[0] += 1
        self.n = Echo.count[0]
        self.seen = []

    def message_received(self, conn, message):
        self.seen.append(message)
        conn.send_message(u"%s von %d" % (message, id(self)))


class Collect(Handler):
    def __init__(self):
        Handler.__init__(self)
        self.rec = Recorder("conn")

    def connection_made(self, conn):
        self.rec("made", conn.id)

    def message_received(self, conn, message):
        self.rec("MESSAGE", message)

    def connection_lost(self, conn, reason):
        self.rec("lost", reason)


class LengthPrefixed(object):
    """A framing with a header: a 4-byte big-endian length, then that many bytes."""

    def __init__(self, max_size):
        self.max_size = max_size
        self._buf = b""

    def encode(self, payload):
        return struct.pack("!I", len(payload)) + payload

    def feed(self, data):
        self._buf += bytes(data)
        messages = []
        while len(self._buf) >= 4:
            (size,) = struct.unpack("!I", self._buf[:4])
            if size > self.max_size:
                raise MessageTooLarge(size, self.max_size, messages)
            if len(self._buf) < 4 + size:
                break
            messages.append(self._buf[4:4 + size])
            self._buf = self._buf[4 + size:]
        return messages


class OnlyMessages(object):
    """A handler object that is no Handler and has neither connection_made nor connection_lost."""

    def __init__(self):
        self.rec = Recorder("only")

    def message_received(self, conn, message):
        self.rec("MESSAGE", message)


class Errors(logging.Handler):
    def __init__(self):
        logging.Handler.__init__(self, logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record)


class EngineTest(unittest.TestCase):
    def setUp(self):
        self.cleanups = []

    def tearDown(self):
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception:
                pass

    def listener(self, *args, **kw):
        kw.setdefault("host", "127.0.0.1")
        lst = Listener(0, *args, **kw)
        self.cleanups.append(lst.close)
        return lst

    def client(self, port, **kw):
        h = Collect()
        conn = connect("127.0.0.1", port, h, DEADLINE, **kw)
        self.cleanups.append(conn.close)
        return conn, h.rec

    def test_many_connections_each_with_its_own_handler(self):
        handlers = []

        def on_connection(conn):
            h = Echo()
            handlers.append(h)
            return h

        lst = self.listener(on_connection, framing="line")
        clients = [self.client(lst.port, framing="line") for _ in range(6)]
        for i, (conn, rec) in enumerate(clients):
            conn.send_message(u"Grüße %d" % i)
        replies = [rec.wait_messages(1)[0] for conn, rec in clients]
        for i, reply in enumerate(replies):
            self.assertTrue(reply.startswith(u"Grüße %d von " % i), reply)
        self.assertEqual(len(set(r.split(u" von ")[1] for r in replies)), 6)  # 6 handler objects
        wait_until(lambda: len(lst.connections) == 6, what="6 open connections")
        self.assertEqual(sorted(m for h in handlers for m in h.seen), [u"Grüße %d" % i for i in range(6)])
        lst.close()
        for conn, rec in clients:
            rec.wait_state("lost")
        self.assertEqual(lst.connections, [])
        wait_until(lambda: not engine_threads(), what="engine threads ended")

    def test_qsys_style_function_handler(self):
        events = Recorder("qsys")

        def socket_handler(conn, event, data):
            events(event, data)
            if event == Connection.DATA:
                conn.send(data.upper() + u"\r\n")

        def on_connection(conn):
            conn.handler = socket_handler

        lst = self.listener(on_connection, framing="line")
        s = raw_client(lst.port)
        self.cleanups.append(s.close)
        s.sendall(utf8(u"grüß gott\r\n"))
        self.assertEqual(recv_until(s, 1, b"\r\n"), utf8(u"grüß gott".upper() + u"\r\n"))
        s.close()
        events.wait_state(Connection.CLOSED)
        self.assertEqual(events.states(), [Connection.CONNECTED, Connection.DATA, Connection.CLOSED])

    def test_raw_framing_with_characters_split_across_sends(self):
        holder = []

        def on_connection(conn):
            holder.append(Collect())
            return holder[-1]

        lst = self.listener(on_connection, framing="raw")
        s = raw_client(lst.port)
        self.cleanups.append(s.close)
        data = utf8(u"ä€😀")
        for i in range(len(data)):  # byte by byte: however they are read, no char breaks
            s.sendall(data[i:i + 1])
        wait_until(lambda: holder, what="connection accepted")
        rec = holder[0].rec
        rec.wait_for(lambda ev: u"".join(m for st, m in ev if st == "MESSAGE") == u"ä€😀")

    def test_bytes_when_encoding_is_none(self):
        class BytesEcho(Handler):
            def message_received(self, conn, message):
                conn.send_message(message + b"!")

        lst = self.listener(lambda conn: BytesEcho(), framing=b"\0", encoding=None)
        conn, rec = self.client(lst.port, encoding=None)
        conn.send_message(b"\xff\x00x")  # a NUL inside is a delimiter: two messages
        msgs = rec.wait_messages(2)
        self.assertEqual(msgs, [b"\xff!", b"x!"])
        self.assertTrue(all(isinstance(m, bytes) for m in msgs), msgs)

    def test_request_returns_the_reply(self):
        lst = self.listener(lambda conn: Echo())
        conn, rec = self.client(lst.port)
        self.assertTrue(conn.request(u"frage ö", DEADLINE).startswith(u"frage ö von "))
        self.assertIsInstance(rec.wait_messages(1)[0], text_type)

    def test_max_connections_refuses_the_next(self):
        refused = threading.Event()
        lst = self.listener(lambda conn: Echo(), max_connections=1, on_refused=lambda addr: refused.set())
        conn, rec = self.client(lst.port)
        self.assertTrue(conn.request(u"eins", DEADLINE))
        s = raw_client(lst.port)
        self.cleanups.append(s.close)
        self.assertEqual(s.recv(10), b"")  # closed at once
        self.assertTrue(refused.wait(DEADLINE))

    def test_read_timeout_closes_an_idle_connection(self):
        lost = Recorder("server side")

        class Idle(Handler):
            def connection_lost(self, conn, reason):
                lost("lost", reason)

        lst = self.listener(lambda conn: Idle(), read_timeout=0.3)
        conn, rec = self.client(lst.port)
        lost.wait_state("lost")
        self.assertIsInstance(lost.messages("lost")[0], ReadTimeout)
        rec.wait_state("lost")

    def test_send_timeout_when_the_peer_does_not_read(self):
        # Jython: shutdown() does not wake a blocked sendall(); the engine's close does
        import socket
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(5)
        self.cleanups.append(lsock.close)
        conn, rec = self.client(lsock.getsockname()[1], send_timeout=0.5)
        peer, _ = lsock.accept()  # never reads
        self.cleanups.append(peer.close)
        chunk = b"x" * 65536
        with self.assertRaises(ConnectionClosedError):
            for _ in range(100000):  # bounded: the buffers hold a few MB at most
                conn.send(chunk)
        rec.wait_state("lost")
        self.assertIsInstance(rec.messages("lost")[0], SendTimeout)

    def test_an_address_this_machine_lacks_is_not_port_in_use(self):
        # Jython reports every bind failure as errno 98 "Address already in use"
        import errno
        import socket
        from tcpcom.engine import PortInUseError
        from tcpcom.udp import UDPEndpoint
        for make in (lambda: Listener(0, host="203.0.113.77"), lambda: UDPEndpoint(0, host="203.0.113.77")):
            with self.assertRaises(socket.error) as ctx:
                make().close()
            self.assertNotIsInstance(ctx.exception, PortInUseError)
            self.assertEqual(ctx.exception.errno, errno.EADDRNOTAVAIL)

    def test_close_from_another_thread_wakes_the_reader(self):
        # Jython: shutdown() alone would leave the reader blocked in recv()
        lst = self.listener(lambda conn: Echo())
        conn, rec = self.client(lst.port)
        self.assertTrue(conn.request(u"hallo", DEADLINE))
        t = threading.Thread(target=conn.close)
        t.daemon = True
        t.start()
        t.join(DEADLINE)
        self.assertFalse(t.is_alive(), "close() did not return")
        self.assertTrue(conn.wait_closed(DEADLINE))
        rec.wait_state("lost")
        wait_until(lambda: not lst.connections, what="the listener saw the connection end")

    def test_a_reconnecting_connection_comes_back_after_its_server_restarts(self):
        from tcpcom.engine import ReconnectingConnection, ReconnectingError
        rec = Recorder("redial")

        class Keep(Collect):
            def __init__(self):
                Collect.__init__(self)
                self.rec = rec

            def reconnecting(self, conn, attempt, delay, reason):
                self.rec("reconnecting", (attempt, delay))

        lst = Listener(0, lambda conn: Echo(), host="127.0.0.1", framing="line")
        port = lst.port
        self.cleanups.append(lst.close)
        rc = ReconnectingConnection("127.0.0.1", port, Keep(), delay=0.05, max_delay=0.2, framing="line")
        self.cleanups.append(rc.close)
        rec.wait_state("made")
        self.assertTrue(rc.request(u"eins", DEADLINE).startswith(u"eins von "))
        lst.close()
        rec.wait_state("reconnecting", 2)  # a dial to the dead port failed and is retried
        self.assertRaises(ReconnectingError, rc.send_message, u"nothing")
        lst = Listener(port, lambda conn: Echo(), host="127.0.0.1", framing="line")
        self.cleanups.append(lst.close)
        rec.wait_state("made", 2)
        self.assertTrue(rc.request(u"zwei", DEADLINE).startswith(u"zwei von "))
        self.assertEqual([s for s, _ in rec.events if s in ("made", "lost")], ["made", "lost", "made"])
        rc.close()
        self.assertTrue(rc.wait_closed(DEADLINE))
        rec.wait_state("lost", 2)
        lst.close()
        wait_until(lambda: not engine_threads(), what="engine threads ended")

    def test_big_message_with_a_length_prefix_and_a_handler_with_only_message_received(self):
        errors = Errors()
        logging.getLogger("tcpcom").addHandler(errors)
        self.cleanups.append(lambda: logging.getLogger("tcpcom").removeHandler(errors))
        h = OnlyMessages()
        lst = self.listener(lambda conn: h, framing=LengthPrefixed, encoding=None, max_message_size=4 * BIG_SEND)
        conn, rec = self.client(lst.port, framing=LengthPrefixed, encoding=None)
        big = b"xy" * (3 * BIG_SEND // 4)  # 1.5 MiB
        conn.send_message(big)
        conn.send_message(b"after")
        msgs = h.rec.wait_messages(2)
        self.assertEqual([len(m) for m in msgs], [len(big), 5])
        self.assertTrue(msgs[0] == big and msgs[1] == b"after")
        conn.close()
        wait_until(lambda: not lst.connections, what="the server side ended")
        self.assertEqual([r.getMessage() for r in errors.records], [])

    def test_strict_decoding_delivers_the_messages_before_a_bad_one_then_ends(self):
        holder = []

        def on_connection(conn):
            holder.append(Collect())
            return holder[-1]

        lst = self.listener(on_connection, errors="strict")
        s = raw_client(lst.port)
        self.cleanups.append(s.close)
        s.sendall(b"one\0two\0bad\xff\0three\0")
        wait_until(lambda: holder, what="connection accepted")
        events = holder[0].rec.wait_state("lost")
        self.assertEqual([m for st, m in events if st == "MESSAGE"], [u"one", u"two"])
        self.assertTrue(isinstance(events[-1][1], UnicodeDecodeError), events)


if __name__ == "__main__":
    unittest.main()
