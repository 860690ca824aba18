# Types of xtcompat, the XTension plugin networking API (PEP 561: see py.typed).
# `from xtcompat import *` gives __all__: the XT... functions and the xt... constants.
from typing import Any, Dict, Optional, Union

__version__: str

#: text, or bytes where the listener or connection was opened with binary=True
_Data = Union[str, bytes, bytearray, memoryview]
#: a connection's (or datagram's) info dictionary: keys are the xtKey... constants
_Info = Dict[str, Any]

def XTStartTCPListener(thePort: int, theBoundryString: Union[str, bytes, None] = None, host: str = "",
                       binary: bool = False, maxMessageSize: int = ..., maxConnections: int = ...,
                       idleTimeout: Optional[float] = None) -> int: ...
def XTStopTCPListener(theListenerID: int) -> bool: ...
def XTGetListenerPort(theListenerID: int) -> int: ...
def XTOpenTCPConnection(theAddress: str, thePort: int, theBoundryString: Union[str, bytes, None] = None,
                        theTimeout: float = ..., binary: bool = False, maxMessageSize: int = ...,
                        reconnect: Optional[float] = None) -> str: ...
def XTWriteConnection(theConnectionID: str, theData: _Data) -> bool: ...
def XTCloseConnection(theConnectionID: str) -> bool: ...
def XTGetConnectionInfo(theConnectionID: str) -> Optional[_Info]: ...
def XTStartUDPListener(thePort: int, host: str = "", binary: bool = False, broadcastAddress: Optional[str] = None,
                       maxDatagramSize: int = ...) -> int: ...
def XTStopUDPListener(theListenerID: int) -> bool: ...
def XTSendDatagram(theListenerID: int, theRemoteAddress: str, theRemotePort: int, theData: _Data) -> bool: ...
def XTJoinMulticastGroup(theListenerID: int, theGroup: str, theInterface: Optional[str] = None) -> bool: ...
def XTLeaveMulticastGroup(theListenerID: int, theGroup: str, theInterface: Optional[str] = None) -> bool: ...
def XTStartHTMLListener(thePort: int, host: str = "", serialize: bool = True) -> int: ...
def XTStopHTMLListener(theListenerID: int) -> bool: ...
def XTRegisterHandlers(namespace: Any) -> None: ...
def XTStopAll() -> None: ...
def XTRunForever(timeout: Optional[float] = None) -> str: ...
def XTSerializeEvents(on: bool = True) -> None: ...
def XTSetNameLookupTimeout(seconds: float) -> None: ...
def XTWriteLog(*parts: object) -> None: ...

xtKeyRemoteAddress: str
xtKeyRemotePort: str
xtKeyPeerPort: str
xtKeyName: str
xtKeyMacAddress: str
xtKeyUniqueId: str
xtKeyErrorNumber: str
xtKeyErrorMessage: str
xtErrorNumber: str
xtErrorDescription: str
xtKeyMethod: str
xtKeyHeaders: str
xtKeyQuery: str
xtKeyFormData: str
xtKeyPostData: str
xtBroadcastAddress: str
xtErrDisconnected: int
xtErrNameResolution: int
xtErrInvalidState: int
xtErrInvalidPort: int
xtErrOutOfMemory: int
xtColorBlack: str
xtColorGray: str
xtColorRed: str
xtColorOrange: str
xtColorYellow: str
xtColorGreen: str
xtColorBlue: str
xtColorPurple: str

__all__ = [
    "XTCloseConnection", "XTGetConnectionInfo", "XTGetListenerPort", "XTJoinMulticastGroup",
    "XTLeaveMulticastGroup", "XTOpenTCPConnection", "XTRegisterHandlers", "XTRunForever",
    "XTSendDatagram", "XTSerializeEvents", "XTSetNameLookupTimeout", "XTStartHTMLListener",
    "XTStartTCPListener", "XTStartUDPListener", "XTStopAll", "XTStopHTMLListener",
    "XTStopTCPListener", "XTStopUDPListener", "XTWriteConnection", "XTWriteLog",
    "xtKeyRemoteAddress",
    "xtKeyRemotePort",
    "xtKeyPeerPort",
    "xtKeyName",
    "xtKeyMacAddress",
    "xtKeyUniqueId",
    "xtKeyErrorNumber",
    "xtKeyErrorMessage",
    "xtErrorNumber",
    "xtErrorDescription",
    "xtKeyMethod",
    "xtKeyHeaders",
    "xtKeyQuery",
    "xtKeyFormData",
    "xtKeyPostData",
    "xtBroadcastAddress",
    "xtErrDisconnected",
    "xtErrNameResolution",
    "xtErrInvalidState",
    "xtErrInvalidPort",
    "xtErrOutOfMemory",
    "xtColorBlack",
    "xtColorGray",
    "xtColorRed",
    "xtColorOrange",
    "xtColorYellow",
    "xtColorGreen",
    "xtColorBlue",
    "xtColorPurple",
]
