// The reference-label rules of interformer/interaction/reference_label.py in
// JavaScript, for decoding in the browser. Maps are row-major Uint8Array of
// H*W codes; clicks are (y, x) = (row, column) pixels of the padded canvas.
// The update table comes from model.json (entry 5 * foreground + code).

export const NUM_REF_STATES = 5;
export const REF_DEFINITE_BG = 0;
export const REF_UNKNOWN = 2;
export const REF_DEFINITE_FG = 4;

export function newReferenceLabel(height, width) {
  return new Uint8Array(height * width).fill(REF_UNKNOWN);
}

// Pixels with dy*dy + dx*dx <= radius*radius get the click's code (in place).
export function addClickDisk(ref, height, width, y, x, positive, radius) {
  if (!(y >= 0 && y < height && x >= 0 && x < width)) {
    throw new RangeError(`click (y=${y}, x=${x}) is outside the ` +
                         `${height}x${width} reference label`);
  }
  const code = positive ? REF_DEFINITE_FG : REF_DEFINITE_BG;
  const y0 = Math.max(0, y - radius), y1 = Math.min(height, y + radius + 1);
  const x0 = Math.max(0, x - radius), x1 = Math.min(width, x + radius + 1);
  for (let yy = y0; yy < y1; yy++) {
    for (let xx = x0; xx < x1; xx++) {
      const dy = yy - y, dx = xx - x;
      if (dy * dy + dx * dx <= radius * radius) ref[yy * width + xx] = code;
    }
  }
  return ref;
}

// A new map: unknown -> possibly-X, possibly-not-X -> unknown, X = the mask.
export function updateByPrediction(ref, mask, table) {
  const out = new Uint8Array(ref.length);
  for (let i = 0; i < ref.length; i++) {
    out[i] = table[NUM_REF_STATES * (mask[i] ? 1 : 0) + ref[i]];
  }
  return out;
}

// Foreground margin (l1 - l0) of (2, h, w) logits, resized bilinearly to
// (height, width) with half-pixel centres (align_corners=False), as a
// Float32Array; the mask is margin > 0.
export function upsampleMargin(logits, h, w, height, width) {
  const plane = h * w;
  const margin = new Float32Array(plane);
  for (let i = 0; i < plane; i++) margin[i] = logits[plane + i] - logits[i];
  const out = new Float32Array(height * width);
  const sy = h / height, sx = w / width;
  const xi0 = new Int32Array(width), xi1 = new Int32Array(width);
  const xl = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const src = Math.max((x + 0.5) * sx - 0.5, 0);
    const i0 = Math.min(Math.floor(src), w - 1);
    xi0[x] = i0;
    xi1[x] = Math.min(i0 + 1, w - 1);
    xl[x] = src - i0;
  }
  for (let y = 0; y < height; y++) {
    const src = Math.max((y + 0.5) * sy - 0.5, 0);
    const r0 = Math.min(Math.floor(src), h - 1);
    const r1 = Math.min(r0 + 1, h - 1);
    const ly = src - r0;
    for (let x = 0; x < width; x++) {
      const top = margin[r0 * w + xi0[x]] * (1 - xl[x]) +
                  margin[r0 * w + xi1[x]] * xl[x];
      const bottom = margin[r1 * w + xi0[x]] * (1 - xl[x]) +
                     margin[r1 * w + xi1[x]] * xl[x];
      out[y * width + x] = top * (1 - ly) + bottom * ly;
    }
  }
  return out;
}
