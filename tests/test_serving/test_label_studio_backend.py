"""The Label Studio ML backend routes with Label Studio's request shapes
(the real Label Studio end to end is in test_label_studio_e2e.py)."""
import base64

import numpy as np
import pytest

pytest.importorskip('label_studio_sdk',
                    reason='pip install --no-deps label-studio-sdk')

LABEL_CONFIG = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <BrushLabels name="tag" toName="image">
    <Label value="Object" background="#FF0000"/>
  </BrushLabels>
  <PolygonLabels name="poly" toName="image">
    <Label value="Object"/>
  </PolygonLabels>
  <KeyPointLabels name="click" toName="image" smart="true">
    <Label value="Object" smart="true" background="#000000"/>
  </KeyPointLabels>
</View>"""


def _click(x_pct, y_pct, positive=True):
    return {'original_width': 200, 'original_height': 150,
            'image_rotation': 0, 'from_name': 'click', 'to_name': 'image',
            'type': 'keypointlabels', 'is_positive': positive,
            'value': {'x': x_pct, 'y': y_pct, 'width': 0.5,
                      'keypointlabels': ['Object']}}


def test_health_setup_predict(service, sample_image, png_bytes):
    from interformer.serving.label_studio import sdk_brush
    _, client, engine = service
    status, _, body = client.request('/label-studio/health')
    assert status == 200 and b'UP' in body
    status, answer = client.post_json('/label-studio/setup', {
        'project': '1.1', 'schema': LABEL_CONFIG, 'hostname': '',
        'access_token': ''})
    assert status == 200 and answer['model_version']
    image = sample_image()
    data_uri = 'data:image/png;base64,' + base64.b64encode(
        png_bytes(image)).decode()
    task = {'id': 1, 'data': {'image': data_uri}}
    # x = 60 % of 200 = column 120, y = 46.9 % of 150 = row 70
    context = {'result': [_click(60.0, 46.9), _click(5.0, 5.0, False)]}
    status, answer = client.post_json('/label-studio/predict', {
        'tasks': [task], 'label_config': LABEL_CONFIG, 'project': '1.1',
        'params': {'context': context}})
    assert status == 200, answer
    [prediction] = answer['results']
    brush = [r for r in prediction['result'] if r['type'] == 'brushlabels']
    [brush] = brush
    assert brush['from_name'] == 'tag' and brush['to_name'] == 'image'
    assert brush['value']['brushlabels'] == ['Object']
    assert brush['value']['format'] == 'rle'
    decoded = sdk_brush().decode_rle(brush['value']['rle'])
    mask = np.reshape(decoded, (150, 200, 4))[:, :, 3] > 0
    from interformer.serving.engine import ObjectPrompt
    encoded, _ = engine.encode_bytes(png_bytes(image))
    [expected] = engine.segment(encoded, [ObjectPrompt(
        [(70, 120, True), (7, 10, False)])])
    np.testing.assert_array_equal(mask, expected)
    if expected.any():
        [poly] = [r for r in prediction['result']
                  if r['type'] == 'polygonlabels']
        points = np.array(poly['value']['points'])
        assert (points >= 0).all() and (points <= 100).all()
    # no context (pre-annotation on task open): an empty prediction
    status, answer = client.post_json('/label-studio/predict', {
        'tasks': [task], 'label_config': LABEL_CONFIG})
    assert status == 200 and answer['results'][0]['result'] == []


def test_predict_errors(service):
    _, client, _ = service
    for payload, words in [
        ({'tasks': 'x'}, 'tasks'),
        ({'tasks': [], 'label_config': '<View'}, 'not XML'),
        ({'tasks': [{'data': {'image': '/data/upload/1/a.png'}}],
          'label_config': LABEL_CONFIG,
          'params': {'context': {'result': [_click(1, 1)]}}}, 'hostname'),
        ({'tasks': [{'data': {}}], 'label_config': LABEL_CONFIG,
          'params': {'context': {'result': [{'type': 'keypointlabels',
                                             'value': {}}]}}},
         'original_width'),
    ]:
        status, answer = client.post_json('/label-studio/predict', payload)
        assert 400 <= status < 500 and words in answer['error'], answer
