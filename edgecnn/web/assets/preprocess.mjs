// The card's preprocessing in plain JavaScript, shared by the web app (app.js) and Node apps (tools/example_app.mjs).
// Resizing reproduces Pillow's antialiased bilinear filter (what torchvision's Resize does on PIL images and what
// the Python Predictor does), in the same fixed-point arithmetic, and torchvision's rounding of sizes and crops,
// so JavaScript feeds the model the numbers Python feeds it.
const PRECISION_BITS = 22;  // Pillow's 8-bit resampling: 32 - 8 - 2

function coefficients(inSize, outSize) {
  const scale = inSize / outSize, filterscale = Math.max(scale, 1), support = filterscale;
  const out = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    const w = new Float64Array(xmax);
    let sum = 0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) / filterscale);
      w[x] = t < 1 ? 1 - t : 0;
      sum += w[x];
    }
    const k = new Int32Array(xmax);
    for (let x = 0; x < xmax; x++) {
      const v = (sum !== 0 ? w[x] / sum : w[x]) * (1 << PRECISION_BITS);
      k[x] = v < 0 ? Math.trunc(v - 0.5) : Math.trunc(v + 0.5);
    }
    out.push({ xmin, k });
  }
  return out;
}

function clip8(v) {
  if (v >= (1 << PRECISION_BITS) * 256) return 255;
  return v <= 0 ? 0 : Math.floor(v / (1 << PRECISION_BITS));
}

// one pass of Pillow's separable resample over c-channel pixels, along x (horizontal) or y
function pass(src, w, h, c, outLen, horizontal) {
  const coeffs = coefficients(horizontal ? w : h, outLen);
  const ow = horizontal ? outLen : w, oh = horizontal ? h : outLen;
  const dst = new Uint8ClampedArray(ow * oh * c);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const { xmin, k } = coeffs[horizontal ? x : y];
      for (let ch = 0; ch < c; ch++) {
        let ss = 1 << (PRECISION_BITS - 1);
        for (let i = 0; i < k.length; i++) {
          const idx = horizontal ? (y * w + xmin + i) * c + ch : ((xmin + i) * w + x) * c + ch;
          ss += src[idx] * k[i];
        }
        dst[(y * ow + x) * c + ch] = clip8(ss);
      }
    }
  }
  return dst;
}

function roundHalfEven(v) { const r = Math.round(v); return (Math.abs(v % 1) === 0.5 && r % 2 !== 0) ? r - 1 : r; }

function resizedSize(h, w, resize, crop) {
  if (resize === null || resize === undefined) return [crop[0], crop[1]];
  if (w <= h) return [Math.trunc(resize * h / w), resize];
  return [resize, Math.trunc(resize * w / h)];
}

function cropOrigin(size, want) { return want > size ? -Math.floor((want - size) / 2) : roundHalfEven((size - want) / 2); }

// RGBA ImageData → the card's crop: uint8 H×W×C (C = 3, or 1 for grayscale models, as Pillow's "L")
export function resizeCrop(image, pre) {
  const c = pre.channels, { width: w, height: h } = image, n = w * h;
  let px = new Uint8ClampedArray(n * c);
  for (let i = 0; i < n; i++) {
    const r = image.data[4 * i], g = image.data[4 * i + 1], b = image.data[4 * i + 2];
    if (c === 1) px[i] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
    else { px[3 * i] = r; px[3 * i + 1] = g; px[3 * i + 2] = b; }
  }
  const [rh, rw] = resizedSize(h, w, pre.resize, pre.crop);
  let cw = w, ch = h;
  if (rw !== w) { px = pass(px, cw, ch, c, rw, true); cw = rw; }  // Pillow: horizontal first, then vertical
  if (rh !== h) { px = pass(px, cw, ch, c, rh, false); ch = rh; }
  const [oh, ow] = pre.crop, top = cropOrigin(ch, oh), left = cropOrigin(cw, ow);
  const out = new Uint8ClampedArray(oh * ow * c);  // zero where the crop reaches past the image
  for (let y = 0; y < oh; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= ch) continue;
    for (let x = 0; x < ow; x++) {
      const sx = x + left;
      if (sx < 0 || sx >= cw) continue;
      for (let k = 0; k < c; k++) out[(y * ow + x) * c + k] = px[(sy * cw + sx) * c + k];
    }
  }
  return out;
}

// cropped uint8 H×W×C pixels → the model's input: uint8 NHWC for an --embed-preprocess twin, else float32 NCHW
export function toInput(pixels, entry) {
  const pre = entry.preprocess, [h, w] = pre.crop, c = pre.channels;
  if (entry.preprocess_embedded) return { type: 'uint8', data: Uint8Array.from(pixels), dims: [1, h, w, c] };
  const data = new Float32Array(c * h * w), f = Math.fround, scale = f(pre.pixel_scale);
  for (let k = 0; k < c; k++) {
    const mean = f(pre.mean[k]), std = f(pre.std[k]);
    // the same float32 steps as Python: x / scale, then (x - mean) / std
    for (let i = 0; i < h * w; i++) data[k * h * w + i] = f(f(f(pixels[i * c + k]) / scale - mean) / std);
  }
  return { type: 'float32', data, dims: [1, c, h, w] };
}
