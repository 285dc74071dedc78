"""The click test: a robot user clicks on every instance of a dataset.

Per instance (:func:`evaluate_instance`, ``evaluation.md`` §6 and §11):
``predictor.set_image(image)`` once (the encoder, timed), then for each step
up to ``max_clicks``: the robot user places a click from the ground truth and
the previous mask (:func:`interformer.interaction.next_click`), the predictor
answers (one :func:`~interformer.interaction.click_step.click_step`, the
decoder, timed), the protocol's foreground rule is applied (``prob >
pred_thr``, or the model's argmax mask when ``pred_thr`` is None:
:func:`~interformer.interaction.click_step.prediction_foreground`) and its IoU
recorded.
The RITM protocol stops once the IoU reaches its target; the official one
always runs every step and, when nothing is wrong, predicts again without a
new click. The official protocol also clicks and scores on the model's
padded canvas (the ground truth padded with background).

:func:`run_click_test` runs it over a dataset, sharded across processes when
a process group exists, and gathers the results on every rank. Each instance
has its own random generator derived from (seed, instance index), so any
number of processes gives the same clicks and IoUs.
"""
import sys
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from ..interaction import (
    Click,
    ClickProtocol,
    get_protocol,
    next_click,
    pad_to_canvas,
    prediction_foreground,
)
from .distributed import all_gather_objects, get_dist_info, shard_indices
from .metrics import iou, summarize
from .tta import with_tta

__all__ = [
    'InstanceResult', 'ClickTestResult', 'evaluate_instance',
    'run_click_test', 'instance_rng', 'early_stop_threshold'
]

#: Thresholds of RITM's table (NoC@80/85/90); always reported.
TABLE_IOU_THRS = (0.8, 0.85, 0.9)

ClickTuple = Optional[Tuple[int, int, bool]]


@dataclass
class InstanceResult:
    """The click test on one instance.

    Attributes:
        index: instance index in the dataset.
        name: instance name.
        ious: IoU after each step, ``max_clicks`` entries; after an early
            stop the last IoU is repeated.
        clicks: one entry per step actually run: ``(y, x, is_positive)``,
            or None where the protocol made no click.
        num_steps: steps actually run (predictions made; RITM's click count
            for the SPC).
        encoder_time: seconds of ``set_image``.
        decoder_times: seconds of each ``predict``.
        total_time: seconds of the whole instance (loading excluded).
    """
    index: int
    name: str
    ious: List[float]
    clicks: List[ClickTuple]
    num_steps: int
    encoder_time: float = 0.0
    decoder_times: List[float] = field(default_factory=list)
    total_time: float = 0.0


@dataclass
class ClickTestResult:
    """The click test on a dataset (all ranks gathered).

    Attributes:
        dataset: dataset label.
        protocol: the protocol used.
        seed: the base seed.
        instances: per-instance results, by index.
        elapsed: wall seconds of the dataset loop (slowest process),
            sample loading included, as RITM's ``Time``.
        process_seconds: summed loop seconds of all processes; the SPC
            numerator (equal to ``elapsed`` in one process).
        world_size: number of processes.
    """
    dataset: str
    protocol: ClickProtocol
    seed: int
    instances: List[InstanceResult]
    elapsed: float
    process_seconds: float
    world_size: int = 1

    @property
    def all_ious(self) -> List[List[float]]:
        return [inst.ious for inst in self.instances]

    @property
    def num_steps(self) -> int:
        """Clicks (steps) actually run over all instances."""
        return sum(inst.num_steps for inst in self.instances)

    @property
    def spc(self) -> float:
        """RITM's seconds per click: loop time / clicks made."""
        return self.process_seconds / max(self.num_steps, 1)

    @property
    def encoder_seconds_per_image(self) -> float:
        return float(np.mean([i.encoder_time for i in self.instances]))

    @property
    def decoder_seconds_per_click(self) -> float:
        times = [t for i in self.instances for t in i.decoder_times]
        return float(np.mean(times)) if times else 0.0

    def summary(self) -> dict:
        """NoC / NoF / success ratio / mIoU curve (see ``metrics``)."""
        thrs = sorted(set(TABLE_IOU_THRS) | set(self.protocol.iou_thrs))
        return summarize(self.all_ious, thrs, self.protocol.max_clicks)


def instance_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of instance ``index``: the same whatever the
    sharding."""
    return np.random.default_rng([int(seed), int(index)])


def early_stop_threshold(protocol: ClickProtocol) -> Optional[float]:
    """The IoU that ends an instance early, or None.

    It is raised to the largest reported threshold, so that NoC@t is exact
    for every ``t`` in ``protocol.iou_thrs`` (RITM instead caps its
    thresholds at the target).
    """
    if protocol.early_stop_iou is None:
        return None
    return max([protocol.early_stop_iou, *protocol.iou_thrs])


def evaluate_instance(predictor,
                      image: np.ndarray,
                      gt: np.ndarray,
                      protocol='ritm',
                      rng: Optional[np.random.Generator] = None,
                      index: int = 0,
                      name: str = '') -> InstanceResult:
    """Run the robot user on one object.

    Args:
        predictor: an object with ``set_image``, ``add_click``, ``predict``
            and ``canvas_shape`` (:class:`interformer.apis.
            InterFormerPredictor` or a stand-in). A protocol with ``flip``
            or ``zoom_in`` wraps it in :class:`~interformer.evaluation.tta.
            TTAPredictor` (RITM's test-time augmentation).
        image: (H, W, 3) uint8 RGB.
        gt: (H, W) int ground truth, 1 object / 0 background / -1 ignore.
        protocol: a protocol name, dict or :class:`ClickProtocol`.
        rng: random generator (needed by random tie-breaking protocols).
        index, name: copied into the result.

    Returns:
        InstanceResult: ``max_clicks`` IoUs, the clicks and the timings.
    """
    protocol = get_protocol(protocol)
    predictor = with_tta(predictor, protocol)
    on_canvas = protocol.iou_on_padded_canvas
    stop_iou = early_stop_threshold(protocol)
    start = time.perf_counter()
    predictor.set_image(image)
    encoder_time = time.perf_counter() - start
    gt = np.asarray(gt)
    if on_canvas:  # the padding is background
        gt = pad_to_canvas(gt, predictor.canvas_shape, value=0)
    pred = np.zeros(gt.shape, bool)
    clicks: List[Click] = []
    record: List[ClickTuple] = []
    ious: List[float] = []
    decoder_times: List[float] = []
    for step in range(1, protocol.max_clicks + 1):
        click = next_click(gt, pred, clicks, protocol, rng)
        if click is None:
            # Nothing left to correct (official protocol): the model still
            # answers once more, on the label updated by its last mask.
            record.append(None)
            if hasattr(predictor, 'step_without_click'):
                predictor.step_without_click()
        else:
            clicks.append(click)
            record.append((click.y, click.x, click.is_positive))
            predictor.add_click(
                click.y, click.x, click.is_positive, on_canvas=on_canvas)
        tic = time.perf_counter()
        answer = predictor.predict(on_canvas=on_canvas)
        decoder_times.append(time.perf_counter() - tic)
        pred = prediction_foreground(answer, protocol.pred_thr)
        ious.append(float(iou(gt, pred)))
        if stop_iou is not None and ious[-1] >= stop_iou and \
                step >= protocol.min_clicks:
            break
    num_steps = len(ious)
    ious += [ious[-1]] * (protocol.max_clicks - num_steps)
    return InstanceResult(
        index=index,
        name=name,
        ious=ious,
        clicks=record,
        num_steps=num_steps,
        encoder_time=encoder_time,
        decoder_times=decoder_times,
        total_time=time.perf_counter() - start)


def run_click_test(predictor,
                   dataset,
                   protocol='ritm',
                   seed: int = 0,
                   indices: Optional[Sequence[int]] = None,
                   dataset_name: Optional[str] = None,
                   progress: bool = True) -> ClickTestResult:
    """Click test over a dataset (sharded when a process group exists).

    Args:
        predictor: see :func:`evaluate_instance`.
        dataset: ``len(dataset)`` and ``dataset.get_sample(i) ->
            dict(image, gt, name)``.
        protocol: a protocol name, dict or :class:`ClickProtocol`.
        seed: base seed of the per-instance generators.
        indices: instance indices to run (default: all).
        dataset_name: label for the report (default: the class name).
        progress: show a progress bar (rank 0 only).

    Returns:
        ClickTestResult: every instance of ``indices`` (all ranks), sorted
        by index, on every rank.
    """
    protocol = get_protocol(protocol)
    predictor = with_tta(predictor, protocol)  # built once for all
    if indices is None:
        indices = range(len(dataset))
    rank, world_size = get_dist_info()
    mine = shard_indices(indices, rank, world_size)
    name = dataset_name or type(dataset).__name__
    start = time.perf_counter()
    local = []
    for index in tqdm(mine, desc=f'click test {name}', unit='inst',
                      disable=not progress or rank != 0, dynamic_ncols=True,
                      mininterval=0.1 if sys.stderr.isatty() else 10.0):
        sample = dataset.get_sample(index)
        local.append(
            evaluate_instance(predictor, sample['image'], sample['gt'],
                              protocol, instance_rng(seed, index), index,
                              sample['name']))
    elapsed = time.perf_counter() - start
    gathered = all_gather_objects((local, elapsed))
    instances = sorted((inst for part, _ in gathered for inst in part),
                       key=lambda inst: inst.index)
    return ClickTestResult(
        dataset=name,
        protocol=protocol,
        seed=int(seed),
        instances=instances,
        elapsed=max(t for _, t in gathered),
        process_seconds=sum(t for _, t in gathered),
        world_size=world_size)
