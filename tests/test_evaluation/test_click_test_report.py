"""Reports of the click test: RITM table (TV10), timing table, JSON, plot."""
import json

import cv2
import pytest

from interformer.evaluation import (
    ClickTestResult,
    InstanceResult,
    get_protocol,
    results_table,
    save_report,
    timing_table,
)


def _padded(ious, n=20):
    return list(ious) + [ious[-1]] * (n - len(ious))


def _tv10_result(protocol='ritm', **overrides):
    """evaluation.md TV10: A, B, C, D early-stopped lists."""
    lists = [[0.80, 0.86, 0.91], [0.30] * 20, [0.95], [0.5] * 19 + [0.92]]
    instances = [
        InstanceResult(index=i, name=f'inst{i}', ious=_padded(ious),
                       clicks=[(i, k, k % 2 == 0) for k in range(len(ious))],
                       num_steps=len(ious), encoder_time=0.5,
                       decoder_times=[0.01] * len(ious), total_time=1.0)
        for i, ious in enumerate(lists)
    ]
    return ClickTestResult(
        dataset='GrabCut', protocol=get_protocol(protocol, **overrides),
        seed=0, instances=instances, elapsed=3725.0, process_seconds=8.8)


def test_results_table_tv10():
    table = results_table([_tv10_result()], model_name='light')
    lines = table.splitlines()
    assert lines[0] == 'Eval results for model: light'
    assert lines[1] == '-' * len(lines[2]) == lines[3]
    assert lines[2] == ('|  Protocol   |  Dataset  | NoC@80% | NoC@85% '
                        '| NoC@90% |>=20@85% |>=20@90% | SPC,s |  Time   |')
    assert lines[4] == ('|    ritm     |  GrabCut  |  10.50  |  10.75  '
                        '|  11.00  |    2    |    2    | 0.200 | 1:02:05 |')
    # clicks made: 3 + 20 + 1 + 20 = 44, SPC = 8.8 s / 44
    assert _tv10_result().num_steps == 44


def test_extra_threshold_is_appended():
    result = _tv10_result(iou_thrs=(0.85, 0.9, 0.95))
    row = results_table([result]).splitlines()[-1]
    # A and D never reach 0.95, B neither, C at click 1: (20+20+1+20)/4
    assert row.endswith('| NoC@95 = 15.25; >=20@95 = 3')


def test_timing_table_keeps_encoder_and_decoder_apart():
    table = timing_table([_tv10_result('official')])
    header, row = table.splitlines()[1], table.splitlines()[3]
    assert 'Enc s/img' in header and 'Dec s/click' in header
    assert 'SR@85%' in header and 'SR@90%' in header
    cells = [c.strip() for c in row.strip('|').split('|')]
    assert cells == ['GrabCut', '4', '44', '0.5000', '0.0100', '0.750',
                     '0.750']


def test_save_report_writes_json_plot_and_table(tmp_path):
    result = _tv10_result()
    paths = save_report(result, str(tmp_path), meta=dict(config='c.py'),
                        model_name='m')
    data = json.loads(open(paths['json']).read())
    assert data['dataset'] == 'GrabCut' and data['seed'] == 0
    assert data['protocol']['name'] == 'ritm'
    assert data['protocol']['pred_thr'] == 0.49
    assert data['meta'] == dict(config='c.py')
    assert data['early_stop_iou'] == 0.9
    assert len(data['instances']) == 4
    first = data['instances'][0]
    assert first['ious'] == _padded([0.80, 0.86, 0.91])
    assert first['num_clicks'] == 3
    assert first['clicks'] == [[0, 0, True], [0, 1, False], [0, 2, True]]
    assert data['summary']['NoC@90'] == pytest.approx(11.0)
    assert data['summary']['NoF_never@90'] == 1
    assert len(data['summary']['mIoU_curve']) == 20
    assert data['timing']['encoder_s_per_image'] == 0.5
    assert data['timing']['spc_s'] == pytest.approx(8.8 / 44)
    png = cv2.imread(paths['plot'])
    assert png is not None and png.shape[0] > 100 and png.std() > 0
    text = open(paths['table']).read()
    assert '|  11.00  |' in text and 'Dec s/click' in text
    assert paths['json'].endswith('clicktest_grabcut_ritm.json')
