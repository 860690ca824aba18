"""Before/after: the same figures for two tcpcom checkouts, interleaved in one run.

``python3 bench/before_after.py OLD_TCPCOM_PARENT_DIR [--quick] [--only 2|6] [--rounds N]`` where the
directory holds the old ``tcpcom`` package (e.g. made with
``git archive <commit> tcpcom | tar -x -C /tmp/before``).  Prints medians of
one-way throughput (TCPServer, Listener), figure 2's round trips (pinned, median of every
round trip, and its ratio to the raw pair of the same round),
bulk 64 MiB up/down and 2,000-connection figures for "before" and "after";
``--only 6``: figure 6 (HTTP requests/s, new connections and keep-alive, with
``ThreadingHTTPServer`` run in the same rounds for the ratio); ``--only 2``: figure 2's
pinned round trips alone; ``--rounds N``: N interleaved rounds (default 5, 2 with ``--quick``).
Every loop bounded; loopback only.
"""
from __future__ import print_function

import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402


def main():
    old = os.path.abspath(sys.argv[1])
    quick = "--quick" in sys.argv
    rounds = 2 if quick else 5
    if "--rounds" in sys.argv:
        rounds = int(sys.argv[sys.argv.index("--rounds") + 1])
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    sides = [("before", {"TCPCOM_BENCH_PATH": old}), ("after", {"TCPCOM_BENCH_PATH": os.path.dirname(HERE)})]
    res = {}

    def add(key, side, value):
        res.setdefault(key, {}).setdefault(side, []).append(value)

    if only == "6":
        http(sides, rounds, quick, add)
        return report(res, rounds)
    if only == "2":
        for _ in range(rounds):
            for side, env in sides:
                roundtrips(side, env, quick, add)
        return report(res, rounds)
    for _ in range(rounds):
        for side, env in sides:
            for kind in ("tcpserver", "listener"):
                srv = run.Server(kind, None, env)
                r = run.client("throughput", "raw", srv.port, dict(n=20000 if quick else 300000, reps=1), None, env=env)
                srv.stop()
                if "rates" in r:
                    add("throughput %s M msg/s" % kind, side, r["rates"][0] / 1e6)
            roundtrips(side, env, quick, add)
            srv = run.Server("tcpserver", None, env)
            size = 4 if quick else 64
            r = run.client("bulk", "tcpclient", srv.port, dict(sizes=[size], reps=1), None, env=env)
            srv.stop()
            for way in ("up", "down"):
                if "%s%d" % (way, size) in r:
                    add("bulk %d MiB %s s" % (size, way), side, r["%s%d" % (way, size)][0])
            n = 100 if quick else 2000
            srv = run.Server("listener", None, env)
            r = run.client("concurrency", "raw", srv.port, dict(n=n, rounds=20), None, env=env)
            st = srv.stop()
            if "round_trips" in r:
                add("%d connections round trips/s" % n, side, r["round_trips"] / r["rt_time"])
                add("%d connections peak RSS MiB" % n, side, st.get("hwm_kb", 0) / 1024.0)
    report(res, rounds)


def roundtrips(side, env, quick, add):
    """Figure 2's cases, pinned to one CPU: the median round trip (us) and its ratio to the
    raw pair of the same round."""
    cpu = run.CPU
    p = dict(n=200 if quick else 1000, reps=1)
    servers = dict((k, run.Server(k, cpu, env)) for k in ("raw", "tcpserver", "listener"))
    try:
        base = run.med(run.client("roundtrip", "raw", servers["raw"].port, p, cpu).get("rt", []))
        for label, ck, sk in (("raw client -> TCPServer", "raw", "tcpserver"),
                              ("raw client -> Listener", "raw", "listener"),
                              ("TCPClient -> TCPServer", "tcpclient", "tcpserver"),
                              ("engine request() -> Listener", "engine", "listener")):
            r = run.client("roundtrip", ck, servers[sk].port, p, cpu, env=env)
            if r.get("rt"):
                m = run.med(r["rt"])
                add("round trip %s, pinned: median us" % label, side, m * 1e6)
                add("round trip %s, pinned: x raw pair" % label, side, m / base)
    finally:
        run.stop_all(servers)


def http(sides, rounds, quick, add):
    """Figure 6 only: requests/s and the ratio to ThreadingHTTPServer of the same round."""
    n = 300 if quick else 3000
    for _ in range(rounds):
        for keep in (False, True):
            mode = "keep-alive" if keep else "new connections"
            p = dict(n=n, threads=8, keepalive=keep)
            srv = run.Server("http-threading")
            base = run.client("http", "raw", srv.port, p, None).get("rps")
            srv.stop()
            for side, env in sides:
                for kind, label in (("http-tcpcom", "HTTPServer"), ("http-listener", "HTTPListener")):
                    srv = run.Server(kind, None, env)
                    r = run.client("http", "raw", srv.port, p, None, env=env)
                    srv.stop()
                    if "rps" in r and base:
                        add("%s, %s: requests/s" % (label, mode), side, r["rps"])
                        add("%s, %s: x ThreadingHTTPServer" % (label, mode), side, r["rps"] / base)
            if base:
                add("ThreadingHTTPServer, %s: requests/s" % mode, "before", base)
                add("ThreadingHTTPServer, %s: requests/s" % mode, "after", base)


def report(res, rounds):
    print("| figure (median of %d interleaved runs) | before | after | after / before |" % rounds)
    print("|---|---|---|---|")
    for key in res:
        b = statistics.median(res[key].get("before", [float("nan")]))
        a = statistics.median(res[key].get("after", [float("nan")]))
        print("| %s | %.3g | %.3g | %.2f |" % (key, b, a, a / b if b else float("nan")))


if __name__ == "__main__":
    main()
