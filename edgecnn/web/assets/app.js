// edgecnn's web app: reads card.json, runs the model with onnxruntime-web (WebGPU when the browser has one,
// else WASM, said on the page), preprocesses images as the card says, shows top-5 or the mask, and the latency.
// Preprocessing (preprocess.mjs) reproduces the Python Predictor's numbers.
import * as ort from './ort/ort.webgpu.min.mjs';
import { checkPixels, resizeCrop, toInput } from './preprocess.mjs';

const $ = (id) => document.getElementById(id);
const state = { card: null, labels: [], entry: null, session: null, backend: null };

function setStatus(kind, text) { $('status').dataset.state = kind; $('status').textContent = text; }
function message(e) { return typeof e === 'number' ? `onnxruntime-web error code ${e}` : String((e && e.message) || e); }

function toTensor(pixels, entry) {
  const { type, data, dims } = toInput(pixels, entry);
  return new ort.Tensor(type, data, dims);
}

// --- the model -------------------------------------------------------------------------------------------------
async function webgpuMissing() {
  if (!('gpu' in navigator)) return 'this browser has no WebGPU';
  const adapter = await navigator.gpu.requestAdapter().catch(() => null);
  if (!adapter) return 'WebGPU found no GPU adapter';
  const info = adapter.info || {};
  if (info.isFallbackAdapter || /swiftshader/i.test(`${info.vendor} ${info.architecture} ${info.description}`)) {
    return 'WebGPU has only a software adapter (SwiftShader), slower than WASM';
  }
  return null;
}

async function loadModel(entry) {
  setStatus('loading', `loading ${entry.file} (${entry.size_mb} MB)…`);
  state.session = null;
  $('notice').textContent = '';
  ort.env.wasm.wasmPaths = new URL('./ort/', import.meta.url).href;
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  const wanted = new URLSearchParams(location.search).get('ep');
  let ep = 'wasm';
  if (wanted !== 'wasm') {
    const why = await webgpuMissing();
    if (why) $('notice').textContent = `${why}: running on WASM (CPU) instead.`;
    else ep = 'webgpu';
  }
  const t0 = performance.now();
  try {
    state.session = await ort.InferenceSession.create(entry.file, { executionProviders: [ep] });
  } catch (e) {
    if (ep !== 'webgpu') throw new Error(`onnxruntime-web could not load ${entry.file}: ${message(e)}`);
    $('notice').textContent = `WebGPU could not run ${entry.file} (${message(e)}): running on WASM (CPU) instead.`;
    ep = 'wasm';
    state.session = await ort.InferenceSession.create(entry.file, { executionProviders: ['wasm'] });
  }
  state.entry = entry;
  state.backend = ep === 'wasm' ? `wasm (${ort.env.wasm.numThreads} threads)` : 'webgpu';
  $('backend').textContent = state.backend;
  $('latency').textContent = `session created in ${(performance.now() - t0).toFixed(0)} ms`;
  setStatus('ready', 'ready: choose, drop or photograph an image');
}

function show(pixels, output, entry, ms, preMs) {
  const [h, w] = entry.preprocess.crop, c = entry.preprocess.channels;
  const view = $('view'), ctx = view.getContext('2d');
  view.width = w; view.height = h;
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    for (let k = 0; k < 3; k++) img.data[4 * i + k] = pixels[i * c + (c === 1 ? 0 : k)];
    img.data[4 * i + 3] = 255;
  }
  const list = $('top5');
  list.replaceChildren();
  if (entry.task === 'segmentation') {
    const classes = output.dims[1], plane = h * w;
    for (let i = 0; i < plane; i++) {
      let best = 0;
      for (let k = 1; k < classes; k++) if (output.data[k * plane + i] > output.data[best * plane + i]) best = k;
      if (best > 0) {  // class 0 is background: the others are tinted
        const hue = [[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48]][(best - 1) % 4];
        for (let k = 0; k < 3; k++) img.data[4 * i + k] = (img.data[4 * i + k] + hue[k]) >> 1;
      }
    }
  } else {
    const logits = Array.from(output.data), top = Math.max(...logits);
    const exps = logits.map((v) => Math.exp(v - top)), sum = exps.reduce((a, b) => a + b, 0);
    const order = exps.map((v, i) => [v / sum, i]).sort((a, b) => b[0] - a[0]).slice(0, 5);
    for (const [p, i] of order) {
      const li = document.createElement('li');
      li.dataset.label = state.labels[i] ?? String(i);
      li.dataset.prob = String(p);
      li.innerHTML = `${li.dataset.label} <span>${(100 * p).toFixed(1)}%</span>`;
      list.append(li);
    }
  }
  ctx.putImageData(img, 0, 0);
  $('latency').textContent = `inference ${ms.toFixed(1)} ms (preprocessing ${preMs.toFixed(1)} ms) on ${state.backend}`;
}

async function predict(image, name) {
  if (!state.session) return;
  setStatus('running', `running on ${name}…`);
  const entry = state.entry, t0 = performance.now();
  const pixels = resizeCrop(image, entry.preprocess), feeds = { [state.session.inputNames[0]]: toTensor(pixels, entry) };
  const t1 = performance.now();
  const output = (await state.session.run(feeds))[state.session.outputNames[0]];
  show(pixels, output, entry, performance.now() - t1, t1 - t0);
  setStatus('done', `${name}: ${entry.task === 'segmentation' ? 'mask shown' : 'top-5 shown'}`);
}

// an image file's width and height: an <img> reads them from the header and decodes pixels only when drawn
async function headerSize(file) {
  const url = URL.createObjectURL(file), img = new Image();
  try {
    await new Promise((ok, fail) => { img.onload = ok; img.onerror = () => fail(new Error('unreadable')); img.src = url; });
    return [img.naturalWidth, img.naturalHeight];
  } finally {
    URL.revokeObjectURL(url);
  }
}

async function fromFile(file) {
  let width, height, bitmap;
  try {
    if (file.type && !file.type.startsWith('image/')) throw new Error(`its type is ${file.type}`);
    [width, height] = await headerSize(file);
  } catch (e) {
    setStatus('error', `${file.name} is not an image this browser can read (${message(e)}): choose a JPEG, PNG or WebP`);
    return;
  }
  try {
    checkPixels(width, height, state.entry && state.entry.preprocess);  // before the pixels are decoded
    bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch (e) {
    setStatus('error', `${file.name}: ${message(e)}`);
    return;
  }
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height), ctx = canvas.getContext('2d');
  ctx.drawImage(bitmap, 0, 0);
  await predict(ctx.getImageData(0, 0, bitmap.width, bitmap.height), file.name);
}

// --- the page ----------------------------------------------------------------------------------------------------
function wire() {
  $('file').addEventListener('change', (e) => e.target.files[0] && guarded(fromFile(e.target.files[0])));
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault(); drop.classList.remove('over');
    if (e.dataTransfer.files[0]) guarded(fromFile(e.dataTransfer.files[0]));
  });
  $('model').addEventListener('change', (e) => guarded(loadModel(state.card.models[e.target.selectedIndex])));
  if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {  // camera only where the page is allowed
    $('camera').hidden = false;
    $('camera').addEventListener('click', () => guarded((async () => {
      $('video').srcObject = await navigator.mediaDevices.getUserMedia({ video: true });
      $('video').style.display = 'block'; $('snap').hidden = false;
    })()));
    $('snap').addEventListener('click', () => {
      const v = $('video'), canvas = new OffscreenCanvas(v.videoWidth, v.videoHeight), ctx = canvas.getContext('2d');
      ctx.drawImage(v, 0, 0);
      guarded(predict(ctx.getImageData(0, 0, v.videoWidth, v.videoHeight), 'camera'));
    });
  }
}

function guarded(promise) { return promise.catch((e) => setStatus('error', message(e))); }

async function main() {
  const response = await fetch('card.json');
  if (!response.ok) throw new Error(`card.json could not be loaded (HTTP ${response.status}); serve the whole folder`);
  state.card = await response.json();
  state.labels = (await (await fetch(state.card.labels)).text()).split('\n');
  $('title').textContent = `${state.card.model} (${state.card.task})`;
  $('about').textContent = `onnxruntime-web ${state.card.onnxruntime_web}; ${state.card.checks.join(' · ')}`;
  for (const m of state.card.models) $('model').append(new Option(`${m.file} (${m.precision})`, m.file));
  const wanted = new URLSearchParams(location.search).get('model');
  const index = Math.max(0, state.card.models.findIndex((m) => m.file === wanted));
  $('model').selectedIndex = index;
  wire();
  await loadModel(state.card.models[index]);
}

guarded(main());
