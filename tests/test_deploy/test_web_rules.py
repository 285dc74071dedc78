"""The browser's reference-label rules and logit upsampling
(interformer/deploy/web/reference_label.js, run in node) equal
interformer.interaction's on random click sequences."""
import json
import os.path as osp
import shutil
import subprocess

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from deploy_utils import REPO

from interformer.deploy.model_info import update_table
from interformer.interaction import (
    CLICK_RADIUS,
    add_click_disk,
    new_reference_label,
    update_by_prediction,
)

WEB = osp.join(REPO, 'interformer', 'deploy', 'web')
NODE = shutil.which('node')
SCRIPT = r'''
import { readFileSync } from 'node:fs';
import * as rules from 'WEB/reference_label.js';
const input = JSON.parse(readFileSync(0, 'utf8'));
const { height, width, table, radius } = input;
const refs = [];
let ref = null;
input.steps.forEach((step, i) => {
  ref = i === 0 ? rules.newReferenceLabel(height, width)
                : rules.updateByPrediction(ref, Uint8Array.from(step.mask),
                                           table);
  rules.addClickDisk(ref, height, width, step.y, step.x, step.positive,
                     radius);
  refs.push(Array.from(ref));
});
const m = input.margin;
const up = rules.upsampleMargin(Float32Array.from(m.logits), m.h, m.w,
                                height, width);
process.stdout.write(JSON.stringify({ refs, margin: Array.from(up) }));
'''


@pytest.mark.skipif(NODE is None, reason='node is not installed')
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_js_rules_equal_python(seed, tmp_path):
    rng = np.random.default_rng(seed)
    height, width = 64, 96
    steps, refs = [], []
    ref = None
    for i in range(8):
        y, x = int(rng.integers(0, height)), int(rng.integers(0, width))
        positive = bool(rng.integers(0, 2))
        mask = rng.random((height // 8, width // 8)) < 0.5
        mask = np.kron(mask, np.ones((8, 8), bool))
        if i == 0:
            ref = new_reference_label(height, width)
        else:
            ref = update_by_prediction(ref, mask)
        add_click_disk(ref, y, x, positive)
        refs.append(ref.copy())
        steps.append(dict(y=y, x=x, positive=positive,
                          mask=mask.astype(int).ravel().tolist()))
    logits = rng.standard_normal((1, 2, height // 4, width // 4),
                                 dtype=np.float32)
    up = F.interpolate(torch.from_numpy(logits), size=(height, width),
                       mode='bilinear', align_corners=False)[0]
    want_margin = (up[1] - up[0]).numpy()
    payload = dict(height=height, width=width, table=update_table(),
                   radius=CLICK_RADIUS, steps=steps,
                   margin=dict(h=height // 4, w=width // 4,
                               logits=logits.ravel().tolist()))
    script = tmp_path / 'run.mjs'
    script.write_text(SCRIPT.replace('WEB', WEB))
    proc = subprocess.run([NODE, str(script)], input=json.dumps(payload),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for step, (got, want) in enumerate(zip(out['refs'], refs)):
        assert np.array_equal(np.array(got, np.uint8).reshape(
            height, width), want), f'step {step}'
    margin = np.array(out['margin'], np.float32).reshape(height, width)
    np.testing.assert_allclose(margin, want_margin, atol=1e-5)
