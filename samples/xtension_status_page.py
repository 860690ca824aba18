"""An XTension-style status page: an HTML listener with a form that switches units.

Written as an XTension plugin script is (``XTPageRequest`` at module level,
``from xtcompat import *``), it runs as a plain Python program here:

- ``/`` shows every unit with its state and a button that toggles it
  (a form POST to ``/toggle``, answered with a redirect back to ``/``);
- ``/status.json`` gives the same as JSON.

Run it and open http://localhost:8080/ ::

    python3 samples/xtension_status_page.py --port 8080

It stops on Ctrl-C or after ``--run-seconds``.
"""
from __future__ import print_function

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from xtcompat import *  # noqa: E402,F401,F403

units = {u"Küche": False, u"Wohnzimmer": True, u"Garage": False}

PAGE = u"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Status</title></head>
<body><h1>Status</h1><table>%s</table></body></html>"""
ROW = (u'<tr><td>%s</td><td class="state">%s</td><td><form method="post" action="/toggle">'
       u'<input type="hidden" name="unit" value="%s"><button>switch</button></form></td></tr>')


def escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


def XTPageRequest(thePath, theRequestInfo):
    if thePath == "/status.json":
        return dict((name, "on" if on else "off") for name, on in units.items())
    if thePath == "/toggle" and theRequestInfo[xtKeyMethod] == "POST":
        name = theRequestInfo[xtKeyFormData].get("unit")
        if name not in units:
            return 404, u"no unit %s" % escape(name or "?")
        units[name] = not units[name]
        XTWriteLog(u"%s switched %s by %s" % (name, "on" if units[name] else "off",
                                              theRequestInfo[xtKeyRemoteAddress]))
        return 200, u'<meta http-equiv="refresh" content="0; url=/">switched'
    if thePath == "/":
        rows = u"".join(ROW % (escape(n), "on" if units[n] else "off", escape(n)) for n in sorted(units))
        return PAGE % rows
    return 404, u"not found: %s" % escape(thePath)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8080, help="0: any free port")
    parser.add_argument("--host", default="", help="address to listen on (default: all)")
    parser.add_argument("--run-seconds", type=float, default=None)
    args = parser.parse_args()
    listener = XTStartHTMLListener(args.port, host=args.host)
    if listener == 0:
        XTWriteLog("cannot serve on port %d" % args.port, xtColorRed)
        return 1
    XTWriteLog("LISTENING http=%d" % XTGetListenerPort(listener))
    XTRunForever(args.run_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
