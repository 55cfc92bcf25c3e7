// A Node app using an edgecnn model: load, predict an image, print the top-5 (the Node twin of example_app.py).
//
//   edgecnn web exported/mobilenet_v2 --out site          # card.json + labels + models (+ the browser page)
//   node tools/example_app.mjs site photo.png             # npm install onnxruntime-node first, or set
//                                                          # EDGECNN_NODE_MODULES to edgecnn's pinned install
// Preprocessing is the card's, done by the web app's preprocess.mjs (the same numbers as Python's Predictor).
// PNG only (8-bit RGB/RGBA, not interlaced), decoded with node:zlib, so that the example needs no image package.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';

const require = createRequire(process.env.EDGECNN_NODE_MODULES ? process.env.EDGECNN_NODE_MODULES + '/' : import.meta.url);
const ort = require('onnxruntime-node');
const [site, imagePath] = process.argv.slice(2);
const { checkPixels, resizeCrop, toInput } = await import(new URL('../edgecnn/web/assets/preprocess.mjs', import.meta.url));

function decodePng(buf, pre) {  // → {width, height, data: RGBA}, as a canvas's getImageData gives it
  let pos = 8, width, height, channels, idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos), type = buf.toString('ascii', pos + 4, pos + 8), body = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      [width, height] = [body.readUInt32BE(0), body.readUInt32BE(4)];
      checkPixels(width, height, pre);  // the card's pixel limit, from the header, before anything is inflated
      if (body[8] !== 8 || ![2, 6].includes(body[9]) || body[12]) throw new Error('only 8-bit RGB/RGBA non-interlaced PNG');
      channels = body[9] === 6 ? 4 : 3;
    } else if (type === 'IDAT') idat.push(body);
    pos += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat)), stride = width * channels, px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {  // undo the per-row filters
    const f = raw[y * (stride + 1)], row = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? px[y * stride + x - channels] : 0, b = y ? px[(y - 1) * stride + x] : 0;
      const c = x >= channels && y ? px[(y - 1) * stride + x - channels] : 0, p = a + b - c;
      const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      px[y * stride + x] = row[x] + [0, a, b, (a + b) >> 1, paeth][f];
    }
  }
  const data = new Uint8ClampedArray(width * height * 4).fill(255);
  for (let i = 0; i < width * height; i++) for (let k = 0; k < 3; k++) data[4 * i + k] = px[i * channels + k];
  return { width, height, data };
}

const card = JSON.parse(readFileSync(join(site, 'card.json'), 'utf8'));
const labels = readFileSync(join(site, card.labels), 'utf8').split('\n');
const entry = card.models[0];
const session = await ort.InferenceSession.create(join(site, entry.file));
const { type, data, dims } = toInput(resizeCrop(decodePng(readFileSync(imagePath), entry.preprocess), entry.preprocess), entry);
const logits = Array.from((await session.run({ [session.inputNames[0]]: new ort.Tensor(type, data, dims) }))[session.outputNames[0]].data);
const top = Math.max(...logits), exps = logits.map((v) => Math.exp(v - top)), sum = exps.reduce((a, b) => a + b, 0);
for (const [p, i] of exps.map((v, i) => [v / sum, i]).sort((a, b) => b[0] - a[0]).slice(0, 5)) {
  console.log(`${(100 * p).toFixed(2).padStart(6)}%  ${labels[i]}`);
}
