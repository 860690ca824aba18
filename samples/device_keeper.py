"""A plugin that keeps its connection to a device that restarts.

The device (an amplifier, a projector, a PLC) speaks lines and forgets its
settings when it reboots.  The plugin keeps one connection to it with the
engine's ``ReconnectingConnection``: when the device goes away (a reboot,
a pulled cable, Wi-Fi) the connection is dialed again by itself, first after
half a second, then with waits that double up to 10 s.  Each time it is
back, the plugin sets the device up again (``VOLUME <n>``) and asks for its
status; every ``--poll`` seconds it asks again, and says so when the device
is away instead of queueing the question.

Run it against a device, or against any program that speaks lines (stop
and start ``nc -l 4999`` to play the device that restarts)::

    python3 samples/device_keeper.py 192.168.1.30 4999 --volume 40 --poll 5

It stops on Ctrl-C or after ``--run-seconds``.
"""
from __future__ import print_function

import argparse
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tcpcom.engine import ReconnectHandler, ReconnectingConnection, ReconnectingError  # noqa: E402

_print_lock = threading.Lock()


def say(*words):
    with _print_lock:
        print(*words)
        sys.stdout.flush()


class Keeper(ReconnectHandler):
    """What the plugin does at each step of the connection's life."""

    def __init__(self, volume):
        self.volume = volume
        self.status = None  # the device's last status line

    def connection_made(self, conn):
        say("CONNECTED %s:%d (connection %d)" % (conn.remote_address, conn.remote_port, conn.connects))
        # the device forgot everything when it restarted: set it up again, then ask
        conn.send_message("VOLUME %d" % self.volume)
        conn.send_message("STATUS?")

    def message_received(self, conn, message):
        if message.startswith("STATUS"):
            self.status = message
        say("device: %s" % message)

    def connection_lost(self, conn, reason):
        say("LOST: %s" % (reason or "the device closed the connection"))

    def reconnecting(self, conn, attempt, delay, reason):
        say("RETRY %d in %.1f s%s" % (attempt, delay, " (%s)" % reason if attempt > 1 else ""))

    def gave_up(self, conn, reason):
        say("GAVE UP: %s" % reason)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Keep a connection to a device that restarts.")
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--volume", type=int, default=40, help="the setting restored after each restart")
    ap.add_argument("--poll", type=float, default=5.0, help="seconds between two status questions")
    ap.add_argument("--run-seconds", type=float, default=None, help="stop by itself after this long")
    args = ap.parse_args(argv)

    keeper = ReconnectingConnection(args.host, args.port, Keeper(args.volume), framing="line",
                                    delay=0.5, max_delay=10.0, timeout=5.0)
    stop = threading.Event()
    if args.run_seconds is not None:
        t = threading.Timer(args.run_seconds, stop.set)
        t.daemon = True
        t.start()
    try:
        while not stop.wait(args.poll):  # a timeout: Ctrl-C interrupts only timed waits on Python 2
            try:
                keeper.send_message("STATUS?")
            except ReconnectingError as e:  # nothing is queued: ask again at the next poll
                say("not polled: %s" % e)
        how = "timeout"
    except KeyboardInterrupt:
        how = "interrupted"
    keeper.close()
    keeper.wait_closed(5.0)
    keeper.executor.wait_idle(5.0)  # the last LOST is printed before STOPPED
    say("STOPPED (%s) after %d connections" % (how, keeper.connects))
    return 0


if __name__ == "__main__":
    sys.exit(main())
