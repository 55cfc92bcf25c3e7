// The card's preprocessing in plain JavaScript, shared by the web app (app.js) and Node apps (tools/example_app.mjs).
// Resizing reproduces Pillow's antialiased bilinear filter (what torchvision's Resize does on PIL images and what
// the Python Predictor does), in the same fixed-point arithmetic, and torchvision's rounding of sizes and crops,
// so JavaScript feeds the model the numbers Python feeds it.
//
// Sizes are bounded as in Python (edgecnn.core.sizes): an image over the pixel limit is refused with a message naming
// it, and only the crop window of the resize is computed (the coefficients and pass order of the whole resize, so the
// same pixels), so a 100000×1 image resized to 256 on its short side never takes 25.6 M pixels of memory.
const PRECISION_BITS = 22;  // Pillow's 8-bit resampling: 32 - 8 - 2

// The default of EDGECNN_MAX_IMAGE_PIXELS; `edgecnn web` writes the limit it ran with into each card.json entry.
export const MAX_IMAGE_PIXELS = 100_000_000;

// Refuse an image of more pixels than the card's limit (width and height as its header or decoder reports them).
export function checkPixels(width, height, pre = {}) {
  const limit = pre.max_image_pixels || MAX_IMAGE_PIXELS, n = width * height;
  if (n > limit) {
    throw new Error(`the image is ${width}x${height} = ${n.toLocaleString('en')} pixels, over edgecnn's limit of `
      + `${limit.toLocaleString('en')} (EDGECNN_MAX_IMAGE_PIXELS when the page was made): use a smaller image`);
  }
}

// Pillow's precompute_coeffs for outputs start..stop-1 of a whole resize inSize → outSize
function coefficients(inSize, outSize, start, stop) {
  const scale = Math.fround(inSize) / outSize, filterscale = Math.max(scale, 1), support = filterscale;
  const ss = 1 / filterscale, out = [];
  for (let xx = start; xx < stop; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    const w = new Float64Array(xmax);
    let sum = 0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) * ss);
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

// one pass of Pillow's separable resample over a w×h block of c-channel pixels, along x (horizontal) or y; the
// block's first column (or row) is input index `offset`
function pass(src, w, h, c, coeffs, offset, horizontal) {
  const ow = horizontal ? coeffs.length : w, oh = horizontal ? h : coeffs.length;
  const dst = new Uint8ClampedArray(ow * oh * c);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const { xmin, k } = coeffs[horizontal ? x : y], first = xmin - offset;
      for (let ch = 0; ch < c; ch++) {
        let ss = 1 << (PRECISION_BITS - 1);
        for (let i = 0; i < k.length; i++) {
          const idx = horizontal ? (y * w + first + i) * c + ch : ((first + i) * w + x) * c + ch;
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

// the input indices [first, stop) a pass's outputs read
function span(coeffs, size) {
  let first = Infinity, stop = 0;
  for (const { xmin, k } of coeffs) { first = Math.min(first, xmin); stop = Math.max(stop, xmin + k.length); }
  return [first, Math.min(stop, size)];
}

// the w×h block at (x0, y0) of RGBA ImageData as c-channel pixels (grayscale as Pillow's "L" conversion)
function block(image, x0, y0, w, h, c) {
  const px = new Uint8ClampedArray(w * h * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = 4 * ((y0 + y) * image.width + x0 + x), o = (y * w + x) * c, d = image.data;
      if (c === 1) px[o] = (d[i] * 19595 + d[i + 1] * 38470 + d[i + 2] * 7471 + 0x8000) >> 16;
      else { px[o] = d[i]; px[o + 1] = d[i + 1]; px[o + 2] = d[i + 2]; }
    }
  }
  return px;
}

// RGBA ImageData → the card's crop: uint8 H×W×C (C = 3, or 1 for grayscale models, as Pillow's "L"). Only the crop
// window of the resized image is computed, from the input rows and columns it reads.
export function resizeCrop(image, pre) {
  const c = pre.channels, { width: w, height: h } = image;
  checkPixels(w, h, pre);
  const [rh, rw] = resizedSize(h, w, pre.resize, pre.crop);
  const [oh, ow] = pre.crop, top = cropOrigin(rh, oh), left = cropOrigin(rw, ow);
  const out = new Uint8ClampedArray(oh * ow * c);  // zero where the crop reaches past the image
  const r0 = Math.max(top, 0), r1 = Math.min(top + oh, rh), c0 = Math.max(left, 0), c1 = Math.min(left + ow, rw);
  if (r1 <= r0 || c1 <= c0) return out;
  const vertical = rh !== h ? coefficients(h, rh, r0, r1) : null;
  const horizontal = rw !== w ? coefficients(w, rw, c0, c1) : null;
  const [y0, y1] = vertical ? span(vertical, h) : [r0, r1], [x0, x1] = horizontal ? span(horizontal, w) : [c0, c1];
  let bw = x1 - x0, bh = y1 - y0, px = block(image, x0, y0, bw, bh, c);
  // Pillow 13 runs the vertical pass first when the height shrinks more than twice as much as the width
  const steps = [[horizontal, x0, true], [vertical, y0, false]];
  if (h - rh > 0 && h - rh > (w - rw) * 2) steps.reverse();
  for (const [coeffs, offset, isHorizontal] of steps) {
    if (!coeffs) continue;
    px = pass(px, bw, bh, c, coeffs, offset, isHorizontal);
    if (isHorizontal) bw = coeffs.length; else bh = coeffs.length;
  }
  for (let y = r0; y < r1; y++) {
    for (let x = c0; x < c1; x++) {
      for (let k = 0; k < c; k++) out[((y - top) * ow + x - left) * c + k] = px[((y - r0) * bw + x - c0) * c + k];
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
