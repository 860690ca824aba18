"""The constants of the XTension plugin API (string values as XTension uses them where known)."""

# -- keys of the connection / datagram info dictionaries --------------------
#: the peer's IPv4 address (XTension's own value)
xtKeyRemoteAddress = "RemoteAddress"
#: TCP: the port the connection was received on (the listening port), as
#: XTension defines it; for an outgoing connection the port connected to;
#: datagrams: the sender's port (XTension's own value)
xtKeyRemotePort = "RemotePort"
#: this library's addition: the peer's own port (TCP and UDP)
xtKeyPeerPort = "PeerPort"
#: a name for the peer if one is found within a bounded time, else "?"
xtKeyName = "Name"
#: the peer's MAC address from the neighbour table, else "00:00:00:00:00:00"
xtKeyMacAddress = "MacAddress"
#: the connection ID again (XTension's own value)
xtKeyUniqueId = "UnID"
#: the error number in XTSocketError's info
xtKeyErrorNumber = "ErrN"
#: the error description in XTSocketError's info (XTension's own value)
xtKeyErrorMessage = "ErrM"
#: XTension's page also calls the two error keys by these names
xtErrorNumber = xtKeyErrorNumber
xtErrorDescription = xtKeyErrorMessage

# -- this library's keys of XTPageRequest's info dictionary (HTML listener) --
#: the request method ("GET", "HEAD", "POST", ...)
xtKeyMethod = "Method"
#: the request headers: a dict with lower-case names
xtKeyHeaders = "Headers"
#: the query string's fields: a dict (percent-decoded, '+' as space; the last value of a repeated key)
xtKeyQuery = "Query"
#: the fields of a form-encoded POST body: a dict
xtKeyFormData = "FormData"
#: the raw request body as text (UTF-8; undecodable bytes replaced)
xtKeyPostData = "PostData"

#: XTSendDatagram(id, xtBroadcastAddress, port, data) sends a broadcast
xtBroadcastAddress = "broadcast"

# -- error numbers (XTension's) ---------------------------------------------
xtErrDisconnected = 102      # disconnection, on purpose or dropped
xtErrNameResolution = 103    # a name that does not resolve
xtErrInvalidState = 106      # e.g. writing to a connection that is not open
xtErrInvalidPort = 107       # a listening port below 1024 or above 65535
xtErrOutOfMemory = 108       # no more buffer space (also: a packet over the size limit)

# -- colours for XTWriteLog (this library's names; any "RRGGBB" string works) --
xtColorBlack = "000000"
xtColorGray = "808080"
xtColorRed = "C00000"
xtColorOrange = "E07000"
xtColorYellow = "B0A000"
xtColorGreen = "008000"
xtColorBlue = "0000C0"
xtColorPurple = "800080"

from tcpcom.engine.hostinfo import NO_MAC, UNKNOWN_NAME  # noqa: E402,F401  (the engine's defaults)

__all__ = [n for n in list(globals()) if n.startswith(("xt", "XT"))]
