"""Running the ASGI app with uvicorn: in the foreground, or in a thread.

uvicorn's listen backlog (2048) and its event loop keep every connection of
a burst of clicks; model work queues in the thread pool.
"""
import threading
import time
from typing import Optional

import uvicorn

__all__ = ['ServerThread', 'serve']


class ServerThread:
    """uvicorn serving ``app`` from a daemon thread (tests, load script).

    Args:
        app: an ASGI app.
        host: address to bind (loopback by default).
        port: TCP port; 0 picks a free one (see :attr:`url`).
    """

    def __init__(self, app, host: str = '127.0.0.1', port: int = 0) -> None:
        config = uvicorn.Config(app, host=host, port=port, lifespan='off',
                                log_level='warning', access_log=False)
        self.server = uvicorn.Server(config)
        self._thread: Optional[threading.Thread] = None
        self.host = host
        self.port = port

    def start(self, timeout_s: float = 20.0) -> 'ServerThread':
        self._thread = threading.Thread(target=self.server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f'the server did not start on '
                                   f'{self.host}:{self.port}')
            time.sleep(0.01)
        sock = self.server.servers[0].sockets[0]
        self.port = sock.getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f'http://{self.host}:{self.port}/'

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> 'ServerThread':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(app, host: str = '127.0.0.1', port: int = 8000,
          log_level: str = 'info') -> None:
    """Serve ``app`` in the foreground until Ctrl+C."""
    uvicorn.run(app, host=host, port=port, log_level=log_level,
                lifespan='off', timeout_keep_alive=30)


_ARGS_ENV = 'INTERFORMER_SERVE_ARGS'


def app_from_env():
    """App factory for ``--workers N`` (each worker builds its own)."""
    import argparse
    import json
    import os

    from .cli import build_app
    args = argparse.Namespace(**json.loads(os.environ[_ARGS_ENV]))
    return build_app(args, demo=not args.no_demo, cache_mb=args.cache_mb)


def serve_workers(args, workers: int) -> None:
    """Serve with ``workers`` processes (uvicorn's process manager).

    Replaces this process with ``python -m uvicorn --factory``: the
    workers then start from a light main module (a tool's heavy imports in
    each spawned worker outlast uvicorn's worker health check).
    """
    import json
    import os
    import os.path as osp
    import sys
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    env = dict(os.environ, **{_ARGS_ENV: json.dumps(vars(args))})
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (root, env.get('PYTHONPATH')) if p)
    os.execve(sys.executable, [
        sys.executable, '-m', 'uvicorn', '--factory',
        'interformer.serving.launch:app_from_env', '--host', args.host,
        '--port', str(args.port), '--workers', str(workers),
        '--timeout-keep-alive', '30'
    ], env)
