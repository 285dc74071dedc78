"""A log of the HTTP requests an ASGI app received (method, path).

The client-decoding page must not send a request per click; the log shows
it (tests, ``tools/deploy/benchmark_browser.py``). Bounded: a long-running
server keeps the latest ``maxlen`` requests only.
"""
from collections import deque
from typing import Deque, Tuple

__all__ = ['RequestLog']


class RequestLog:
    """ASGI middleware appending ``(method, path)`` of every HTTP request
    to ``entries`` (give it the app's ``state.request_log``).

    Args:
        app: the wrapped ASGI app.
        entries: the deque to append to.
    """

    def __init__(self, app, entries: Deque[Tuple[str, str]]) -> None:
        self.app = app
        self.entries = entries

    async def __call__(self, scope, receive, send) -> None:
        if scope['type'] == 'http':
            self.entries.append((scope['method'], scope['path']))
        await self.app(scope, receive, send)


def new_request_log(maxlen: int = 10000) -> Deque[Tuple[str, str]]:
    """An empty bounded log."""
    return deque(maxlen=maxlen)
