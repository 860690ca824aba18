# Types of tcpcom.tcp: TCPServer and TCPClient, the TigerJython face (re-exported by tcpcom).
import logging
from typing import Any, Callable, Optional, Union

__version__: str

DEFAULT_CONNECT_TIMEOUT: float
EVENT_WAIT: float
DEFAULT_MAX_MESSAGE_SIZE: int

#: stateChanged(state, msg): state is one of the class's constants, msg a str
_StateChanged = Callable[[str, Any], object]
_Text = Union[str, bytes]

def log_raised(logger: Any, role: str, fn: Any, args: Any, then: str = ...) -> None: ...
def close_all() -> None: ...
def getIPAddress() -> str: ...

class Face:
    isVerbose: bool
    _log: logging.Logger

class TCPServer(Face):
    PORT_IN_USE: str
    CONNECTED: str
    LISTENING: str
    TERMINATED: str
    MESSAGE: str
    endOfBlock: _Text
    stateChanged: _StateChanged
    port: int
    def __init__(self, port: int, stateChanged: Optional[_StateChanged], endOfBlock: Union[_Text, bool] = b"\0",
                 isVerbose: bool = False, host: str = "", maxMessageSize: int = ...,
                 dispatcher: Any = None) -> None: ...
    def sendMessage(self, msg: _Text) -> None: ...
    def disconnect(self) -> None: ...
    def terminate(self) -> None: ...
    def isConnected(self) -> bool: ...
    def isTerminated(self) -> bool: ...
    def setTimeout(self, timeout: Optional[float]) -> None: ...
    def getPort(self) -> int: ...
    def loopForever(self) -> None: ...
    @staticmethod
    def getVersion() -> str: ...
    @staticmethod
    def getIPAddress() -> str: ...

class TCPClient(Face):
    CONNECTING: str
    SERVER_OCCUPIED: str
    CONNECTION_FAILED: str
    CONNECTED: str
    DISCONNECTED: str
    MESSAGE: str
    OCCUPIED_WAIT_MIN: float
    OCCUPIED_WAIT_MAX: float
    OCCUPIED_WAIT_FACTOR: float
    OCCUPIED_GRACE: float
    ipAddress: str
    port: int
    stateChanged: _StateChanged
    endOfBlock: _Text
    occupiedWait: Optional[float]
    maxMessageSize: int
    def __init__(self, ipAddress: str, port: int, stateChanged: Optional[_StateChanged], isVerbose: bool = False,
                 endOfBlock: _Text = b"\0", occupiedWait: Optional[float] = None, maxMessageSize: int = ...,
                 dispatcher: Any = None, autoReconnect: Optional[float] = None) -> None: ...
    autoReconnect: Optional[float]
    def connect(self, timeout: float = 0) -> bool: ...
    def getOccupiedWait(self, handshake: Optional[float] = None) -> Optional[float]: ...
    def sendMessage(self, msg: _Text, responseTime: float = 0) -> Optional[str]: ...
    def disconnect(self) -> None: ...
    def isConnecting(self) -> bool: ...
    def isConnected(self) -> bool: ...
    @staticmethod
    def getVersion() -> str: ...
