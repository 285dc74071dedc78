"""JSON error answers of the ASGI apps (torch-free).

Every error is ``{"error": message}`` with a 4xx status for bad input; a
bug answers 500 and the process keeps serving.
"""
from typing import Dict, Type

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from .images import UploadError

__all__ = ['error_response', 'install_error_handlers']


def error_response(status: int, message: str) -> JSONResponse:
    """``{"error": message}`` with HTTP ``status``."""
    return JSONResponse({'error': message}, status_code=status)


def install_error_handlers(
        app: FastAPI,
        bad_input: Dict[Type[Exception], int] = None) -> None:
    """Answer HTTP errors, upload errors, validation errors, the
    ``bad_input`` exception types (-> their status) and bugs as JSON."""

    @app.exception_handler(HTTPException)
    async def http_error(request, err):
        return error_response(err.status_code, str(err.detail))

    @app.exception_handler(UploadError)
    async def upload_error(request, err):
        return error_response(err.status, str(err))

    for kind, status in (bad_input or {}).items():
        async def bad(request, err, status=status):
            return error_response(status, str(err))
        app.add_exception_handler(kind, bad)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, err):
        parts = []
        for e in err.errors()[:5]:
            where = '.'.join(str(p) for p in e.get('loc', ()))
            parts.append(f'{where}: {e.get("msg")}')
        return error_response(422, 'invalid request: ' + '; '.join(parts))

    @app.exception_handler(Exception)
    async def server_error(request, err):  # a bug: answer, keep serving
        return error_response(500, f'server error: {type(err).__name__}: '
                              f'{err}')
