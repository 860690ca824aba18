# -*- coding: utf-8 -*-
"""Command line: ``python -m tcpcom`` (or ``tcpcom``).

    tcpcom demo                       a server and a client talk; every event is printed
    tcpcom server PORT [--echo]       print every event of a TCPServer (Ctrl-C ends)
    tcpcom client HOST PORT           send each line typed, print each message
    tcpcom client HOST PORT --reconnect   ... and connect again whenever the connection is lost

Every event goes to stdout, one line each.  What went wrong, and what to do
about it, is one line too: a wrong argument on stderr (exit status 2), a
server or client that could not do its job on stdout after its event (exit
status 1).  No traceback reaches the user.
"""
from __future__ import absolute_import, print_function

import argparse
import errno
import os
import sys
import threading

from ._compat import JYTHON, make_thread, queue, script_text
from ._version import __version__
from .diagnostics import console_write
from .engine import (NETWORK_ERRORS, OCCUPIED, ConnectError, ConnectionClosedError, ReconnectingConnection,
                     is_name_error, resolves)
from .lifetime import interrupted
from .tcp import TCPClient, TCPServer

#: seconds the command waits for an event the library delivers from its own thread
EVENT_DEADLINE = 5.0
#: at the end of its input, ``client`` disconnects once the server was silent this long
QUIET = 1.0
#: ``client --reconnect``: the wait before dialing again after a loss, and the longest wait between dials
RECONNECT_DELAY = 0.5
RECONNECT_MAX_DELAY = 5.0

_print_lock = threading.Lock()


def _say(who, state, msg):
    line = "%-7s %-17s %s\n" % (who, state, msg if msg is not None else "")
    with _print_lock:
        console_write(sys.stdout, line)  # Python 2 / Jython: what the console cannot show, escaped
        sys.stdout.flush()


def _advise(text):
    """The one line after an event that says what it means and what to do."""
    _say("", "", text)


def _invocation():
    """How the user started us: 'python3 -m tcpcom' or 'tcpcom' (for the examples in messages)."""
    script = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if os.path.basename(script) in ("__main__.py", "-m", "-c", ""):
        return "%s -m tcpcom" % (os.path.basename(sys.executable or "") or "python3")
    return os.path.basename(script)


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


class CommandLineError(Exception):
    """A wrong argument: the message is the one line the user gets."""


def _listen_error(error, port, host):
    """The one line for a server that cannot listen (other than a taken port)."""
    code = getattr(error, "errno", None)
    where = ("address %s " % host) if host else ""
    if is_name_error(error):
        return ("cannot find the address %r given with --host: give an IP address of this machine, "
                "e.g. --host 127.0.0.1, or leave --host out" % host)
    if code == errno.EADDRNOTAVAIL:
        return ("this machine has no address %s (--host): give one of its addresses, e.g. --host 127.0.0.1, "
                "or leave --host out to listen on all of them" % host)
    if code == errno.EACCES:
        return ("port %d needs administrator rights: choose a port from 1024 to 65535, e.g. 5000" % port)
    return "cannot listen on %sport %d: %s" % (where, port, error)


def run_server(port, echo=False, host=""):
    ready = threading.Event()
    in_use = threading.Event()

    def onServer(state, msg):
        _say("server", state, msg)
        if echo and state == TCPServer.MESSAGE:
            ready.wait(EVENT_DEADLINE)  # events may come before the constructor's result is assigned
            server.sendMessage(msg)
        if state == TCPServer.PORT_IN_USE:
            in_use.set()

    try:
        server = TCPServer(port, onServer, host=host)
    except NETWORK_ERRORS as e:
        raise CommandLineError(_listen_error(e, port, host))
    ready.set()
    try:  # Ctrl-C at any moment ends the server cleanly
        if server.isTerminated():  # terminated before anyone asked: only a taken port does that
            # PORT_IN_USE comes from the server's own (daemon) thread: let it
            # be printed before the advice and before the process ends
            in_use.wait(EVENT_DEADLINE)
            _advise("port %d is in use: stop the other program or choose another port" % port)
            return 1
        while not server.isTerminated():
            in_use.wait(0.5)  # a timeout: Ctrl-C interrupts only timed waits on Python 2 / Jython
    except BaseException as e:
        if not interrupted(e):
            raise
    server.terminate()
    return 0


def _each_line(f):
    while True:
        line = f.readline()
        if not line:
            return
        yield line


def _typed_lines():
    """The lines typed: ``sys.stdin``, except on Jython.

    There ``sys.stdin`` on a terminal is Jython's JLine console, which some
    installations cannot load (Debian's jython 2.7.3 misses
    ``org.fusesource.jansi``: every readline is a Java ``NoClassDefFoundError``);
    a Java reader of file descriptor 0 reads the same lines without it.
    """
    if JYTHON:
        from java.io import BufferedReader, FileDescriptor, FileInputStream, InputStreamReader
        try:  # JLine put the terminal in raw mode without echo: give it back its line editing and echo
            sys._jy_console.getReader().getTerminal().restore()
        except Exception:  # not a JLine console (a pipe, another console): nothing to restore
            pass
        # the standard input itself (Jython's System.in is the console's); `in` is a Python keyword
        reader = BufferedReader(InputStreamReader(FileInputStream(getattr(FileDescriptor, "in"))))

        def lines():
            while True:
                line = reader.readLine()
                if line is None:
                    return
                yield line
        return lines()
    return sys.stdin


def _read_lines(lines, into):
    """Put each line of ``lines`` into the queue ``into``, then None (the end of the input)."""
    if hasattr(lines, "readline"):  # a file: line by line (Python 2's iterator reads ahead 8 KiB)
        lines = _each_line(lines)
    try:
        for line in lines:
            into.put(line)
    except (IOError, OSError, ValueError):  # stdin closed under us
        pass
    finally:
        into.put(None)


_SERVER_GONE = object()


def run_client(host, port, lines=None, quiet=None):
    """Send each line of ``lines`` (default: what is typed).

    At the end of the input (Ctrl-D, the end of a piped file) the answers
    still on their way are printed: the client disconnects once the server
    has sent nothing for ``quiet`` seconds (default ``QUIET``).  Returns 1
    when the connection failed or the server hung up before the input
    ended, else 0 (also after Ctrl-C).
    """
    quiet = QUIET if quiet is None else quiet
    inbox = queue.Queue()  # typed lines, None at the end of the input, _SERVER_GONE
    failed = []
    failure_seen = threading.Event()
    heard = threading.Event()  # a message arrived (since the last look)
    closing = []

    def onClient(state, msg):
        _say("client", state, msg)
        if state == TCPClient.MESSAGE:
            heard.set()
        elif state in (TCPClient.CONNECTION_FAILED, TCPClient.SERVER_OCCUPIED):
            failed.append(state)
            failure_seen.set()
        elif state == TCPClient.DISCONNECTED and not closing:
            inbox.put(_SERVER_GONE)

    client = TCPClient(host, port, onClient)
    where = "%s:%d" % (host, port)
    code = 0
    try:  # Ctrl-C at any moment ends the client cleanly
        if not client.connect():
            failure_seen.wait(EVENT_DEADLINE)  # the event may come from the client's thread
            if failed and failed[-1] == TCPClient.SERVER_OCCUPIED:
                _advise("the server at %s is busy with another client: try again when it is free" % where)
            elif not resolves(host):
                _advise("cannot connect to %s: no computer is known by the name %r: check its spelling, "
                        "or give its IP address, e.g. 192.168.1.20" % (where, host))
            else:
                _advise("cannot connect to %s: is the server running, and are the address and the port right?"
                        % where)
            return 1
        # the input is read by a thread of its own, so that a server that
        # hangs up is noticed at once, not when the next line is typed
        reader = make_thread(_read_lines, "tcpcom-input", (lines if lines is not None else _typed_lines(), inbox))
        reader.start()
        ended = False  # the input ended: only answers are awaited
        while True:
            heard.clear()
            try:
                # a timeout: Ctrl-C interrupts only timed waits on Python 2 / Jython
                item = inbox.get(True, quiet if ended else 0.5)
            except queue.Empty:
                if ended and not heard.is_set():
                    break  # the server has been quiet for `quiet` s
                continue
            if item is None:
                ended = True
            elif item is _SERVER_GONE:
                _advise("the server closed the connection")
                code = 0 if ended else 1
                break
            else:
                client.sendMessage(item.rstrip("\r\n"))
    except BaseException as e:
        if not interrupted(e):
            raise
    closing.append(True)
    client.disconnect()
    return code


def _occupied_wait(handshake):
    """How long a dial watches for an occupied server's hang-up: as TCPClient.connect() does."""
    return min(TCPClient.OCCUPIED_WAIT_MAX, max(TCPClient.OCCUPIED_WAIT_MIN,
                                                TCPClient.OCCUPIED_WAIT_FACTOR * handshake))


class _Redialing(object):
    """The events of ``client --reconnect``, printed with TCPClient's state names."""

    def __init__(self, host, port, heard):
        self.host = host
        self.port = port
        self.where = "%s:%d" % (host, port)
        self.heard = heard
        self.connected = threading.Event()  # once connected the first time

    def connection_made(self, conn):
        _say("client", TCPClient.CONNECTED, self.where)
        self.connected.set()

    def messages_received(self, conn, messages):
        for m in messages:
            _say("client", TCPClient.MESSAGE, m)
        self.heard.set()

    def connection_lost(self, conn, reason):
        _say("client", TCPClient.DISCONNECTED, "")

    def reconnecting(self, conn, attempt, delay, reason):
        again = "trying again in %.1f s (--reconnect: Ctrl-C ends)" % delay
        if reason is None:
            _advise("the server closed the connection: %s" % again)
        elif not isinstance(reason, ConnectError):
            _advise("the connection was lost (%s): %s" % (reason, again))
        elif reason.kind == OCCUPIED:
            _say("client", TCPClient.SERVER_OCCUPIED, self.where)
            _advise("the server at %s is busy with another client: %s" % (self.where, again))
        else:
            _say("client", TCPClient.CONNECTION_FAILED, self.where)
            if not resolves(self.host):
                _advise("cannot connect to %s: no computer is known by the name %r (yet): %s"
                        % (self.where, self.host, again))
            else:
                _advise("cannot connect to %s (is the server running?): %s" % (self.where, again))
        _say("client", TCPClient.CONNECTING, self.where)


def run_reconnecting_client(host, port, lines=None, quiet=None):
    """``client --reconnect``: as :func:`run_client`, but a failed or lost connection is dialed
    again (after RECONNECT_DELAY s, the waits doubling up to RECONNECT_MAX_DELAY s) until
    Ctrl-C or the end of the input.  The input is read from the first connection on; a line
    typed while the connection is away is not sent (one line says so): nothing is queued.
    Returns 0.
    """
    quiet = QUIET if quiet is None else quiet
    inbox = queue.Queue()  # typed lines, None at the end of the input
    heard = threading.Event()
    where = "%s:%d" % (host, port)
    _say("client", TCPClient.CONNECTING, where)
    events = _Redialing(host, port, heard)
    keeper = ReconnectingConnection(host, port, events, delay=RECONNECT_DELAY, max_delay=RECONNECT_MAX_DELAY,
                                    occupied_wait=_occupied_wait)
    try:  # Ctrl-C at any moment ends the client cleanly
        while not events.connected.wait(0.5):  # the input is read once connected (a pipe's lines are not lost)
            pass
        reader = make_thread(_read_lines, "tcpcom-input", (lines if lines is not None else _typed_lines(), inbox))
        reader.start()
        ended = False
        while True:
            heard.clear()
            try:
                item = inbox.get(True, quiet if ended else 0.5)  # a timeout: Ctrl-C (Python 2 / Jython)
            except queue.Empty:
                if ended and not heard.is_set():
                    break
                continue
            if item is None:
                ended = True
                continue
            text = item.rstrip("\r\n")
            try:
                keeper.send_message(script_text(text))
            except ConnectionClosedError:
                wait = keeper.next_dial_in
                _advise("not connected: %r was not sent%s" % (
                    text, " (trying again in %.1f s)" % wait if wait is not None else " (connecting)"))
    except BaseException as e:
        if not interrupted(e):
            raise
    keeper.close()
    keeper.wait_closed(EVENT_DEADLINE)
    keeper.executor.wait_idle(EVENT_DEADLINE)  # DISCONNECTED is printed before the program ends
    return 0


def _host(text):
    if not text.strip():
        raise argparse.ArgumentTypeError("the server's address is empty: give its name or IP address")
    return text.strip()


def _port(lowest):
    def port(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError("the port must be a whole number from %d to 65535, not %r"
                                             % (lowest, text))
        if not lowest <= value <= 65535:
            raise argparse.ArgumentTypeError("port %d is out of range: give one from %d to 65535%s" % (
                value, lowest, " (0 lets the system choose)" if lowest == 0 else ""))
        return value
    return port


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose every complaint is one line that also says what to do."""

    def error(self, message):
        raise CommandLineError(_explain(self, message))


def _explain(parser, message):
    """argparse's ``message`` as one line that says what is wrong and what to do."""
    cmd = _invocation()
    sub = getattr(parser, "command", None)
    examples = {"server": "%s server 5000" % cmd, "client": "%s client 127.0.0.1 5000" % cmd,
                "demo": "%s demo" % cmd}
    commands = ("use one of: demo, server PORT [--echo] [--host H], client HOST PORT [--reconnect] "
                "(%s --help tells more)" % cmd)
    if "invalid choice: " in message:
        choice = message.split("invalid choice: ", 1)[1].split(" (choose", 1)[0]
        return "unknown command %s: %s" % (choice, commands)
    if message.startswith("the following arguments are required"):
        missing = message.split(":", 1)[1].strip()
        if sub == "client" and "host" in missing:
            what = "the server's address and port are missing"
        elif missing == "command":
            return "no command given: %s" % commands
        else:
            what = "the %s is missing" % missing.replace(", ", " and ")
        return "%s: %s, e.g. %s" % (what, "give it" if "," not in missing else "give them",
                                    examples.get(sub, cmd + " demo"))
    if message == "too few arguments":  # Python 2: no command
        return "no command given: %s" % commands
    if message.endswith("expected one argument"):  # --host with nothing after it
        option = message.split(":", 1)[0].replace("argument ", "")
        return "%s needs a value after it, e.g. %s --host 127.0.0.1" % (option, examples.get(sub, cmd))
    if message.startswith("unrecognized arguments"):
        extra = message.split(":", 1)[1].strip()
        return "%r is not an argument tcpcom knows: %s" % (extra, commands)
    for name in ("port", "host"):  # our own messages, from _port and _host
        if message.startswith("argument %s: " % name):
            text = message[len("argument %s: " % name):]
            return "%s, e.g. %s" % (text, examples.get(sub, cmd + " server 5000"))
    return "%s: %s %s--help lists the arguments" % (message, cmd, sub + " " if sub else "")


def _parser():
    cmd = _invocation()
    parser = _Parser(
        prog=cmd, description="tcpcom: TigerJython-compatible TCP server and client. "
        "Start with '%s demo'." % cmd)
    parser.add_argument("--version", action="version", version="tcpcom " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="{demo,server,client}")
    p = sub.add_parser("demo", help="a server and a client exchange a few messages; every event is printed")
    p.command = "demo"
    p = sub.add_parser("server", help="run a TCPServer and print every event (Ctrl-C ends)")
    p.command = "server"
    p.add_argument("port", type=_port(0), help="0 to 65535 (0: the system chooses, LISTENING shows it)")
    p.add_argument("--echo", action="store_true", help="send every message back")
    p.add_argument("--host", default="", help="address to listen on (default: all)")
    p = sub.add_parser("client", help="connect a TCPClient; each line typed is sent (Ctrl-C ends)")
    p.command = "client"
    p.add_argument("host", type=_host, help="the server's address, e.g. 127.0.0.1 or a name")
    p.add_argument("port", type=_port(1), help="1 to 65535")
    p.add_argument("--reconnect", action="store_true",
                   help="keep trying: connect again whenever the connection cannot be made or is lost")
    return parser


def main(argv=None):
    try:
        args = _parser().parse_args(argv)
        if args.command == "server":
            code = run_server(args.port, args.echo, args.host)
        elif args.command == "client":
            code = (run_reconnecting_client if args.reconnect else run_client)(args.host, args.port)
        elif args.command == "demo":
            code = run_demo()
        else:
            raise CommandLineError(_explain(_parser(), "the following arguments are required: command"))
    except CommandLineError as e:
        sys.stderr.write("tcpcom: %s\n" % e)
        sys.stderr.flush()
        code = 2
    except BaseException as e:  # Ctrl-C before the server or client was running
        if not interrupted(e):
            raise
        code = 130
    sys.exit(code)
