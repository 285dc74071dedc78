"""Which checkpoint ``--resume`` continues from, whatever a kill left.

:class:`AtomicCheckpointHook` renames ``iter_N.pth`` into place and then
rewrites ``last_checkpoint``. A kill between the two steps leaves a complete
``iter_N.pth`` that ``last_checkpoint`` does not name (or no
``last_checkpoint`` at all, after the first save), and mmengine's resume
would then start over (``Did not find last_checkpoint``) or go back one
checkpoint. A kill during the write leaves a hidden ``.iter_N.pth.<pid>.tmp``.

:func:`find_resume_checkpoint` picks the newest complete checkpoint of
either source; :func:`remove_stale_tmp_files` deletes the temp files.
"""
import glob
import os
import os.path as osp
import re
import zipfile
from typing import List, Optional

__all__ = ['find_resume_checkpoint', 'remove_stale_tmp_files']

LAST_CHECKPOINT_FILE = 'last_checkpoint'
_ITER_NAME = re.compile(r'^iter_(\d+)\.pth$')
_TMP_GLOB = '.iter_*.tmp'


def _is_complete(path: str) -> bool:
    """A ``torch.save`` file (a zip archive) whose central directory is
    intact; a file truncated mid-write fails this."""
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def _iteration(path: str) -> int:
    match = _ITER_NAME.match(osp.basename(path))
    return int(match.group(1)) if match else -1


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint to resume from, or None when there is none.

    Args:
        work_dir: the run's work dir (holds ``last_checkpoint`` and, with
            the default ``out_dir``, the ``iter_N.pth`` files).

    Returns:
        str or None: the newest complete ``iter_N.pth`` in ``work_dir``, or
        the file ``last_checkpoint`` names if that is at least as new and
        exists.
    """
    recorded = None
    pointer = osp.join(work_dir, LAST_CHECKPOINT_FILE)
    if osp.isfile(pointer):
        with open(pointer, encoding='utf-8') as f:
            recorded = f.read().strip() or None
        if recorded is not None and not osp.isfile(recorded):
            recorded = None
    candidates = sorted(
        (p for p in glob.glob(osp.join(work_dir, 'iter_*.pth'))
         if _ITER_NAME.match(osp.basename(p))),
        key=_iteration,
        reverse=True)
    newest = next((p for p in candidates if _is_complete(p)), None)
    if recorded is None:
        return newest
    if newest is None or _iteration(recorded) >= _iteration(newest):
        return recorded
    return newest


def remove_stale_tmp_files(folder: str) -> List[str]:
    """Delete ``.iter_*.tmp`` files a killed save left in ``folder``.

    Only call this before a run writes checkpoints into ``folder`` (another
    live run's temp file would be deleted too).

    Returns:
        list: the removed paths.
    """
    removed = []
    for path in glob.glob(osp.join(folder, _TMP_GLOB)):
        try:
            os.remove(path)
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed
