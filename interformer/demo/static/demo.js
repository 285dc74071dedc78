// InterFormer demo page: canvas overlay, clicks, undo/reset/next, downloads.
// Left click = positive, right click = negative. The server keeps all state
// (one session per browser, by cookie); this script only draws it.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const canvas = $('canvas');
  const ctx = canvas.getContext('2d');
  const editButtons = ['undo-button', 'reset-button', 'next-button'];
  const downloads = ['download-mask', 'download-labels'];

  let image = null;    // the session's image (HTMLImageElement)
  let overlay = null;  // the current RGBA overlay (HTMLImageElement)
  let state = null;    // the last JSON state from the server
  let limits = { max_upload_mb: 10, max_pixels: 0 };
  let queue = Promise.resolve();  // server calls run one after another
  let pending = 0;

  // ------------------------------------------------------------ helpers
  function showError(message) {
    const box = $('error');
    box.textContent = message;
    box.hidden = false;
  }

  function clearError() {
    $('error').hidden = true;
    $('error').textContent = '';
  }

  async function api(path, options) {
    const start = performance.now();
    const response = await fetch(path, options);
    let data;
    try {
      data = await response.json();
    } catch (err) {
      data = { error: `HTTP ${response.status} ${response.statusText}` };
    }
    if (!response.ok) {
      throw new Error(data.error || `HTTP ${response.status}`);
    }
    data.roundtrip_ms = performance.now() - start;
    return data;
  }

  function postJSON(path, body) {
    return api(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body || {}),
    });
  }

  function loadImage(src) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error('the browser could not show ' +
                                           'the image'));
      img.src = src;
    });
  }

  // Run server calls in order; show any error in the banner.
  function enqueue(task) {
    pending += 1;
    document.body.classList.add('busy');
    queue = queue.then(task).catch((err) => showError(err.message))
      .finally(() => {
        pending -= 1;
        if (pending === 0) document.body.classList.remove('busy');
      });
    return queue;
  }

  // ------------------------------------------------------------ drawing
  function draw() {
    if (!image) return;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(image, 0, 0);
    if (overlay) ctx.drawImage(overlay, 0, 0);
    const radius = Math.max(4, Math.round(
      Math.max(canvas.width, canvas.height) / 120));
    for (const [y, x, positive] of state.clicks) {
      ctx.beginPath();
      ctx.arc(x + 0.5, y + 0.5, radius, 0, 2 * Math.PI);
      ctx.fillStyle = positive ? '#22c55e' : '#ef4444';
      ctx.fill();
      ctx.lineWidth = Math.max(1.5, radius / 3);
      ctx.strokeStyle = '#ffffff';
      ctx.stroke();
    }
  }

  function updateStatus(data) {
    $('object-index').textContent = data.object_index;
    $('num-clicks').textContent = data.num_clicks;
    $('mask-area').textContent = data.mask_area;
    if (data.latency_ms !== undefined) {
      $('latency').textContent = `${data.latency_ms.toFixed(1)} ms`;
      $('roundtrip').textContent =
        `(round trip ${data.roundtrip_ms.toFixed(0)} ms)`;
    }
    if (data.encode_ms !== undefined) {
      $('encode-ms').textContent = `${data.encode_ms.toFixed(0)} ms`;
      $('latency').textContent = '\u2013';
      $('roundtrip').textContent = '';
    }
    $('undo-button').disabled = data.num_clicks === 0;
    $('reset-button').disabled = data.num_clicks === 0;
    $('next-button').disabled = data.mask_area === 0;
    for (const id of downloads) $(id).classList.remove('disabled');
    $('download-mask').download = `${data.name}_mask.png`;
    $('download-labels').download = `${data.name}_labels.png`;
    // hooks for tests and scripts
    canvas.dataset.clicks = data.num_clicks;
    canvas.dataset.maskArea = data.mask_area;
    canvas.dataset.object = data.object_index;
  }

  async function applyState(data, newImage) {
    if (newImage) {
      image = await loadImage(`/api/image?t=${Date.now()}`);
      canvas.width = data.width;
      canvas.height = data.height;
      canvas.hidden = false;
      $('placeholder').hidden = true;
    }
    overlay = await loadImage(data.overlay);
    state = data;
    draw();
    updateStatus(data);
  }

  // ------------------------------------------------------------ actions
  async function upload(file) {
    clearError();
    const limitBytes = limits.max_upload_mb * 1024 * 1024;
    if (file.size > limitBytes) {
      throw new Error(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)}` +
                      ` MB; the limit is ${limits.max_upload_mb} MB`);
    }
    const data = await api('/api/upload', {
      method: 'POST',
      headers: {
        'Content-Type': 'application/octet-stream',
        'X-Filename': encodeURIComponent(file.name),
      },
      body: file,
    });
    await applyState(data, true);
  }

  async function pickExample(name) {
    clearError();
    await applyState(await postJSON('/api/example', { name }), true);
  }

  async function action(path, body) {
    if (!state) return;
    clearError();
    await applyState(await postJSON(path, body), false);
  }

  function toPixel(event) {
    const rect = canvas.getBoundingClientRect();
    const scaleX = canvas.width / canvas.clientWidth;
    const scaleY = canvas.height / canvas.clientHeight;
    const x = Math.floor(
      (event.clientX - rect.left - canvas.clientLeft) * scaleX);
    const y = Math.floor(
      (event.clientY - rect.top - canvas.clientTop) * scaleY);
    return {
      x: Math.min(Math.max(x, 0), canvas.width - 1),
      y: Math.min(Math.max(y, 0), canvas.height - 1),
    };
  }

  // ------------------------------------------------------------- events
  canvas.addEventListener('contextmenu', (event) => event.preventDefault());
  canvas.addEventListener('mousedown', (event) => {
    if (!state || (event.button !== 0 && event.button !== 2)) return;
    event.preventDefault();
    const { x, y } = toPixel(event);
    const positive = event.button === 0;
    enqueue(() => action('/api/click', { y, x, positive }));
  });

  $('file-input').addEventListener('change', (event) => {
    const file = event.target.files[0];
    event.target.value = '';  // choosing the same file again still fires
    if (file) enqueue(() => upload(file));
  });
  $('example-select').addEventListener('change', (event) => {
    const name = event.target.value;
    if (name) enqueue(() => pickExample(name));
  });
  $('undo-button').addEventListener(
    'click', () => enqueue(() => action('/api/undo')));
  $('reset-button').addEventListener(
    'click', () => enqueue(() => action('/api/reset')));
  $('next-button').addEventListener(
    'click', () => enqueue(() => action('/api/next')));
  document.addEventListener('keydown', (event) => {
    if (event.target.closest('select, input')) return;
    if ((event.ctrlKey || event.metaKey) && event.key === 'z') {
      event.preventDefault();
      enqueue(() => action('/api/undo'));
    } else if (event.key === 'n' && !event.ctrlKey && !event.metaKey) {
      enqueue(() => action('/api/next'));
    }
  });

  // --------------------------------------------------------------- start
  enqueue(async () => {
    limits = await api('/api/config');
    $('limits').textContent = `(up to ${limits.max_upload_mb} MB, ` +
      `${(limits.max_pixels / 1e6).toFixed(1)} megapixels)`;
    const { examples } = await api('/api/examples');
    for (const name of examples) {
      const option = document.createElement('option');
      option.value = name;
      option.textContent = name;
      $('example-select').appendChild(option);
    }
    // a reload keeps the session's image and clicks
    const saved = await api('/api/state');
    if (saved.has_image) await applyState(saved, true);
    document.body.dataset.ready = 'true';
  });
})();
