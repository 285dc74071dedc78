"""Click-test reports: RITM's results table, a JSON dump and an mIoU plot.

* :func:`results_table`: RITM's ``get_results_table`` layout (NoC@80/85/90,
  ``>=20@85/90``, SPC and time), the first column naming the protocol; any
  other threshold is appended to the row as ``NoC@t = x.xx; >=20@t = n``.
* :func:`timing_table`: encoder seconds per image and decoder seconds per
  click kept apart (the per-click part is InterFormer's claim), with the
  official "success ratio".
* :func:`result_to_dict` / :func:`save_json`: every instance's clicks and
  full ``max_clicks`` IoU list plus the summary. Everything except the
  ``'timing'`` entry depends only on the inputs and the seed.
* :func:`plot_miou_curves`: mean IoU against the number of clicks (PNG,
  drawn with the Agg canvas, no display needed).
"""
import dataclasses
import json
import os
import os.path as osp
from datetime import timedelta
from typing import Dict, Optional, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .click_test import TABLE_IOU_THRS, ClickTestResult, early_stop_threshold
from .metrics import thr_key

__all__ = [
    'results_table', 'timing_table', 'result_to_dict', 'save_json',
    'plot_miou_curves', 'save_report', 'output_stem'
]


def _cell(value, width: int, fmt: str = '') -> str:
    return f'{value:^{width}{fmt}}'


def _rule(header: str) -> str:
    return '-' * len(header)


def results_table(results: Sequence[ClickTestResult],
                  model_name: Optional[str] = None) -> str:
    """RITM's results table, one row per result.

    Returns:
        str: ``Eval results for model: ...``, a rule, the header, a rule
        and the rows.
    """
    max_clicks = results[0].protocol.max_clicks if results else 20
    over = f'>={max_clicks}'
    header = ('|' + '|'.join([
        _cell('Protocol', 13), _cell('Dataset', 11), _cell('NoC@80%', 9),
        _cell('NoC@85%', 9), _cell('NoC@90%', 9), _cell(f'{over}@85%', 9),
        _cell(f'{over}@90%', 9), _cell('SPC,s', 7), _cell('Time', 9)
    ]) + '|')
    lines = [f'Eval results for model: {model_name}'] if model_name else []
    lines += [_rule(header), header, _rule(header)]
    for result in results:
        summary = result.summary()
        row = '|' + '|'.join([
            _cell(result.protocol.name, 13), _cell(result.dataset, 11),
            _cell(summary['NoC@80'], 9, '.2f'),
            _cell(summary['NoC@85'], 9, '.2f'),
            _cell(summary['NoC@90'], 9, '.2f'),
            _cell(summary['NoF@85'], 9), _cell(summary['NoF@90'], 9),
            _cell(result.spc, 7, '.3f'),
            _cell(str(timedelta(seconds=int(result.elapsed))), 9)
        ]) + '|'
        for thr in result.protocol.iou_thrs:
            if thr not in TABLE_IOU_THRS:
                key = thr_key(thr)
                row += (f' NoC@{key} = {summary[f"NoC@{key}"]:.2f}; '
                        f'{over}@{key} = {summary[f"NoF@{key}"]}')
        lines.append(row)
    return '\n'.join(lines)


def timing_table(results: Sequence[ClickTestResult]) -> str:
    """Instances, clicks made, encoder s/image, decoder s/click and the
    success ratio (max IoU >= t within the budget) per result."""
    thrs = results[0].protocol.iou_thrs if results else (0.85, 0.9)
    header = '|' + '|'.join(
        [_cell('Dataset', 11), _cell('Instances', 11), _cell('Clicks', 9),
         _cell('Enc s/img', 11), _cell('Dec s/click', 13)] +
        [_cell(f'SR@{thr_key(t)}%', 9) for t in thrs]) + '|'
    lines = [_rule(header), header, _rule(header)]
    for result in results:
        summary = result.summary()
        lines.append('|' + '|'.join(
            [_cell(result.dataset, 11),
             _cell(len(result.instances), 11),
             _cell(result.num_steps, 9),
             _cell(result.encoder_seconds_per_image, 11, '.4f'),
             _cell(result.decoder_seconds_per_click, 13, '.4f')] +
            [_cell(summary.get(f'success_ratio@{thr_key(t)}', float('nan')),
                   9, '.3f') for t in thrs]) + '|')
    return '\n'.join(lines)


def result_to_dict(result: ClickTestResult,
                   meta: Optional[Dict] = None) -> dict:
    """JSON-ready dict of a result.

    Keys: ``dataset``, ``protocol`` (every field), ``seed``,
    ``early_stop_iou`` (the effective one), ``meta`` (caller's), ``summary``,
    ``instances`` (index, name, num_clicks, clicks as ``[y, x, positive]``
    or null, ``max_clicks`` IoUs) and ``timing`` (the only entry that
    varies between runs).
    """
    return dict(
        dataset=result.dataset,
        protocol=dataclasses.asdict(result.protocol),
        seed=result.seed,
        early_stop_iou=early_stop_threshold(result.protocol),
        meta=dict(meta or {}),
        summary=result.summary(),
        instances=[
            dict(
                index=inst.index,
                name=inst.name,
                num_clicks=inst.num_steps,
                clicks=[None if c is None else [c[0], c[1], c[2]]
                        for c in inst.clicks],
                ious=list(inst.ious)) for inst in result.instances
        ],
        timing=dict(
            world_size=result.world_size,
            elapsed_s=result.elapsed,
            process_seconds=result.process_seconds,
            spc_s=result.spc,
            encoder_s_per_image=result.encoder_seconds_per_image,
            decoder_s_per_click=result.decoder_seconds_per_click,
            encoder_s=[inst.encoder_time for inst in result.instances],
            decoder_s=[inst.decoder_times for inst in result.instances]))


def save_json(result: ClickTestResult,
              path: str,
              meta: Optional[Dict] = None) -> dict:
    """Write :func:`result_to_dict` to ``path``; returns the dict."""
    data = result_to_dict(result, meta)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(data, f, indent=1)
    return data


def plot_miou_curves(results: Sequence[ClickTestResult],
                     path: str,
                     title: Optional[str] = None) -> None:
    """Plot mIoU vs number of clicks, one line per result, to a PNG."""
    fig = Figure(figsize=(6, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for result in results:
        curve = result.summary()['mIoU_curve']
        ax.plot(range(1, len(curve) + 1), curve, marker='o', markersize=3,
                label=f'{result.dataset} ({result.protocol.name})')
    max_clicks = max(r.protocol.max_clicks for r in results)
    ax.set_xlim(1, max_clicks)
    ax.set_xticks(range(1, max_clicks + 1, max(1, max_clicks // 10)))
    ax.set_xlabel('number of clicks')
    ax.set_ylabel('mIoU')
    ax.grid(True, alpha=0.3)
    ax.legend(loc='lower right')
    ax.set_title(title or 'mIoU vs number of clicks')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path)


def output_stem(result: ClickTestResult) -> str:
    """``clicktest_<dataset>_<protocol>``: the stem of the report files."""
    return f'clicktest_{result.dataset.lower()}_{result.protocol.name}'


def save_report(result: ClickTestResult,
                work_dir: str,
                meta: Optional[Dict] = None,
                model_name: Optional[str] = None) -> Dict[str, str]:
    """Write the table (.txt), the JSON and the mIoU plot (.png).

    Returns:
        dict: ``{'table': path, 'json': path, 'plot': path}``.
    """
    os.makedirs(work_dir, exist_ok=True)
    stem = osp.join(work_dir, output_stem(result))
    paths = dict(table=f'{stem}.txt', json=f'{stem}.json', plot=f'{stem}.png')
    with open(paths['table'], 'w') as f:
        f.write(results_table([result], model_name) + '\n' +
                timing_table([result]) + '\n')
    save_json(result, paths['json'], meta)
    plot_miou_curves([result], paths['plot'],
                     f'{result.dataset}: mIoU vs number of clicks')
    return paths
