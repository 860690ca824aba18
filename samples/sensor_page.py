# -*- coding: utf-8 -*-
"""A web page with a sensor value and buttons that switch an LED (tcpcom HTTPServer).

    python samples/sensor_page.py [PORT]      (default 8080; 0 lets the system choose)

Open http://localhost:8080/ in a browser (from another machine: the address
printed at the start).  The page shows a (simulated) temperature and the
LED's state; the buttons switch the LED.  /data.json gives the same as JSON.
Ctrl-C ends it.
"""
from __future__ import print_function

import math
import sys
import time

from tcpcom import HTTPServer

PAGE = u"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sensor</title></head>
<body>
<h1>Messstation</h1>
<p>Temperatur: <b id="temp">%.1f °C</b></p>
<p>LED: <b id="led">%s</b></p>
<form method="post" action="/">
  <button name="led" value="on">Einschalten</button>
  <button name="led" value="off">Ausschalten</button>
</form>
</body></html>
"""

led = "off"


def readTemperature():
    # a real station reads its sensor here
    return 21.0 + 2.0 * math.sin(time.time() / 60.0)


def switchLed():
    # called right after the page was sent (the original's stateHandler):
    # a real station switches its GPIO pin here
    print("LED switched", led)
    sys.stdout.flush()


def onRequest(clientIP, filename, params):
    global led
    if filename == "/data.json":
        return {"temperature": round(readTemperature(), 1), "led": led}
    if filename != "/":
        return 404, "no page " + filename
    for key, value in params:
        if key == "led" and value in ("on", "off") and value != led:
            led = value
            return PAGE % (readTemperature(), led), switchLed
    return PAGE % (readTemperature(), led)


port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
server = HTTPServer(onRequest, port=port)
print("serving on port %d: open http://%s:%d/" % (server.getPort(), HTTPServer.getServerIP(), server.getPort()))
sys.stdout.flush()
try:
    while not server.isTerminated():
        time.sleep(0.5)
except KeyboardInterrupt:
    pass
server.terminate()
print("terminated")
