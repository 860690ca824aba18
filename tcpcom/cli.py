# -*- coding: utf-8 -*-
"""Command line: ``python -m tcpcom`` (or ``tcpcom``).

    tcpcom demo                       a server and a client talk; every event is printed
    tcpcom server PORT [--echo]       print every event of a TCPServer (Ctrl-C ends)
    tcpcom client HOST PORT           send each line typed, print each message
"""
from __future__ import absolute_import, print_function

import argparse
import sys
import threading

from ._version import __version__
from .tcp import TCPClient, TCPServer


_print_lock = threading.Lock()


def _say(who, state, msg):
    line = "%-7s %-17s %s\n" % (who, state, msg if msg is not None else "")
    with _print_lock:
        try:
            sys.stdout.write(line)
        except UnicodeEncodeError:  # Python 2 / Jython on a console that cannot show it
            encoding = getattr(sys.stdout, "encoding", None) or "ascii"
            sys.stdout.write(line.encode(encoding, "backslashreplace").decode(encoding))
        sys.stdout.flush()


def run_demo(messages=(u"Hello", u"Grüezi", u"3 + 4 = ?")):
    """A TCPServer that answers and a TCPClient that asks, in one process."""
    ended = threading.Event()

    def onServer(state, msg):
        _say("server", state, msg)
        if state == TCPServer.MESSAGE:
            server.sendMessage("got: " + msg)
        elif state == TCPServer.TERMINATED:
            ended.set()

    def onClient(state, msg):
        _say("client", state, msg)

    server = TCPServer(0, onServer, host="127.0.0.1")
    client = TCPClient("127.0.0.1", server.getPort(), onClient)
    if not client.connect(5):
        server.terminate()
        return 1
    for text in messages:
        reply = client.sendMessage(text, 2)
        _say("", "", "sendMessage(%r) returned %r" % (text, reply))
    client.disconnect()
    server.terminate()
    ended.wait(5)
    return 0


def run_server(port, echo=False, host=""):
    def onServer(state, msg):
        _say("server", state, msg)
        if echo and state == TCPServer.MESSAGE:
            ready.wait(5)  # events may come before the constructor's result is assigned
            server.sendMessage(msg)
        if state == TCPServer.PORT_IN_USE:
            _say("", "", "port %s is in use: stop the other program or choose another port" % msg)
            done.set()

    done = threading.Event()
    ready = threading.Event()
    server = TCPServer(port, onServer, host=host)
    ready.set()
    try:
        while not done.is_set() and not server.isTerminated():
            done.wait(0.5)
    except KeyboardInterrupt:
        pass
    server.terminate()
    return 1 if done.is_set() else 0


def run_client(host, port, lines=None):
    gone = threading.Event()

    def onClient(state, msg):
        _say("client", state, msg)
        if state == TCPClient.DISCONNECTED:
            gone.set()

    client = TCPClient(host, port, onClient)
    if not client.connect():
        return 1
    lines = lines if lines is not None else sys.stdin
    try:
        for line in lines:
            if gone.is_set():
                break
            client.sendMessage(line.rstrip("\r\n"))
    except KeyboardInterrupt:
        pass
    client.disconnect()
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="tcpcom", description="tcpcom: TigerJython-compatible TCP server and client. "
        "Start with 'tcpcom demo'.")
    parser.add_argument("--version", action="version", version="tcpcom " + __version__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("demo", help="a server and a client exchange a few messages; every event is printed")
    p = sub.add_parser("server", help="run a TCPServer and print every event (Ctrl-C ends)")
    p.add_argument("port", type=int)
    p.add_argument("--echo", action="store_true", help="send every message back")
    p.add_argument("--host", default="", help="address to listen on (default: all)")
    p = sub.add_parser("client", help="connect a TCPClient; each line typed is sent")
    p.add_argument("host")
    p.add_argument("port", type=int)
    args = parser.parse_args(argv)
    if args.command == "server":
        code = run_server(args.port, args.echo, args.host)
    elif args.command == "client":
        code = run_client(args.host, args.port)
    elif args.command == "demo":
        code = run_demo()
    else:
        parser.print_help()
        code = 2
    sys.exit(code)
