# -*- coding: utf-8 -*-
"""HTTP under Jython 2.7 and CPython 3: HTTPServer and the XTension HTML listener answer urllib."""
from __future__ import absolute_import, print_function

import json
import unittest

from jyutil import DEADLINE

from tcpcom import HTTPClient, HTTPServer
from xtcompat import (XTGetListenerPort, XTRegisterHandlers, XTStartHTMLListener, XTStopAll,
                      xtKeyFormData, xtKeyMethod, xtKeyQuery)

try:  # Python 3
    from urllib.error import HTTPError
    from urllib.parse import urlencode
    from urllib.request import urlopen
except ImportError:  # Python 2.7 / Jython
    from urllib import urlencode
    from urllib2 import HTTPError, urlopen


def fetch(url, data=None):
    try:
        r = urlopen(url, data, DEADLINE)
        return r.getcode(), r.info().get("Content-Type"), r.read()
    except HTTPError as e:
        return e.code, e.info().get("Content-Type"), e.read()


class TcpcomHTTPServer(unittest.TestCase):
    def setUp(self):
        self.calls = []

        def handler(clientIP, filename, params):
            self.calls.append((clientIP, filename, params))
            return u"<p>Temperatur: 21 °C, Türe %s</p>" % dict(params).get("door", u"zu")
        self.server = HTTPServer(handler, port=0, host="127.0.0.1")
        self.base = "http://127.0.0.1:%d" % self.server.getPort()

    def tearDown(self):
        self.server.terminate()

    def test_get_with_umlauts_and_query(self):
        status, ctype, body = fetch(self.base + "/sensor?door=offen&x=%C3%A4")
        self.assertEqual(status, 200)
        self.assertTrue("charset=utf-8" in ctype)
        self.assertEqual(body.decode("utf-8"), u"<p>Temperatur: 21 °C, Türe offen</p>")
        ip, filename, params = self.calls[0]
        self.assertEqual((ip, filename), ("127.0.0.1", "/sensor"))
        self.assertEqual(params, ((u"door", u"offen"), (u"x", u"ä")))

    def test_form_post(self):
        status, _, body = fetch(self.base + "/set", urlencode({"door": "auf"}).encode("ascii"))
        self.assertEqual(status, 200)
        self.assertTrue(u"Türe auf" in body.decode("utf-8"))

    def test_http_client_helpers(self):
        text = HTTPClient.getRequest(self.base + "/c", {"door": "halb"})
        self.assertTrue(u"Türe halb" in text)
        self.assertTrue(u"Türe" in HTTPClient.postRequest(self.base + "/p", {"door": "ok"}))


class XTHTMLListener(unittest.TestCase):
    def setUp(self):
        self.seen = []

        def XTPageRequest(thePath, theRequestInfo):
            self.seen.append((thePath, theRequestInfo))
            if thePath == "/json":
                return {"level": 50}
            return 201, u"Küche %s" % theRequestInfo[xtKeyMethod], "text/plain"
        XTRegisterHandlers({"XTPageRequest": XTPageRequest})
        self.lid = XTStartHTMLListener(0, host="127.0.0.1")
        self.assertNotEqual(self.lid, 0)
        self.base = "http://127.0.0.1:%d" % XTGetListenerPort(self.lid)

    def tearDown(self):
        XTStopAll()
        XTRegisterHandlers(None)

    def test_page_request(self):
        status, ctype, body = fetch(self.base + "/k?room=K%C3%BCche")
        self.assertEqual((status, body.decode("utf-8")), (201, u"Küche GET"))
        self.assertTrue(ctype.startswith("text/plain"))
        path, info = self.seen[0]
        self.assertEqual(path, "/k")
        self.assertEqual(info[xtKeyQuery], {u"room": u"Küche"})

    def test_form_and_json(self):
        fetch(self.base + "/f", urlencode({"unit": "Lampe"}).encode("ascii"))
        self.assertEqual(self.seen[0][1][xtKeyFormData], {u"unit": u"Lampe"})
        status, _, body = fetch(self.base + "/json")
        self.assertEqual(json.loads(body.decode("utf-8")), {u"level": 50})


if __name__ == "__main__":
    unittest.main()
