"""Shared tools of the reliability suite: scale, payloads, measurements."""
import gc
import hashlib
import os
import random
import struct
import threading
import time

FULL = os.environ.get("TCPCOM_RELIABILITY_FULL", "") not in ("", "0")


def scaled(ci, full):
    """The CI figure, or the full-size one with TCPCOM_RELIABILITY_FULL=1."""
    return full if FULL else ci


_TEXT = (u"Gr\u00fc\u00dfe aus Z\u00fcrich \u2013 na\u00efve caf\u00e9, \u65e5\u672c\u8a9e\u306e"
         u"\u30c6\u30ad\u30b9\u30c8, \U0001F389\U0001F680, \u0395\u03bb\u03bb\u03b7\u03bd\u03b9"
         u"\u03ba\u03ac, \u0440\u0443\u0441\u0441\u043a\u0438\u0439. ")
MAX_SIZE = 65536


class Payloads(object):
    """Deterministic random messages of 0..64 KiB without the \\0 delimiter.

    Sizes are log-uniform (every order of magnitude from 0 bytes to exactly
    64 KiB is common); a third are non-ASCII UTF-8 text cut at character
    boundaries, a third ASCII, a third binary bytes (mostly invalid UTF-8).
    Messages are memoryviews into fixed pools, so a million cost nothing.
    """

    def __init__(self, seed):
        self.rng = random.Random(seed)
        n = 4 * MAX_SIZE
        rnd = random.Random(seed ^ 0x5EED)
        binary = bytearray(rnd.getrandbits(8 * n).to_bytes(n, "little"))
        self.binary = bytes(binary.replace(b"\0", b"\1"))
        text = (_TEXT * (n // len(_TEXT.encode("utf-8")) + 2)).encode("utf-8")
        self.text = text[:n + 8]
        self.ascii = bytes(bytearray(rnd.randrange(32, 127) for _ in range(4096))) * (n // 4096)

    def size(self):
        r = self.rng.random()
        if r < 0.03:
            return 0
        if r < 0.06:
            return MAX_SIZE
        return min(MAX_SIZE, int(2 ** self.rng.uniform(0, 16)))

    def next(self):
        size = self.size()
        kind = self.rng.randrange(3)
        if kind == 0:
            pool = self.text
            start = self.rng.randrange(0, len(pool) - size - 8)
            while pool[start] & 0xC0 == 0x80:
                start += 1
            end = start + size
            while end < len(pool) and pool[end] & 0xC0 == 0x80:
                end -= 1
            return memoryview(pool)[start:end]
        pool = self.ascii if kind == 1 else self.binary
        start = self.rng.randrange(0, len(pool) - size + 1)
        return memoryview(pool)[start:start + size]

    def write_size(self):
        """A random write size, 1 byte to 128 KiB, log-uniform."""
        return max(1, int(2 ** self.rng.uniform(0, 17)))


class StreamDigest(object):
    """Order-sensitive digest of a sequence of messages (count, bytes, valid text)."""

    def __init__(self):
        self.h = hashlib.md5()
        self.count = 0
        self.nbytes = 0
        self.valid_text = 0

    def add(self, data, valid=None):
        self.h.update(struct.pack("<I", len(data)))
        self.h.update(data)
        self.count += 1
        self.nbytes += len(data)
        if valid:
            self.valid_text += 1

    def result(self):
        return (self.count, self.nbytes, self.valid_text, self.h.hexdigest())


def is_utf8(data):
    try:
        bytes(data).decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def fd_count():
    return len(os.listdir("/proc/self/fd"))


def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def settle(predicate, timeout=10.0):
    """Wait (bounded) until ``predicate()`` holds; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        v = predicate()
        if v or time.monotonic() > deadline:
            return v
        threading.Event().wait(0.02)
