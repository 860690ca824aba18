"""The sans-IO framers: every split of the input gives the same messages."""
import random

import pytest

from tcpcom.framing import (DelimiterFramer, LineFramer, MessageTooLarge, RawFramer, make_framer)

STREAMS = [
    b"",
    b"\0",
    b"a\0",
    b"hello\0world\0",
    b"\0\0\0",
    b"partial",
    b"one\0two\0tail",
    u"gr\u00fcezi \U0001F600\0\u00e4\0".encode("utf-8"),
]


def feed_chunks(framer, chunks):
    out = []
    for c in chunks:
        out.extend(framer.feed(c))
    return out


def all_two_splits(data):
    for i in range(len(data) + 1):
        yield [data[:i], data[i:]]


@pytest.mark.parametrize("data", STREAMS)
@pytest.mark.parametrize("delim", [b"\0", b"\r\n", b"<END>"])
def test_delimiter_every_split_same_messages(data, delim):
    data = data.replace(b"\0", delim)
    whole = DelimiterFramer(delim).feed(data)
    assert whole == data.split(delim)[:-1]
    for chunks in all_two_splits(data):
        assert feed_chunks(DelimiterFramer(delim), chunks) == whole
    assert feed_chunks(DelimiterFramer(delim), [data[i:i + 1] for i in range(len(data))]) == whole
    rnd = random.Random(7)
    for _ in range(20):
        cuts = sorted(rnd.sample(range(len(data) + 1), min(3, len(data) + 1)))
        chunks = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
        assert feed_chunks(DelimiterFramer(delim), chunks) == whole


def test_delimiter_keeps_incomplete_tail():
    f = DelimiterFramer(b"\0")
    assert f.feed(b"abc") == []
    assert f.buffered == 3
    assert f.feed(b"de\0f") == [b"abcde"]
    assert f.buffered == 1


def test_delimiter_split_inside_multibyte_delimiter():
    f = DelimiterFramer(b"\r\n")
    assert f.feed(b"line\r") == []
    assert f.feed(b"\nnext\r") == [b"line"]
    assert f.feed(b"\n") == [b"next"]


def test_delimiter_text_is_encoded_and_empty_rejected():
    assert DelimiterFramer(u"\u00a7").delimiter == u"\u00a7".encode("utf-8")
    with pytest.raises(ValueError):
        DelimiterFramer(b"")
    assert DelimiterFramer(b"\0").encode(b"x") == b"x\0"


def test_max_size_on_a_stream_without_delimiter():
    f = DelimiterFramer(b"\0", max_size=10)
    f.feed(b"0123456789")  # exactly at the limit: still fine
    with pytest.raises(MessageTooLarge) as info:
        f.feed(b"a")
    assert info.value.limit == 10
    assert f.buffered == 0  # memory was released


def test_max_size_keeps_the_messages_before():
    f = DelimiterFramer(b"\0", max_size=4)
    with pytest.raises(MessageTooLarge) as info:
        f.feed(b"ok\0fine\0" + b"x" * 20 + b"\0")
    assert info.value.messages == [b"ok", b"fine"]


def test_max_size_message_at_the_limit_passes():
    f = DelimiterFramer(b"\0", max_size=4)
    assert f.feed(b"abcd\0") == [b"abcd"]
    assert f.feed(b"ab") == [] and f.feed(b"cd\0") == [b"abcd"]


@pytest.mark.parametrize("data,expected", [
    (b"a\nb\r\nc\rd\n", [b"a", b"b", b"c", b"d"]),
    (b"\r\n\r\n", [b"", b""]),
    (b"x\n\ry", [b"x", b""]),
    (b"no end", []),
])
def test_lines_every_split(data, expected):
    assert LineFramer().feed(data) == expected
    for chunks in all_two_splits(data):
        assert feed_chunks(LineFramer(), chunks) == expected
    assert feed_chunks(LineFramer(), [data[i:i + 1] for i in range(len(data))]) == expected


def test_line_max_size():
    f = LineFramer(max_size=3)
    with pytest.raises(MessageTooLarge):
        f.feed(b"abcd")
    f = LineFramer(max_size=3)
    with pytest.raises(MessageTooLarge) as info:
        f.feed(b"ab\nabcdef\n")
    assert info.value.messages == [b"ab"]


def test_raw_delivers_chunks_unchanged():
    f = RawFramer()
    assert f.feed(b"") == []
    assert f.feed(b"a\0b") == [b"a\0b"]
    assert f.encode(b"x") == b"x"


def test_make_framer_specs():
    assert isinstance(make_framer(b"\0"), DelimiterFramer)
    assert isinstance(make_framer("\r\n"), DelimiterFramer)
    assert isinstance(make_framer("line"), LineFramer)
    assert isinstance(make_framer(None), RawFramer)
    assert isinstance(make_framer("raw"), RawFramer)
    assert make_framer(LineFramer, 5).max_size == 5
    with pytest.raises(TypeError):
        make_framer(42)


def test_long_message_is_linear():
    # 4 MiB in 1 KiB chunks: a quadratic framer would copy ~8 GiB here.
    f = DelimiterFramer(b"\0")
    chunk = b"x" * 1024
    for _ in range(4096):
        assert f.feed(chunk) == []
    assert f.feed(b"\0") == [chunk * 4096]
