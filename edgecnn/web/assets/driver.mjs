// Drives the system Chromium headless through playwright-core (no browser download) for edgecnn.
// Usage: node driver.mjs JOB.json — JOB: {browser, webgpu, pages: [{url, kind, file, screenshot, timeout_ms}]}.
//   kind "harness": waits for window.edgecnnResult (set by harness.js) and returns it.
//   kind "app":     sets `file` on the web app's file input, waits until #status says done or error, saves a
//                   screenshot, and returns what the page shows (status, backend, top-5, latency).
// Prints one JSON line: {browser: version, pages: [...]}; or {error} when the browser cannot start.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

const require = createRequire(process.env.EDGECNN_NODE_MODULES + '/');

async function harness(page, spec) {
  await page.waitForFunction(() => window.edgecnnResult !== undefined, null, { timeout: spec.timeout_ms });
  return page.evaluate(() => window.edgecnnResult);
}

async function app(page, spec) {
  await page.waitForSelector('#status[data-state="ready"], #status[data-state="error"]', { timeout: spec.timeout_ms });
  if (spec.file) {
    await page.setInputFiles('#file', spec.file);
    await page.waitForSelector('#status[data-state="done"], #status[data-state="error"]', { timeout: spec.timeout_ms });
  }
  if (spec.screenshot) await page.screenshot({ path: spec.screenshot, fullPage: true });
  return page.evaluate(() => ({
    state: document.querySelector('#status').dataset.state,
    status: document.querySelector('#status').textContent,
    backend: document.querySelector('#backend').textContent,
    latency: document.querySelector('#latency').textContent,
    top5: [...document.querySelectorAll('#top5 li')].map((li) => ({ label: li.dataset.label, prob: Number(li.dataset.prob) })),
    body: document.body.innerText.slice(0, 2000),
  }));
}

async function main() {
  const { chromium } = require('playwright-core');
  const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  const args = ['--no-sandbox', '--disable-dev-shm-usage'];
  if (job.webgpu) args.push('--enable-unsafe-webgpu', '--enable-features=Vulkan');
  let browser;
  try {
    browser = await chromium.launch({ executablePath: job.browser, headless: true, args });
  } catch (e) {
    throw new Error(`cannot start ${job.browser}: ${String(e.message || e).split('\n')[0]}`);
  }
  const pages = [];
  try {
    for (const spec of job.pages) {
      const page = await browser.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(String(e.message || e)));
      page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
      await page.goto(spec.url);
      const result = spec.kind === 'app' ? await app(page, spec) : await harness(page, spec);
      pages.push({ ...result, page_errors: errors });
      await page.close();
    }
    console.log(JSON.stringify({ browser: `${job.browser} ${browser.version()}`, pages }));
  } finally {
    await browser.close();
  }
}

main().catch((e) => { console.log(JSON.stringify({ error: String(e && e.message || e).split('\n')[0] })); process.exit(1); });
