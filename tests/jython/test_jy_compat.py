# -*- coding: utf-8 -*-
"""tcpcom._compat and the interpreter behaviour the library relies on.

Each test names a difference between Jython 2.7 and CPython 3 that the
library works around (see README, "TigerJython / Jython").
"""
from __future__ import absolute_import, print_function

import codecs
import select
import socket
import sys
import threading
import unittest

from jyutil import DEADLINE, JYTHON, PY2, raw_listener, utf8

from tcpcom import _compat, cli
from tcpcom._compat import (LOCK_TIMEOUT, LOSSLESS_ERRORS, get_ident, make_thread, monotonic,
                            queue, text_type, to_bytes)
from tcpcom.engine import wait_readable


class Modules(unittest.TestCase):
    def test_every_library_module_imports(self):
        # catches syntax Jython 2.7 lacks (f-strings, nonlocal, ...) and
        # non-ASCII source without a coding line
        import importlib
        import os
        import pkgutil
        import tcpcom
        names = []
        packages = [tcpcom]
        try:
            import xtcompat  # comes with its own issue
            packages.append(xtcompat)
        except ImportError:
            pass
        for pkg in packages:
            for _, name, _ in pkgutil.iter_modules([os.path.dirname(pkg.__file__)]):
                if name != "__main__":
                    names.append(pkg.__name__ + "." + name)
        self.assertIn("tcpcom.engine", names)
        for name in names:
            importlib.import_module(name)


class Text(unittest.TestCase):
    def test_to_bytes(self):
        self.assertEqual(to_bytes(u"Grüße"), utf8(u"Grüße"))
        self.assertEqual(to_bytes(u"abc"), b"abc")
        self.assertIsInstance(to_bytes(u"abc"), bytes)  # Jython's sendall rejects any unicode
        self.assertEqual(to_bytes(b"\xff\x00"), b"\xff\x00")
        self.assertEqual(to_bytes(bytearray(b"ab")), b"ab")
        self.assertEqual(to_bytes(memoryview(b"mv")), b"mv")  # bytes(memoryview) is its repr on 2.7
        self.assertRaises(TypeError, to_bytes, 42)
        self.assertRaises(TypeError, to_bytes, None)

    def test_sendall_of_unicode(self):
        # Jython refuses unicode, even ASCII; CPython 3 refuses str; CPython 2.7
        # encodes it as ASCII, so non-ASCII text fails there. Either way the
        # library must encode first, which is why everything goes through to_bytes.
        l = raw_listener()
        c = socket.create_connection(l.getsockname(), DEADLINE)
        s, _ = l.accept()
        try:
            if PY2 and not JYTHON:
                self.assertRaises(UnicodeEncodeError, c.sendall, u"äbc")
            else:
                self.assertRaises(TypeError, c.sendall, u"abc")
            c.sendall(to_bytes(u"äbc"))
            s.settimeout(DEADLINE)
            got = b""
            while len(got) < 4:
                got += s.recv(10)
            self.assertEqual(got, utf8(u"äbc"))
        finally:
            for x in (c, s, l):
                x.close()

    def test_lossless_errors(self):
        # surrogateescape is Python 3's (PEP 383): neither Jython nor CPython 2.7 has it
        self.assertEqual(LOSSLESS_ERRORS, "replace" if PY2 else "surrogateescape")
        text = b"a\xffb".decode("utf-8", LOSSLESS_ERRORS)
        self.assertEqual(len(text), 3)

    def test_incremental_decoder_across_chunks(self):
        d = codecs.getincrementaldecoder("utf-8")(LOSSLESS_ERRORS)
        data = utf8(u"ä€😀")
        self.assertEqual(u"".join(d.decode(data[i:i + 1]) for i in range(len(data))), u"ä€😀")

    def test_str_literal_comparisons(self):
        # what a TigerJython script does with a received message (delivered as text)
        msg = b"on".decode("utf-8")
        self.assertTrue(msg == "on" and "on" == msg)
        self.assertEqual("got " + msg, u"got on")
        self.assertEqual({"on": 1}[msg], 1)
        self.assertIsInstance(msg, text_type)


class Threads(unittest.TestCase):
    def test_monotonic_is_fine_grained_and_never_goes_back(self):
        # time.time() on Jython moves in 1 ms steps; monotonic uses System.nanoTime
        samples = [monotonic() for _ in range(2000)]
        self.assertTrue(all(b >= a for a, b in zip(samples, samples[1:])))
        steps = [b - a for a, b in zip(samples, samples[1:]) if b > a]
        self.assertTrue(steps and min(steps) < 0.0005, min(steps) if steps else None)

    def test_make_thread_is_daemon(self):
        done = threading.Event()
        t = make_thread(done.set, "tcpcom-test")
        self.assertTrue(t.daemon)
        t.start()
        self.assertTrue(done.wait(DEADLINE))
        t.join(DEADLINE)

    def test_get_ident_and_thread_local(self):
        local = threading.local()
        local.x = "main"
        seen = []

        def other():
            seen.append((get_ident(), getattr(local, "x", None)))

        t = make_thread(other, "tcpcom-test")
        t.start()
        t.join(DEADLINE)
        self.assertNotEqual(seen[0][0], get_ident())
        self.assertIsNone(seen[0][1])
        self.assertEqual(local.x, "main")

    def test_lock_timeout_flag_matches_the_interpreter(self):
        self.assertEqual(LOCK_TIMEOUT, not PY2)

    def test_event_and_condition_waits_end(self):
        e = threading.Event()
        self.assertFalse(e.wait(0.01))  # bool on Jython too
        c = threading.Condition()
        with c:
            c.wait(0.01)  # returns None on Jython/2.7, a bool on 3: never relied on

    def test_queue_module(self):
        q = queue.Queue()
        q.put(1)
        self.assertEqual(q.get(True, DEADLINE), 1)
        self.assertRaises(queue.Empty, q.get, True, 0.01)


class Sockets(unittest.TestCase):
    def test_wait_readable_has_no_spurious_wakeup_after_connect(self):
        # Jython's poll() reports POLLERR right after connect (the connect
        # future is passed as the "exception"); wait_readable asks for POLLIN only.
        l = raw_listener()
        try:
            for _ in range(20):
                c = socket.create_connection(l.getsockname(), DEADLINE)
                self.assertFalse(wait_readable(c, 0.02))  # at once, as connect() does
                s, _ = l.accept()
                s.sendall(b"x")
                self.assertTrue(wait_readable(c, DEADLINE))
                s.close()
                c.close()
        finally:
            l.close()

    def test_wait_readable_does_not_leave_poll_objects_on_the_socket(self):
        l = raw_listener()
        c = socket.create_connection(l.getsockname(), DEADLINE)
        s, _ = l.accept()
        try:
            for _ in range(5):
                wait_readable(c, 0)
            selectors = getattr(getattr(c, "_sock", None), "selectors", None)
            if selectors is not None:  # Jython
                self.assertEqual(len(selectors), 0)
        finally:
            for x in (c, s, l):
                x.close()

    def test_wake_reader_ends_a_blocked_recv(self):
        l = raw_listener()
        c = socket.create_connection(l.getsockname(), DEADLINE)
        s, _ = l.accept()
        got = []
        t = make_thread(lambda: got.append(c.recv(10)), "tcpcom-test")
        t.start()
        try:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except (socket.error, OSError):
                pass
            _compat.wake_reader(c)
            t.join(DEADLINE)
            self.assertFalse(t.is_alive(), "recv() still blocked after shutdown + wake_reader")
            self.assertFalse(got[0])  # end of stream
        finally:
            for x in (c, s, l):
                x.close()

    def test_close_listening_frees_the_port_at_once(self):
        for _ in range(5):
            l = raw_listener()
            port = l.getsockname()[1]
            _compat.close_listening(l)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
                s.listen(1)
            finally:
                _compat.close_listening(s)

    def test_poll_or_select_exists(self):
        self.assertTrue(hasattr(select, "poll") or hasattr(select, "select"))


class Cli(unittest.TestCase):
    def test_demo_prints_every_event(self):
        lines = []

        class Out(object):
            def write(self, s):
                lines.append(s)

            def flush(self):
                pass

        old = sys.stdout
        sys.stdout = Out()
        try:
            code = cli.run_demo()
        finally:
            sys.stdout = old
        text = u"".join(x if isinstance(x, text_type) else x.decode("utf-8") for x in lines)
        self.assertEqual(code, 0)
        self.assertIn(u"got: Grüezi", text)
        self.assertIn(u"TERMINATED", text)


class AsciiConsole(object):
    """A console that cannot show non-ASCII (Jython in a C locale)."""
    encoding = "ascii"

    def __init__(self):
        self.text = []

    def write(self, s):
        s.encode("ascii")  # raises UnicodeEncodeError like such a console
        self.text.append(s)

    def flush(self):
        pass


class CliOnAsciiConsole(unittest.TestCase):
    def test_demo_escapes_what_the_console_cannot_show(self):
        out = AsciiConsole()
        old = sys.stdout
        sys.stdout = out
        try:
            code = cli.run_demo()
        finally:
            sys.stdout = old
        text = "".join(out.text)
        self.assertEqual(code, 0)
        self.assertIn("got: Gr\\xfcezi", text)
        self.assertIn("TERMINATED", text)


if __name__ == "__main__":
    unittest.main()
