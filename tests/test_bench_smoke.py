"""The benchmark suite runs end to end (``bench/run.py --quick``).

Proves the one command works and prints a row for every figure; it never
looks at a time (speed is reported by the bench, not asserted by tests).
"""
import importlib
import os
import random
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.timeout(180)
def test_quick_bench_prints_every_figure():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run.py"), "--quick"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=170, cwd=ROOT)
    out = proc.stdout
    assert proc.returncode == 0, out
    for n in range(1, 8):
        assert "## Figure %d:" % n in out, out
    rows = [
        "(a) raw connect -> raw server", "ours: TCPClient.connect() -> TCPServer",
        "ours: TCPClient.connect() -> engine Listener",
        "(a) raw client -> raw server", "(c) raw client -> asyncio server",
        "ours: TCPClient -> TCPServer (end to end)", "ours: engine request() -> Listener",
        "ours: TCPServer stateChanged MESSAGE", "ours: engine Listener message_received",
        "ours: TCPClient -> TCPServer", "ours: engine Listener",
        "ThreadingHTTPServer (standard library)", "ours: tcpcom.http HTTPServer",
        "ours: tcpcom.httpserver HTTPListener",
        "ours: engine Listener, default backlog", "(a) raw thread per connection, backlog",
    ]
    for row in rows:
        assert "| " + row in out, row
    # figure 6 counts each server's context switches per request (getrusage in the server)
    fig6 = out.split("## Figure 6:")[1].split("\n\n")[0].splitlines()
    assert "switches/request" in fig6[1], fig6
    for line in fig6[3:]:
        assert float(line.split("|")[5]) > 0, line
    # every baseline and our rows produced numbers, not errors
    assert "Error" not in out and "failed" not in out, out
    assert "## Targets" in out
    # the burst and the scale figure count failures; a smoke-sized burst has none
    for target in ("burst of 20 connections, default backlog: no failures",
                   "200 simultaneous connections to one Listener: no failures"):
        lines = [ln for ln in out.splitlines() if target in ln]
        assert lines and lines[0].rstrip().endswith(" met"), out


def _bench_module(name):
    """A module of bench/ (run, workers), imported the way bench/run.py finds them."""
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def test_the_floor_check_fails_a_full_run_whose_raw_pair_is_far_from_the_minimal_pair(capsys):
    run = _bench_module("run")
    R = {}
    assert run.check_floor(R, "pinned", 8.5e-6, 8.0e-6)
    assert "floor_failed" not in R
    assert not run.check_floor(R, "pinned", 24e-6, 8e-6)  # a 1 MiB receive buffer in the raw client
    assert R["floor_failed"] == ["pinned"] and "FLOOR CHECK FAILED" in capsys.readouterr().out
    assert not run.check_floor(R, "unpinned", float("nan"), 8e-6)  # not measured: no floor
    Q = {}
    assert not run.check_floor(Q, "pinned", 24e-6, 8e-6, quick=True)
    assert "floor_failed" not in Q  # a smoke run only says so
    # each half is checked too, and says which side it is
    H = {}
    assert not run.check_floor(H, "pinned", 24e-6, 8e-6, halves=(23e-6, 9e-6))
    out = capsys.readouterr().out
    assert "the raw client with the minimal server (the client every" in out and "is 2.88 x" in out
    assert "the minimal client with the raw server" not in out  # 1.12 x: that side is fine
    assert H["floor_halves"]["pinned"] == {"raw_client": 23e-6 / 8e-6, "raw_server": 9e-6 / 8e-6}
    # a baseline server slower than its job explains fails the run, though the pair passes
    S = {}
    assert not run.check_floor(S, "pinned", 11e-6, 8e-6, halves=(8.2e-6, 10.4e-6))
    assert S["floor_failed"] == ["pinned"]
    assert "the minimal client with the raw server (the baseline every ratio divides by) is 1.30 x" \
        in capsys.readouterr().out
    # halves that each do their share of the job pass, and the pair with them
    assert run.check_floor(S, "unpinned", 12.4e-6, 9.9e-6, halves=(10.7e-6, 11.3e-6))
    assert S["floor_failed"] == ["pinned"]


def test_the_baselines_framing_gives_every_message_whatever_the_chunks():
    # the baselines' Splitter (bench/workers.py) frames as the engine does: a baseline that lost
    # or joined messages would make every ratio against it meaningless
    workers = _bench_module("workers")
    rnd = random.Random(15)
    for _ in range(300):  # bounded: 300 streams of at most 6 messages
        messages = [u"".join(rnd.choice(u"ab\u00e9\u20ac") for _ in range(rnd.randint(0, 9)))
                    for _ in range(rnd.randint(0, 6))]
        messages.append(u"bad \udcff byte")  # surrogateescape: a byte that does not decode comes back
        tail = rnd.choice([b"", b"t", b"tail\xc3"])  # an incomplete end (even a cut character) is held
        wire = b"".join(m.encode("utf-8", "surrogateescape") + b"\0" for m in messages) + tail
        split, got, i = workers.Splitter(), [], 0
        while i < len(wire):
            k = rnd.randint(1, 7)
            got.extend(split.feed(wire[i:i + k]))
            i += k
        assert got == messages
        assert bytes(split.held) == tail
