# Types of tcpcom.udp: the engine's UDP endpoint (see README, "The engine's UDP endpoint").
import logging
import socket
from typing import Any, Callable, List, Optional, Tuple, Union

from .dispatch import SerialExecutor
from .engine import ConnectionClosedError

log: logging.Logger
MAX_DATAGRAM: int
DEFAULT_BROADCAST_ADDRESS: str
WAKE_INTERVAL: float
WAKE_TRIES: int
POLL_INTERVAL: float

#: a handler object (datagram_received(endpoint, data, address), endpoint_closed(endpoint, reason))
#: or a function fn(endpoint, data, address)
_HandlerArg = Any
_Data = Union[str, bytes, bytearray, memoryview]

class EndpointClosedError(ConnectionClosedError): ...

def resolve_group(group: str) -> str: ...

class UDPEndpoint:
    host: str
    encoding: Optional[str]
    errors: str
    max_datagram: int
    broadcast_address: str
    executor: SerialExecutor
    groups: List[Tuple[str, str]]
    dropped: int
    close_reason: Optional[BaseException]
    family: int
    sock: socket.socket
    port: int
    def __init__(self, port: int = 0, handler: _HandlerArg = None, host: str = "", dispatcher: Any = None,
                 encoding: Optional[str] = "utf-8", errors: Optional[str] = None, max_datagram: int = ...,
                 broadcast_address: Optional[str] = None, reuse_address: bool = False,
                 executor: Optional[SerialExecutor] = None, start: bool = True) -> None: ...
    @property
    def handler(self) -> Any: ...
    @handler.setter
    def handler(self, handler: _HandlerArg) -> None: ...
    @property
    def is_closed(self) -> bool: ...
    def start(self) -> UDPEndpoint: ...
    def close(self) -> None: ...
    def wait_closed(self, timeout: Optional[float] = None) -> bool: ...
    def send(self, data: _Data, address: str, port: int) -> int: ...
    def send_broadcast(self, data: _Data, port: int, address: Optional[str] = None) -> int: ...
    def join_group(self, group: str, interface: Optional[str] = None) -> str: ...
    def leave_group(self, group: str, interface: Optional[str] = None) -> str: ...
    def set_multicast_interface(self, interface: str) -> None: ...
    def set_multicast_ttl(self, ttl: int) -> None: ...
