"""The HTML listener of the XTension face: HTTP requests answered by the script.

The server is the engine's :class:`tcpcom.httpserver.HTTPListener`; each
request calls the script's ``XTPageRequest(thePath, theRequestInfo)`` and
its return value is the response.
"""
from __future__ import absolute_import

from tcpcom.diagnostics import excerpt
from tcpcom.httpserver import HTTPListener

from .constants import (xtKeyFormData, xtKeyHeaders, xtKeyMethod, xtKeyPeerPort, xtKeyPostData, xtKeyQuery,
                        xtKeyRemoteAddress, xtKeyRemotePort, xtKeyUniqueId)
from .face import HTML, face, log, start_listener, stop_listener


def _page_info(request, conn):
    return {xtKeyRemoteAddress: conn.remote_address, xtKeyRemotePort: conn.remote_port,
            xtKeyPeerPort: conn.remote_port, xtKeyUniqueId: conn.id, xtKeyMethod: request.method,
            xtKeyHeaders: request.headers_dict(), xtKeyQuery: dict(request.query),
            xtKeyFormData: dict(request.form()), xtKeyPostData: request.text()}


def _page_request(request, conn):
    fn = face.find("XTPageRequest")
    if fn is None:
        face.warn_once("XTPageRequest", "the script defines no XTPageRequest function: "
                       "the HTML listener answers 501")
        return 501, "501 Not Implemented: the plugin defines no XTPageRequest function\n", "text/plain"
    try:
        return fn(request.path, _page_info(request, conn))
    except Exception:  # named here: the HTTP server would blame _page_request
        log.exception("XTPageRequest raised for %s %s; answering 500", request.method,
                      excerpt(request.path, quote=False))
        return 500, "500 Internal Server Error\n", "text/plain"


def XTStartHTMLListener(thePort, host="", serialize=True):
    """Serve HTTP; returns a non-zero listener ID, or 0 (the reason is logged).

    Port rules as for :func:`XTStartTCPListener` (1024 to 65535, 0 for a
    free port; else 107; 0 also when the port is in use).  Each request
    calls the script's ``XTPageRequest(thePath, theRequestInfo)``: the path
    with its leading "/" and without the query, and an info dictionary with
    ``xtKeyRemoteAddress``, ``xtKeyRemotePort`` (the requester's port),
    ``xtKeyPeerPort``, ``xtKeyUniqueId`` and this library's
    ``xtKeyMethod``, ``xtKeyHeaders`` (a dict, lower-case names),
    ``xtKeyQuery`` (a dict), ``xtKeyFormData`` (a dict, from a form POST)
    and ``xtKeyPostData`` (the body as text).

    Its return value is the response: a body (status 200, HTML),
    ``(code, body)``, ``(code, body, contentType)``, or a dict or list (sent
    as JSON).  A script without ``XTPageRequest`` answers 501 (logged once);
    one whose ``XTPageRequest`` raises answers 500 (traceback logged).

    This library's additions: ``host`` (the address to listen on; ""
    is every address), and ``serialize`` (True, the default:
    ``XTPageRequest`` calls run one at a time while connections are read
    and written in parallel; False: they may run at the same time).
    """
    return start_listener("XTStartHTMLListener", HTML, thePort, host,
                          lambda port: HTTPListener(port, _page_request, host=host, serialize=serialize,
                                                    server_name="xtcompat"))


def XTStopHTMLListener(theListenerID):
    """Stop an HTML listener and close its connections; True, or False for an unknown ID (logged)."""
    return stop_listener("XTStopHTMLListener", HTML, theListenerID)
