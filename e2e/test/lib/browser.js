// Chromium for the browser tests: Debian's package, driven by
// playwright-core, which downloads no browser.
import assert from 'node:assert/strict';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { withTimeout } from './herald.js';

// Debian's package, which .ci/run installs; the test fails without it.
export const CHROMIUM = '/usr/bin/chromium';

// Every wait on the page is bounded by this; the page itself needs a few
// seconds on a busy 2-core machine.
export const WAIT_MS = 20_000;

/**
 * Launches Chromium headless with a fresh profile and nothing that talks
 * to the network by itself, and records everything that says the page
 * went wrong. Returns {context, page, problems, violations, frames, close}.
 */
export async function openBrowser() {
  try {
    accessSync(CHROMIUM, constants.X_OK);
  } catch (err) {
    assert.fail(`Chromium is not installed at ${CHROMIUM} (${err.code}): apt-get install -y chromium (.ci/run installs it)`);
  }
  const profile = mkdtempSync(join(tmpdir(), 'herald-e2e-chromium-'));
  let context;
  try {
    context = await withTimeout(chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
      timeout: WAIT_MS,
    }), WAIT_MS + 5000, `launching ${CHROMIUM}`);
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
  const problems = []; // console errors, page errors, failed or refused requests
  const violations = []; // securitypolicyviolation events
  const frames = []; // graphql-transport-ws messages the page received
  // The page reports its policy violations through a binding; the
  // listener is installed before any of the page's own scripts run.
  await context.exposeBinding('heraldReportViolation', (_source, v) => violations.push(v));
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.heraldReportViolation({ directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample, source: e.sourceFile });
    });
  });
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`); });
  page.on('websocket', (ws) => ws.on('framereceived', ({ payload }) => {
    try {
      frames.push(JSON.parse(payload));
    } catch {
      problems.push(`a WebSocket frame that is not JSON: ${String(payload).slice(0, 200)}`);
    }
  }));
  const close = async () => {
    try {
      await withTimeout(context.close(), 10_000, 'closing Chromium');
    } finally {
      rmSync(profile, { recursive: true, force: true });
    }
  };
  return { context, page, problems, violations, frames, close };
}

