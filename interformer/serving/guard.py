"""Request-body protection for the ASGI app, and strict JSON parsing.

:class:`BodyGuard` answers 413 without handing the app a body whose
Content-Length is over the limit (or that grows past it), and 408 when a
body does not arrive completely within ``timeout_s`` (a client that sends
fewer bytes than its Content-Length cannot hold a worker). Before a 413 the
rest of the body is read and dropped (up to :data:`DRAIN_BYTES`, within the
same deadline): a server that closes the connection on unread data makes
the client's TCP stack see a reset instead of the answer.
:func:`parse_json` turns every malformed body (including 60 KB of ``[``, a
RecursionError in ``json``) into one 400 with a message.
"""
import asyncio
import json
import time
from typing import Any

from starlette.exceptions import HTTPException

__all__ = ['BodyGuard', 'parse_json', 'json_error', 'read_body',
           'DRAIN_BYTES']

#: At most this much of a refused body is read (and dropped) so that the
#: client receives the 413; a larger one gets the answer and a closed
#: connection at once.
DRAIN_BYTES = 64 * 2**20


class _BodyError(HTTPException):
    """Raised from ``receive``: the app's HTTPException handler answers it
    (and this middleware does if nothing did)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status


def json_error(status: int, message: str) -> tuple:
    """ASGI start + body messages of a ``{"error": message}`` answer."""
    body = json.dumps({'error': message}).encode()
    start = {'type': 'http.response.start', 'status': status,
             'headers': [(b'content-type', b'application/json'),
                         (b'content-length', str(len(body)).encode()),
                         (b'connection', b'close')]}
    return start, {'type': 'http.response.body', 'body': body}


class BodyGuard:
    """ASGI middleware bounding request bodies in size and arrival time.

    Args:
        app: the wrapped ASGI app.
        max_bytes: largest accepted body.
        timeout_s: the whole body must arrive within this many seconds.
    """

    def __init__(self, app, max_bytes: int, timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)
        self.timeout_s = float(timeout_s)

    async def __call__(self, scope, receive, send) -> None:
        if scope['type'] != 'http':
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get('headers') or [])
        length = headers.get(b'content-length')
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared < 0:
                await self._answer(send, 400, 'bad Content-Length')
                return
        deadline = time.monotonic() + self.timeout_s
        if length is not None and declared > self.max_bytes:
            if declared <= DRAIN_BYTES:
                await _drain(receive, deadline)
            await self._answer(
                send, 413, f'the request is {declared / 2**20:.3g} MB;'
                f' the limit is {self.max_bytes / 2**20:.3g} MB')
            return
        state = {'received': 0, 'done': False, 'started': False}

        async def guarded_receive():
            if state['done']:
                return await receive()
            remaining = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(),
                                                 max(remaining, 0.001))
            except asyncio.TimeoutError:
                raise _BodyError(408, f'the request body did not arrive '
                                 f'within {self.timeout_s:g} s') from None
            if message['type'] == 'http.request':
                state['received'] += len(message.get('body', b''))
                if state['received'] > self.max_bytes:
                    raise _BodyError(413, f'the request is over the limit '
                                     f'of {self.max_bytes / 2**20:.3g} MB')
                state['done'] = not message.get('more_body', False)
            else:
                state['done'] = True
            return message

        async def tracking_send(message):
            if message['type'] == 'http.response.start':
                state['started'] = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracking_send)
        except _BodyError as err:
            if err.status == 413 and not state['done']:
                await _drain(receive, deadline,
                             DRAIN_BYTES - state['received'])
            if not state['started']:
                await self._answer(send, err.status, err.detail)

    @staticmethod
    async def _answer(send, status: int, message: str) -> None:
        start, body = json_error(status, message)
        await send(start)
        await send(body)


async def _drain(receive, deadline: float,
                 budget: int = DRAIN_BYTES) -> None:
    """Read and drop the rest of a request body: until its end, ``budget``
    bytes, or ``deadline`` (whichever comes first)."""
    while budget > 0:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            message = await asyncio.wait_for(receive(), remaining)
        except asyncio.TimeoutError:
            return
        if message['type'] != 'http.request':
            return
        budget -= len(message.get('body', b''))
        if not message.get('more_body', False):
            return


async def read_body(request, limit: int, what: str = 'the request') -> bytes:
    """A route's request body of at most ``limit`` bytes, else HTTP 413.

    The body is read whole before it is refused (:class:`BodyGuard` bounds
    what can arrive): answering while the client is still sending makes its
    TCP stack see a reset or a broken pipe instead of the 413.
    """
    body = await request.body()
    if len(body) > limit:
        raise HTTPException(413, f'{what} is {len(body) / 2**20:.3g} MB; '
                            f'the limit is {limit / 2**20:.3g} MB')
    return body


def parse_json(body: bytes, what: str = 'the request body') -> Any:
    """``json.loads`` with every failure as an HTTP 400."""
    try:
        return json.loads(body)
    except RecursionError:
        raise HTTPException(400, f'{what} is nested too deeply to be '
                            'valid JSON') from None
    except ValueError as err:
        raise HTTPException(400, f'{what} is not JSON ({err})') from None
