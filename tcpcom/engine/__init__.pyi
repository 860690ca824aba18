# Types of tcpcom.engine, the public multi-connection engine (see README, "The engine").
# The runtime code keeps Jython 2.7 syntax; its types live here. `python -m mypy.stubtest`
# (.ci/typecheck) keeps this file in step with the code.
import socket
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Type, Union

from ..dispatch import SerialExecutor

RECV_SIZE: int
BIG_SEND: int
DEFAULT_SEND_TIMEOUT: float
DEFAULT_MAX_CONNECTIONS: int
DEFAULT_BACKLOG: int
DEFAULT_MAX_MESSAGE_SIZE: int
DEFAULT_CONNECT_TIMEOUT: float

# how a connect() failed: ConnectError.kind
REFUSED: str
NOT_FOUND: str
TIMED_OUT: str
OCCUPIED: str
UNREACHABLE: str
LOST_AT_ONCE: str
FAILED: str
# how a connection ended: end_kind(conn.close_reason)
CLOSED: str
TOO_LARGE: str
TIMEOUT: str
DROPPED: str
ERROR: str
#: what a failed socket call raises, on every interpreter
NETWORK_ERRORS: Tuple[Type[BaseException], ...]
NO_MAC: str
UNKNOWN_NAME: str

#: a delimiter (str or bytes), "line", "raw", None, or a framer class / factory
_Framing = Union[str, bytes, None, Callable[..., Any]]
#: a handler object (any of connection_made / message_received / messages_received /
#: connection_lost) or a Q-SYS style function fn(conn, event, data)
_HandlerArg = Any
_Address = Tuple[Any, ...]

class State:
    OPENING: str
    OPEN: str
    CLOSING: str
    LOST: str
    CLOSED: str

class ConnectionClosedError(socket.error): ...
class PortInUseError(socket.error): ...
class ReadTimeout(socket.error): ...
class DeadlineExceeded(ReadTimeout): ...
class SendTimeout(socket.error): ...

# (defined in tcpcom.framing, which has no stub; re-exported here)
class MessageTooLarge(ValueError):
    size: int
    limit: int
    messages: List[Any]
    def __init__(self, size: int, limit: int, messages: Iterable[Any] = ()) -> None: ...

class ConnectError(socket.error):
    kind: str
    cause: Optional[BaseException]
    def __init__(self, kind: str, number: Optional[int], message: str,
                 cause: Optional[BaseException] = None) -> None: ...

def error_number(error: BaseException) -> Optional[int]: ...
def error_text(error: BaseException) -> str: ...
def end_kind(reason: Optional[BaseException]) -> str: ...
def is_name_error(error: BaseException) -> bool: ...

def check_port(port: int, allow_zero: bool = True) -> int: ...
def check_number(value: Optional[float], name: str, minimum: Optional[float] = None,
                 integer: bool = False) -> Optional[float]: ...
def check_host(host: str) -> str: ...
def check_options(max_message_size: int, read_timeout: Optional[float], send_timeout: Optional[float]) -> None: ...
def check_callable(fn: Any, what: str) -> None: ...
def is_ip_literal(address: str) -> bool: ...

class Handler:
    conn: Optional[Connection]
    def __init__(self, conn: Optional[Connection] = None) -> None: ...
    def connection_made(self, conn: Connection) -> None: ...
    def message_received(self, conn: Connection, message: Any) -> None: ...
    def connection_lost(self, conn: Connection, reason: Optional[BaseException]) -> None: ...

class FunctionHandler:
    fn: Callable[[Connection, str, Any], object]
    def __init__(self, fn: Callable[[Connection, str, Any], object]) -> None: ...
    def connection_made(self, conn: Connection) -> None: ...
    def message_received(self, conn: Connection, message: Any) -> None: ...
    def connection_lost(self, conn: Connection, reason: Optional[BaseException]) -> None: ...

def wait_readable(sock: socket.socket, timeout: float) -> bool: ...
def writable_now(sock: socket.socket) -> bool: ...

class Connection:
    CONNECTED: str
    DATA: str
    CLOSED: str
    ERROR: str
    TIMEOUT: str
    sock: socket.socket
    daemon: bool
    id: str
    remote_address: str
    remote_port: int
    @property
    def local_address(self) -> str: ...
    local_port: int
    listener: Optional[Listener]
    framer: Any
    encoding: Optional[str]
    errors: str
    executor: SerialExecutor
    send_timeout: Optional[float]
    close_reason: Optional[BaseException]
    def __init__(self, sock: socket.socket, handler: _HandlerArg = None, framing: _Framing = b"\0",
                 max_message_size: int = ..., encoding: Optional[str] = "utf-8", errors: Optional[str] = None,
                 read_timeout: Optional[float] = None, send_timeout: Optional[float] = ...,
                 executor: Optional[SerialExecutor] = None, dispatcher: Any = None,
                 listener: Optional[Listener] = None, initial_data: bytes = b"", daemon: bool = True,
                 peer: Optional[_Address] = None) -> None: ...
    @property
    def handler(self) -> Any: ...
    @handler.setter
    def handler(self, handler: _HandlerArg) -> None: ...
    @property
    def read_timeout(self) -> Optional[float]: ...
    @read_timeout.setter
    def read_timeout(self, seconds: Optional[float]) -> None: ...
    def set_deadline(self, seconds: Optional[float], farewell: Optional[bytes] = None,
                     reason: Optional[str] = None) -> None: ...
    def close_write(self) -> None: ...
    @property
    def state(self) -> str: ...
    @property
    def is_open(self) -> bool: ...
    def is_done(self) -> bool: ...
    def peer_closed(self) -> bool: ...
    delivering: bool
    @property
    def info(self) -> Dict[str, Any]: ...
    def start(self) -> Connection: ...
    def close(self, reason: Optional[BaseException] = None, linger: bool = True) -> None: ...
    def wait_closed(self, timeout: Optional[float] = None) -> bool: ...
    def send(self, data: Union[str, bytes, bytearray, memoryview]) -> None: ...
    def send_message(self, message: Union[str, bytes, bytearray, memoryview]) -> None: ...
    def request(self, message: Union[str, bytes, bytearray, memoryview], timeout: float) -> Any: ...
    def watch_ended(self) -> bool: ...
    def check_deadlines(self, now: float) -> Optional[float]: ...

def local_addresses() -> List[str]: ...
def resolves(host: str) -> bool: ...
def open_socket(host: str, port: int, timeout: Optional[float] = None) -> Tuple[socket.socket, float]: ...
def probe_hangup(sock: socket.socket, wait: float) -> Tuple[bool, bytes]: ...
def connect(host: str, port: int, handler: _HandlerArg = None, timeout: Optional[float] = ...,
            occupied_wait: Optional[float] = None, start: bool = True, **options: Any) -> Connection: ...

class PeerInfo:
    name_timeout: float
    ttl: float
    resolver: Callable[[str], str]
    arp_path: str
    max_lookups: int
    max_cache: int
    neigh_timeout: float
    def __init__(self, name_timeout: float = 0.5, ttl: float = 300.0,
                 resolver: Optional[Callable[[str], str]] = None, arp_path: str = "/proc/net/arp",
                 max_lookups: int = 8, max_cache: int = 4096, neigh_timeout: float = 1.0) -> None: ...
    def name(self, address: str) -> str: ...
    def mac(self, address: str) -> str: ...

def current_reader() -> Any: ...

class _Watchdog:
    def watch(self, target: Any, when: float) -> None: ...
    def forget(self, target: Any) -> None: ...

#: the engine's one deadline thread (read, send and set_deadline timeouts)
watchdog: _Watchdog

class Listener:
    on_connection: Optional[Callable[[Connection], Any]]
    on_refused: Optional[Callable[..., object]]
    on_closed: Optional[Callable[[], object]]
    host: str
    options: Dict[str, Any]
    daemon: bool
    max_connections: int
    dispatcher: Any
    executor: SerialExecutor
    serialize: bool
    sock: socket.socket
    address: str
    port: int
    def __init__(self, port: int = 0, on_connection: Optional[Callable[[Connection], Any]] = None,
                 host: str = "", framing: _Framing = b"\0", max_message_size: int = ...,
                 max_connections: int = ..., read_timeout: Optional[float] = None,
                 send_timeout: Optional[float] = ..., encoding: Optional[str] = "utf-8",
                 errors: Optional[str] = None, serialize: bool = False,
                 on_refused: Optional[Callable[..., object]] = None,
                 on_closed: Optional[Callable[[], object]] = None, dispatcher: Any = None,
                 executor: Optional[SerialExecutor] = None, backlog: int = ..., start: bool = True,
                 daemon: bool = True) -> None: ...
    def start(self) -> Listener: ...
    @property
    def connections(self) -> List[Connection]: ...
    def connection_done(self, conn: Connection) -> None: ...
    @property
    def is_closed(self) -> bool: ...
    def close(self) -> None: ...

# -- reconnecting outgoing connections (tcpcom.engine.redial) --------------------------------

DEFAULT_RECONNECT_DELAY: float
DEFAULT_MAX_RECONNECT_DELAY: float

class ReconnectState:
    IDLE: str
    CONNECTING: str
    OPEN: str
    WAITING: str
    CLOSED: str

class ReconnectingError(ConnectionClosedError): ...

class Backoff:
    delay: float
    max_delay: float
    factor: float
    jitter: float
    rand: Callable[[], float]
    def __init__(self, delay: float = ..., max_delay: float = ..., factor: float = 2.0, jitter: float = 0.2,
                 rand: Callable[[], float] = ...) -> None: ...
    def ceiling(self, n: int) -> float: ...
    def delay_for(self, n: int) -> float: ...

class ReconnectHandler:
    def connection_made(self, conn: ReconnectingConnection) -> None: ...
    def message_received(self, conn: ReconnectingConnection, message: Any) -> None: ...
    def connection_lost(self, conn: ReconnectingConnection, reason: Optional[BaseException]) -> None: ...
    def reconnecting(self, conn: ReconnectingConnection, attempt: int, delay: float,
                     reason: Optional[BaseException]) -> None: ...
    def gave_up(self, conn: ReconnectingConnection, reason: Optional[BaseException]) -> None: ...

class ReconnectFunctionHandler(FunctionHandler):
    def reconnecting(self, conn: Any, attempt: int, delay: float, reason: Optional[BaseException]) -> None: ...
    def gave_up(self, conn: Any, reason: Optional[BaseException]) -> None: ...

class ReconnectingConnection:
    CONNECTED: str
    DATA: str
    CLOSED: str
    ERROR: str
    TIMEOUT: str
    RECONNECT: str
    GAVE_UP: str
    backoff: Backoff
    host: str
    port: int
    timeout: Optional[float]
    max_attempts: Optional[int]
    occupied_wait: Union[float, Callable[[float], float], None]
    executor: SerialExecutor
    options: Dict[str, Any]
    id: str
    attempt: int
    connects: int
    last_error: Optional[BaseException]
    close_reason: Optional[BaseException]
    def __init__(self, host: str, port: int, handler: _HandlerArg = None, timeout: Optional[float] = ...,
                 delay: float = ..., max_delay: float = ..., factor: float = 2.0, jitter: float = 0.2,
                 max_attempts: Optional[int] = None,
                 occupied_wait: Union[float, Callable[[float], float], None] = None, start: bool = True,
                 backoff: Optional[Backoff] = None, **options: Any) -> None: ...
    @property
    def handler(self) -> Any: ...
    @handler.setter
    def handler(self, handler: _HandlerArg) -> None: ...
    @property
    def state(self) -> str: ...
    @property
    def connection(self) -> Optional[Connection]: ...
    @property
    def is_open(self) -> bool: ...
    def is_done(self) -> bool: ...
    @property
    def delivering(self) -> bool: ...
    @property
    def next_dial_in(self) -> Optional[float]: ...
    @property
    def remote_address(self) -> str: ...
    @property
    def remote_port(self) -> int: ...
    @property
    def local_port(self) -> Optional[int]: ...
    @property
    def info(self) -> Dict[str, Any]: ...
    def start(self) -> ReconnectingConnection: ...
    def dial(self, keep_trying: bool = False) -> Connection: ...
    def send(self, data: Union[str, bytes, bytearray, memoryview]) -> None: ...
    def send_message(self, message: Union[str, bytes, bytearray, memoryview]) -> None: ...
    def request(self, message: Union[str, bytes, bytearray, memoryview], timeout: float) -> Any: ...
    def close(self) -> None: ...
    def wait_closed(self, timeout: Optional[float] = None) -> bool: ...

__all__ = ["Listener", "Connection", "State", "Handler", "FunctionHandler", "connect", "open_socket", "probe_hangup",
           "ConnectError", "ConnectionClosedError", "PortInUseError", "ReadTimeout", "DeadlineExceeded",
           "SendTimeout", "MessageTooLarge", "end_kind", "error_number", "error_text", "is_name_error",
           "NETWORK_ERRORS", "REFUSED", "NOT_FOUND", "TIMED_OUT", "OCCUPIED", "UNREACHABLE", "LOST_AT_ONCE",
           "FAILED", "CLOSED", "TOO_LARGE", "TIMEOUT", "DROPPED", "ERROR", "check_port", "check_number",
           "check_host", "check_options", "check_callable", "is_ip_literal", "local_addresses", "resolves", "PeerInfo",
           "NO_MAC", "UNKNOWN_NAME", "wait_readable", "writable_now", "current_reader", "watchdog",
           "DEFAULT_MAX_MESSAGE_SIZE", "DEFAULT_MAX_CONNECTIONS", "DEFAULT_BACKLOG", "DEFAULT_SEND_TIMEOUT",
           "DEFAULT_CONNECT_TIMEOUT", "BIG_SEND", "RECV_SIZE",
           "ReconnectingConnection", "ReconnectHandler", "ReconnectFunctionHandler", "ReconnectState",
           "ReconnectingError", "Backoff", "DEFAULT_RECONNECT_DELAY", "DEFAULT_MAX_RECONNECT_DELAY"]
