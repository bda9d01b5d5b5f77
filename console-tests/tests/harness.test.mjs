// Smoke test of the harness itself, end to end against the real binaries: a `dev`
// coordinator, an API and a browser login, Chromium pages, a screenshot, axe, Lighthouse, and
// an external agent that registers. Page-specific console tests live next to this file.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';

import {
  FAST_TIMEOUTS,
  api,
  createOrgAndOperator,
  checkA11y,
  cookieHeader,
  launchBrowser,
  lighthouse,
  loginApi,
  loginBrowser,
  loginSession,
  newPage,
  screenshot,
  startAgent,
  startCoordinator,
  tabThrough,
  waitFor,
} from '../lib/harness.mjs';

const timings = {};
async function timed(label, fn) {
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    timings[label] = Number(((performance.now() - t0) / 1000).toFixed(2));
  }
}

describe('harness smoke test', { timeout: 240_000 }, () => {
  let coord;
  let browser;
  let agent;
  let token;

  before(async () => {
    // One demo job a minute keeps the in-process agent from using both cores.
    coord = await timed('coordinator start', () => startCoordinator({
      mode: 'dev',
      name: 'harness-coordinator',
      args: ['--feed-every-secs', '60', '--heartbeat-interval-secs', '2', '--stale-after-secs', '6'],
    }));
  });

  after(async () => {
    // Each step on its own, so one failure does not leave the others running.
    await agent?.stop().catch(() => {});
    await browser?.close().catch(() => {});
    await coord?.stop().catch(() => {});
    console.log(`timings (s): ${JSON.stringify(timings)}`);
  });

  it('starts the dev coordinator and logs in through the API', async () => {
    assert.match(coord.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(fs.existsSync(`${coord.dataDir}/dev-admin.txt`));
    token = await loginApi(coord.url, coord.adminUser, coord.adminPassword);
    assert.ok(token.split('.').length === 3, 'a JWT');
    const me = await api(coord.url, { token }).get('/api/users/me');
    assert.equal(me.username ?? me.user?.username, 'admin');
  });

  it('opens API pages in Chromium, screenshots them and runs axe', async () => {
    browser = await timed('browser launch', () => launchBrowser());
    const page = await newPage(browser);
    const res = await page.goto(`${coord.url}/openapi.json`);
    assert.equal(res.status(), 200);
    const doc = JSON.parse(await page.locator('body').innerText());
    assert.ok(doc.openapi, 'an OpenAPI document');
    // A JSON page 22,000 px tall: the visible part (a full-page capture never finishes).
    const shot = await screenshot(page, 'harness-openapi', { fullPage: false });
    assert.ok(fs.statSync(shot).size > 0);

    const session = await timed('browser login', () => loginBrowser(page, coord.url, coord.adminUser, coord.adminPassword));
    assert.equal(session.user.username, 'admin');
    assert.match(await cookieHeader(page, coord.url), /bitsage_access=/);

    const summary = await page.goto(`${coord.url}/api/summary`);
    assert.equal(summary.status(), 200);
    await screenshot(page, 'harness-summary');

    // axe on the JSON page: the helper runs and returns a list (zero is not expected here).
    const onJson = await timed('axe (json page)', () => checkA11y(page, 'harness-summary', { all: true }));
    assert.ok(Array.isArray(onJson));

    // A small known-bad page: axe must find the image without alt text and the unlabeled input.
    const bad = await newPage(browser);
    await bad.setContent('<!doctype html><html lang="en"><head><title>t</title></head><body><main><h1>x</h1><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="><input type="text"><a href="#a">one</a><button>two</button></main></body></html>');
    const violations = await timed('axe (data page)', () => checkA11y(bad, 'harness-bad-page'));
    const ids = violations.map((v) => v.id);
    assert.ok(ids.includes('image-alt'), `image-alt expected, got ${ids.join(', ')}`);
    assert.ok(ids.includes('label'), `label expected, got ${ids.join(', ')}`);

    const focused = await tabThrough(bad, 3);
    assert.deepEqual(focused.map((f) => f.tag), ['input', 'a', 'button']);
    assert.equal(typeof focused[0].hasFocusIndicator, 'boolean');
    await bad.context().close();
  });

  it('scores a page with Lighthouse, sending the session cookie', async () => {
    // The coordinator serves no HTML page yet (Lighthouse scores HTML only: /livez is
    // NOT_HTML), so a local page stands in and checks the cookie arrived.
    const login = await loginSession(coord.url, coord.adminUser, coord.adminPassword);
    const seen = [];
    const server = http.createServer((req, res) => {
      seen.push(req.headers.cookie ?? '');
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>BitSage harness</title></head><body><main><h1>Harness</h1><p>Lighthouse smoke page.</p></main></body></html>');
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${server.address().port}/`;
      const scores = await timed('lighthouse', () => lighthouse(url, { cookies: login.cookie, name: 'harness-page' }));
      assert.equal(typeof scores.accessibility, 'number');
      assert.equal(typeof scores.performance, 'number');
      assert.ok(scores.accessibility >= 0 && scores.accessibility <= 100);
      assert.ok(fs.existsSync(scores.report));
      assert.ok(seen.some((c) => c.includes('bitsage_access=')), `the Cookie header reached the page: ${JSON.stringify(seen)}`);
      timings['lighthouse scores'] = `a11y ${scores.accessibility} perf ${scores.performance}`;
    } finally {
      server.close();
    }
  });

  it('starts an external agent that registers with the coordinator', async () => {
    agent = await startAgent(coord.url, { name: 'harness-agent' });
    const nodeId = await agent.nodeId();
    const admin = api(coord.url, { token });
    const node = await timed('agent registered', () => waitFor(async () => {
      const page = await admin.get('/api/nodes?limit=100');
      return page.items.find((n) => n.id === nodeId);
    }, { timeout: 90_000, interval: 500, message: `node ${nodeId} in GET /api/nodes` }));
    assert.equal(BigInt(node.wallet), BigInt(agent.wallet));
    const exit = await timed('agent stop', () => agent.stop());
    assert.equal(exit.code, 0, `agent exit ${JSON.stringify(exit)}; log ${agent.logFile}`);
  });
});

describe('harness: server mode', { timeout: 60_000 }, () => {
  let coord;
  after(async () => { await coord?.stop().catch(() => {}); });

  it('starts the production server with a bootstrap admin and short timeouts; makes an operator', async () => {
    coord = await startCoordinator({ mode: 'server', name: 'harness-server', args: FAST_TIMEOUTS });
    const adminToken = await loginApi(coord.url, coord.adminUser, coord.adminPassword);
    const wallet = '0x1234abcd';
    const op = await createOrgAndOperator(coord.url, adminToken, { wallets: [wallet] });
    assert.equal(op.user.role, 'operator');
    const opToken = await loginApi(coord.url, op.username, op.password);
    const me = await api(coord.url, { token: opToken }).get('/api/users/me');
    assert.equal(me.username ?? me.user?.username, op.username);
    // An operator is no admin.
    await api(coord.url, { token: opToken }).request('GET', '/api/users', { expect: 403 });
  });
});
