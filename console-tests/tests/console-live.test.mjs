// The console's live flows against one `dev` coordinator (its in-process agent and demo job
// feeder, short stale/offline timeouts), all watched in Chromium WITHOUT reloading a page:
//   1. a new agent appears on Run a Node's checklist (registered → heartbeat → probe → active)
//      and in the Nodes table as active;
//   2. a completed job's receipt shows in Receipts within 5 s, its signature verified by the
//      server and again in the browser (WebCrypto), under the pages' real CSP;
//   3. a stopped agent turns stale, then offline, on the Nodes page;
//   4. a node that forges its receipt signature (the test double
//      bins/bitsage-agent/examples/dishonest_node.rs) is quarantined, and the drawer says why.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import {
  FAST_TIMEOUTS,
  api,
  ensureExample,
  launchBrowser,
  loginApi,
  loginViaForm,
  newPage,
  observeAppearances,
  pageErrors,
  screenshot,
  seenAt,
  startAgent,
  startCoordinator,
  startProcess,
  trackNavigations,
  waitFor,
} from '../lib/harness.mjs';

const timings = {};
function mark(label, t0) {
  timings[label] = Number(((performance.now() - t0) / 1000).toFixed(2));
}

const wallet = () => `0x${randomBytes(30).toString('hex')}`;

/// The Run a Node checklist: [[step, done], ...] in page order.
const checklistOf = (page) => page.$$eval('#checklist li[data-step]', (els) => els.map((e) => [e.dataset.step, e.dataset.done === 'true']));

/// The status chip of a node's row on the Nodes page (null: no row).
const rowStatus = (page, id) => page.evaluate((id) => {
  const row = document.querySelector(`#nodes-table tr[data-node-id="${CSS.escape(id)}"]`);
  return row ? row.querySelector('[data-status]')?.getAttribute('data-status') ?? null : null;
}, id);

// 10 min: flow 4 may first build its test double (cargo, ~2 min on 2 cores).
describe('console: live flows', { timeout: 600_000 }, () => {
  let coord;
  let browser;
  let admin; // API client with the admin's token
  let agent; // the external agent of flows 1 and 3
  let agentId;
  let nodesPage; // admin's Nodes page, open from flow 1 to flow 4 without a reload
  let nodesNavs;
  let dishonest;

  before(async () => {
    const t0 = performance.now();
    coord = await startCoordinator({
      mode: 'dev',
      name: 'live-coordinator',
      args: [...FAST_TIMEOUTS, '--feed-every-secs', '2'],
    });
    admin = api(coord.url, { token: await loginApi(coord.url, coord.adminUser, coord.adminPassword) });
    browser = await launchBrowser();
    mark('start', t0);
  });

  after(async () => {
    await dishonest?.stop().catch(() => {});
    await agent?.stop().catch(() => {});
    await browser?.close().catch(() => {});
    await coord?.stop().catch(() => {});
    console.log(`timings (s): ${JSON.stringify(timings)}`);
  });

  it('1. a new agent shows on Run a Node (registered → heartbeat → probe → active) and on Nodes as active, without a reload', async () => {
    const t0 = performance.now();
    const w = wallet();
    // Run a Node under the real CSP (no bypass): its script must run as served.
    const runPage = await newPage(browser, { bypassCSP: false });
    await loginViaForm(runPage, coord.url, coord.adminUser, coord.adminPassword);
    await runPage.goto(`${coord.url}/run-node?wallet=${w}`);
    assert.match(runPage.url(), /[?&]since=/, 'the page added since= once');
    // The page shows the wallet in its canonical form (64 hex digits).
    const shown = await runPage.inputValue('#o-wallet');
    assert.equal(BigInt(shown), BigInt(w));
    assert.deepEqual(await checklistOf(runPage), [
      ['registered', false], ['heartbeat', false], ['probe', false], ['active', false],
    ]);
    assert.ok((await runPage.textContent('#agent-yaml')).includes(shown), 'agent.yaml names the wallet');
    assert.ok((await runPage.textContent('#service-unit')).trim().length > 0, 'a service unit');

    nodesPage = await newPage(browser, { bypassCSP: false });
    await loginViaForm(nodesPage, coord.url, coord.adminUser, coord.adminPassword);
    await nodesPage.goto(`${coord.url}/nodes`);
    await nodesPage.waitForSelector('#nodes-table');
    const runNavs = trackNavigations(runPage);
    nodesNavs = trackNavigations(nodesPage);

    agent = await startAgent(coord.url, { wallet: w, name: 'live-agent' });
    agentId = await agent.nodeId();

    // Every state the checklist passes through: done steps are always a prefix, in order.
    const states = [];
    await waitFor(async () => {
      const s = await checklistOf(runPage);
      const key = JSON.stringify(s);
      if (states[states.length - 1] !== key) states.push(key);
      const done = s.map(([, d]) => d);
      assert.deepEqual(s.map(([step]) => step), ['registered', 'heartbeat', 'probe', 'active']);
      const firstOpen = done.indexOf(false);
      if (firstOpen !== -1) {
        assert.ok(done.slice(firstOpen).every((d) => !d), `a step done before an earlier one: ${key}`);
      }
      return done.every(Boolean);
    }, { timeout: 60_000, interval: 100, message: 'the Run a Node checklist to complete' });
    mark('flow 1: checklist complete', t0);
    assert.equal(await runPage.textContent('#checklist li[data-step=registered] a'), agentId, 'the checklist follows the new node');

    await waitFor(async () => (await rowStatus(nodesPage, agentId)) === 'active', {
      timeout: 60_000, interval: 100, message: `the Nodes row of ${agentId} to be active`,
    });
    mark('flow 1: nodes row active', t0);
    assert.equal(runNavs(), 0, 'Run a Node was not reloaded');
    assert.equal(nodesNavs(), 0, 'Nodes was not reloaded');
    console.log(`flow 1: checklist states seen: ${states.join(' → ')}`);
    await screenshot(runPage, 'live-run-node-done');
    await screenshot(nodesPage, 'live-nodes-active');
    assert.deepEqual(pageErrors(runPage), [], 'no console error under the CSP (Run a Node)');
    assert.deepEqual(pageErrors(nodesPage), [], 'no console error under the CSP (Nodes)');
    await runPage.context().close();
  });

  it('2. a completed job\'s receipt shows in Receipts within 5 s, verified by the server and in the browser', async () => {
    const t0 = performance.now();
    const page = await newPage(browser, { bypassCSP: false });
    await loginViaForm(page, coord.url, coord.adminUser, coord.adminPassword);
    await page.goto(`${coord.url}/receipts`);
    await page.waitForSelector('#receipts-results');
    const navs = trackNavigations(page);
    await observeAppearances(page, '#receipts-table tr[data-receipt-id]', 'data-receipt-id');
    const watchFrom = Date.now();

    // The first receipt completed after the page started watching, from the API.
    const since = new Date(watchFrom - 60_000).toISOString();
    const receipt = await waitFor(async () => {
      const list = await admin.get(`/api/receipts?from=${encodeURIComponent(since)}&limit=1000`);
      return list.items.find((r) => Date.parse(r.completed_at) > watchFrom + 50);
    }, { timeout: 60_000, interval: 200, message: 'a receipt completed after the Receipts page opened' });
    const completedAt = Date.parse(receipt.completed_at);
    const shownAt = await waitFor(async () => (await seenAt(page))[receipt.id], {
      timeout: 15_000, interval: 100, message: `row ${receipt.id} on the Receipts page`,
    });
    const delay = shownAt - completedAt;
    timings['flow 2: receipt on the page after completion (ms)'] = Math.round(delay);
    assert.ok(delay <= 5_000, `receipt ${receipt.id} showed ${Math.round(delay)} ms after the job completed (≤ 5000 expected)`);
    assert.equal(navs(), 0, 'Receipts was not reloaded');
    assert.ok(Number(await page.textContent('#receipt-count')) >= 1);

    const info = await admin.get('/api/coordinator');
    assert.match(info.key_id, /^bsk_/);
    await Promise.all([
      page.waitForURL(`**/receipts/${receipt.id}`),
      page.click(`#receipts-table tr[data-receipt-id="${receipt.id}"] a`),
    ]);
    const badge = page.locator('#signature-badge');
    assert.equal(await badge.getAttribute('data-verified'), 'true');
    assert.match(await badge.innerText(), new RegExp(`verified.*${info.key_id}`, 's'));
    await page.waitForFunction(
      (keyId) => document.getElementById('recheck')?.textContent.includes(`countersignature verified with key ${keyId}`),
      info.key_id,
      { timeout: 10_000 },
    ).catch(async (e) => {
      throw new Error(`browser re-check: ${await page.textContent('#recheck')} (${e.message})`);
    });
    assert.match(await page.getAttribute('#recheck', 'class'), /\bok\b/);
    const json = JSON.parse(await page.textContent('#receipt-json'));
    assert.equal(json.id, receipt.id);
    await screenshot(page, 'live-receipt-verified');
    assert.deepEqual(pageErrors(page), [], 'no console error under the CSP (Receipts, receipt)');
    mark('flow 2', t0);
    await page.context().close();
  });

  it('3. a stopped agent turns stale, then offline, on the Nodes page without a reload', async () => {
    assert.ok(agent && nodesPage, 'flow 1 ran');
    const t0 = performance.now();
    const seen = [];
    const exit = await agent.stop();
    assert.equal(exit.code, 0, `agent exit ${JSON.stringify(exit)}; log ${agent.logFile}`);
    await waitFor(async () => {
      const s = await rowStatus(nodesPage, agentId);
      if (seen[seen.length - 1] !== s) seen.push(s);
      return s === 'offline';
    }, { timeout: 40_000, interval: 100, message: `${agentId} to show offline (seen ${seen.join(' → ')})` });
    mark('flow 3: offline shown', t0);
    console.log(`flow 3: chips seen: ${seen.join(' → ')}`);
    const stale = seen.indexOf('stale');
    assert.ok(stale !== -1 && stale < seen.indexOf('offline'), `stale then offline expected, saw ${seen.join(' → ')}`);
    assert.equal(nodesNavs(), 0, 'Nodes was not reloaded');
    await screenshot(nodesPage, 'live-nodes-offline');
  });

  it('4. a node that forges its receipt signature is quarantined, and the drawer says why', async (t) => {
    assert.ok(nodesPage, 'flow 1 ran');
    const t0 = performance.now();
    let bin;
    try {
      bin = await ensureExample('bitsage-agent', 'dishonest_node', { timeout: 480_000 });
    } catch (e) {
      t.skip(`the test double bins/bitsage-agent/examples/dishonest_node.rs could not be built: ${e.message}`);
      return;
    }
    mark('flow 4: example ready', t0);
    dishonest = await startProcess(bin, ['--coordinator', coord.url, '--wallet', wallet(), '--timeout-secs', '90'], { name: 'live-dishonest-node' });
    const [, id] = await dishonest.waitForOutput(/node identity node=(node-[0-9a-f]+)/, 30_000);
    await dishonest.waitForOutput(/forged receipt sent/, 90_000);
    const done = await dishonest.exited;
    assert.equal(done.code, 0, `the double's run: ${JSON.stringify(done)}; log ${dishonest.logFile}`);
    assert.match(dishonest.output().stdout, /quarantined: the coordinator refused it/);

    const seen = [];
    await waitFor(async () => {
      const s = await rowStatus(nodesPage, id);
      if (seen[seen.length - 1] !== s) seen.push(s);
      return s === 'quarantined';
    }, { timeout: 30_000, interval: 100, message: `${id} to show quarantined on Nodes (seen ${seen.join(' → ')})` });
    mark('flow 4: quarantined shown', t0);
    assert.equal(nodesNavs(), 0, 'Nodes was not reloaded');

    // The drawer names the reason (the node's status reason).
    const node = await admin.get(`/api/nodes/${id}`);
    const reason = node.status_reason ?? node.node?.status_reason;
    assert.match(reason, /bad signature: receipt signature for job .* does not verify/);
    await nodesPage.click(`#nodes-table tr[data-node-id="${id}"] a.node-link`);
    await nodesPage.waitForSelector('aside.drawer#drawer');
    const drawer = nodesPage.locator('#drawer');
    assert.equal(await drawer.locator('p [data-status]').first().getAttribute('data-status'), 'quarantined');
    const text = await drawer.innerText();
    assert.ok(text.includes(reason), `the drawer shows the reason "${reason}":\n${text.slice(0, 800)}`);
    assert.equal(await drawer.locator('#c-reason').count(), 1, 'an admin is offered to clear the quarantine');
    assert.ok(await drawer.locator('li[data-check][data-ok="false"]').count() >= 1, 'an eligibility check fails');
    await screenshot(nodesPage, 'live-drawer-quarantined');
    assert.deepEqual(pageErrors(nodesPage), [], 'no console error under the CSP (Nodes, drawer)');
  });
});
