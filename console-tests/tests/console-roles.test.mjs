// Who sees what in the console, against the production server (SQLite, a bootstrap admin):
// an operator of organisation A sees only A's node (Nodes, Earnings' and Receipts' pickers),
// B's node is a 404 to them in the console and through the API from their own page, and no
// admin action is in their HTML; a viewer gets 403 on the operator pages; an anonymous
// visitor is sent to the login page (but may see the Overview and the Docs).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import {
  api,
  createOrgAndOperator,
  launchBrowser,
  loginApi,
  loginViaForm,
  newPage,
  pageErrors,
  screenshot,
  startAgent,
  startCoordinator,
  waitFor,
} from '../lib/harness.mjs';

const wallet = () => `0x${randomBytes(30).toString('hex')}`;

describe('console: roles', { timeout: 240_000 }, () => {
  let coord;
  let browser;
  let adminToken;
  let opA; // operator of org A
  let viewer;
  const agents = [];
  let nodeA;
  let nodeB;
  const t0 = performance.now();

  before(async () => {
    coord = await startCoordinator({ mode: 'server', name: 'roles-server' });
    adminToken = await loginApi(coord.url, coord.adminUser, coord.adminPassword);
    const wA = wallet();
    const wB = wallet();
    opA = await createOrgAndOperator(coord.url, adminToken, { wallets: [wA] });
    await createOrgAndOperator(coord.url, adminToken, { wallets: [wB] });
    viewer = await createOrgAndOperator(coord.url, adminToken, { wallets: [], role: 'viewer' });
    const a = await startAgent(coord.url, { wallet: wA, name: 'roles-agent-a' });
    agents.push(a);
    const b = await startAgent(coord.url, { wallet: wB, name: 'roles-agent-b' });
    agents.push(b);
    [nodeA, nodeB] = await Promise.all([a.nodeId(), b.nodeId()]);
    const admin = api(coord.url, { token: adminToken });
    await waitFor(async () => {
      const ids = (await admin.get('/api/nodes?limit=100')).items.map((n) => n.id);
      return ids.includes(nodeA) && ids.includes(nodeB);
    }, { timeout: 90_000, interval: 250, message: 'both nodes registered' });
    browser = await launchBrowser();
  });

  after(async () => {
    for (const a of agents) await a.stop().catch(() => {});
    await browser?.close().catch(() => {});
    await coord?.stop().catch(() => {});
    console.log(`roles file: ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  });

  it('an operator sees only their organisation\'s node, and B\'s node is a 404 to them', async () => {
    const page = await newPage(browser, { bypassCSP: false });
    await loginViaForm(page, coord.url, opA.username, opA.password);

    let res = await page.goto(`${coord.url}/nodes`);
    assert.equal(res.status(), 200);
    const rows = await page.$$eval('#nodes-table tr[data-node-id]', (els) => els.map((e) => e.dataset.nodeId));
    assert.deepEqual(rows, [nodeA], 'Nodes lists A\'s node only');
    assert.equal(await page.locator('#f-mine').count(), 0, 'the own-organisation filter is for admins');
    await screenshot(page, 'roles-operator-nodes');

    await page.goto(`${coord.url}/earnings`);
    assert.deepEqual(await page.$$eval('#e-node option', (els) => els.map((e) => e.value)), [nodeA], 'Earnings\' picker');
    await page.goto(`${coord.url}/receipts`);
    assert.deepEqual(
      await page.$$eval('#r-node option', (els) => els.map((e) => e.value).filter(Boolean)),
      [nodeA],
      'Receipts\' picker',
    );
    // Receipts of B's node are not searchable either.
    await page.goto(`${coord.url}/receipts?node=${nodeB}`);
    assert.equal(await page.locator('#receipts-table').count(), 0);

    res = await page.goto(`${coord.url}/nodes/${nodeB}`);
    assert.equal(res.status(), 404, '/nodes/{B} is a 404 to the operator');
    assert.equal(await page.locator('aside.drawer').count(), 0);
    res = await page.goto(`${coord.url}/earnings?node=${nodeB}`);
    assert.equal(res.status(), 404, '/earnings?node={B} is a 404 to the operator');

    // The API, from the operator's own page (their cookies).
    const statuses = await page.evaluate(async (ids) => {
      const out = {};
      for (const p of [`/api/nodes/${ids.b}`, `/api/earnings/${ids.b}`, `/api/nodes/${ids.a}`, `/api/earnings/${ids.a}`]) {
        out[p] = (await fetch(p, { credentials: 'same-origin' })).status;
      }
      return out;
    }, { a: nodeA, b: nodeB });
    assert.deepEqual(statuses, {
      [`/api/nodes/${nodeB}`]: 404,
      [`/api/earnings/${nodeB}`]: 404,
      [`/api/nodes/${nodeA}`]: 200,
      [`/api/earnings/${nodeA}`]: 200,
    });
    assert.deepEqual(pageErrors(page).filter((e) => !/status of 404/.test(e)), [], 'no console error but the 404s asked for');
    await page.context().close();
  });

  it('an operator never gets an admin action in the HTML', async () => {
    const page = await newPage(browser);
    await loginViaForm(page, coord.url, opA.username, opA.password);
    const paths = ['/nodes', ...['metrics', 'receipts', 'hardware', 'earnings'].map((t) => `/nodes/${nodeA}?tab=${t}`), `/earnings?node=${nodeA}`, '/receipts', '/run-node'];
    for (const p of paths) {
      const res = await page.goto(`${coord.url}${p}`);
      assert.equal(res.status(), 200, p);
      const html = await page.content();
      assert.ok(!/\/quarantine|\/clear"|payouts\/[^"]*\/ready|#q-reason|id="q-reason"|id="c-reason"/.test(html), `${p}: an admin action in the operator's HTML`);
    }
    // What an operator may do is there: drain their node.
    await page.goto(`${coord.url}/nodes/${nodeA}`);
    assert.equal(await page.locator('#d-reason').count(), 1, 'the operator may drain their node');
    await screenshot(page, 'roles-operator-drawer');
    // The admin, for contrast, gets the quarantine action on the same drawer.
    const admin = await newPage(browser);
    await loginViaForm(admin, coord.url, coord.adminUser, coord.adminPassword);
    await admin.goto(`${coord.url}/nodes/${nodeA}`);
    assert.equal(await admin.locator('form[data-api$="/quarantine"] #q-reason').count(), 1);
    await admin.context().close();
    await page.context().close();
  });

  it('a viewer gets 403 on the operator pages, and no link to them', async () => {
    const page = await newPage(browser);
    await loginViaForm(page, coord.url, viewer.username, viewer.password);
    for (const p of ['/nodes', `/nodes/${nodeA}`, '/receipts', '/earnings', '/run-node']) {
      const res = await page.goto(`${coord.url}${p}`);
      assert.equal(res.status(), 403, `${p} to a viewer`);
    }
    await screenshot(page, 'roles-viewer-403');
    const res = await page.goto(`${coord.url}/`);
    assert.equal(res.status(), 200);
    const nav = await page.$$eval('nav[aria-label=Main] a', (els) => els.map((e) => e.textContent.trim()));
    assert.deepEqual(nav, ['Overview', 'Docs']);
    await page.context().close();
  });

  it('an anonymous visitor is sent to the login page, except on the Overview and the Docs', async () => {
    for (const p of ['/nodes', `/nodes/${nodeA}`, '/receipts', '/earnings', '/run-node']) {
      const res = await fetch(`${coord.url}${p}`, { redirect: 'manual' });
      assert.ok([302, 303, 307].includes(res.status), `${p}: ${res.status}`);
      const to = new URL(res.headers.get('location'), coord.url);
      assert.equal(to.pathname, '/login', `${p} → ${to}`);
      assert.equal(to.searchParams.get('next'), p);
    }
    for (const p of ['/', '/docs', '/login']) {
      assert.equal((await fetch(`${coord.url}${p}`, { redirect: 'manual' })).status, 200, p);
    }
    // In the browser: /nodes → the login form → back on /nodes after logging in.
    const page = await newPage(browser, { bypassCSP: false });
    await page.goto(`${coord.url}/nodes`);
    assert.equal(new URL(page.url()).pathname, '/login');
    await page.fill('#username', opA.username);
    await page.fill('#password', opA.password);
    await Promise.all([page.waitForURL((u) => new URL(u).pathname === '/nodes'), page.click('button[type=submit]')]);
    assert.equal(await page.locator(`#nodes-table tr[data-node-id="${nodeA}"]`).count(), 1);
    // Log out: back to the login page, and /nodes redirects again.
    await Promise.all([page.waitForURL((u) => new URL(u).pathname === '/login'), page.click('button[data-logout]')]);
    await page.goto(`${coord.url}/nodes`);
    assert.equal(new URL(page.url()).pathname, '/login');
    assert.deepEqual(pageErrors(page), [], 'no console error');
    await page.context().close();
  });
});
