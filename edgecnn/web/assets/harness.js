// The page `edgecnn selftest --runtime browser` and `edgecnn bench --ep wasm|webgpu` open in headless Chromium.
// It reads job.json (beside it), runs the models with onnxruntime-web (served under /ort/) and leaves its
// answer in window.edgecnnResult, which the driver reads. Numbers go back as plain arrays; Python judges them.
import * as ort from '/ort/ort.webgpu.min.mjs';

const ARRAYS = { float32: Float32Array, uint8: Uint8Array };
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0,
  65, 0, 253, 15, 253, 98, 11]);  // a module using v128 ops: valid only where WASM SIMD is

async function webgpuMissing() {
  if (!('gpu' in navigator)) return 'this browser has no navigator.gpu';
  const adapter = await navigator.gpu.requestAdapter().catch(() => null);
  if (!adapter) return 'navigator.gpu found no GPU adapter';
  const info = adapter.info || {};
  // SwiftShader (Chromium's CPU emulation of a GPU) is no GPU: timing it would mislead
  if (info.isFallbackAdapter || /swiftshader/i.test(`${info.vendor} ${info.architecture} ${info.description}`)) {
    return `the only adapter is a software one (${info.vendor || ''} ${info.architecture || 'fallback'})`;
  }
  return null;
}

function setup(job) {
  ort.env.wasm.wasmPaths = '/ort/';
  const wanted = job.threads || Math.min(4, navigator.hardwareConcurrency || 1);
  // threads need SharedArrayBuffer, which only a cross-origin isolated page has (the server sends the headers)
  ort.env.wasm.numThreads = self.crossOriginIsolated ? wanted : 1;
  ort.env.logLevel = 'error';
}

function randomInput(dtype, dims) {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new ARRAYS[dtype](n);
  let s = 12345;  // a fixed LCG: the same input on every run
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = dtype === 'uint8' ? s >>> 24 : (s / 4294967296) * 2 - 1;
  }
  return new ort.Tensor(dtype, data, dims);
}

async function create(url, ep) {
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(url, { executionProviders: [ep], graphOptimizationLevel: 'all' });
  return { session, createMs: performance.now() - t0 };
}

async function selftest(job) {
  const models = [];
  for (const m of job.models) {
    const { session } = await create(m.url, job.ep);
    const buf = await (await fetch(m.input_url)).arrayBuffer();
    const feeds = { [session.inputNames[0]]: new ort.Tensor(m.dtype, new ARRAYS[m.dtype](buf), m.dims) };
    const out = (await session.run(feeds))[session.outputNames[0]];
    models.push({ dims: out.dims, values: Array.from(out.data, Number) });
    await session.release();
  }
  return { models };
}

async function bench(job) {
  const m = job.models[0];
  const { session, createMs } = await create(m.url, job.ep);
  const feeds = { [session.inputNames[0]]: randomInput(m.dtype, m.dims) };
  for (let i = 0; i < job.warmup; i++) await session.run(feeds);
  const times = [];
  const deadline = performance.now() + (job.seconds || 0) * 1000;
  for (let i = 0; i < job.runs || performance.now() < deadline; i++) {
    const t0 = performance.now();
    await session.run(feeds);
    times.push(performance.now() - t0);
  }
  await session.release();
  return { create_ms: createMs, times_ms: times };
}

async function main() {
  const job = await (await fetch('job.json')).json();
  setup(job);
  if (job.ep === 'webgpu') {
    const why = await webgpuMissing();
    if (why) return { unavailable: true, error: `WebGPU is not available here (${why})` };
  }
  const body = job.mode === 'bench' ? await bench(job) : await selftest(job);
  return {
    ...body, ep: job.ep, threads: ort.env.wasm.numThreads, cross_origin_isolated: self.crossOriginIsolated,
    simd: WebAssembly.validate(SIMD_PROBE), onnxruntime_web: ort.env.versions ? ort.env.versions.web : 'unknown',
    user_agent: navigator.userAgent,
  };
}

main().then((r) => { window.edgecnnResult = r; }, (e) => {
  window.edgecnnResult = { error: typeof e === 'number' ? `onnxruntime-web failed with code ${e}` : String(e && e.message || e) };
}).finally(() => { document.getElementById('state').textContent = 'done'; });
