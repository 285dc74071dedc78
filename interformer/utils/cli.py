"""How the command-line tools report errors.

Errors of the user's making (a bad path, a damaged file, a bad argument, an
unknown config key) end in one line ``error: ...`` on stderr that names the
file or argument, and exit status 2 (argparse's convention). A genuine bug
keeps its full traceback (exit 1); ``--debug`` shows the traceback for
every error.

Usage in a tool::

    from interformer.utils.cli import add_debug_flag, run_tool

    def parse_args(argv=None):
        parser = argparse.ArgumentParser(...)
        add_debug_flag(parser)
        ...

    def main(argv=None):
        args = parse_args(argv)
        ...

    if __name__ == '__main__':
        run_tool(main)

Library code signals a user error by raising :class:`UserError` (or a
``FileNotFoundError`` / ``PermissionError`` / ``IsADirectoryError`` /
``NotADirectoryError`` / ``ValueError`` whose message names the input).
"""
import argparse
import sys
from typing import Callable, List, Optional, Sequence, Tuple, Type

__all__ = [
    'UserError', 'USER_ERRORS', 'EXIT_USER_ERROR', 'add_debug_flag',
    'format_user_error', 'run_tool'
]

#: Exit status of a user error (argparse uses 2 for bad arguments).
EXIT_USER_ERROR = 2


class UserError(ValueError):
    """An error of the user's making; its message names the culprit.

    A ``ValueError`` subclass, so callers that already catch ``ValueError``
    keep working.
    """


#: Exception types reported as one line (no traceback) by :func:`run_tool`.
USER_ERRORS: Tuple[Type[BaseException], ...] = (
    UserError, ValueError, FileNotFoundError, FileExistsError,
    PermissionError, IsADirectoryError, NotADirectoryError)


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--debug`` (full tracebacks for every error) to ``parser``."""
    parser.add_argument(
        '--debug',
        action='store_true',
        help='show the full traceback of every error')


def format_user_error(err: BaseException) -> str:
    """The one-line ``error: ...`` message of a user error.

    ``OSError`` messages get their file name when the text lacks it
    (``open()`` of a missing file says ``[Errno 2] No such file or
    directory: 'x'`` which already names it).
    """
    message = str(err).strip() or type(err).__name__
    if 'Original Traceback' in message:
        # re-raised from a DataLoader worker: keep the original message
        last = message.splitlines()[-1]
        message = last.split(': ', 1)[1] if ': ' in last else last
    if isinstance(err, OSError) and err.filename is not None:
        if str(err.filename) not in message:
            message = f'{message}: {err.filename}'
        if err.strerror and message.startswith('[Errno'):
            message = f'{err.strerror}: {err.filename}'
    # One line: later lines of a multi-line message are indented under it.
    return 'error: ' + message.replace('\n', '\n  ')


def _wants_debug(argv: Optional[Sequence[str]]) -> bool:
    args = sys.argv[1:] if argv is None else argv
    return '--debug' in args


def run_tool(main: Callable[..., object],
             argv: Optional[List[str]] = None,
             user_errors: Tuple[Type[BaseException], ...] = USER_ERRORS
             ) -> None:
    """Call ``main(argv)`` and exit the way a command-line tool should.

    Args:
        main: the tool's ``main``; it takes ``argv`` (None: ``sys.argv``)
            and may return an int exit status (anything else means 0).
        argv: the arguments (None: ``sys.argv[1:]``).
        user_errors: exception types reported as ``error: ...`` + exit 2.

    Exits with ``main``'s status, 2 after a user error, 130 after Ctrl-C.
    Other exceptions propagate (traceback, exit 1): they are bugs.
    """
    debug = _wants_debug(argv)
    try:
        status = main(argv)
    except KeyboardInterrupt:
        if debug:
            raise
        print('interrupted', file=sys.stderr)
        sys.exit(130)
    except user_errors as err:
        if debug:
            raise
        print(format_user_error(err), file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    sys.exit(status if isinstance(status, int) else 0)
