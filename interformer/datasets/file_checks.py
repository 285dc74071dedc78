"""Checks of a dataset's files when it is built, with errors that name them.

* :func:`load_json_file`: an annotation JSON; a truncated or invalid file is
  an error naming the file, line and column (``json`` alone names neither
  the file nor, in a one-line COCO JSON, anything but "column 50001").
* :func:`check_files_exist`: every image / panoptic PNG an annotation file
  refers to, one ``stat`` each (a progress bar on large sets), all missing
  files reported in one error, so a COCO run does not stop hours in at the
  first missing image.
"""
import json
import os.path as osp
from collections import Counter
from typing import Any, Iterable, List, Sequence

from ..utils.cli import UserError

__all__ = [
    'MissingFilesError', 'load_json_file', 'json_error', 'check_files_exist'
]

#: Sets at least this large get a progress bar while their files are
#: checked.
PROGRESS_MIN_FILES = 20000
MAX_LISTED = 20


class MissingFilesError(FileNotFoundError):
    """Files referenced by a dataset's annotations do not exist."""


def json_error(path: str, err: json.JSONDecodeError,
               what: str = 'annotation file') -> UserError:
    """The error for a JSON file that does not parse."""
    size = osp.getsize(path) if osp.isfile(path) else 0
    # an error at the very end, or a string that never closes: cut short
    truncated = err.pos >= size - 2 or err.msg.startswith('Unterminated')
    hint = '; the file looks truncated' if truncated else ''
    return UserError(f'{what} {path} is not valid JSON: {err.msg} (line '
                     f'{err.lineno}, column {err.colno}, byte {err.pos} of '
                     f'{size}{hint})')


def load_json_file(path: str, what: str = 'annotation file') -> Any:
    """``json.load`` with errors that name the file.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UserError: it is not valid JSON (e.g. truncated).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    try:
        with open(path, 'rb') as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise json_error(path, err, what) from None
    except UnicodeDecodeError as err:
        raise UserError(f'{what} {path} is not UTF-8 text JSON: '
                        f'{err}') from None


def _progress(paths: Sequence[str], desc: str) -> Iterable[str]:
    if len(paths) < PROGRESS_MIN_FILES:
        return paths
    from tqdm import tqdm
    return tqdm(paths, desc=desc, unit='file', mininterval=1.0, leave=False)


def check_files_exist(paths: Sequence[str], owner: str,
                      source: str) -> None:
    """Raise one error listing every path in ``paths`` that is not a file.

    Args:
        paths: the files (images, panoptic PNGs) a dataset refers to.
        owner: who refers to them, for the message (a class name).
        source: the annotation file they come from.

    Raises:
        MissingFilesError: naming the count, the folders with missing files
            and the first :data:`MAX_LISTED` missing paths.
    """
    unique = list(dict.fromkeys(paths))
    missing: List[str] = [
        p for p in _progress(unique, f'{owner}: checking files')
        if not osp.isfile(p)
    ]
    if not missing:
        return
    folders = Counter(osp.dirname(p) for p in missing)
    absent = [d for d in folders if not osp.isdir(d)]
    where = '; '.join(
        f'{d or "."}: {n} missing' +
        (' (the folder does not exist)' if d in absent else '')
        for d, n in folders.most_common(5))
    listed = '\n'.join(missing[:MAX_LISTED])
    more = len(missing) - MAX_LISTED
    raise MissingFilesError(
        f'{owner}: {len(missing)} of the {len(unique)} files that {source} '
        f'refers to do not exist ({where}):\n{listed}' +
        (f'\n(+{more} more)' if more > 0 else ''))
