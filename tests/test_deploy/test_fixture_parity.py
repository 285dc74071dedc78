"""Official fixtures through ONNX: every ``*.npz`` in the reference folder
(``INTERFORMER_REFERENCE_DIR`` or ``<shared>/reference``) is converted,
exported, and its stored reference labels are replayed in onnxruntime."""
import glob
import os
import os.path as osp
import sys

import numpy as np
import onnxruntime as ort
import pytest

from interformer.deploy.export import export_onnx
from interformer.deploy.graphs import decoder_input_names

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(_REPO, 'tests', 'test_models'))
from parity_utils import build_from_fixture, load_fixture  # noqa: E402

_REF_DIR = os.environ.get(
    'INTERFORMER_REFERENCE_DIR',
    osp.join(
        os.environ.get('INTERFORMER_SHARED_DIR',
                       osp.join(osp.dirname(_REPO), 'shared')), 'reference'))
FIXTURES = sorted(glob.glob(osp.join(_REF_DIR, '*.npz')))
TOL = 1e-4


@pytest.mark.parametrize('path', FIXTURES or [None],
                         ids=[osp.basename(p) for p in FIXTURES] or ['none'])
def test_fixture_replayed_in_onnxruntime(path, tmp_path):
    if path is None:
        pytest.skip(f'no parity fixtures (*.npz) in {_REF_DIR}')
    arrays = load_fixture(path)
    model = build_from_fixture(arrays, _REPO)
    paths = export_onnx(model, str(tmp_path))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    enc = ort.InferenceSession(paths['encoder'], options)
    dec = ort.InferenceSession(paths['decoder'], options)
    image = arrays['input'][None].astype(np.float32)
    outs = dict(zip([o.name for o in enc.get_outputs()],
                    enc.run(None, {'image': image})))
    for i in range(4):
        np.testing.assert_allclose(outs[f'feat{i}'][0], arrays[f'fpn_{i}'],
                                   atol=TOL, rtol=TOL)
    feed = {n: outs[n] for n in decoder_input_names()[:-1]}
    worst = 0.0
    for step in range(len(arrays['clicks'])):
        ref = arrays['ref_label'][step].astype(np.uint8)[None, None]
        logits = dec.run(['logits'], dict(feed, ref_label=ref))[0][0]
        stored = arrays['decode_logits'][step]
        worst = max(worst, float(np.abs(logits - stored).max()))
        np.testing.assert_allclose(logits, stored, atol=TOL, rtol=TOL,
                                   err_msg=f'step {step}')
    print(f'{osp.basename(path)}: max |ORT - official| logits {worst:.2e}')
