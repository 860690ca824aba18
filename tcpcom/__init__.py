"""tcpcom: a threaded TCP engine with the TigerJython tcpcom API.

``from tcpcom import *`` gives ``TCPServer``, ``TCPClient``, ``HTTPServer``
and ``HTTPClient`` exactly as TigerJython scripts use them; :mod:`tcpcom.engine` is the multi-connection
engine underneath.
"""
from __future__ import absolute_import

from ._version import __version__
from .dispatch import EventPump, set_default_dispatcher
from .http import HTTPClient, HTTPServer
from .tcp import TCPClient, TCPServer

__all__ = ["TCPServer", "TCPClient", "HTTPServer", "HTTPClient"]
