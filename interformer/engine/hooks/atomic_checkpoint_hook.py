"""A checkpoint hook whose files are never left half-written.

mmengine's :class:`~mmengine.hooks.CheckpointHook` writes ``iter_N.pth``
in place (``open(path, 'wb')``), writes ``<work_dir>/last_checkpoint`` in
place too, and deletes the oldest checkpoint *before* saving the new one.
A crash (kill, OOM, node failure) in the middle can therefore leave a
truncated checkpoint that ``--resume`` then picks up, an empty
``last_checkpoint``, or, with ``max_keep_ckpts=1``, no checkpoint at all.

:class:`AtomicCheckpointHook` keeps the hook's behaviour and options but, on
local storage, orders the steps so that every moment is resumable:

1. the checkpoint is written to a hidden temporary file in the same
   directory, flushed to disk, then ``os.replace``-d onto ``iter_N.pth``;
2. ``last_checkpoint`` is rewritten the same way (temp file + replace);
3. only then are checkpoints beyond ``max_keep_ckpts`` deleted.

With ``resume=True`` and no ``load_from`` it resumes from the newest
complete checkpoint (:func:`~.resume.find_resume_checkpoint`), also one that
was renamed into place just before a kill, when ``last_checkpoint`` does not
name it yet; before training it deletes the ``.iter_*.tmp`` files a killed
save left.

Non-local backends (e.g. object stores) fall back to the stock behaviour.
"""
import os
import os.path as osp
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook
from mmseg.registry import HOOKS

from .resume import find_resume_checkpoint, remove_stale_tmp_files

__all__ = ['AtomicCheckpointHook', 'atomic_write_text']

LAST_CHECKPOINT_FILE = 'last_checkpoint'
_TMP_SUFFIX = '.tmp'


def _fsync_path(path: str) -> None:
    """Flush a file (or a directory entry table) to disk, best effort."""
    flags = os.O_RDONLY
    if osp.isdir(path):
        flags |= getattr(os, 'O_DIRECTORY', 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # e.g. directories cannot be opened on some platforms
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _tmp_name(filename: str) -> str:
    """Hidden per-process temp name next to ``filename``."""
    return f'.{filename}.{os.getpid()}{_TMP_SUFFIX}'


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old or the new content.

    Args:
        path: destination file; its directory must exist.
        text: full new content.
    """
    directory, name = osp.split(osp.abspath(path))
    tmp_path = osp.join(directory, _tmp_name(name))
    try:
        with open(tmp_path, 'w', encoding='utf-8') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if osp.exists(tmp_path):
            os.remove(tmp_path)
        raise
    _fsync_path(directory)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """:class:`~mmengine.hooks.CheckpointHook` with crash-safe writes.

    Accepts exactly the arguments of ``CheckpointHook``. See the module
    docstring for the write order.
    """

    def before_run(self, runner) -> None:
        # Runs before Runner.load_or_resume, which would only read
        # last_checkpoint.
        super().before_run(runner)
        if runner._resume and runner._load_from is None:
            runner._load_from = find_resume_checkpoint(runner.work_dir)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if is_main_process() and isinstance(self.file_backend, LocalBackend):
            for path in remove_stale_tmp_files(self.out_dir):
                runner.logger.info(f'removed {path} (left by a killed save)')

    def _save_checkpoint_with_step(self, runner, step: int,
                                   meta: dict) -> None:
        if not isinstance(self.file_backend, LocalBackend):
            super()._save_checkpoint_with_step(runner, step, meta)
            return

        # Book-keeping first (it is stored in the checkpoint's message hub),
        # deletion last.
        outdated: Optional[int] = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        tmp_filename = _tmp_name(ckpt_filename)
        tmp_path = osp.join(self.out_dir, tmp_filename)
        try:
            # Runner.save_checkpoint runs on the main process only.
            runner.save_checkpoint(
                self.out_dir,
                tmp_filename,
                self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args)
        except BaseException:
            if is_main_process() and osp.exists(tmp_path):
                os.remove(tmp_path)
            raise
        if not is_main_process():
            return

        _fsync_path(tmp_path)
        os.replace(tmp_path, self.last_ckpt)
        _fsync_path(self.out_dir)
        atomic_write_text(
            osp.join(runner.work_dir, LAST_CHECKPOINT_FILE), self.last_ckpt)

        if outdated is not None and outdated != step:
            old_path = osp.join(self.out_dir,
                                self.filename_tmpl.format(outdated))
            if osp.isfile(old_path):
                os.remove(old_path)
