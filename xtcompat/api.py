"""The XTension plugin networking API in one namespace, translated onto the tcpcom engine.

Every ``XT...`` function checks its arguments, calls the engine
(:class:`tcpcom.engine.Listener`, :class:`tcpcom.engine.Connection`,
:class:`tcpcom.udp.UDPEndpoint`, :class:`tcpcom.httpserver.HTTPListener`)
and turns the engine's events into calls of the script's event functions.
There is no socket code in the face.  The code lives by concern:

- :mod:`xtcompat.face` -- the face's state (listeners, connections, the
  script's namespace) and the steps every function shares;
- :mod:`xtcompat.tcp` -- TCP listeners and connections;
- :mod:`xtcompat.udp` -- UDP listeners, datagrams, broadcast, multicast;
- :mod:`xtcompat.html` -- the HTML listener (``XTPageRequest``);
- :mod:`xtcompat.script` -- the script's life (``XTRunForever``, ``XTStopAll``, ...);
- :mod:`xtcompat.console` -- ``XTWriteLog`` and its console.
"""
from __future__ import absolute_import

from .console import ColourFormatter, XTWriteLog  # noqa: F401
from .face import face as _face  # noqa: F401  (the face's state, as xtcompat.api._face)
from .html import XTStartHTMLListener, XTStopHTMLListener  # noqa: F401
from .script import (XTRegisterHandlers, XTRunForever, XTSerializeEvents, XTSetNameLookupTimeout,  # noqa: F401
                     XTStopAll)
from .tcp import (XTCloseConnection, XTGetConnectionInfo, XTGetListenerPort, XTOpenTCPConnection,  # noqa: F401
                  XTStartTCPListener, XTStopTCPListener, XTWriteConnection)
from .udp import (XTJoinMulticastGroup, XTLeaveMulticastGroup, XTSendDatagram, XTStartUDPListener,  # noqa: F401
                  XTStopUDPListener)
