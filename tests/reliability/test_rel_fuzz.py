"""Fuzzing the sans-IO codecs with hypothesis: any bytes, any chunking, same result as whole,
and no exception but the documented one (MessageTooLarge / HTTPError)."""
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rel_helpers import scaled
from tcpcom.framing import DelimiterFramer, LineFramer, MessageTooLarge, RawFramer
from tcpcom.httpcodec import REASONS, HTTPError, RequestParser

EXAMPLES = scaled(300, 5000)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def chunked(data, cuts):
    points = sorted(set(min(c, len(data)) for c in cuts))
    out, last = [], 0
    for p in points + [len(data)]:
        out.append(data[last:p])
        last = p
    return out


def run_framer(make, chunks):
    """Messages delivered until the end or the first MessageTooLarge (its .messages
    included), and whether it was raised. Any other exception fails the test."""
    f = make()
    got = []
    for c in chunks:
        try:
            got.extend(f.feed(c))
        except MessageTooLarge as e:
            assert e.size > e.limit
            got.extend(e.messages)
            return got, True
    return got, False


PIECES = [b"\0", b"\r", b"\n", b"\r\n", b"a", b"ab", b"<END>", b"<EN", b"D>", b"\xc3\xa4", b"\xff"]
stream = st.one_of(
    st.binary(max_size=3000),
    st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=8)), max_size=300).map(b"".join),
)
delimiters = st.one_of(st.sampled_from([b"\0", b"\r\n", b"<END>", b"aa", b"\n\n"]),
                       st.binary(min_size=1, max_size=4))
cuts = st.lists(st.integers(min_value=0, max_value=3000), max_size=30)
limits = st.one_of(st.integers(min_value=1, max_value=64), st.just(16 * 1024 * 1024))


@FUZZ
@given(stream, delimiters, limits, cuts)
def test_delimiter_framer_any_bytes_any_chunking(data, delim, limit, points):
    """DelimiterFramer: any bytes, any delimiter (1-4 bytes), any limit, any chunking
    (plus byte by byte): the same messages and the same MessageTooLarge as fed whole;
    without a limit hit, exactly bytes.split()'s messages."""
    make = lambda: DelimiterFramer(delim, limit)  # noqa: E731
    whole = run_framer(make, [data])
    assert run_framer(make, chunked(data, points)) == whole
    assert run_framer(make, [data[i:i + 1] for i in range(len(data))]) == whole
    if not whole[1]:
        assert whole[0] == data.split(delim)[:-1]


@FUZZ
@given(stream, limits, cuts)
def test_line_framer_any_bytes_any_chunking(data, limit, points):
    """LineFramer (CR, LF, CRLF): any bytes, any chunking: the same lines and the same
    MessageTooLarge as fed whole; without a limit hit, exactly the lines a regex split gives
    (a CRLF split across chunks is one line end)."""
    make = lambda: LineFramer(max_size=limit)  # noqa: E731
    whole = run_framer(make, [data])
    assert run_framer(make, chunked(data, points)) == whole
    assert run_framer(make, [data[i:i + 1] for i in range(len(data))]) == whole
    if not whole[1]:
        assert whole[0] == re.split(b"\r\n|\r|\n", data)[:-1]


@FUZZ
@given(stream, cuts)
def test_raw_framer_loses_and_adds_nothing(data, points):
    """RawFramer: any chunking delivers exactly the input bytes, never an empty message."""
    msgs, _ = run_framer(RawFramer, chunked(data, points))
    assert b"".join(msgs) == data and all(msgs)


# -- HTTP ----------------------------------------------------------------------------------

def summary(r):
    return (r.method, r.target, r.version, tuple(r.headers), r.body, r.keep_alive)


def run_http(chunks, opts):
    p = RequestParser(**opts)
    got = []
    try:
        for c in chunks:
            got.extend(summary(r) for r in p.feed(c))
        p.feed_eof()
    except HTTPError as e:
        assert e.status in REASONS and 400 <= e.status < 600, e.status
        got.extend(summary(r) for r in e.requests)
        return got, (e.status, e.reason)
    return got, None


SMUGGLE = [b"Content-Length: 5", b"Content-Length: 5", b"Content-Length: 6", b"Content-Length: 05",
           b"Content-Length: +5", b"Content-Length: -1", b"Content-Length: 5, 5",
           b"Content-Length : 5", b"Content-Length: 99999999999999999999", b"content-length: 0",
           b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity", b"Transfer-Encoding: gzip",
           b"Transfer-Encoding:chunked", b"Transfer-Encoding: chunked, identity",
           b"Transfer-Encoding\t: chunked", b" Transfer-Encoding: chunked", b"Host: a", b"Host: b",
           b"X: \x00", b"X: a\rb", b"Expect: 100-continue"]


@st.composite
def http_stream(draw):
    """Pipelined requests with smuggling shapes (conflicting/duplicated Content-Length,
    Transfer-Encoding), header floods, very long URLs, bodies, and random damage."""
    parts = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
        target = draw(st.sampled_from([b"/", b"/x?y=%C3%A4", b"/" + b"u" * 9000, b"/%00", b"*"]))
        line = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"G T"])) + b" " + target + b" " + \
            draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b"HTTP/1.1 x"]))
        headers = draw(st.lists(st.sampled_from(SMUGGLE), max_size=4))
        if draw(st.integers(min_value=0, max_value=5)) == 0:  # a header flood
            headers += [b"X-Flood-%d: %s" % (i, b"v" * draw(st.integers(0, 900)))
                        for i in range(draw(st.integers(min_value=50, max_value=150)))]
        body = draw(st.binary(max_size=12))
        parts.append(eol.join([line] + headers) + eol + eol + body)
    data = b"".join(parts)
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        pos = draw(st.integers(min_value=0, max_value=len(data)))
        data = data[:pos] + draw(st.binary(max_size=3)) + data[pos + draw(st.integers(0, 3)):]
    return data


@FUZZ
@given(st.one_of(http_stream(), st.binary(max_size=2000)), cuts,
       st.sampled_from([{}, dict(max_request_line=64, max_header_bytes=512, max_body=8, max_headers=8)]))
def test_http_parser_any_bytes_any_chunking(data, points, opts):
    """RequestParser with default and small limits on smuggling shapes, header floods, long
    URLs and random bytes: fed in any chunks it gives the same requests and the same error
    status/reason as fed whole, and raises nothing but HTTPError with a 4xx/5xx status."""
    whole = run_http([data], opts)
    assert run_http(chunked(data, points), opts) == whole


@pytest.mark.parametrize("headers, status", [
    (b"Content-Length: 5\r\nContent-Length: 6", 400),
    (b"Content-Length: 5\r\nTransfer-Encoding: chunked", 400),
    (b"Transfer-Encoding: chunked", 501),
    (b"Content-Length: -1", 400),
    (b"Content-Length: +5", 400),
])
def test_http_smuggling_shapes_get_an_error_not_a_second_request(headers, status):
    """Request smuggling shapes (conflicting Content-Length, Content-Length with
    Transfer-Encoding, unsupported chunked, signed lengths) are refused with a 4xx/5xx
    before any body byte could be read as a second request."""
    data = b"POST / HTTP/1.1\r\n" + headers + b"\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"
    requests, error = run_http([data], {})
    assert requests == [] and error[0] == status
