// Web worker: runs decoder.onnx with onnxruntime-web (WASM) for every click.
// Messages in: {type: 'model', url, threads}, {type: 'features', tensors:
// [{name, dtype, dims, data}]}, {type: 'decode', id, ref (Uint8Array),
// height, width}. Messages out: {type: 'ready', threads}, {type:
// 'features'}, {type: 'logits', id, data (Float32Array), dims, ms}, {type:
// 'error', message}.
import * as ort from '/ort/ort.wasm.min.mjs';

ort.env.wasm.wasmPaths = '/ort/';

// WASM threads need SharedArrayBuffer, i.e. a cross-origin isolated page
// (the server sends COOP/COEP headers). One thread unless the page asks for
// more (?threads=N): on the project's 2 shared cores 2 threads were slower.
function wasmThreads(requested) {
  const cores = self.crossOriginIsolated ? navigator.hardwareConcurrency || 1
                                         : 1;
  return Math.max(1, Math.min(requested || 1, cores));
}
let session = null;
let feeds = null;

self.onmessage = async (event) => {
  const msg = event.data;
  try {
    if (msg.type === 'model') {
      ort.env.wasm.numThreads = wasmThreads(msg.threads);
      session = await ort.InferenceSession.create(
          msg.url, {executionProviders: ['wasm']});
      self.postMessage({type: 'ready', threads: ort.env.wasm.numThreads});
    } else if (msg.type === 'features') {
      feeds = {};
      for (const t of msg.tensors) {
        feeds[t.name] = new ort.Tensor(t.dtype, t.data, t.dims);
      }
      self.postMessage({type: 'features'});
    } else if (msg.type === 'decode') {
      const start = performance.now();
      const ref = new ort.Tensor('uint8', msg.ref,
                                 [1, 1, msg.height, msg.width]);
      const out = await session.run({...feeds, ref_label: ref});
      self.postMessage({type: 'logits', id: msg.id, data: out.logits.data,
                        dims: out.logits.dims,
                        ms: performance.now() - start});
    }
  } catch (err) {
    self.postMessage({type: 'error', id: msg.id, message: String(err)});
  }
};
