"""Tests for tcpcom.httpcodec, the sans-IO HTTP/1.1 request codec.

The core property: a byte stream gives the same requests (or the same
HTTPError) however it is cut into chunks.  Every case in CASES is fed whole,
byte by byte, at every single split point, and in random chunkings.
"""
from __future__ import absolute_import, division, print_function, unicode_literals

import io
import os
import random
import shutil
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tcpcom.httpcodec import (  # noqa: E402
    CONTINUE_RESPONSE, REASONS, HTTPError, Request, RequestParser, build_response, parse_query,
    percent_decode,
)

pytestmark = pytest.mark.timeout(60)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(max_request_line=32, max_header_bytes=64, max_body=16, max_headers=3)


# -- harness ----------------------------------------------------------------

def summary(req):
    return (req.method, req.target, req.path, req.raw_path, req.query_string,
            tuple(req.query), req.version, tuple(req.headers), req.body,
            req.keep_alive)


def run(chunks, limits=None):
    """Feed chunks, then EOF.  Returns (request summaries, error or None).

    The error is (status, reason) from feed() or feed_eof(); requests
    delivered with the error (HTTPError.requests) are included.
    """
    parser = RequestParser(**(limits or {}))
    got = []
    for chunk in chunks:
        try:
            got.extend(parser.feed(chunk))
        except HTTPError as err:
            got.extend(err.requests)
            # a dead parser keeps raising the same error
            with pytest.raises(HTTPError) as again:
                parser.feed(b"more")
            assert (again.value.status, again.value.reason) == (err.status, err.reason)
            assert again.value.requests == []
            return [summary(r) for r in got], (err.status, err.reason)
    partial = parser.has_partial
    try:
        assert parser.feed_eof() is None
        assert not partial
    except HTTPError as err:
        assert partial
        return [summary(r) for r in got], (err.status, err.reason)
    return [summary(r) for r in got], None


def split_at(data, points):
    points = sorted(set(p for p in points if 0 <= p <= len(data)))
    chunks, last = [], 0
    for p in points:
        chunks.append(data[last:p])
        last = p
    chunks.append(data[last:])
    return chunks


def chunkings(data, seed=0):
    """Yield (label, chunks): whole, bytewise, every split, random ones."""
    yield "whole", [data]
    yield "bytewise", [data[i:i + 1] for i in range(len(data))]
    for i in range(len(data) + 1):
        yield "split@%d" % i, [data[:i], data[i:]]
    rnd = random.Random(seed)
    for n in range(6):
        k = rnd.randint(1, max(1, len(data) // 3))
        pts = [rnd.randint(0, len(data)) for _ in range(k)]
        chunks = split_at(data, pts)
        if n % 2:  # empty feeds mean "nothing new" and must be harmless
            chunks = [c for chunk in chunks for c in (chunk, b"")]
        yield "random%d" % n, chunks


# -- the representative set of requests ---------------------------------------
# Each case: id -> (data, limits, expected).  expected is an int status, or a
# list with one dict per request giving attributes to check.

def R(**kw):
    return kw


CASES = {
    "simple_get": (
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", None,
        [R(method="GET", target="/", path="/", query=[], version="HTTP/1.1",
           headers=[("Host", "example.com")], body=b"", keep_alive=True)]),
    "query_escapes": (
        b"GET /p%20a%C3%A4th?q=a+b&u=%C3%A4&bad=%zz&trunc=%4&rep=1&rep=2&flag"
        b"&=empty&e=&&plus=%2B&end=% HTTP/1.1\r\nHost: x\r\n\r\n", None,
        [R(path="/p a\u00e4th", raw_path="/p%20a%C3%A4th",
           query_string="q=a+b&u=%C3%A4&bad=%zz&trunc=%4&rep=1&rep=2&flag&=empty&e=&&plus=%2B&end=%",
           query=[("q", "a b"), ("u", "\u00e4"), ("bad", "%zz"), ("trunc", "%4"),
                  ("rep", "1"), ("rep", "2"), ("flag", ""), ("", "empty"),
                  ("e", ""), ("plus", "+"), ("end", "%")])]),
    "path_invalid_utf8_and_plus": (
        b"GET /a+b%FF%zz%2Fc HTTP/1.1\r\n\r\n", None,
        [R(path="/a+b\ufffd%zz/c", raw_path="/a+b%FF%zz%2Fc", query=[])]),
    "raw_utf8_in_target": (
        b"GET /\xc3\xa4?k=\xc3\xa4 HTTP/1.1\r\n\r\n", None,
        [R(target="/\u00e4?k=\u00e4", path="/\u00e4", query=[("k", "\u00e4")])]),
    "post_form": (
        b"POST /submit HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded; charset=UTF-8\r\n"
        b"Content-Length: 38\r\n\r\n"
        b"name=J%C3%BCrg+M&x=1&x=2&note=100%25&z", None,
        [R(method="POST", body=b"name=J%C3%BCrg+M&x=1&x=2&note=100%25&z")]),
    "post_content_length_0": (
        b"POST /empty HTTP/1.1\r\nContent-Length: 0\r\n\r\n", None,
        [R(method="POST", body=b"")]),
    "head": (
        b"HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n", None,
        [R(method="HEAD", path="/x")]),
    "pipelined": (
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /3 HTTP/1.1\r\nConnection: close\r\n\r\n", None,
        [R(path="/1", body=b""), R(path="/2", body=b"hello"),
         R(path="/3", keep_alive=False)]),
    "post_then_extra_crlf": (  # old browsers send CRLF after a POST body
        b"POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nok\r\n"
        b"GET /b HTTP/1.1\r\n\r\n", None,
        [R(path="/a", body=b"ok"), R(path="/b", body=b"")]),
    "body_looks_like_request": (
        b"PUT /b HTTP/1.1\r\nContent-Length: 20\r\n\r\nGET / HTTP/1.1\r\n\r\n\x00\xff", None,
        [R(method="PUT", body=b"GET / HTTP/1.1\r\n\r\n\x00\xff")]),
    "http10_default_close": (
        b"GET / HTTP/1.0\r\n\r\n", None, [R(version="HTTP/1.0", keep_alive=False)]),
    "http10_keep_alive": (
        b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", None,
        [R(version="HTTP/1.0", keep_alive=True)]),
    "http10_keep_alive_but_close": (
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", None,
        [R(keep_alive=False)]),
    "http11_close": (
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", None, [R(keep_alive=False)]),
    "http11_close_in_list": (
        b"GET / HTTP/1.1\r\nconnection: Upgrade, CLOSE\r\n\r\n", None,
        [R(keep_alive=False)]),
    "http11_keep_alive_list": (
        b"GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\n", None,
        [R(keep_alive=True)]),
    "http12_treated_as_11": (
        b"GET / HTTP/1.2\r\n\r\n", None, [R(version="HTTP/1.1", keep_alive=True)]),
    "bare_lf": (
        b"POST /lf?a=1 HTTP/1.1\nHost: x\nContent-Length: 3\n\nabc"
        b"GET /mixed HTTP/1.0\r\nA: 1\n\r\n", None,
        [R(path="/lf", query=[("a", "1")], headers=[("Host", "x"), ("Content-Length", "3")],
           body=b"abc"),
         R(path="/mixed", headers=[("A", "1")], version="HTTP/1.0")]),
    "leading_empty_lines": (
        b"\r\n\n\r\nGET /after HTTP/1.1\r\n\r\n", None, [R(path="/after")]),
    "trailing_empty_lines_ok": (
        b"GET / HTTP/1.1\r\n\r\n\r\n\r\n", None, [R(path="/")]),
    "header_whitespace": (
        b"GET / HTTP/1.1\r\nHost:   x  \t\r\nX-Empty:\r\nX-Tab:\tv w\t\r\n\r\n", None,
        [R(headers=[("Host", "x"), ("X-Empty", ""), ("X-Tab", "v w")])]),
    "header_utf8_and_latin1": (
        b"GET / HTTP/1.1\r\nX-Name: J\xc3\xbcrg\r\nX-Old: \xe4\r\n\r\n", None,
        [R(headers=[("X-Name", "J\u00fcrg"), ("X-Old", "\u00e4")])]),
    "same_content_length_twice": (
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc",
        None, [R(body=b"abc")]),
    "content_length_list_same": (
        b"POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc", None, [R(body=b"abc")]),
    "content_length_leading_zeros": (
        b"POST / HTTP/1.1\r\nContent-Length: 0003\r\n\r\nabc", None, [R(body=b"abc")]),
    "absolute_form": (
        b"GET http://example.com:80/abs/p?x=1 HTTP/1.1\r\n\r\n", None,
        [R(target="http://example.com:80/abs/p?x=1", path="/abs/p", query=[("x", "1")])]),
    "absolute_form_no_path": (
        b"GET http://example.com HTTP/1.1\r\n\r\n", None, [R(path="/")]),
    "asterisk": (
        b"OPTIONS * HTTP/1.1\r\n\r\n", None, [R(method="OPTIONS", path="*")]),
    "fragment_ignored": (
        b"GET /p?a=1#frag HTTP/1.1\r\n\r\n", None,
        [R(path="/p", query_string="a=1", query=[("a", "1")])]),
    "expect_continue": (
        b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\ndata",
        None, [R(body=b"data")]),
    "method_as_sent": (
        b"get / HTTP/1.1\r\n\r\nPURGE /c HTTP/1.1\r\n\r\n", None,
        [R(method="get"), R(method="PURGE")]),
    # limits, exactly at the boundary (SMALL limits)
    "request_line_at_limit": (
        b"GET /" + b"a" * 18 + b" HTTP/1.1\r\n\r\n", SMALL, [R(method="GET")]),
    "headers_at_byte_limit": (
        b"GET / HTTP/1.1\r\nA: " + b"x" * 57 + b"\r\n\r\n", SMALL, [R(method="GET")]),
    "headers_at_count_limit": (
        b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", SMALL, [R(method="GET")]),
    "body_at_limit": (
        b"POST / HTTP/1.1\r\nContent-Length: 16\r\n\r\n" + b"b" * 16, SMALL,
        [R(body=b"b" * 16)]),
    # -- errors --
    "two_parts": (b"GET /\r\n\r\n", None, 400),
    "four_parts": (b"GET / HTTP/1.1 x\r\n\r\n", None, 400),
    "double_space": (b"GET  / HTTP/1.1\r\n\r\n", None, 400),
    "leading_space": (b" GET / HTTP/1.1\r\n\r\n", None, 400),
    "bad_method": (b"G(T / HTTP/1.1\r\n\r\n", None, 400),
    "tab_in_target": (b"GET /a\tb HTTP/1.1\r\n\r\n", None, 400),
    "control_in_target": (b"GET /a\x01b HTTP/1.1\r\n\r\n", None, 400),
    "cr_inside_request_line": (b"GET / HTTP/1.1\r\r\n\r\n", None, 400),
    "lone_cr_then_text": (b"\rGET / HTTP/1.1\r\n\r\n", None, 400),
    "binary_garbage": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", None, 400),
    "lowercase_version": (b"GET / http/1.1\r\n\r\n", None, 400),
    "version_no_minor": (b"GET / HTTP/1\r\n\r\n", None, 400),
    "version_not_http": (b"GET / FOO/1.1\r\n\r\n", None, 400),
    "version_two_digits": (b"GET / HTTP/10.0\r\n\r\n", None, 400),
    "http2": (b"GET / HTTP/2.0\r\n\r\n", None, 505),
    "http09": (b"GET / HTTP/0.9\r\n\r\n", None, 505),
    "too_many_empty_lines": (b"\r\n" * 11 + b"GET / HTTP/1.1\r\n\r\n", None, 400),
    "request_line_too_long": (
        b"GET /" + b"a" * 19 + b" HTTP/1.1\r\n\r\n", SMALL, 414),
    "request_line_too_long_default": (
        b"GET /" + b"a" * 8180 + b" HTTP/1.1\r\n\r\n", None, 414),
    "request_line_too_long_no_newline": (b"GET /" + b"a" * 40, SMALL, 414),
    "header_bytes_too_many": (
        b"GET / HTTP/1.1\r\nA: " + b"x" * 58 + b"\r\n\r\n", SMALL, 431),
    "header_bytes_no_newline": (b"GET / HTTP/1.1\r\nA: " + b"x" * 80, SMALL, 431),
    "too_many_headers": (
        b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", SMALL, 431),
    "header_no_colon": (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", None, 400),
    "space_before_colon": (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", None, 400),
    "empty_header_name": (b"GET / HTTP/1.1\r\n: x\r\n\r\n", None, 400),
    "bad_header_name": (b"GET / HTTP/1.1\r\nX(y): x\r\n\r\n", None, 400),
    "obs_fold": (b"GET / HTTP/1.1\r\nX: a\r\n  b\r\n\r\n", None, 400),
    "nul_in_value": (b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", None, 400),
    "cr_in_value": (b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", None, 400),
    "cr_before_crlf": (b"GET / HTTP/1.1\r\nX: a\r\r\n\r\n", None, 400),
    # (a head that arrived whole is checked all at once: a bad line after a good one too)
    "nul_in_a_later_value": (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", None, 400),
    "cr_in_a_later_value": (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", None, 400),
    "later_header_no_colon": (b"GET / HTTP/1.1\r\nHost: x\r\nbad\r\n\r\n", None, 400),
    "later_space_before_colon": (b"GET / HTTP/1.1\r\nHost: x\r\nX : y\r\n\r\n", None, 400),
    "later_bad_header_name": (b"GET / HTTP/1.1\r\nHost: x\r\nX(y): z\r\n\r\n", None, 400),
    "cl_not_number": (b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", None, 400),
    "cl_negative": (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", None, 400),
    "cl_plus": (b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello", None, 400),
    "cl_float": (b"POST / HTTP/1.1\r\nContent-Length: 1.5\r\n\r\n", None, 400),
    "cl_empty": (b"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", None, 400),
    "cl_unicode_digit": (
        b"POST / HTTP/1.1\r\nContent-Length: \xd9\xa3\r\n\r\nabc", None, 400),
    "cl_differing": (
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", None, 400),
    "cl_list_differing": (b"POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\nabcd", None, 400),
    "te_and_cl": (
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
        None, 400),
    "te_chunked": (
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        None, 501),
    "te_gzip": (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", None, 501),
    "body_too_large": (
        b"POST / HTTP/1.1\r\nContent-Length: 17\r\n\r\n" + b"b" * 17, SMALL, 413),
    "body_too_large_no_body_sent": (
        b"POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n", None, 413),
    "body_absurd_length": (
        b"POST / HTTP/1.1\r\nContent-Length: " + b"9" * 40 + b"\r\n\r\n", None, 413),
    "incomplete_request_line": (b"GET / HTTP/1.1", None, 400),
    "incomplete_headers": (b"GET / HTTP/1.1\r\nHost: x\r\n", None, 400),
    "incomplete_body": (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabc", None, 400),
    "valid_then_incomplete": (
        b"GET /ok HTTP/1.1\r\n\r\nGET /cut", None, 400),
    "valid_then_invalid": (
        b"GET /ok HTTP/1.1\r\n\r\nGET /two HTTP/1.1\r\n\r\nBAD\r\n\r\n", None, 400),
}

VALID_BEFORE_ERROR = {"valid_then_incomplete": ["/ok"], "valid_then_invalid": ["/ok", "/two"]}


def check_expected(case_id, result):
    data, limits, expected = CASES[case_id]
    requests, error = result
    if isinstance(expected, int):
        assert error is not None, "expected %d, got requests %r" % (expected, requests)
        assert error[0] == expected, error
        assert [r[2] for r in requests] == VALID_BEFORE_ERROR.get(case_id, [])
        return
    assert error is None, error
    assert len(requests) == len(expected)
    fields = ["method", "target", "path", "raw_path", "query_string", "query",
              "version", "headers", "body", "keep_alive"]
    for got, want in zip(requests, expected):
        got = dict(zip(fields, got))
        for key, value in want.items():
            if isinstance(value, list):
                value = tuple(value)
            assert got[key] == value, (key, got[key], value)


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_case_whole(case_id):
    data, limits, _ = CASES[case_id]
    check_expected(case_id, run([data], limits))


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_case_every_chunking_gives_same_result(case_id):
    data, limits, _ = CASES[case_id]
    whole = run([data], limits)
    for label, chunks in chunkings(data, seed=len(case_id)):
        assert b"".join(chunks) == data
        assert run(chunks, limits) == whole, label


# -- specific behaviour --------------------------------------------------------

def test_limit_errors_are_raised_before_line_end_or_body():
    p = RequestParser()
    with pytest.raises(HTTPError) as e:
        p.feed(b"GET /" + b"a" * 8200)
    assert e.value.status == 414 and "8192" in e.value.reason

    p = RequestParser(max_header_bytes=1000)
    p.feed(b"GET / HTTP/1.1\r\nX: ")
    with pytest.raises(HTTPError) as e:
        for _ in range(200):
            p.feed(b"yyyyyyyyyy")
    assert e.value.status == 431

    p = RequestParser()
    with pytest.raises(HTTPError) as e:
        p.feed(b"POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n")
    assert e.value.status == 413


def test_early_limit_detection_is_exact():
    # SMALL: request line <= 32 bytes, header section <= 64 bytes
    p = RequestParser(**SMALL)
    assert p.feed(b"GET /" + b"a" * 27) == []            # 32 bytes pending: fine
    with pytest.raises(HTTPError) as e:
        p.feed(b"a")                                        # 33rd byte: 414 now
    assert e.value.status == 414

    p = RequestParser(**SMALL)
    assert p.feed(b"GET / HTTP/1.1\r\nA: " + b"x" * 61) == []   # 64 header bytes
    with pytest.raises(HTTPError) as e:
        p.feed(b"x")
    assert e.value.status == 431


def test_request_line_limit_does_not_count_a_pending_cr():
    line = b"GET /" + b"a" * 18 + b" HTTP/1.1"   # exactly 32 bytes
    p = RequestParser(**SMALL)
    assert p.feed(line + b"\r") == []
    assert p.has_partial
    assert p.feed(b"\n\r\n")[0].path == "/" + "a" * 18


def test_chunked_reason_mentions_chunked():
    p = RequestParser()
    with pytest.raises(HTTPError) as e:
        p.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert e.value.status == 501 and "chunked" in e.value.reason
    assert str(e.value).startswith("501 ")


def test_errors_carry_previous_pipelined_requests_and_parser_stays_dead():
    p = RequestParser()
    with pytest.raises(HTTPError) as e:
        p.feed(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/9.9\r\n\r\n")
    assert e.value.status == 505
    assert [r.path for r in e.value.requests] == ["/a"]
    for call in (lambda: p.feed(b""), lambda: p.feed(b"GET / HTTP/1.1\r\n\r\n"), p.feed_eof):
        with pytest.raises(HTTPError) as again:
            call()
        assert (again.value.status, again.value.reason) == (505, e.value.reason)


def test_feed_eof_and_has_partial():
    p = RequestParser()
    assert not p.has_partial
    assert p.feed_eof() is None
    assert p.feed(b"") == []
    assert p.feed(b"\r\n") == [] and not p.has_partial
    assert p.feed(b"\r") == [] and not p.has_partial
    assert p.feed(b"\n") == [] and not p.has_partial
    assert p.feed(b"G") == [] and p.has_partial
    assert p.feed(b"ET / HTTP/1.1\r\n") == [] and p.has_partial
    assert p.feed(b"Content-Length: 2\r\n\r\n") == [] and p.has_partial
    assert p.feed(b"x") == [] and p.has_partial
    assert len(p.feed(b"y")) == 1 and not p.has_partial
    assert p.feed_eof() is None

    p = RequestParser()
    p.feed(b"GET / HT")
    with pytest.raises(HTTPError) as e:
        p.feed_eof()
    assert (e.value.status, e.value.reason) == (400, "incomplete request")
    with pytest.raises(HTTPError):
        p.feed(b"TP/1.1\r\n\r\n")


def test_want_continue():
    head = b"POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n"
    p = RequestParser()
    assert p.feed(head[:-1]) == [] and not p.want_continue()
    assert p.feed(head[-1:]) == []
    assert p.want_continue()
    assert not p.want_continue()          # only once per request
    assert p.feed(b"ok")[0].body == b"ok"
    assert not p.want_continue()
    # body already here, no body at all, or HTTP/1.0: nothing to send
    assert len(p.feed(head + b"ok")) == 1 and not p.want_continue()
    p.feed(b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n")
    assert not p.want_continue()
    p.feed(head.replace(b"1.1", b"1.0"))
    assert not p.want_continue()
    assert CONTINUE_RESPONSE == b"HTTP/1.1 100 Continue\r\n\r\n"


def test_feed_accepts_bytearray_and_rejects_text():
    p = RequestParser()
    assert p.feed(bytearray(b"GET / HTTP/1.1\r\n\r\n"))[0].path == "/"
    assert p.feed(memoryview(b"GET /m HTTP/1.1\r\n\r\n"))[0].path == "/m"
    with pytest.raises(TypeError):
        p.feed("GET / HTTP/1.1\r\n\r\n")


def test_request_accessors():
    raw = (b"POST /f?x=1 HTTP/1.1\r\nHost: h\r\n"
           b"Content-Type: Application/X-WWW-Form-Urlencoded\r\n"
           b"Accept: a\r\naccept: b\r\nCookie: c=1\r\nCookie: d=2\r\n"
           b"Content-Length: 30\r\n\r\nn=J%C3%BCrg+M&x=1&x=2&f&e=%zz\xff")
    req = RequestParser().feed(raw)[0]
    assert req.header("HOST") == "h"
    assert req.header("accept") == "a, b"
    assert req.header("missing") is None
    assert req.header("missing", "dflt") == "dflt"
    d = req.headers_dict()
    assert d["accept"] == "a, b" and d["cookie"] == "c=1; d=2" and d["host"] == "h"
    assert req.form() == [("n", "J\u00fcrg M"), ("x", "1"), ("x", "2"), ("f", ""),
                          ("e", "%zz\ufffd")]
    assert req.text() == "n=J%C3%BCrg+M&x=1&x=2&f&e=%zz\ufffd"
    assert "POST" in repr(req)


def test_form_needs_urlencoded_content_type():
    for ctype in (None, b"text/plain", b"multipart/form-data; boundary=x"):
        head = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n"
        if ctype:
            head += b"Content-Type: " + ctype + b"\r\n"
        req = RequestParser().feed(head + b"\r\na=1")[0]
        assert req.form() == []
        assert req.text() == "a=1"


def test_request_can_be_built_directly():
    req = Request("GET", "/x?a=%C3%A4", "HTTP/1.0", [("Connection", "keep-alive")])
    assert req.path == "/x" and req.query == [("a", "\u00e4")] and req.keep_alive
    assert req.body == b""


def test_text_types():
    req = RequestParser().feed(b"GET /p?q=1 HTTP/1.1\r\nA: b\r\n\r\n")[0]
    text = type("")
    for value in (req.method, req.target, req.path, req.raw_path, req.query_string,
                  req.version, req.headers[0][0], req.headers[0][1], req.query[0][1]):
        assert isinstance(value, text)
    assert isinstance(req.body, bytes)


def test_percent_decode():
    assert percent_decode("a%20b") == "a b"
    assert percent_decode("a+b") == "a+b"
    assert percent_decode("a+b", plus_as_space=True) == "a b"
    assert percent_decode("%2B", plus_as_space=True) == "+"
    assert percent_decode("%C3%A4%c3%a4") == "\u00e4\u00e4"
    assert percent_decode("%zz%4%") == "%zz%4%"
    assert percent_decode("%%41") == "%A"
    assert percent_decode("% 1%+1%_1") == "% 1%+1%_1"  # int() would accept these
    assert percent_decode("%FF") == "\ufffd"
    assert percent_decode(b"\xc3\xa4%C3%A4") == "\u00e4\u00e4"
    assert percent_decode("\u00e4%C3%A4") == "\u00e4\u00e4"
    assert percent_decode("") == ""


def test_parse_query():
    assert parse_query("") == []
    assert parse_query("a=1&a=2&b") == [("a", "1"), ("a", "2"), ("b", "")]
    assert parse_query("a=b=c") == [("a", "b=c")]
    assert parse_query("&&x=%C3%A4+y&") == [("x", "\u00e4 y")]
    assert parse_query(b"k=%zz") == [("k", "%zz")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(), st.text()), max_size=5))
def test_parse_query_inverts_urlencode(pairs):
    try:
        from urllib.parse import urlencode
    except ImportError:  # pragma: no cover
        from urllib import urlencode
    pairs = [(k.encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
              v.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
             for k, v in pairs]
    assert parse_query(urlencode(pairs)) == pairs


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=64), st.text(max_size=64)), st.booleans())
def test_percent_decode_and_parse_query_never_raise(s, plus):
    if isinstance(s, type("")):
        s = s.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    assert isinstance(percent_decode(s, plus), type(""))
    for k, v in parse_query(s):
        assert isinstance(k, type("")) and isinstance(v, type(""))


def test_linear_time_for_long_lines_and_bodies():
    # A quadratic parser (re-scanning or re-copying the whole buffer per
    # chunk) needs tens of seconds here; a linear one well under one.
    value = b"v" * (8 * 1024 * 1024)
    data = b"GET / HTTP/1.1\r\nX-Big: " + value + b"\r\n\r\n"
    p = RequestParser(max_header_bytes=16 * 1024 * 1024)
    start = time.time()
    got = []
    for i in range(0, len(data), 128):
        got.extend(p.feed(data[i:i + 128]))
    assert len(got) == 1 and len(got[0].headers[0][1]) == len(value)

    body = b"b" * (4 * 1024 * 1024)
    data = b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    p = RequestParser(max_body=len(body))
    got = []
    for i in range(0, len(data), 256):
        got.extend(p.feed(data[i:i + 256]))
    assert len(got) == 1 and got[0].body == body
    assert time.time() - start < 8


class CountingBuffer(bytearray):
    """bytearray that counts how many bytes find() had to look at."""
    scanned = 0

    def find(self, sub, start=0, *rest):
        self.scanned += len(self) - start
        return bytearray.find(self, sub, start, *rest)


def test_each_byte_is_searched_for_line_ends_at_most_twice():
    # White-box: memchr is so fast that a timing test cannot see a parser
    # re-scanning its whole buffer on every feed, so count the bytes searched.
    line = b"GET /" + b"p" * 5000 + b" HTTP/1.1\r\n"
    headers = b"".join(b"H%d: " % i + b"v" * 500 + b"\r\n" for i in range(50))
    data = (line + headers + b"\r\n") * 3
    p = RequestParser()
    p._buf = CountingBuffer()
    got = []
    for i in range(0, len(data), 7):
        got.extend(p.feed(data[i:i + 7]))
    assert len(got) == 3
    assert p._buf.scanned <= 2 * len(data)


# -- any bytes, any chunking ---------------------------------------------------

FRAGMENTS = [
    b"GET", b"POST", b"HEAD", b" ", b"  ", b"/", b"/a%C3%A4", b"?q=a+b&x", b"%zz",
    b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"\r\n", b"\n", b"\r", b"\r\n\r\n",
    b"Host: x", b"Connection: close", b"Connection: keep-alive",
    b"Content-Length: 3", b"Content-Length: 0", b"Content-Length: 99",
    b"Content-Length: x", b"Transfer-Encoding: chunked", b"abc", b":", b"\x00",
    b"\t", b"\xc3\xa4", b"\xff", b"a" * 20,
]
stream = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(b"".join),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=4)),
             max_size=40).map(b"".join),
)


GOOD_HEADERS = [b"Host: x", b"Connection: close", b"Connection: keep-alive",
                b"X: \xc3\xa4", b"Accept:  */* "]
BAD_HEADERS = [b"Content-Length: 3", b"Content-Length: x", b"Transfer-Encoding: chunked",
               b"bad", b" fold", b"X : y", b"X: a\x00", b": v", b"X: " + b"y" * 60]


@st.composite
def requestish(draw):
    """Pipelines of mostly plausible requests, sometimes broken in one place."""
    parts = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        eol = draw(st.sampled_from([b"\r\n", b"\n"]))
        line = b" ".join([
            draw(st.sampled_from([b"GET", b"GET", b"POST", b"HEAD", b"get", b"G(T"])),
            draw(st.sampled_from([b"/", b"/a%C3%A4?q=a+b&x", b"/%zz?%4=%", b"*",
                                  b"http://h/p?y", b"/" + b"L" * 30])),
            draw(st.sampled_from([b"HTTP/1.1"] * 4 + [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1"])),
        ])
        headers = draw(st.lists(st.sampled_from(GOOD_HEADERS * 4 + BAD_HEADERS),
                                max_size=4))
        body = b""
        if draw(st.booleans()):
            body = draw(st.binary(max_size=20))
            headers.append(b"Content-Length: %d" % len(body))
        lead = draw(st.sampled_from([b"", b"", b"\r\n", b"\n\n"]))
        parts.append(lead + eol.join([line] + headers) + eol + eol + body)
    data = b"".join(parts)
    if draw(st.integers(min_value=0, max_value=3)) == 0:  # splice in random bytes
        pos = draw(st.integers(min_value=0, max_value=len(data)))
        cut = draw(st.integers(min_value=0, max_value=3))
        data = data[:pos] + draw(st.binary(max_size=3)) + data[pos + cut:]
    if draw(st.integers(min_value=0, max_value=3)) == 0:  # or lose the tail
        data = data[:draw(st.integers(min_value=0, max_value=len(data)))]
    return data


MEDIUM = dict(max_request_line=40, max_header_bytes=100, max_body=12, max_headers=3)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(requestish(), requestish(), stream),
       st.lists(st.integers(min_value=0, max_value=400), max_size=12),
       st.sampled_from([None, SMALL, MEDIUM]))
def test_any_bytes_any_chunking_same_result(data, points, limits):
    whole = run([data], limits)
    assert run(split_at(data, points), limits) == whole
    assert run([data[i:i + 1] for i in range(len(data))], limits) == whole


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([
    b"GET /a?b=%C3%A4 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    b"HEAD / HTTP/1.0\nConnection: keep-alive\n\n",
    b"\r\n",
]), min_size=1, max_size=8), st.lists(st.integers(min_value=0, max_value=400), max_size=10))
def test_valid_pipelines_any_chunking(parts, points):
    data = b"".join(parts)
    requests, error = run(split_at(data, points))
    assert error is None
    assert len(requests) == len([p for p in parts if p != b"\r\n"])
    assert run([data]) == (requests, error)


# -- build_response ------------------------------------------------------------

def split_response(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = [tuple(l.split(b": ", 1)) for l in lines[1:]]
    return lines[0], headers, body


def hvalues(headers, name):
    return [v for n, v in headers if n.lower() == name.lower()]


def test_build_response_counts_bytes():
    for text, n in (("\u00e4", 2), ("\U0001F600", 4), ("a\u00e4\U0001F600", 7), ("", 0)):
        status, headers, body = split_response(build_response(200, text))
        assert status == b"HTTP/1.1 200 OK"
        assert hvalues(headers, b"Content-Length") == [str(n).encode()]
        assert body == text.encode("utf-8")
    status, headers, body = split_response(build_response(200, b"\x00\xff"))
    assert hvalues(headers, b"Content-Length") == [b"2"] and body == b"\x00\xff"


def test_build_response_content_type():
    def ctype(**kw):
        return hvalues(split_response(build_response(200, **kw))[1], b"Content-Type")
    assert ctype(body="hi") == [b"text/html; charset=utf-8"]
    assert ctype(body=b"hi") == [b"text/html; charset=utf-8"]
    assert ctype(body=b"") == []
    assert ctype(body="x", content_type="text/plain") == [b"text/plain; charset=utf-8"]
    assert ctype(body="x", content_type="application/json") == [b"application/json; charset=utf-8"]
    assert ctype(body="x", content_type="application/problem+json") == [
        b"application/problem+json; charset=utf-8"]
    assert ctype(body="x", content_type="text/plain; charset=iso-8859-1") == [
        b"text/plain; charset=iso-8859-1"]
    assert ctype(body=b"\x89PNG", content_type="image/png") == [b"image/png"]
    assert ctype(body=b"x", content_type=b"text/css") == [b"text/css; charset=utf-8"]


def test_build_response_head_has_headers_but_no_body():
    full = build_response(200, "h\u00e4llo", date=False)
    head = build_response(200, "h\u00e4llo", head=True, date=False)
    assert full.startswith(head) and head.endswith(b"\r\n\r\n")
    assert full[len(head):] == "h\u00e4llo".encode("utf-8")
    assert hvalues(split_response(head)[1], b"Content-Length") == [b"6"]


def test_build_response_connection_server_date_and_extra_headers():
    raw = build_response(404, "nf", keep_alive=False, server_name="tcpcom/0.1",
                         headers=[("X-A", "1"), ("Content-Type", "text/x")])
    status, headers, body = split_response(raw)
    assert status == b"HTTP/1.1 404 Not Found"
    assert hvalues(headers, b"Connection") == [b"close"]
    assert hvalues(headers, b"Server") == [b"tcpcom/0.1"]
    assert hvalues(headers, b"X-A") == [b"1"]
    assert hvalues(headers, b"Content-Type") == [b"text/x"]   # replaced, not doubled
    assert hvalues(headers, b"Date")[0].endswith(b" GMT")
    raw = build_response(200, headers={"X-B": 2}, date=False)
    status, headers, body = split_response(raw)
    assert hvalues(headers, b"Connection") == [b"keep-alive"]
    assert hvalues(headers, b"X-B") == [b"2"]
    assert hvalues(headers, b"Date") == [] and hvalues(headers, b"Server") == []
    assert hvalues(headers, b"Content-Length") == [b"0"]


@pytest.mark.parametrize("name", ["date", "SERVER", "Content-type", "content-length", "Connection"])
def test_a_header_given_replaces_the_generated_one_of_that_name_whatever_its_case(name):
    key = name.lower().encode("ascii")
    raw = build_response(200, "body", server_name="s", headers=[(name, "given")])
    status, headers, body = split_response(raw)
    assert status == b"HTTP/1.1 200 OK"
    assert [v for n, v in headers if n.lower() == key] == [b"given"], "replaced, not doubled"
    others = set(n.lower() for n, v in headers) - set([key])
    assert others == set([b"date", b"server", b"content-type", b"content-length", b"connection"]) - \
        set([key]), "every other generated line is kept"


@pytest.mark.parametrize("code", [200, 204, 301, 302, 304, 400, 401, 403, 404, 405,
                                  408, 413, 414, 431, 500, 501, 503, 505])
def test_build_response_reason_phrases(code):
    status = split_response(build_response(code, date=False))[0]
    assert status == ("HTTP/1.1 %d %s" % (code, REASONS[code])).encode("ascii")


def test_build_response_unknown_status_and_no_body_statuses():
    assert build_response(299, date=False).startswith(b"HTTP/1.1 299 Unknown\r\n")
    for code in (204, 304):
        raw = build_response(code, "ignored", date=False)
        assert raw.endswith(b"\r\n\r\n") and b"ignored" not in raw
        assert hvalues(split_response(raw)[1], b"Content-Type") == []
    assert b"Content-Length" not in build_response(204, date=False)


def test_build_response_rejects_header_injection():
    with pytest.raises(ValueError):
        build_response(200, headers=[("X", "a\r\nSet-Cookie: evil")])
    with pytest.raises(ValueError):
        build_response(302, headers={"Location": "/x\nfoo"})


def test_build_response_rejects_line_breaks_in_the_server_name_and_content_type_it_was_given():
    # the generated lines are not checked one by one any more: these two carry the caller's text
    with pytest.raises(ValueError):
        build_response(200, "x", server_name="tcpcom\r\nSet-Cookie: evil")
    with pytest.raises(ValueError):
        build_response(200, "x", content_type="text/html\nSet-Cookie: evil")


def test_each_response_names_the_server_it_was_given_also_when_names_alternate():
    # (the Server line is made once per name, not per response: the cache must follow the name)
    def server(raw):
        return [line for line in raw.split(b"\r\n") if line.startswith(b"Server:")]
    for name in ("one", "two", "one", u"\u00e4", "two"):
        assert server(build_response(200, "x", server_name=name)) == [b"Server: " + name.encode("utf-8")]
    good = "fine"
    build_response(200, "x", server_name=good)
    with pytest.raises(ValueError):  # a bad name after a good one is still checked
        build_response(200, "x", server_name="fine\r\nSet-Cookie: evil")


def test_build_response_is_readable_by_http_client():
    import http.client

    class FakeSock(object):
        def __init__(self, data):
            self.data = data

        def makefile(self, mode):
            return io.BytesIO(self.data)

    raw = build_response(200, "\u00e4\U0001F600", content_type="text/plain",
                         server_name="s") + b"NEXT"
    resp = http.client.HTTPResponse(FakeSock(raw))
    resp.begin()
    assert resp.status == 200 and resp.reason == "OK"
    assert resp.getheader("Content-Type") == "text/plain; charset=utf-8"
    assert resp.read() == "\u00e4\U0001F600".encode("utf-8")


# -- other interpreters ----------------------------------------------------------

SMOKE = r'''
from __future__ import print_function, unicode_literals
import sys
sys.path.insert(0, sys.argv[1])
import tcpcom.httpcodec as h
p = h.RequestParser()
data = (b"GET /a%C3%A4?x=%C3%A4&y=a+b&z=%zz HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /f HTTP/1.0\nContent-Type: application/x-www-form-urlencoded\n"
        b"Content-Length: 7\n\nk=v+w&j")
got = []
for i in range(len(data)):
    got.extend(p.feed(data[i:i + 1]))
a, b = got
assert a.path == "/a\u00e4", repr(a.path)
assert a.query == [("x", "\u00e4"), ("y", "a b"), ("z", "%zz")], repr(a.query)
assert a.keep_alive and not b.keep_alive
assert b.form() == [("k", "v w"), ("j", "")], repr(b.form())
assert p.feed_eof() is None
for bad, status in ((b"GET / HTTP/2.0\r\n\r\n", 505), (b"GET /" + b"a" * 9000, 414),
                    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501)):
    try:
        h.RequestParser().feed(bad)
    except h.HTTPError as e:
        assert e.status == status, (e.status, status)
    else:
        raise AssertionError(status)
r = h.build_response(200, "\u00e4\U0001F600", content_type="text/plain", server_name="s")
assert b"Content-Length: 6\r\n" in r and r.endswith("\u00e4\U0001F600".encode("utf-8")), r
assert b"Content-Type: text/plain; charset=utf-8\r\n" in r
print("SMOKE-OK")
'''


def interpreters():
    found = []
    if shutil.which("jython"):
        found.append(("jython", ["jython"]))
    pyenv = os.path.expanduser("~/.pyenv/versions")
    if os.path.isdir(pyenv):
        for name in sorted(os.listdir(pyenv)):
            exe = os.path.join(pyenv, name, "bin", "python")
            if name.startswith(("2.7", "3.8")) and os.path.exists(exe):
                found.append((name, [exe]))
    return found


@pytest.mark.timeout(180)
@pytest.mark.parametrize("label,cmd", interpreters() or [pytest.param(
    "none", None, marks=pytest.mark.skip("no jython / python2.7 / python3.8 here"))])
def test_runs_under_other_interpreters(label, cmd, tmp_path):
    script = tmp_path / "smoke.py"
    script.write_text(SMOKE)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run(cmd + [str(script), ROOT], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=150, env=env)
    assert b"SMOKE-OK" in out.stdout, out.stdout.decode("utf-8", "replace")
