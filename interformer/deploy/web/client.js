// The client-decoding page: download decoder.onnx once and each image's
// encoder outputs once, then answer every click in the browser: reference
// label update + click disk (reference_label.js), decoder in a worker,
// bilinear upsampling of the logit margin, mask overlay. The per-click
// latency is measured here (click to mask drawn) and shown on the page.
import * as rules from '/web/reference_label.js';

const status = document.getElementById('status');
const latencyBox = document.getElementById('latency');
const view = document.getElementById('view');
const ctx = view.getContext('2d');
const info = await (await fetch('/model/model.json')).json();
const refInfo = info.reference_label;
const worker = new Worker('/web/decoder_worker.js', {type: 'module'});
const pending = new Map();
let nextId = 0;
let image = null;       // {bitmap, height, width, canvasH, canvasW}
let clicks = [];        // [y, x, positive]
let steps = [];         // [{ref, mask}] on the canvas
const state = window.interformerClient = {
  ready: false, imageReady: false, masks: [], latencies: [], workerMs: [],
  bytesPerImage: 0, featuresSource: null, errors: [],
};

worker.onmessage = (event) => {
  const msg = event.data;
  if (msg.type === 'ready') {
    state.ready = true;
    state.wasmThreads = msg.threads;
    status.textContent = `decoder ready (${msg.threads} WASM thread(s)): ` +
        'choose an image';
  } else if (msg.type === 'error') {
    state.errors.push(msg.message);
    status.textContent = `error: ${msg.message}`;
  }
  const resolve = pending.get(msg.type === 'logits' ? msg.id : msg.type);
  if (resolve) {
    pending.delete(msg.type === 'logits' ? msg.id : msg.type);
    resolve(msg);
  }
};
// ?threads=N: the decoder's WASM threads (default 1; more need the page to
// be cross-origin isolated, which the server's headers make it)
const threads = Number(new URLSearchParams(location.search).get('threads'));
worker.postMessage({type: 'model', url: '/model/decoder.onnx', threads});

function request(key, message, transfer) {
  return new Promise((resolve) => {
    pending.set(key, resolve);
    worker.postMessage(message, transfer || []);
  });
}

function parseFeatures(buffer) {
  const headerBytes = new DataView(buffer).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(
      new Uint8Array(buffer, 4, headerBytes)));
  const base = 4 + headerBytes;
  const tensors = header.tensors.map((t) => {
    const bytes = buffer.slice(base + t.offset, base + t.offset + t.nbytes);
    const data = t.dtype === 'float16' ? new Uint16Array(bytes)
                                       : new Float32Array(bytes);
    return {name: t.name, dtype: t.dtype, dims: t.dims, data};
  });
  return {header, tensors};
}

document.getElementById('file').addEventListener('change', async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  state.imageReady = false;
  status.textContent = 'encoding on the server...';
  const bitmap = await createImageBitmap(file);
  const response = await fetch('/api/encode', {method: 'POST', body: file});
  if (!response.ok) {
    status.textContent = `encode failed: ${await response.text()}`;
    return;
  }
  const buffer = await response.arrayBuffer();
  const {header, tensors} = parseFeatures(buffer);
  state.bytesPerImage = buffer.byteLength;
  state.featuresSource = header.source;  // 'encoder' or 'store'
  await request('features', {type: 'features', tensors},
                tensors.map((t) => t.data.buffer));
  image = {bitmap, height: header.image_shape[0],
           width: header.image_shape[1], canvasH: header.canvas_shape[0],
           canvasW: header.canvas_shape[1]};
  view.width = image.width;
  view.height = image.height;
  clicks = [];
  steps = [];
  state.masks = [];
  state.latencies = [];
  state.workerMs = [];
  draw(null);
  state.imageReady = true;
  status.textContent = `image ready (${(buffer.byteLength / 1e6).toFixed(2)}`
      + ` MB of features from the ${header.source}); click the object`;
});

async function decodeStep(index) {
  const {canvasH, canvasW} = image;
  let ref;
  if (index === 0) {
    ref = rules.newReferenceLabel(canvasH, canvasW);
  } else {
    ref = rules.updateByPrediction(steps[index - 1].ref,
                                   steps[index - 1].mask,
                                   refInfo.update_table);
  }
  const [y, x, positive] = clicks[index];
  rules.addClickDisk(ref, canvasH, canvasW, y, x, positive,
                     refInfo.click_radius);
  const id = nextId++;
  const msg = await request(id, {type: 'decode', id, ref: ref.slice(),
                                 height: canvasH, width: canvasW});
  if (msg.type === 'error') throw new Error(msg.message);
  const [, , h, w] = msg.dims;
  state.lastLogits = msg.data;  // (1, 2, H/4, W/4) of the latest click
  const margin = rules.upsampleMargin(msg.data, h, w, canvasH, canvasW);
  const mask = new Uint8Array(margin.length);
  for (let i = 0; i < margin.length; i++) mask[i] = margin[i] > 0 ? 1 : 0;
  steps[index] = {ref, mask};
  return msg.ms;
}

function draw(mask) {
  ctx.drawImage(image.bitmap, 0, 0);
  if (mask) {
    const pixels = ctx.getImageData(0, 0, image.width, image.height);
    for (let y = 0; y < image.height; y++) {
      for (let x = 0; x < image.width; x++) {
        if (mask[y * image.canvasW + x]) {
          const i = 4 * (y * image.width + x);
          pixels.data[i] = (pixels.data[i] + 255) >> 1;
          pixels.data[i + 2] = pixels.data[i + 2] >> 1;
        }
      }
    }
    ctx.putImageData(pixels, 0, 0);
  }
  for (const [y, x, positive] of clicks) {
    ctx.fillStyle = positive ? '#0c0' : '#d00';
    ctx.beginPath();
    ctx.arc(x + 0.5, y + 0.5, 4, 0, 2 * Math.PI);
    ctx.fill();
  }
}

function cropMask(mask) {
  const out = new Uint8Array(image.height * image.width);
  for (let y = 0; y < image.height; y++) {
    out.set(mask.subarray(y * image.canvasW, y * image.canvasW + image.width),
            y * image.width);
  }
  return out;
}

async function click(event, positive) {
  event.preventDefault();
  if (!state.ready || !state.imageReady) return;
  const start = performance.now();
  // offsetX/Y: from the canvas' padding edge (its border excluded)
  const x = Math.floor(event.offsetX * view.width / view.clientWidth);
  const y = Math.floor(event.offsetY * view.height / view.clientHeight);
  if (x < 0 || y < 0 || x >= image.width || y >= image.height) return;
  clicks.push([y, x, positive]);
  state.clicks = clicks.map((c) => c.slice());  // (y, x, positive)
  const workerMs = await decodeStep(clicks.length - 1);
  const mask = steps[clicks.length - 1].mask;
  draw(mask);
  const ms = performance.now() - start;
  state.masks.push(Array.from(cropMask(mask)));
  state.latencies.push(ms);
  state.workerMs.push(workerMs);
  latencyBox.textContent = `click ${clicks.length}: ${ms.toFixed(1)} ms in ` +
      `the browser (decoder ${workerMs.toFixed(1)} ms)`;
}

// mousedown: button 0 = object, 2 = background (no context menu)
view.addEventListener('contextmenu', (event) => event.preventDefault());
view.addEventListener('mousedown', (event) => {
  if (event.button === 0 || event.button === 2) {
    click(event, event.button === 0).catch((err) => {
      state.errors.push(String(err));
      status.textContent = `error: ${err}`;
    });
  }
});
document.getElementById('undo').addEventListener('click', () => {
  if (!clicks.length) return;
  clicks.pop();
  steps.length = clicks.length;
  draw(clicks.length ? steps[clicks.length - 1].mask : null);
});
document.getElementById('reset').addEventListener('click', () => {
  clicks = [];
  steps = [];
  if (image) draw(null);
});
