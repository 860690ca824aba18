"""tcpcom: a threaded TCP engine with the TigerJython tcpcom API.

``from tcpcom import *`` gives exactly the four classes TigerJython scripts
use, each explained by ``help()``:

- ``TCPServer(port, stateChanged)``: a server for one client at a time;
- ``TCPClient(ipAddress, port, stateChanged)``: a client, ``connect()``;
- ``HTTPServer(requestHandler, port=80)``: a web server for small pages;
- ``HTTPClient``: ``getRequest(url)``, ``postRequest``, ``deleteRequest``,
  ``extractJSON``.

Also here, by name: ``__version__``, and ``EventPump`` and
``set_default_dispatcher`` for programs whose callbacks must run on their
own (GUI) thread.  ``tcpcom.tcp.close_all()`` ends every server and client
at once.  The multi-connection engine underneath is ``tcpcom.engine``.
"""
from __future__ import absolute_import

from ._version import __version__
from .dispatch import EventPump, set_default_dispatcher
from .http import HTTPClient, HTTPServer
from .tcp import TCPClient, TCPServer

__all__ = ["TCPServer", "TCPClient", "HTTPServer", "HTTPClient"]
