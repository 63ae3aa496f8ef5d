"""A green HTTP client: libcurl driven by the nettools hub.

    from nettools.web.client import HttpClient

    with HttpClient() as client:
        resp = client.get("https://example.org/")
        print(resp.status, resp.final_url, len(resp.body), resp.truncated)

It needs no ``monkey_patch()``: transfers run on libcurl (through pycurl)
whose sockets and timer are driven by this thread's hub (``curlloop``), so
many greenthreads share one client and a waiting greenthread blocks nothing.
HTTP is all libcurl's; this package adds what the tools share:

* at most ``per_host`` requests in flight to one host per client -- a
  greenthread wanting more waits for one to finish; connections are kept
  alive and reused (libcurl's connection cache, shared by the thread);
* TLS verified against certifi's CA bundle (or ``ca_file``);
* redirects followed here, up to ``max_redirects``, each hop recorded and
  offered to ``redirect_check`` first; a loop is reported as soon as it closes;
* gzip/deflate decoded while streaming, the decoded body cut at ``max_body``
  (``Response.truncated``), so memory stays bounded even for compressed bombs;
* connect and read (inactivity) timeouts, and a deadline for each whole
  request (120 s by default); ``HTTP(S)_PROXY``/``NO_PROXY`` from
  the environment, read the way Python reads them;
* names resolved by libcurl's threaded resolver, and each address offered to
  ``allow_address`` in the moment libcurl opens a socket for it, so a service
  can refuse private targets without a window between check and use.

HTTP error statuses come back as a ``Response``; every transport failure is a
``FetchError`` with a ``kind``.  HTTP/1.1 is spoken (``http2=True`` offers h2
over TLS).

Inside: ``httpclient`` (``HttpClient``: gates, redirects, proxies),
``transfer`` (one exchange on a pooled easy handle), ``curlloop`` (libcurl's
multi interface on the hub), ``response``, ``errors`` (``FetchError`` from
libcurl's codes), ``addresses`` (address vetting).
"""

from __future__ import annotations

from .addresses import is_public_address
from .errors import FETCH_ERROR_KINDS, FetchError
from .httpclient import ACCEPT_ENCODING, DEFAULT_USER_AGENT, HttpClient
from .response import Headers, Response
from .transfer import REDIRECT_BODY_LIMIT, REDIRECT_STATUSES

__all__ = [
    "HttpClient",
    "Response",
    "Headers",
    "FetchError",
    "FETCH_ERROR_KINDS",
    "DEFAULT_USER_AGENT",
    "ACCEPT_ENCODING",
    "REDIRECT_STATUSES",
    "REDIRECT_BODY_LIMIT",
    "is_public_address",
]
