# Types of tcpcom.http: HTTPServer and HTTPClient, the TigerJython face (re-exported by tcpcom).
from typing import Any, Callable, Dict, Iterable, Optional, Tuple, Union

from .tcp import Face

__all__ = ["HTTPServer", "HTTPClient", "HTTPClientError"]

#: requestHandler(clientIP, filename, params) returns the page: text, (text, stateHandler),
#: a dict or list (JSON), (code, text) or (code, text, contentType)
_RequestHandler = Callable[[str, str, Tuple[Tuple[str, str], ...]], Any]
_Data = Union[None, str, bytes, Dict[Any, Any], Iterable[Tuple[Any, Any]]]

class HTTPServer(Face):
    requestHandler: _RequestHandler
    serverName: str
    port: int
    def __init__(self, requestHandler: _RequestHandler, serverName: str = "PYSERVER", port: int = 80,
                 isVerbose: bool = False, host: str = "", serialize: bool = True, requestTimeout: float = ...,
                 keepAliveTimeout: float = ..., maxBody: int = 1048576, maxRequestLine: int = 8192,
                 maxHeaderBytes: int = 65536, maxConnections: int = ..., dispatcher: Any = None) -> None: ...
    def getClientIP(self) -> Optional[str]: ...
    def getPort(self) -> int: ...
    def terminate(self) -> None: ...
    def isTerminated(self) -> bool: ...
    @staticmethod
    def getServerIP() -> str: ...
    @staticmethod
    def getVersion() -> str: ...

class HTTPClientError(IOError): ...

class HTTPClient:
    timeout: float
    @staticmethod
    def getRequest(url: str, data: _Data = None) -> str: ...
    @staticmethod
    def postRequest(url: str, data: _Data = None) -> str: ...
    @staticmethod
    def deleteRequest(url: str, data: _Data = "") -> str: ...
    @staticmethod
    def extractJSON(response: Optional[str]) -> Any: ...
