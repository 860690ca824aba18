"""xtcompat: the XTension plugin networking API (plugin API v2) on the tcpcom engine.

A script ported from an XTension plugin starts with ``from xtcompat import *``,
defines its event functions (``XTNewConnection``, ``XTDataAvailable``,
``XTSocketError``, ``XTReceivedDatagram``) at module level and ends with
``XTRunForever()``::

    from xtcompat import *

    def XTNewConnection(theConnectionID, theConnectionInfo):
        XTWriteLog("connection from", theConnectionInfo[xtKeyRemoteAddress])
        return True

    def XTDataAvailable(theData, theConnectionID, theConnectionInfo):
        XTWriteConnection(theConnectionID, "echo " + theData + "\\r\\n")

    def XTSocketError(theConnectionID, theConnectionInfo):
        XTWriteLog("closed:", theConnectionInfo[xtKeyErrorNumber], theConnectionInfo[xtKeyErrorMessage])

    if XTStartTCPListener(5000, "\\r\\n") == 0:
        XTWriteLog("cannot listen on port 5000", xtColorRed)
    XTRunForever()

Event functions run on the engine's threads, one at a time per connection
(per UDP listener), in order: XTNewConnection, XTDataAvailable...,
XTSocketError.  ``help(XTStartTCPListener)`` (and every other XT...
function) says its arguments, return values and events.  The documentation
site's xtcompat pages (docs/xtcompat/ in the source: porting.md,
reference.md, choices.md) teach porting a script, list every function,
event and constant, and say what happens where XTension's page is silent.
"""
from __future__ import absolute_import

from tcpcom._version import __version__  # noqa: F401

from .api import (XTCloseConnection, XTGetConnectionInfo, XTGetListenerPort, XTJoinMulticastGroup,
                  XTLeaveMulticastGroup, XTOpenTCPConnection, XTRegisterHandlers, XTRunForever,
                  XTSendDatagram, XTSerializeEvents, XTSetNameLookupTimeout, XTStartHTMLListener,
                  XTStartTCPListener, XTStartUDPListener, XTStopAll, XTStopHTMLListener,
                  XTStopTCPListener, XTStopUDPListener, XTWriteConnection, XTWriteLog)
from .constants import *  # noqa: F401,F403
from .constants import __all__ as _constant_names

__all__ = ["XTCloseConnection", "XTGetConnectionInfo", "XTGetListenerPort", "XTJoinMulticastGroup",
           "XTLeaveMulticastGroup", "XTOpenTCPConnection", "XTRegisterHandlers", "XTRunForever",
           "XTSendDatagram", "XTSerializeEvents", "XTSetNameLookupTimeout", "XTStartHTMLListener",
           "XTStartTCPListener", "XTStartUDPListener", "XTStopAll", "XTStopHTMLListener",
           "XTStopTCPListener", "XTStopUDPListener",
           "XTWriteConnection", "XTWriteLog"] + list(_constant_names)
