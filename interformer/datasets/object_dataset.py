"""Shared base of the training datasets: one random object per sample.

Each training sample is an image plus its *segment-id map* (every annotated
segment is a candidate object, see
:mod:`interformer.datasets.transforms.segment_maps`); the pipeline's
``ObjectSampler`` turns it into a binary mask of one random segment. This
module holds what all training datasets share:

* the metainfo (``background`` / ``object``),
* the optional ignore list of COCO image ids or file-name prefixes,
* dropping images without any candidate segment,
* the bounded retry with another index when the pipeline returns ``None``
  (e.g. the crop holds no object), ending in one clear error,
* a check, when the dataset is built, that every referenced image / PNG
  exists (all missing files in one error),
* damaged (truncated) images: an error naming the file
  (``damaged_images='stop'``, the default) or, with ``'skip'``, a warning
  naming it, another sample instead, and a count over all workers
  (:meth:`BaseObjectDataset.damaged_summary`, printed after training by
  ``DamagedImageSummaryHook``); never a silent grey-filled image,
* the data info of instance-style annotations (COCO/LVIS polygons, RLE).
"""
import os
import os.path as osp
import tempfile
from typing import Any, List, Optional, Sequence, Tuple, Union

from mmengine.logging import print_log
from mmseg.datasets import BaseSegDataset

from .file_checks import check_files_exist, load_json_file
from .image_check import DamagedImageError, check_image_file
from .transforms.loading import SOURCE_INSTANCES

# official InterFormer: MAX_NUM_LOOPS = 100 retries of a failed sample
MAX_NUM_LOOPS = 100

DAMAGED_MODES = ('stop', 'skip')

__all__ = [
    'BaseObjectDataset', 'BaseInstanceDataset', 'MAX_NUM_LOOPS',
    'DAMAGED_MODES'
]


def load_ignore_list(ignore_file: str) -> List[Union[int, str]]:
    """Read an ignore list: a JSON list of image ids or file-name prefixes.

    Args:
        ignore_file (str): Path of the JSON file.

    Returns:
        list[int | str]: Its entries.
    """
    entries = load_json_file(ignore_file, 'ignore_file')
    if not isinstance(entries, list) or not all(
            isinstance(e, (int, str)) and not isinstance(e, bool)
            for e in entries):
        raise ValueError(f'ignore_file {ignore_file} must hold a JSON list '
                         'of image ids (int) or file-name prefixes (str)')
    return entries


class BaseObjectDataset(BaseSegDataset):
    """Base of the "segment-id map, one random object" training datasets.

    Subclasses implement :meth:`load_data_list` (one dict per image with
    ``img_path``, ``img_id`` and what ``LoadSegmentIdMap`` needs) and
    :meth:`num_candidates`.

    Args:
        ann_file (str): Annotation file, relative to ``data_root``.
        ignore_file (str, optional): JSON list of images to leave out, used
            as given (absolute or relative to the working directory). An
            int entry is a COCO image id; a str entry is a prefix of the
            image file name (without folders) and, if it is all digits,
            also an image id (``'000000000009'`` and ``9`` both drop
            ``000000000009.jpg``). Default: None (no ignore list).
        filter_empty (bool): Drop images without any candidate segment.
            Default: True.
        max_refetch (int): Retries with another random index when the
            pipeline returns None. Default: 100.
        check_files (bool): Check when the dataset is built that every
            image (and panoptic PNG) exists; all missing files are reported
            in one error. Default: True.
        damaged_images (str): What a truncated / undecodable image does in
            training: ``'stop'`` raises an error naming it, ``'skip'``
            warns with its name, counts it and uses another sample.
            Default: ``'stop'``.
        **kwargs: Other :class:`mmseg.datasets.BaseSegDataset` arguments
            (``data_root``, ``data_prefix``, ``pipeline``, ...).
    """

    METAINFO = dict(
        classes=('background', 'object'),
        palette=[[0, 0, 0], [255, 255, 255]])

    def __init__(self,
                 ann_file: str = '',
                 ignore_file: Optional[str] = None,
                 filter_empty: bool = True,
                 max_refetch: int = MAX_NUM_LOOPS,
                 check_files: bool = True,
                 damaged_images: str = 'stop',
                 **kwargs) -> None:
        if damaged_images not in DAMAGED_MODES:
            raise ValueError(f'{type(self).__name__}: damaged_images must '
                             f'be one of {DAMAGED_MODES}, got '
                             f'{damaged_images!r}')
        self.ignore_file = ignore_file
        self.filter_empty = filter_empty
        self.check_files = check_files
        self.damaged_images = damaged_images
        # Workers append the skipped files here (one line each), so that
        # the count covers every dataloader process.
        self.damaged_log: Optional[str] = None
        if damaged_images == 'skip':
            fd, self.damaged_log = tempfile.mkstemp(
                prefix='interformer_damaged_', suffix='.txt')
            os.close(fd)
        super().__init__(ann_file=ann_file, max_refetch=max_refetch, **kwargs)

    def num_candidates(self, data_info: dict) -> int:
        """Number of annotated candidate segments of one image.

        Args:
            data_info (dict): One entry of the data list.

        Returns:
            int: Candidate count (0 means the image has no object).
        """
        raise NotImplementedError

    def _check_ann_file(self) -> None:
        if not self.ann_file:
            raise ValueError(f'{type(self).__name__}: ann_file is required')
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'{type(self).__name__}: ann_file not found: {self.ann_file}')

    def _is_ignored(self, data_info: dict, ids: set,
                    prefixes: Sequence[str]) -> bool:
        if data_info.get('img_id') in ids:
            return True
        name = osp.basename(data_info['img_path'])
        return any(name.startswith(prefix) for prefix in prefixes)

    def filter_data(self) -> List[dict]:
        """Apply the ignore list and drop images without candidates.

        Returns:
            list[dict]: The kept data infos.
        """
        ids, prefixes = set(), []
        if self.ignore_file is not None:
            for entry in load_ignore_list(self.ignore_file):
                if isinstance(entry, int):
                    ids.add(entry)
                    continue
                prefixes.append(entry)
                if entry.isdigit():
                    ids.add(int(entry))
        kept = [
            info for info in self.data_list
            if not self._is_ignored(info, ids, prefixes) and (
                not self.filter_empty or self.num_candidates(info) > 0)
        ]
        if not kept:
            raise ValueError(
                f'{type(self).__name__}: no image with an annotated segment '
                f'left in {self.ann_file} (after the ignore list '
                f'{self.ignore_file} and filter_empty={self.filter_empty})')
        if self.check_files:
            check_files_exist([
                path for info in kept for path in self._sample_files(info)
            ], type(self).__name__, self.ann_file)
        return kept

    @staticmethod
    def _sample_files(data_info: dict) -> List[str]:
        """The files one sample reads: its image (and panoptic PNG)."""
        files = [data_info['img_path']]
        if data_info.get('seg_map_path'):
            files.append(data_info['seg_map_path'])
        return files

    def prepare_data(self, idx: int) -> Any:
        """The pipeline output of sample ``idx``; None (another sample)
        for a damaged image with ``damaged_images='skip'``."""
        try:
            for path in self._sample_files(self.get_data_info(idx)):
                check_image_file(path)
        except DamagedImageError as err:
            if self.damaged_images == 'stop':
                raise DamagedImageError(
                    f'{err} (set damaged_images=\'skip\' in the dataset '
                    'config to skip damaged images)') from None
            self._record_damaged(str(err))
            return None
        return super().prepare_data(idx)

    def _record_damaged(self, message: str) -> None:
        with open(self.damaged_log, 'a', encoding='utf-8') as f:
            f.write(message.replace('\n', ' ') + '\n')
        count, _ = self.damaged_summary()
        print_log(f'{type(self).__name__}: skipped {message} '
                  f'({count} damaged sample(s) skipped so far)',
                  logger='current', level=30)

    def damaged_summary(self) -> Tuple[int, List[str]]:
        """(number of skipped damaged samples, the distinct messages)
        over every process that used this dataset."""
        if not self.damaged_log or not osp.isfile(self.damaged_log):
            return 0, []
        with open(self.damaged_log, encoding='utf-8') as f:
            lines = [line.strip() for line in f if line.strip()]
        return len(lines), sorted(set(lines))

    def __getitem__(self, idx: int) -> Any:
        """Run the pipeline on sample ``idx``, retrying on ``None``.

        In training mode a sample whose pipeline returns None (no usable
        object in the crop) is replaced by a random other index, at most
        ``max_refetch`` times.

        Args:
            idx (int): Sample index.

        Returns:
            dict: The pipeline output (``inputs``, ``data_samples``).
        """
        if not self._fully_initialized:
            self.full_init()
        if self.test_mode:
            return super().__getitem__(idx)
        first_idx = idx
        for _ in range(self.max_refetch + 1):  # None: no object / damaged
            data = self.prepare_data(idx)
            if data is not None:
                return data
            idx = self._rand_another()
        raise RuntimeError(
            f'{type(self).__name__} ({self.ann_file}): no sample with a '
            f'usable object after {self.max_refetch} retries starting at '
            f'index {first_idx}. Check that the annotations contain '
            'non-empty segments and that the crop size suits the images.')


class BaseInstanceDataset(BaseObjectDataset):
    """Base of datasets with COCO-style instance annotations.

    Each annotation's ``segmentation`` (polygons, uncompressed or compressed
    RLE) becomes one candidate segment. ``LoadSegmentIdMap`` rasterises them
    per sample with pycocotools, in random order if ``shuffle_instances``,
    later masks on top, skipping a mask covered more than ``overlap_thr`` by
    earlier ones or covering more than ``overlap_thr`` of one of them.

    Args:
        shuffle_instances (bool): Shuffle the paint order per sample.
            Default: True.
        overlap_thr (float, optional): Overlap rule threshold; None paints
            every non-empty mask. Default: 0.5.
        crowd_as_ignore (bool): Annotations with ``iscrowd=1`` become ignore
            pixels (255) where no other segment lies, instead of candidate
            objects. Default: True.
        **kwargs: :class:`BaseObjectDataset` arguments.
    """

    def __init__(self,
                 shuffle_instances: bool = True,
                 overlap_thr: Optional[float] = 0.5,
                 crowd_as_ignore: bool = True,
                 **kwargs) -> None:
        if overlap_thr is not None and not 0.0 <= overlap_thr <= 1.0:
            raise ValueError(f'{type(self).__name__}: overlap_thr must be in '
                             f'[0, 1] or None, got {overlap_thr}')
        self.shuffle_instances = shuffle_instances
        self.overlap_thr = overlap_thr
        self.crowd_as_ignore = crowd_as_ignore
        super().__init__(**kwargs)

    def num_candidates(self, data_info: dict) -> int:
        """Count the annotations that can become objects.

        Args:
            data_info (dict): One entry of the data list.

        Returns:
            int: Number of (non-crowd, if crowds are ignored) annotations.
        """
        return sum(1 for inst in data_info['instances']
                   if not (self.crowd_as_ignore and inst['iscrowd']))

    def _image_info(self, image: dict, annotations: Sequence[dict],
                    img_file: str) -> dict:
        """Build the data info of one image.

        Args:
            image (dict): The JSON ``images`` entry (``id``, ``height``,
                ``width``).
            annotations (Sequence[dict]): Its ``annotations`` entries.
            img_file (str): Image path relative to the image prefix.

        Returns:
            dict: Data info for ``LoadSegmentIdMap`` (``segment_source =
            'instances'``).
        """
        try:
            height, width = int(image['height']), int(image['width'])
            instances = [
                dict(
                    id=ann.get('id'),
                    category_id=ann.get('category_id'),
                    iscrowd=int(ann.get('iscrowd', 0)),
                    segmentation=ann['segmentation']) for ann in annotations
            ]
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f'{self.ann_file}: image {image.get("id")} or one of its '
                f'annotations lacks a valid field: {error}') from error
        return dict(
            img_path=osp.join(self.data_prefix.get('img_path', ''),
                              img_file),
            img_id=image['id'],
            height=height,
            width=width,
            instances=instances,
            segment_source=SOURCE_INSTANCES,
            shuffle_instances=self.shuffle_instances,
            overlap_thr=self.overlap_thr,
            crowd_as_ignore=self.crowd_as_ignore,
            seg_fields=[])
