# -*- coding: utf-8 -*-
"""Sans-IO framers and the HTTP request codec under Jython 2.7 and CPython 3.

Both are fed every split of their input, as in the pytest suite, so a
difference in how Jython treats bytes, bytearray, ``re`` or ``split`` shows.
"""
from __future__ import absolute_import, print_function

import unittest

from jyutil import text_type, utf8

from tcpcom.framing import DelimiterFramer, LineFramer, MessageTooLarge, RawFramer, make_framer
from tcpcom.httpcodec import (CONTINUE_RESPONSE, HTTPError, RequestParser, build_response,
                              parse_query, percent_decode)


def splits(data):
    """Every way to cut ``data`` in two or three pieces (and whole)."""
    n = len(data)
    yield [data]
    for i in range(n + 1):
        yield [data[:i], data[i:]]
    for i in range(0, n + 1, 3):
        for j in range(i, n + 1, 2):
            yield [data[:i], data[i:j], data[j:]]


def feed_all(framer, pieces):
    out = []
    for p in pieces:
        out.extend(framer.feed(p))
    return out


class Framers(unittest.TestCase):
    def test_delimiter_framer_every_split(self):
        data = utf8(u"ä\0Grüße\0\0€ end\0tail")
        for pieces in splits(data):
            self.assertEqual(feed_all(DelimiterFramer(b"\0"), pieces),
                             [utf8(u"ä"), utf8(u"Grüße"), b"", utf8(u"€ end")], pieces)

    def test_multibyte_delimiter_every_split(self):
        data = b"one\r\ntwo\r\r\nthree\r\n"
        for pieces in splits(data):
            self.assertEqual(feed_all(DelimiterFramer(u"\r\n"), pieces), [b"one", b"two\r", b"three"])

    def test_feed_accepts_bytearray_and_returns_byte_strings(self):
        msgs = DelimiterFramer(b"\0").feed(bytearray(b"ab\0cd\0"))
        self.assertEqual(msgs, [b"ab", b"cd"])
        self.assertTrue(all(isinstance(m, bytes) for m in msgs))

    def test_line_framer_every_split(self):
        data = utf8(u"a\r\nb\nc\rd\r\rü\n")
        for pieces in splits(data):
            self.assertEqual(feed_all(LineFramer(), pieces),
                             [b"a", b"b", b"c", b"d", b"", utf8(u"ü")], pieces)

    def test_raw_framer_passes_chunks(self):
        self.assertEqual(feed_all(RawFramer(), [b"ab", b"", bytearray(b"c")]), [b"ab", b"c"])

    def test_encode(self):
        self.assertEqual(DelimiterFramer(b"\0").encode(b"x"), b"x\0")
        self.assertEqual(LineFramer().encode(b"x"), b"x\r\n")
        self.assertEqual(make_framer("line").encode(b"y"), b"y\r\n")
        self.assertEqual(make_framer(u"||").encode(b"z"), b"z||")

    def test_too_large_keeps_the_messages_before(self):
        f = DelimiterFramer(b"\0", max_size=4)
        with self.assertRaises(MessageTooLarge) as ctx:
            f.feed(b"ok\0toolong")
        self.assertEqual(ctx.exception.messages, [b"ok"])
        f = LineFramer(max_size=4)
        self.assertRaises(MessageTooLarge, f.feed, b"abcdefgh")


GET = b"GET /gr%C3%BC%C3%9Fe?a=1&b=%C3%A4+x&a=2 HTTP/1.1\r\nHost: h\r\nX-Name: J\xc3\xbcrg\r\n\r\n"
POST = (b"POST /form HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 17\r\nExpect: 100-continue\r\n\r\nname=M%C3%BCller&")


class HTTPCodec(unittest.TestCase):
    def test_get_every_split(self):
        for pieces in splits(GET):
            p = RequestParser()
            reqs = feed_all(p, pieces)
            self.assertEqual(len(reqs), 1, pieces)
            r = reqs[0]
            self.assertEqual((r.method, r.path, r.version), (u"GET", u"/grüße", u"HTTP/1.1"))
            self.assertEqual(r.query, [(u"a", u"1"), (u"b", u"ä x"), (u"a", u"2")])
            self.assertEqual(r.header("x-name"), u"Jürg")
            self.assertTrue(r.keep_alive)
            self.assertIsInstance(r.path, text_type)

    def test_post_body_form_and_continue(self):
        p = RequestParser()
        head, body = POST.split(b"\r\n\r\n", 1)
        self.assertEqual(p.feed(head + b"\r\n\r\n"), [])
        self.assertTrue(p.want_continue())
        self.assertFalse(p.want_continue())
        r = p.feed(body)[0]
        self.assertEqual(r.body, b"name=M%C3%BCller&")
        self.assertEqual(r.form(), [(u"name", u"Müller")])
        self.assertEqual(CONTINUE_RESPONSE, b"HTTP/1.1 100 Continue\r\n\r\n")

    def test_pipelined_requests(self):
        p = RequestParser()
        reqs = p.feed(GET + b"GET /2 HTTP/1.0\r\n\r\n")
        self.assertEqual([r.path for r in reqs], [u"/grüße", u"/2"])
        self.assertFalse(reqs[1].keep_alive)
        self.assertIsNone(p.feed_eof())

    def test_errors_carry_the_status(self):
        cases = [(b"GARBAGE\r\n\r\n", 400), (b"GET / HTTP/2.0\r\n\r\n", 505),
                 (b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n\r\n", 414),
                 (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
                 (b"POST / HTTP/1.1\r\nContent-Length: 99999\r\n\r\n", 413),
                 (b"GET / HTTP/1.1\r\nX: " + b"v" * 200 + b"\r\n\r\n", 431)]
        for data, status in cases:
            p = RequestParser(max_request_line=64, max_header_bytes=128, max_body=1000)
            with self.assertRaises(HTTPError) as ctx:
                p.feed(data)
            self.assertEqual(ctx.exception.status, status, data)
            self.assertRaises(HTTPError, p.feed, b"")  # dead after an error

    def test_incomplete_request_at_eof(self):
        p = RequestParser()
        p.feed(b"GET / HT")
        self.assertRaises(HTTPError, p.feed_eof)

    def test_feed_rejects_text(self):
        self.assertRaises(TypeError, RequestParser().feed, u"GET / HTTP/1.1\r\n\r\n")

    def test_percent_decode_and_query(self):
        self.assertEqual(percent_decode(b"a%20b%zz%4"), u"a b%zz%4")
        self.assertEqual(percent_decode(u"%C3%A4+", plus_as_space=True), u"ä ")
        self.assertEqual(parse_query(u"x=%E2%82%AC&&y"), [(u"x", u"€"), (u"y", u"")])

    def test_build_response(self):
        out = build_response(200, u"Grüße", date=False, server_name="tcpcom")
        head, body = out.split(b"\r\n\r\n", 1)
        self.assertEqual(body, utf8(u"Grüße"))
        self.assertTrue(head.startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertIn(b"Content-Type: text/html; charset=utf-8", head)
        self.assertIn(("Content-Length: %d" % len(utf8(u"Grüße"))).encode("ascii"), head)
        self.assertIn(b"Server: tcpcom", head)
        self.assertTrue(build_response(404, b"x", head=True, date=False).endswith(b"\r\n\r\n"))
        self.assertNotIn(b"Content-Length", build_response(204, date=False))
        self.assertIn(b"Date: ", build_response(200, b"ok"))
        self.assertRaises(ValueError, build_response, 200, b"", headers={"X": "a\r\nb"})
        self.assertIn(b"X-A: 1", build_response(200, b"", headers=[("X-A", 1)], date=False))


if __name__ == "__main__":
    unittest.main()
