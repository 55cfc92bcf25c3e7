// Runs a bundle's golden inputs in onnxruntime-node (CPU) for `edgecnn selftest --runtime node`.
// Usage: node node_selftest.mjs JOB.json — JOB lists {file, input, dtype, dims, output} per model; each output
// is written as raw float32 to `output`, and one JSON line goes to stdout (the Python side judges the numbers).
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';

const require = createRequire(process.env.EDGECNN_NODE_MODULES + '/');
const ARRAYS = { float32: Float32Array, uint8: Uint8Array, float16: Uint16Array };

async function main() {
  const ort = require('onnxruntime-node');
  const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  const models = [];
  for (const m of job.models) {
    let session;
    try {
      session = await ort.InferenceSession.create(m.file, { executionProviders: ['cpu'] });
    } catch (e) {
      throw new Error(`onnxruntime-node cannot load ${m.name}: ${e.message || e}`);
    }
    const bytes = readFileSync(m.input);
    const Arr = ARRAYS[m.dtype];
    const data = new Arr(bytes.buffer, bytes.byteOffset, bytes.byteLength / Arr.BYTES_PER_ELEMENT);
    const feeds = { [session.inputNames[0]]: new ort.Tensor(m.dtype, data, m.dims) };
    const out = (await session.run(feeds))[session.outputNames[0]];
    const values = out.data instanceof Float32Array ? out.data : Float32Array.from(out.data, Number);
    writeFileSync(m.output, Buffer.from(values.buffer, values.byteOffset, values.byteLength));
    models.push({ dims: out.dims, type: out.type });
    await session.release();
  }
  const version = ort.env.versions ? ort.env.versions.node : 'unknown';
  console.log(JSON.stringify({ runtime: `onnxruntime-node ${version}`, models }));
}

main().catch((e) => { console.log(JSON.stringify({ error: String(e && e.message || e) })); process.exit(1); });
