"""Inbound (framing + decoding) gives the same messages on its one-decode-per-chunk fast path
as framing first and decoding message by message: for every split of the stream into chunks,
with bytes that do not decode, for each error handler and for the encodings it takes."""
import codecs

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tcpcom.engine.inbound import Inbound
from tcpcom.framing import DelimiterFramer, MessageTooLarge

BYTES = st.binary(max_size=40).map(lambda b: b.replace(b"\0", b"")) | st.sampled_from(
    [u"Grüße 😀".encode("utf-8"), b"\xe2\x82", b"\xff\xfe", u"½".encode("utf-8")[:1], b""])


def reference(chunks, encoding, errors, max_size):
    """Split first, then decode each message (what the engine did before its fast path)."""
    framer = DelimiterFramer(b"\0", max_size)
    out = []
    for chunk in chunks:
        too_large = False
        try:
            messages = framer.feed(chunk)
        except MessageTooLarge as e:  # the complete messages before it still come, in order
            messages, too_large = e.messages, True
        for m in messages:
            try:
                out.append(m.decode(encoding, errors))
            except UnicodeDecodeError:  # (one that does not decode comes first in the stream)
                return out, "undecodable"
        if too_large:
            return out, "too large"
    return out, framer.buffered


def through_inbound(chunks, encoding, errors, max_size):
    framer = DelimiterFramer(b"\0", max_size)
    inbound = Inbound(framer, encoding, errors)
    out = []
    for chunk in chunks:
        messages, error = inbound.feed(chunk)
        out.extend(messages)
        if error is not None:
            return out, "too large" if isinstance(error, MessageTooLarge) else "undecodable"
    return out, framer.buffered


@settings(max_examples=300, deadline=None)
@given(messages=st.lists(BYTES, max_size=12), tail=BYTES, cuts=st.lists(st.integers(0, 400), max_size=6),
       encoding=st.sampled_from(["utf-8", "latin-1", "ascii"]),
       errors=st.sampled_from(["surrogateescape", "replace", "ignore", "strict"]),
       max_size=st.sampled_from([10 ** 6, 30]))
# a message an earlier chunk began, then one that does not decode (strict): the messages before it
@example(messages=[b"ab", b"cd", b"\xff"], tail=b"", cuts=[1], encoding="utf-8", errors="strict", max_size=10 ** 6)
# a message an earlier chunk began grows too large in a chunk that is not itself too large
@example(messages=[b"x" * 40, b"y"], tail=b"", cuts=[20], encoding="utf-8", errors="strict", max_size=30)
def test_the_fast_path_gives_what_splitting_first_gives(messages, tail, cuts, encoding, errors, max_size):
    stream = b"".join(m + b"\0" for m in messages) + tail
    points = sorted(set(min(c, len(stream)) for c in cuts))
    chunks = [stream[a:b] for a, b in zip([0] + points, points + [len(stream)]) if b > a]
    assert through_inbound(chunks, encoding, errors, max_size) == reference(chunks, encoding, errors, max_size)


def test_the_fast_path_is_taken_for_utf8_and_a_nul_delimiter():
    inbound = Inbound(DelimiterFramer(b"\0"), "utf-8", "surrogateescape")
    assert inbound._text_delimiter == u"\0"
    assert inbound.feed(u"a\0Grüße\0\0par".encode("utf-8")) == ([u"a", u"Grüße", u""], None)
    assert inbound.framer.buffered == 3
    for encoding in ("utf-16", "shift_jis"):  # a NUL or ASCII byte may be part of a character there
        assert Inbound(DelimiterFramer(b"\0"), encoding, "strict")._text_delimiter is None
    assert Inbound(DelimiterFramer(b"\r\n"), "utf-8", "strict")._text_delimiter is None
    assert codecs.lookup("UTF8").name == "utf-8"


def test_a_message_an_earlier_chunk_began_is_decoded_with_the_chunk_at_once():
    # a chunk boundary seldom falls between two messages: the fast path must not need one
    inbound = Inbound(DelimiterFramer(b"\0"), "utf-8", "strict")
    fed = []
    feed = inbound.framer.feed
    inbound.framer.feed = lambda data: fed.append(data) or feed(data)
    assert inbound.feed(b"a\0Gr\xc3") == ([u"a"], None)  # a character cut by the chunk boundary
    assert inbound.feed(b"\xbc\xc3\x9fe\0b\0ta") == (
        [u"Grüße", u"b"], None)
    assert fed == [b"Gr\xc3", b"ta"]  # only the starts of messages that wait: never a whole chunk
    assert inbound.framer.buffered == 2
