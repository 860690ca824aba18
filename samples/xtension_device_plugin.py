"""An XTension-style plugin: a simulated dimmer that speaks a line protocol.

Written as an XTension plugin script is (event functions at module level,
``from xtcompat import *``), it runs as a plain Python program here:

- a TCP listener (lines end in CR LF) takes commands from any number of
  clients: ``ON``, ``OFF``, ``DIM 0..100``, ``STATUS``, ``QUIT`` (stops the
  plugin); every client gets ``OK ...`` back, and all of them hear
  ``STATUS ...`` when the level changes;
- an outgoing connection (``--report HOST:PORT``) reports every change to a
  controller, starting with ``HELLO <name>``;
- a UDP discovery responder answers a ``DISCOVER`` datagram (also a
  broadcast) with ``DEVICE <name> <tcp port>``.

Run it::

    python3 samples/xtension_device_plugin.py --tcp 5150 --udp 5151
    printf 'ON\\r\\nDIM 40\\r\\nSTATUS\\r\\n' | nc localhost 5150

It stops on Ctrl-C, on ``QUIT`` from a client, or after ``--run-seconds``.
"""
from __future__ import print_function

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from xtcompat import *  # noqa: E402,F401,F403

NAME = "dimmer-1"
level = 0
clients = {}          # connection ID -> remote address
report_id = ""        # the outgoing connection to the controller, if any


def status():
    return "STATUS %s %d" % ("ON" if level else "OFF", level)


def tell_everyone(line):
    for cid in list(clients):
        XTWriteConnection(cid, line + "\r\n")
    if report_id:
        XTWriteConnection(report_id, line + "\r\n")


def set_level(new_level):
    global level
    changed = new_level != level
    level = new_level
    if changed:
        XTWriteLog("level is now", level, xtColorBlue)
        tell_everyone(status())


# -- XTension's events ---------------------------------------------------------


def XTNewConnection(theConnectionID, theConnectionInfo):
    XTWriteLog("client", theConnectionID, "from", theConnectionInfo[xtKeyRemoteAddress],
               "port", theConnectionInfo[xtKeyPeerPort], "mac", theConnectionInfo[xtKeyMacAddress])
    clients[theConnectionID] = theConnectionInfo[xtKeyRemoteAddress]
    XTWriteConnection(theConnectionID, "HELLO %s\r\n" % NAME)
    return True


def XTDataAvailable(theData, theConnectionID, theConnectionInfo):
    if theConnectionID == report_id:
        XTWriteLog("controller says:", theData)
        return
    words = theData.strip().upper().split()
    if not words:
        return
    cmd = words[0]
    if cmd == "ON":
        XTWriteConnection(theConnectionID, "OK ON\r\n")
        set_level(100)
    elif cmd == "OFF":
        XTWriteConnection(theConnectionID, "OK OFF\r\n")
        set_level(0)
    elif cmd == "DIM" and len(words) == 2 and words[1].isdigit() and 0 <= int(words[1]) <= 100:
        XTWriteConnection(theConnectionID, "OK DIM %d\r\n" % int(words[1]))
        set_level(int(words[1]))
    elif cmd == "STATUS":
        XTWriteConnection(theConnectionID, "OK " + status() + "\r\n")
    elif cmd == "QUIT":
        XTWriteConnection(theConnectionID, "OK BYE\r\n")
        XTWriteLog("QUIT received: stopping")
        XTStopAll()
    else:
        XTWriteConnection(theConnectionID, "ERROR unknown command %r\r\n" % theData)


def XTSocketError(theConnectionID, theConnectionInfo):
    global report_id
    clients.pop(theConnectionID, None)
    if theConnectionID == report_id or theConnectionID == "":
        report_id = ""
        XTWriteLog("controller connection ended:", theConnectionInfo[xtKeyErrorNumber],
                   theConnectionInfo[xtKeyErrorMessage], xtColorOrange)
    else:
        XTWriteLog("client", theConnectionID, "ended:", theConnectionInfo[xtKeyErrorNumber],
                   theConnectionInfo[xtKeyErrorMessage])


def XTReceivedDatagram(theData, theListenerID, theDatagramInfo):
    if theData.strip().upper() == "DISCOVER":
        XTSendDatagram(theListenerID, theDatagramInfo[xtKeyRemoteAddress], theDatagramInfo[xtKeyRemotePort],
                       "DEVICE %s %d" % (NAME, XTGetListenerPort(tcp_listener)))


# -- the plugin's start --------------------------------------------------------


def main(argv=None):
    global report_id, tcp_listener
    ap = argparse.ArgumentParser(description="A simulated dimmer written as an XTension plugin script.")
    ap.add_argument("--tcp", type=int, default=5150, help="TCP command port (0: any free port)")
    ap.add_argument("--udp", type=int, default=5151, help="UDP discovery port (0: any free port)")
    ap.add_argument("--host", default="", help="address the TCP listener binds (default: all)")
    ap.add_argument("--udp-host", default="", help="address the UDP listener binds (default: all, for broadcasts)")
    ap.add_argument("--report", metavar="HOST:PORT", help="controller to report every change to")
    ap.add_argument("--run-seconds", type=float, default=None, help="stop by itself after this long")
    args = ap.parse_args(argv)

    tcp_listener = XTStartTCPListener(args.tcp, "\r\n", host=args.host)
    if tcp_listener == 0:
        XTWriteLog("an error occurred trying to bind a new listener to port " + str(args.tcp), xtColorRed)
        return 1
    udp_listener = XTStartUDPListener(args.udp, host=args.udp_host)
    if udp_listener == 0:
        XTWriteLog("an error occurred trying to bind a UDP listener to port " + str(args.udp), xtColorRed)
        XTStopAll()
        return 1
    try:
        XTWriteLog("LISTENING tcp=%d udp=%d" % (XTGetListenerPort(tcp_listener),
                                                XTGetListenerPort(udp_listener)))
        if args.report:
            host, _, port = args.report.rpartition(":")
            report_id = XTOpenTCPConnection(host, int(port), "\r\n")
            if report_id:
                XTWriteConnection(report_id, "HELLO %s\r\n" % NAME)
        how = XTRunForever(args.run_seconds)  # Ctrl-C in here: it returns "interrupted"
    except KeyboardInterrupt:  # Ctrl-C before XTRunForever was reached
        XTStopAll()
        how = "interrupted"
    XTWriteLog("STOPPED (%s)" % how)
    return 0


if __name__ == "__main__":
    sys.exit(main())
