"""SBD click-test set: every instance of every image of ``val.txt``."""
import hashlib
import json
import os
import os.path as osp
import warnings
from typing import List, Optional, Tuple

import numpy as np
import scipy.io
from mmseg.registry import DATASETS

from .base import GT_BACKGROUND, GT_OBJECT, ClickEvalDataset

__all__ = ['SBDEvalDataset', 'read_sbd_instances']

SBD_IMG_DIR = 'img'
SBD_INST_DIR = 'inst'
SBD_IMG_EXT = '.jpg'
CACHE_VERSION = 1


def read_sbd_instances(path: str) -> np.ndarray:
    """Read the instance map of an SBD ``inst/<id>.mat`` file.

    Returns:
        np.ndarray: (H, W) integer map, 0 = background, k = instance k.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: it is not a MATLAB file with a ``GTinst`` struct.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'SBD instance file not found: {path}')
    try:
        gt_inst = scipy.io.loadmat(path)['GTinst'][0, 0]
        names = gt_inst.dtype.names or ()
        seg = gt_inst['Segmentation' if 'Segmentation' in names else 0]
    except Exception as err:  # unreadable file, missing struct or field
        raise ValueError(f'cannot read the GTinst segmentation of SBD file '
                         f'{path}: {type(err).__name__}: {err}') from None
    seg = np.asarray(seg)
    if seg.ndim != 2 or not np.issubdtype(seg.dtype, np.integer):
        raise ValueError(f'SBD file {path}: GTinst.Segmentation must be a 2-D '
                         f'integer map, got {seg.dtype} {seg.shape}')
    return seg


@DATASETS.register_module()
class SBDEvalDataset(ClickEvalDataset):
    """SBD evaluation set (6671 instances on the 2857 ``val.txt`` images).

    The instances are every non-zero id of ``inst/<image>.mat``, in
    ``<split>.txt`` order and ids ascending (as RITM and the official
    InterFormer enumerate them; no instance is filtered). The index is cached
    as ``<split>_instances.json`` in ``data_root`` (rebuilt when the list
    file changes; skipped with a warning when the folder is read-only).

    Args:
        data_root: SBD's ``benchmark_RELEASE/dataset`` folder (``img/``,
            ``inst/``, ``val.txt``); its parent ``benchmark_RELEASE`` works
            too.
        split: list file stem. Default: ``'val'``.
        cache: read/write the instance index cache. Default: True.
    """

    def __init__(self,
                 data_root: str,
                 split: str = 'val',
                 cache: bool = True) -> None:
        super().__init__(data_root)
        if not osp.isfile(osp.join(self.data_root, f'{split}.txt')) and \
                osp.isdir(osp.join(self.data_root, 'dataset')):
            self.data_root = osp.join(self.data_root, 'dataset')
        self.split = split
        self.list_file = osp.join(self.data_root, f'{split}.txt')
        if not osp.isfile(self.list_file):
            raise FileNotFoundError(
                f'SBDEvalDataset: list file {self.list_file!r} not found')
        self.img_dir = self._require_dir(SBD_IMG_DIR)
        self.inst_dir = self._require_dir(SBD_INST_DIR)
        self.cache_file = osp.join(self.data_root,
                                   f'{split}_instances.json')
        pairs = self._load_index(cache)
        self.instances = [
            dict(
                name=f'{image_id}#{inst_id:03d}',
                image_id=image_id,
                inst_id=inst_id,
                img_path=osp.join(self.img_dir, image_id + SBD_IMG_EXT),
                gt_path=osp.join(self.inst_dir, image_id + '.mat'))
            for image_id, inst_id in pairs
        ]
        if not self.instances:
            raise FileNotFoundError(
                f'SBDEvalDataset: no instances for {self.list_file}')

    def _require_dir(self, name: str) -> str:
        path = osp.join(self.data_root, name)
        if not osp.isdir(path):
            raise FileNotFoundError(
                f'SBDEvalDataset: folder {path!r} does not exist')
        return path

    def _read_list(self) -> Tuple[List[str], str]:
        with open(self.list_file, 'rb') as f:
            content = f.read()
        ids = [line.strip() for line in content.decode().splitlines()]
        return [i for i in ids if i], hashlib.sha1(content).hexdigest()

    def _load_index(self, cache: bool) -> List[Tuple[str, int]]:
        image_ids, digest = self._read_list()
        if cache and osp.isfile(self.cache_file):
            cached = self._read_cache(digest)
            if cached is not None:
                return cached
        pairs = []
        for image_id in image_ids:
            inst = read_sbd_instances(
                osp.join(self.inst_dir, image_id + '.mat'))
            ids = np.unique(inst)
            pairs.extend((image_id, int(i)) for i in ids[ids != 0])
        if cache:
            self._write_cache(digest, pairs)
        return pairs

    def _read_cache(self,
                    digest: str) -> Optional[List[Tuple[str, int]]]:
        try:
            with open(self.cache_file) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None
        if data.get('version') != CACHE_VERSION or data.get(
                'list_sha1') != digest:
            return None
        return [(str(i), int(k)) for i, k in data['instances']]

    def _write_cache(self, digest: str,
                     pairs: List[Tuple[str, int]]) -> None:
        data = dict(
            version=CACHE_VERSION,
            split=self.split,
            list_sha1=digest,
            instances=[[i, k] for i, k in pairs])
        tmp = f'{self.cache_file}.{os.getpid()}.tmp'
        try:
            with open(tmp, 'w') as f:
                json.dump(data, f)
            os.replace(tmp, self.cache_file)
        except OSError as err:
            warnings.warn(f'SBDEvalDataset: cannot write the instance cache '
                          f'{self.cache_file}: {err}')

    def load_gt(self, instance: dict) -> np.ndarray:
        inst = read_sbd_instances(instance['gt_path'])
        gt = np.full(inst.shape, GT_BACKGROUND, np.int8)
        gt[inst == instance['inst_id']] = GT_OBJECT
        return gt
