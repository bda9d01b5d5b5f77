// Every console page against one `dev` coordinator: no serious or critical axe violation
// (WCAG 2.0/2.1 A and AA + best practices) and a screenshot each; Lighthouse accessibility
// ≥ 90 and performance ≥ 80 (desktop) on Overview, Nodes and Receipts with the admin's
// session; and the Nodes page and its drawer with the keyboard only.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  api,
  assertNoSeriousA11y,
  launchBrowser,
  lighthouse,
  loginApi,
  loginViaForm,
  newPage,
  pageErrors,
  screenshot,
  startCoordinator,
  tabThrough,
  trackNavigations,
  waitFor,
} from '../lib/harness.mjs';

const timings = {};
const scores = {};

describe('console: every page (axe, screenshots, Lighthouse) and the keyboard', { timeout: 300_000 }, () => {
  let coord;
  let browser;
  let page; // the admin's page (bypassCSP for axe)
  let nodeId; // the in-process agent's node
  let receiptId;

  before(async () => {
    const t0 = performance.now();
    coord = await startCoordinator({ mode: 'dev', name: 'pages-coordinator', args: ['--feed-every-secs', '3'] });
    const admin = api(coord.url, { token: await loginApi(coord.url, coord.adminUser, coord.adminPassword) });
    // The in-process agent's first receipt (its probe, then the feeder's first job).
    const receipt = await waitFor(async () => (await admin.get('/api/receipts?limit=1')).items[0], {
      timeout: 90_000, interval: 250, message: 'a first receipt',
    });
    receiptId = receipt.id;
    nodeId = receipt.node_id;
    browser = await launchBrowser();
    page = await newPage(browser);
    await loginViaForm(page, coord.url, coord.adminUser, coord.adminPassword);
    timings.start = Number(((performance.now() - t0) / 1000).toFixed(2));
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await coord?.stop().catch(() => {});
    console.log(`timings (s): ${JSON.stringify(timings)}`);
    console.log(`lighthouse: ${JSON.stringify(scores)}`);
  });

  const pages = () => [
    ['overview', '/', '#overview'],
    ['nodes', '/nodes', '#nodes-table tr[data-node-id]'],
    ['node-drawer', `/nodes/${nodeId}`, 'aside.drawer#drawer'],
    ['node-drawer-receipts', `/nodes/${nodeId}?tab=receipts`, 'aside.drawer#drawer'],
    ['node-drawer-hardware', `/nodes/${nodeId}?tab=hardware`, 'aside.drawer#drawer'],
    ['node-drawer-earnings', `/nodes/${nodeId}?tab=earnings`, 'aside.drawer#drawer'],
    ['receipts', '/receipts', '#receipts-table tr[data-receipt-id]'],
    ['receipt', `/receipts/${receiptId}`, '#signature-badge'],
    ['earnings', `/earnings?node=${nodeId}`, '#net-total'],
    ['run-node', '/run-node', '#checklist'],
    ['docs', '/docs', 'main h1'],
  ];

  it('has no serious or critical axe violation on any page (admin), and a screenshot of each', async () => {
    const t0 = performance.now();
    const failures = [];
    for (const [label, path, ready] of pages()) {
      const res = await page.goto(`${coord.url}${path}`);
      assert.equal(res.status(), 200, `${path}: HTTP ${res.status()}`);
      await page.waitForSelector(ready);
      await screenshot(page, `page-${label}`);
      try {
        await assertNoSeriousA11y(page, `page-${label}`);
      } catch (e) {
        failures.push(e.message);
      }
    }
    // The login page, to a visitor.
    const anon = await newPage(browser);
    await anon.goto(`${coord.url}/login?next=%2Fnodes`);
    await screenshot(anon, 'page-login');
    try { await assertNoSeriousA11y(anon, 'page-login'); } catch (e) { failures.push(e.message); }
    // A failed login shows its error, also without violations.
    await anon.fill('#username', 'admin');
    await anon.fill('#password', 'not-the-password');
    await Promise.all([anon.waitForURL(/failed=/), anon.click('button[type=submit]')]);
    assert.match(await anon.textContent('#login-error'), /Wrong username or password/);
    try { await assertNoSeriousA11y(anon, 'page-login-failed'); } catch (e) { failures.push(e.message); }
    await anon.context().close();
    timings.axe = Number(((performance.now() - t0) / 1000).toFixed(2));
    assert.deepEqual(failures, [], failures.join('\n'));
    assert.deepEqual(pageErrors(page), [], 'no console error');
  });

  it('runs every page under its real CSP without a console error', async () => {
    const strict = await newPage(browser, { bypassCSP: false });
    await loginViaForm(strict, coord.url, coord.adminUser, coord.adminPassword);
    for (const [, path, ready] of pages()) {
      await strict.goto(`${coord.url}${path}`);
      await strict.waitForSelector(ready);
      // The stylesheet and the script came from this origin and loaded under the CSP (a
      // blocked inline style or script would be a console error, checked below).
      const loaded = await strict.evaluate(() => ({
        css: [...document.styleSheets].some((s) => (s.href ?? '').includes('/console/assets/console.css') && s.cssRules.length > 0),
        js: performance.getEntriesByType('resource').some((r) => r.name.includes('/console/assets/console.js')),
      }));
      assert.deepEqual(loaded, { css: true, js: true }, `${path}: the console's stylesheet and script load under the CSP`);
    }
    assert.deepEqual(pageErrors(strict), [], 'no console error or CSP violation');
    await strict.context().close();
  });

  for (const [label, path, min] of [
    ['overview', '/', { accessibility: 90, performance: 80 }],
    ['nodes', '/nodes', { accessibility: 90, performance: 80 }],
    ['receipts', '/receipts', { accessibility: 90, performance: 80 }],
  ]) {
    it(`scores ${path} with Lighthouse: accessibility ≥ ${min.accessibility}, performance ≥ ${min.performance}`, async () => {
      const t0 = performance.now();
      const r = await lighthouse(`${coord.url}${path}`, { cookies: page, name: `page-${label}` });
      timings[`lighthouse ${path}`] = Number(((performance.now() - t0) / 1000).toFixed(2));
      scores[path] = { accessibility: r.accessibility, performance: r.performance };
      assert.equal(new URL(r.lhr.finalDisplayedUrl).pathname, path, 'Lighthouse scored the page itself, not the login page');
      const failed = Object.values(r.lhr.audits)
        .filter((a) => a.score !== null && a.score < 1 && r.lhr.categories.accessibility.auditRefs.some((ref) => ref.id === a.id && ref.weight > 0))
        .map((a) => `${a.id}: ${a.title}`);
      assert.ok(r.accessibility >= min.accessibility, `accessibility ${r.accessibility} < ${min.accessibility}; failed audits: ${failed.join('; ')}; report ${r.report}`);
      assert.ok(r.performance >= min.performance, `performance ${r.performance} < ${min.performance}; report ${r.report}`);
    });
  }

  it('works with the keyboard only: skip link, nav, filters, a node link, the drawer and its tabs, Escape', async () => {
    const kb = await newPage(browser);
    await loginViaForm(kb, coord.url, coord.adminUser, coord.adminPassword);
    await kb.goto(`${coord.url}/nodes`);
    await kb.waitForSelector('a.node-link');
    const navs = trackNavigations(kb);

    // Tab from the top until a node link has focus.
    const seq = [];
    for (let i = 0; i < 40; i += 1) {
      const [f] = await tabThrough(kb, 1);
      f.nodeLink = await kb.evaluate(() => document.activeElement?.matches('a.node-link') ?? false);
      f.inNav = await kb.evaluate(() => Boolean(document.activeElement?.closest('nav[aria-label=Main]')));
      seq.push(f);
      if (f.nodeLink) break;
    }
    const describeEl = (f) => `${f.tag}${f.id ? `#${f.id}` : ''} "${f.text || f.ariaLabel || ''}"`;
    const order = seq.map(describeEl);
    assert.equal(seq[0].tag, 'a', `first stop: ${order[0]}`);
    assert.equal(seq[0].text, 'Skip to content', 'the skip link comes first');
    const at = (pred, what) => {
      const i = seq.findIndex(pred);
      assert.ok(i !== -1, `${what} not reached by Tab; order: ${order.join(' → ')}`);
      return i;
    };
    const navFirst = at((f) => f.inNav, 'the main navigation');
    const fields = ['f-status', 'f-region', 'f-runtime', 'f-rmin', 'f-rmax', 'f-mine'].map((id) => at((f) => f.id === id, `#${id}`));
    const filterButton = at((f) => f.tag === 'button' && f.text === 'Filter', 'the Filter button');
    const nodeLink = at((f) => f.nodeLink, 'a node link');
    assert.ok(navFirst > 0 && navFirst < fields[0], `nav before the filters: ${order.join(' → ')}`);
    assert.deepEqual([...fields].sort((a, b) => a - b), fields, 'the filter fields in order');
    assert.ok(fields[fields.length - 1] < filterButton && filterButton < nodeLink, `filters, Filter, then the table: ${order.join(' → ')}`);
    const noRing = seq.filter((f) => !f.hasFocusIndicator).map(describeEl);
    assert.deepEqual(noRing, [], `focused without a visible indicator: ${noRing.join(', ')}`);

    // Enter opens the drawer; focus lands on its title.
    const link = seq[nodeLink];
    await Promise.all([kb.waitForURL(/\/nodes\/node-/), kb.keyboard.press('Enter')]);
    await kb.waitForSelector('aside.drawer#drawer');
    await kb.waitForFunction(() => document.activeElement?.id === 'drawer-title');
    assert.equal(await kb.textContent('#drawer-title'), link.text);
    const title = await kb.evaluate(() => {
      const el = document.activeElement;
      const cs = getComputedStyle(el);
      return { outline: cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0, shadow: cs.boxShadow !== 'none' };
    });
    assert.ok(title.outline || title.shadow, 'the focused drawer title shows a focus indicator');

    // Tab reaches the close link and every tab of the drawer, each with a focus ring.
    const inDrawer = [];
    for (let i = 0; i < 12; i += 1) {
      const [f] = await tabThrough(kb, 1);
      f.tab = await kb.evaluate(() => Boolean(document.activeElement?.closest('ul.tabs')));
      f.close = await kb.evaluate(() => document.activeElement?.hasAttribute('data-close') ?? false);
      inDrawer.push(f);
    }
    const drawerOrder = inDrawer.map(describeEl).join(' → ');
    assert.ok(inDrawer.some((f) => f.close), `the close link is reachable: ${drawerOrder}`);
    assert.deepEqual(inDrawer.filter((f) => f.tab).map((f) => f.text), ['Metrics', 'Receipts', 'Hardware', 'Earnings'], `the tabs are reachable: ${drawerOrder}`);
    const noRing2 = inDrawer.filter((f) => !f.hasFocusIndicator).map(describeEl);
    assert.deepEqual(noRing2, [], `focused without a visible indicator in the drawer: ${noRing2.join(', ')}`);
    await screenshot(kb, 'keyboard-drawer');

    // Escape closes the drawer (back to the list).
    await Promise.all([kb.waitForURL((u) => new URL(u).pathname === '/nodes'), kb.keyboard.press('Escape')]);
    assert.equal(await kb.locator('aside.drawer').count(), 0, 'the drawer is closed');
    assert.equal(navs(), 2, 'two navigations: Enter opened the drawer, Escape closed it');
    assert.deepEqual(pageErrors(kb), [], 'no console error');
    await kb.context().close();
  });
});
