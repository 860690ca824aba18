# Types of the tcpcom package (PEP 561: see py.typed). `from tcpcom import *` gives __all__.
from .dispatch import EventPump as EventPump, set_default_dispatcher as set_default_dispatcher
from .http import HTTPClient as HTTPClient, HTTPServer as HTTPServer
from .tcp import TCPClient as TCPClient, TCPServer as TCPServer

__version__: str
__all__ = ["TCPServer", "TCPClient", "HTTPServer", "HTTPClient"]
