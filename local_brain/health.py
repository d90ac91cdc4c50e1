"""A fast reachability probe for model servers.

litellm never cools down a deployment whose server refuses connections, so a dead host
would cost a connection error (and retries) on every step. Before the first request we try
a TCP connection to each configured endpoint, all at once, and report the ones that refuse.
A probe that merely times out proves nothing (a firewall, a slow network) and counts as up.
"""

from __future__ import annotations

import errno
import socket
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

PROBE_TIMEOUT_S = 1.5


def refused_endpoints(api_bases: set[str], timeout: float = PROBE_TIMEOUT_S) -> set[str]:
    """The api_base URLs whose host refuses connections or does not resolve."""
    if not api_bases:
        return set()
    urls = sorted(api_bases)
    with ThreadPoolExecutor(max_workers=min(8, len(urls))) as pool:
        verdicts = list(pool.map(lambda url: _refuses(url, timeout), urls))
    return {url for url, refused in zip(urls, verdicts, strict=True) if refused}


def _refuses(url: str, timeout: float) -> bool:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return False
    except (ConnectionRefusedError, socket.gaierror):
        return True
    except OSError as error:  # a timeout proves nothing: let the request decide
        return error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH)
