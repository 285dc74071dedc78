"""Print how many damaged images training skipped, and which."""
from typing import Iterator, List

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

__all__ = ['DamagedImageSummaryHook']

MAX_LISTED = 10


def _datasets(dataset) -> Iterator[object]:
    """``dataset`` and the datasets it concatenates / wraps."""
    yield dataset
    for child in getattr(dataset, 'datasets', None) or []:
        yield from _datasets(child)
    inner = getattr(dataset, 'dataset', None)
    if inner is not None:
        yield from _datasets(inner)


@HOOKS.register_module()
class DamagedImageSummaryHook(Hook):
    """After training, log the damaged images that datasets with
    ``damaged_images='skip'`` skipped (a count over all dataloader workers
    and the file names). Silent when nothing was skipped."""

    priority = 'VERY_LOW'

    def summary_lines(self, runner) -> List[str]:
        loader = getattr(runner, 'train_dataloader', None)
        dataset = getattr(loader, 'dataset', None)
        lines = []
        for ds in _datasets(dataset) if dataset is not None else []:
            summary = getattr(ds, 'damaged_summary', None)
            if summary is None:
                continue
            count, messages = summary()
            if count:
                lines.append(f'{type(ds).__name__}: skipped {count} '
                             f'damaged sample(s) from {len(messages)} '
                             'file(s):')
                lines += [f'  {m}' for m in messages[:MAX_LISTED]]
                if len(messages) > MAX_LISTED:
                    lines.append(f'  (+{len(messages) - MAX_LISTED} more)')
        return lines

    def after_train(self, runner) -> None:
        lines = self.summary_lines(runner)
        if lines:
            runner.logger.warning('\n'.join(lines))
