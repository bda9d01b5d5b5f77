// The harness of the console's browser tests: the real binaries (target/debug), headless
// Chromium through playwright-core, axe-core and Lighthouse. Every process it starts is
// stopped by the handle's stop() (call it in an `after` hook) and, as a last resort, killed
// when the test process exits. Artifacts (process logs, screenshots, axe and Lighthouse
// reports) go under console-tests/artifacts/ (git-ignored).
//
// Environment:
//   BITSAGE_COORDINATOR_BIN  the coordinator binary (default target/debug/bitsage-coordinator)
//   BITSAGE_AGENT_BIN        the agent binary (default target/debug/bitsage-agent)
//   BITSAGE_CHROMIUM         the browser (default /usr/bin/chromium)
//   BITSAGE_KEEP_DATA=1      keep the temp data directories (their paths are logged)

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CONSOLE_TESTS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_ROOT = path.resolve(CONSOLE_TESTS_DIR, '..');
export const ARTIFACTS_DIR = path.join(CONSOLE_TESTS_DIR, 'artifacts');
export const CHROMIUM = process.env.BITSAGE_CHROMIUM || '/usr/bin/chromium';

/// Headless Chromium as root, offline: without the --disable-* flags it keeps trying to reach
/// the internet (shared/TOOLCHAIN.md, "Browser tests").
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

/// Short timeouts for tests that watch nodes go stale/offline (all coordinator flags; the
/// coordinator requires heartbeat < stale < offline).
export const FAST_TIMEOUTS = [
  '--heartbeat-interval-secs', '1',
  '--stale-after-secs', '4',
  '--offline-after-secs', '8',
  '--sweep-interval-ms', '500',
  '--heartbeat-summary-secs', '1',
];

const STARTED = new Set(); // child processes still running

function killAllNow() {
  for (const child of STARTED) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
  STARTED.clear();
}
process.on('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => { killAllNow(); process.exit(128 + (sig === 'SIGINT' ? 2 : 15)); });
}

function testFileBase() {
  const main = process.argv[1] ? path.basename(process.argv[1]).replace(/\.test\.m?js$|\.m?js$/, '') : 'node';
  return main.replace(/[^A-Za-z0-9_.-]/g, '_');
}

let seq = 0;
function uniqueName(kind) {
  seq += 1;
  return `${testFileBase()}-${kind}-${seq}`;
}

function safeName(name) {
  return String(name).replace(/[^A-Za-z0-9_.-]+/g, '_').slice(0, 120);
}

async function ensureDir(dir) {
  await fsp.mkdir(dir, { recursive: true });
  return dir;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// Resolves with `promise`'s value, or with `onTimeout` after `ms`; the timer is cleared
/// either way (a pending timer would keep the test process alive).
function within(promise, ms, onTimeout = 'timeout') {
  let timer;
  const t = new Promise((r) => { timer = setTimeout(() => r(onTimeout), ms); });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/// Polls `fn` (sync or async) until it returns a truthy value, which it resolves with.
/// Throws after `timeout` ms with `message` and the last error `fn` threw, if any; an error
/// with `bail: true` stops the polling at once.
export async function waitFor(fn, { timeout = 30_000, interval = 250, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let lastError;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      lastError = undefined;
    } catch (e) {
      if (e?.bail) throw e;
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const why = lastError ? ` (last error: ${lastError.message ?? lastError})` : '';
      throw new Error(`timed out after ${timeout} ms waiting for ${message}${why}`);
    }
    await sleep(interval);
  }
}

/// A free loopback TCP port (bound then released; prefer letting the binary bind port 0).
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function randomWallet() {
  // 60 hex digits: well below the Starknet field modulus.
  return `0x${randomBytes(30).toString('hex')}`;
}

/// Spawns `bin args` with stdout+stderr appended to artifacts/logs/<name>.log. Returns a
/// handle: {process, name, logFile, output(), waitForOutput(re, ms), exited, stop(sig, ms)}.
async function spawnLogged(bin, args, { name, env, cwd }) {
  if (!fs.existsSync(bin)) {
    throw new Error(`${bin} does not exist: build it first (cargo build --bin bitsage-coordinator --bin bitsage-agent)`);
  }
  const logDir = await ensureDir(path.join(ARTIFACTS_DIR, 'logs'));
  const logFile = path.join(logDir, `${safeName(name)}.log`);
  const log = fs.createWriteStream(logFile);
  log.write(`$ ${bin} ${args.join(' ')}\n`);
  const child = spawn(bin, args, { cwd: cwd ?? REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  STARTED.add(child);
  let stdout = '';
  let stderr = '';
  const watchers = new Set();
  const notify = () => { for (const w of watchers) w(); };
  child.stdout.on('data', (d) => { stdout += d; log.write(d); notify(); });
  child.stderr.on('data', (d) => { stderr += d; log.write(d); notify(); });
  const exited = new Promise((resolve) => {
    child.on('error', (e) => {
      log.write(`\n[harness] spawn error: ${e.message}\n`);
      resolve({ code: null, signal: null, error: e });
    });
    child.on('exit', (code, signal) => {
      STARTED.delete(child);
      resolve({ code, signal });
    });
  });
  // The log closes after the pipes drained.
  child.on('close', (code, signal) => {
    log.end(`\n[harness] exited code=${code} signal=${signal}\n`);
    notify();
  });
  let exitInfo = null;
  exited.then((e) => { exitInfo = e; notify(); });

  const handle = {
    process: child,
    name,
    logFile,
    exited,
    /// Everything the process wrote so far.
    output: () => ({ stdout, stderr }),
    /// Resolves with the first match of `re` on stdout+stderr (so far or later).
    waitForOutput(re, timeout = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(stdout) || re.exec(stderr);
          if (m) { done(); resolve(m); return; }
          if (exitInfo) { done(); reject(new Error(`${name} exited (${JSON.stringify(exitInfo)}) before printing ${re}; log: ${logFile}\n${tail(stderr + stdout)}`)); }
        };
        const timer = setTimeout(() => { done(); reject(new Error(`${name} did not print ${re} within ${timeout} ms; log: ${logFile}\n${tail(stderr + stdout)}`)); }, timeout);
        const done = () => { clearTimeout(timer); watchers.delete(check); };
        watchers.add(check);
        check();
      });
    },
    /// Sends `signal` (default SIGTERM), waits up to `timeout` ms, then SIGKILL. Resolves
    /// with {code, signal}. Safe to call twice.
    async stop(signal = 'SIGTERM', timeout = 20_000) {
      if (exitInfo) return exitInfo;
      try { child.kill(signal); } catch { /* gone */ }
      if ((await within(exited, timeout)) === 'timeout') {
        log.write(`\n[harness] no exit ${timeout} ms after ${signal}: SIGKILL\n`);
        try { child.kill('SIGKILL'); } catch { /* gone */ }
      }
      return exited;
    },
  };
  return handle;
}

function tail(text, lines = 30) {
  return String(text).trimEnd().split('\n').slice(-lines).join('\n');
}

/// The environment without starknet-devnet: `dev` then runs without a chain (fast, and no
/// devnet to clean up). Devnet discovery: $STARKNET_DEVNET, $PATH, $BITSAGE_TOOLS_DIR/bin.
function withoutDevnet(env) {
  const out = { ...env };
  delete out.STARKNET_DEVNET;
  out.BITSAGE_TOOLS_DIR = path.join(os.tmpdir(), 'bitsage-no-tools');
  out.PATH = (env.PATH || '')
    .split(path.delimiter)
    .filter((d) => d && !fs.existsSync(path.join(d, 'starknet-devnet')))
    .join(path.delimiter);
  return out;
}

/**
 * Starts the real coordinator on a free loopback port with a fresh temp data directory and
 * waits until GET /livez answers 200.
 *
 * opts:
 *   mode          'dev' (default: coordinator + in-process agent + demo job feeder, admin
 *                 `admin` with the password from <data-dir>/dev-admin.txt) or 'server' (the
 *                 production server, SQLite in the data dir; a bootstrap admin is created
 *                 with --bootstrap-admin + BITSAGE_ADMIN_PASSWORD)
 *   args          extra arguments, appended last (a flag given twice takes the last value,
 *                 so they override the harness's defaults), e.g. FAST_TIMEOUTS
 *   adminUser     server mode: the bootstrap admin (default 'admin'; null: no admin)
 *   adminPassword the admin's password (default: random in server mode; dev mode reads
 *                 dev-admin.txt unless given)
 *   rateLimits    false (default) passes --rate-limit-scale 0 (tests log in often); true
 *                 keeps the documented limits
 *   devnet        false (default) hides starknet-devnet from `dev`; true lets it start a chain
 *   env           extra environment variables
 *   name          log name (artifacts/logs/<name>.log)
 *   startTimeout  ms to wait for /livez (default 120000)
 *   keepDataDir   keep the data directory after stop()
 *
 * Returns {url, port, dataDir, adminUser, adminPassword, process, handle, logFile, stop()}.
 */
export async function startCoordinator(opts = {}) {
  const mode = opts.mode ?? 'dev';
  if (mode !== 'dev' && mode !== 'server') throw new Error(`unknown mode ${mode}`);
  const bin = process.env.BITSAGE_COORDINATOR_BIN || path.join(REPO_ROOT, 'target/debug/bitsage-coordinator');
  const name = opts.name ?? uniqueName(`coordinator-${mode}`);
  const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'bitsage-console-'));
  // Not inherited: an admin password (adminPassword is the option) or a PostgreSQL URL.
  let env = { ...process.env, BITSAGE_LOG_FORMAT: 'text' };
  delete env.BITSAGE_ADMIN_PASSWORD;
  delete env.BITSAGE_DATABASE_URL;
  if (!opts.devnet) env = withoutDevnet(env);
  Object.assign(env, opts.env ?? {});
  const adminUser = mode === 'dev' ? 'admin' : (opts.adminUser === undefined ? 'admin' : opts.adminUser);
  let adminPassword = opts.adminPassword ?? (mode === 'server' && adminUser ? `pw-${randomBytes(12).toString('hex')}` : undefined);
  if (adminPassword !== undefined) env.BITSAGE_ADMIN_PASSWORD = adminPassword;

  const defaults = opts.rateLimits ? [] : ['--rate-limit-scale', '0'];
  const args = mode === 'dev'
    ? ['dev', '--port', String(opts.port ?? 0), '--data-dir', dataDir, ...defaults, ...(opts.args ?? [])]
    : ['--listen', `127.0.0.1:${opts.port ?? 0}`, '--data-dir', dataDir,
      ...(adminUser ? ['--bootstrap-admin', adminUser] : []), ...defaults, ...(opts.args ?? [])];

  const handle = await spawnLogged(bin, args, { name, env });
  const stop = async (signal = 'SIGTERM', timeout = 40_000) => {
    const r = await handle.stop(signal, timeout);
    if (!opts.keepDataDir && !process.env.BITSAGE_KEEP_DATA) {
      await fsp.rm(dataDir, { recursive: true, force: true });
    }
    return r;
  };
  try {
    const startTimeout = opts.startTimeout ?? 120_000;
    // The bound address is printed once the server listens (port 0: the kernel's choice).
    const re = mode === 'dev' ? /^\s*coordinator\s+(http:\/\/\S+)/m : /listening on (http:\/\/\S+)/;
    const [, url] = await handle.waitForOutput(re, startTimeout);
    await waitFor(async () => {
      if (handle.process.exitCode !== null || handle.process.signalCode !== null) {
        throw Object.assign(new Error(`${name} exited; log: ${handle.logFile}`), { bail: true });
      }
      return (await fetch(`${url}/livez`)).status === 200;
    }, {
      timeout: startTimeout, interval: 200, message: `${url}/livez`,
    });
    if (mode === 'dev' && adminPassword === undefined) {
      const text = await fsp.readFile(path.join(dataDir, 'dev-admin.txt'), 'utf8');
      adminPassword = /^password (\S+)$/m.exec(text)?.[1];
      if (!adminPassword) throw new Error(`no password in ${dataDir}/dev-admin.txt`);
    }
    return {
      url,
      port: Number(new URL(url).port),
      dataDir,
      adminUser,
      adminPassword,
      process: handle.process,
      handle,
      logFile: handle.logFile,
      stop,
    };
  } catch (e) {
    await stop('SIGKILL', 5_000);
    throw e;
  }
}

/**
 * Starts `bitsage-agent run --coordinator URL --wallet W --key-file <tmp>/node.key [args]`
 * with its own temp directory (also BITSAGE_DATA_DIR).
 *
 * opts: wallet (default random), args (extra; not repeatable flags: don't repeat the ones
 * given here), env, name, keepDataDir.
 * Returns {process, handle, wallet, dataDir, keyFile, logFile, nodeId(timeout) → Promise<id>,
 *          stop(signal = 'SIGTERM', timeout)}.
 */
export async function startAgent(coordinatorUrl, opts = {}) {
  const bin = process.env.BITSAGE_AGENT_BIN || path.join(REPO_ROOT, 'target/debug/bitsage-agent');
  const name = opts.name ?? uniqueName('agent');
  const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'bitsage-agent-'));
  const wallet = opts.wallet ?? randomWallet();
  const keyFile = opts.keyFile ?? path.join(dataDir, 'node.key');
  const extra = opts.args ?? [];
  const args = ['run', '--coordinator', coordinatorUrl, '--wallet', wallet, '--key-file', keyFile];
  if (!extra.includes('--max-backoff-secs')) args.push('--max-backoff-secs', '2');
  if (!extra.includes('--shutdown-grace-secs')) args.push('--shutdown-grace-secs', '5');
  args.push(...extra);
  const env = { ...process.env, BITSAGE_DATA_DIR: dataDir, ...(opts.env ?? {}) };
  const handle = await spawnLogged(bin, args, { name, env });
  return {
    process: handle.process,
    handle,
    wallet,
    dataDir,
    keyFile,
    logFile: handle.logFile,
    /// The node id the agent logs at start ("node identity node=…").
    async nodeId(timeout = 30_000) {
      const m = await handle.waitForOutput(/node identity[^\n]*?node=(node-[0-9a-f]+)/, timeout);
      return m[1];
    },
    async stop(signal = 'SIGTERM', timeout = 20_000) {
      const r = await handle.stop(signal, timeout);
      if (!opts.keepDataDir && !process.env.BITSAGE_KEEP_DATA) {
        await fsp.rm(dataDir, { recursive: true, force: true });
      }
      return r;
    },
  };
}

// ---------------------------------------------------------------------------------------
// HTTP API

function cookieValue(cookieHeader, name) {
  for (const part of String(cookieHeader ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

/**
 * A small fetch wrapper. auth: {token} (Authorization: Bearer) or {cookie} (a Cookie header;
 * its bitsage_csrf value is echoed in X-CSRF-Token on changes, as a browser must).
 *
 *   const a = api(url, {token});
 *   await a.get('/api/nodes')                 // parsed body; throws unless 2xx
 *   await a.post('/api/orgs', {name: 'x'})    // parsed body; throws unless 2xx
 *   await a.request('GET', '/api/audit', {expect: 403})  // {status, headers, body}
 */
export function api(baseUrl, auth = {}) {
  const base = baseUrl.replace(/\/$/, '');
  async function request(method, p, { body, headers = {}, expect } = {}) {
    const h = { accept: 'application/json', ...headers };
    if (auth.token) h.authorization = `Bearer ${auth.token}`;
    if (auth.cookie) {
      h.cookie = auth.cookie;
      const csrf = cookieValue(auth.cookie, 'bitsage_csrf');
      if (csrf && !['GET', 'HEAD'].includes(method)) h['x-csrf-token'] = csrf;
    }
    let payload;
    if (body !== undefined) {
      h['content-type'] = 'application/json';
      payload = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const res = await fetch(`${base}${p}`, { method, headers: h, body: payload, redirect: 'manual' });
    const text = await res.text();
    let parsed = text;
    if ((res.headers.get('content-type') || '').includes('json') && text) {
      try { parsed = JSON.parse(text); } catch { /* keep the text */ }
    }
    const out = { status: res.status, ok: res.ok, headers: res.headers, body: parsed, text };
    if (expect !== undefined) {
      const want = Array.isArray(expect) ? expect : [expect];
      if (!want.includes(res.status)) {
        throw new Error(`${method} ${p}: expected ${want.join('/')}, got ${res.status}: ${text.slice(0, 500)}`);
      }
    }
    return out;
  }
  async function ok(method, p, body, options = {}) {
    const r = await request(method, p, { ...options, body });
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${r.text.slice(0, 500)}`);
    return r.body;
  }
  return {
    request,
    get: (p, options) => ok('GET', p, undefined, options),
    post: (p, body, options) => ok('POST', p, body ?? {}, options),
    patch: (p, body, options) => ok('PATCH', p, body ?? {}, options),
    put: (p, body, options) => ok('PUT', p, body ?? {}, options),
    delete: (p, options) => ok('DELETE', p, undefined, options),
  };
}

/**
 * POST /api/auth/login. Returns {token, refreshToken, user, cookie, csrf, session}: `cookie`
 * is a Cookie header value with the three session cookies (for api({cookie}) or Lighthouse).
 */
export async function loginSession(url, username, password) {
  const res = await fetch(`${url}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`login as ${username}: ${res.status} ${text.slice(0, 300)}`);
  const session = JSON.parse(text);
  const cookie = res.headers.getSetCookie()
    .map((c) => c.split(';')[0])
    .filter((c) => !c.endsWith('='))
    .join('; ');
  return {
    token: session.access_token,
    refreshToken: session.refresh_token,
    user: session.user,
    cookie,
    csrf: cookieValue(cookie, 'bitsage_csrf'),
    session,
  };
}

/// POST /api/auth/login → the access token (a JWT for `Authorization: Bearer`).
export async function loginApi(url, username, password) {
  return (await loginSession(url, username, password)).token;
}

/**
 * As an admin: creates an organisation, gives it `wallets`, and creates an operator of it.
 * Returns {org, user, username, password, wallets}.
 */
export async function createOrgAndOperator(url, adminToken, {
  org = `org-${randomBytes(4).toString('hex')}`,
  username = `op-${randomBytes(4).toString('hex')}`,
  password = `pw-${randomBytes(12).toString('hex')}`,
  wallets = [],
  role = 'operator',
} = {}) {
  const a = api(url, { token: adminToken });
  const created = await a.post('/api/orgs', { name: org });
  for (const wallet of wallets) {
    await a.request('POST', `/api/orgs/${created.id}/wallets`, { body: { wallet }, expect: 204 });
  }
  const user = await a.post('/api/users', { username, password, role, org: created.id });
  return { org: created, user, username, password, wallets };
}

// ---------------------------------------------------------------------------------------
// Browser

/// Launches headless Chromium (playwright-core, the system browser; playwright gives it a
/// fresh user-data-dir). opts are passed to chromium.launch (args are appended).
export async function launchBrowser(opts = {}) {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM} (set BITSAGE_CHROMIUM, or install Debian's chromium: scripts/lib/browser.sh ensure_browser)`);
  }
  const { chromium } = await import('playwright-core');
  const { args = [], ...rest } = opts;
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [...CHROMIUM_FLAGS, ...args],
    timeout: 60_000,
    ...rest,
  });
}

const PAGE_ERRORS = new WeakMap();

/**
 * A page in a fresh browser context (its own cookies). bypassCSP is on so that axe can be
 * injected into pages whose Content-Security-Policy forbids inline scripts (the API sends
 * `default-src 'none'`); pass {bypassCSP: false} to test the CSP itself. Console errors and
 * uncaught exceptions are collected: pageErrors(page).
 */
export async function newPage(browser, contextOptions = {}) {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 800 },
    bypassCSP: true,
    ...contextOptions,
  });
  const page = await context.newPage();
  const errors = [];
  PAGE_ERRORS.set(page, errors);
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  return page;
}

/// Console errors and uncaught exceptions the page has had so far.
export function pageErrors(page) {
  return [...(PAGE_ERRORS.get(page) ?? [])];
}

/**
 * Logs the page's browser context in through the API (POST /api/auth/login with fetch from
 * the page, same origin), so the HttpOnly session cookies land in the browser like a real
 * login. Navigates to `url`/livez first when the page is not on that origin. Returns the
 * session JSON.
 */
export async function loginBrowser(page, url, username, password) {
  const origin = new URL(url).origin;
  if (!page.url().startsWith(origin)) await page.goto(`${origin}/livez`);
  const r = await page.evaluate(async ({ username, password }) => {
    const res = await fetch('/api/auth/login', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ username, password }),
    });
    return { status: res.status, text: await res.text() };
  }, { username, password });
  if (r.status !== 200) throw new Error(`browser login as ${username}: ${r.status} ${r.text.slice(0, 300)}`);
  const cookies = await page.context().cookies(origin);
  if (!cookies.some((c) => c.name === 'bitsage_access')) {
    throw new Error(`browser login as ${username}: no bitsage_access cookie stored (got ${cookies.map((c) => c.name).join(', ') || 'none'})`);
  }
  return JSON.parse(r.text);
}

/// Logs in through the console's /login form (input[name=username], input[name=password],
/// a submit button) and waits until the page has left /login.
export async function loginViaForm(page, url, username, password) {
  const base = url.replace(/\/$/, '');
  await page.goto(`${base}/login`);
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', password);
  await Promise.all([
    page.waitForURL((u) => !new URL(u).pathname.startsWith('/login'), { timeout: 15_000 }),
    page.click('form button[type=submit], form input[type=submit], form button:not([type])'),
  ]);
}

/// The Cookie header value of the page's context for `url` (for lighthouse() or api()).
export async function cookieHeader(page, url) {
  const cookies = await page.context().cookies(new URL(url).origin);
  return cookies.map((c) => `${c.name}=${c.value}`).join('; ');
}

/// Full-page screenshot to artifacts/screenshots/<name>.png; returns the path. A page taller
/// than opts.maxHeight (default 8000 px) is cut there; when Chromium does not finish the
/// full-page capture within 10 s (it never does for /openapi.json) the viewport is kept.
export async function screenshot(page, name, { fullPage = true, maxHeight = 8000 } = {}) {
  const dir = await ensureDir(path.join(ARTIFACTS_DIR, 'screenshots'));
  const file = path.join(dir, `${safeName(name)}.png`);
  const options = { path: file, fullPage };
  if (fullPage) {
    const { width, height } = await page.evaluate(() => ({
      width: document.documentElement.scrollWidth,
      height: document.documentElement.scrollHeight,
    }));
    if (height > maxHeight) options.clip = { x: 0, y: 0, width, height: maxHeight };
    try {
      await page.screenshot({ ...options, timeout: 10_000 });
      return file;
    } catch (e) {
      // Chromium never finishes some full-page captures (a JSON document such as
      // /openapi.json, a 200,000-character <pre>): keep the visible part instead.
      if (e.name !== 'TimeoutError') throw e;
    }
  }
  await page.screenshot({ path: file });
  return file;
}

// ---------------------------------------------------------------------------------------
// Accessibility

export const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'];
const AXE_PATH = path.join(CONSOLE_TESTS_DIR, 'node_modules/axe-core/axe.min.js');

/**
 * Runs axe-core on the page (WCAG 2.0/2.1 A and AA + best practices). Saves the full result
 * to artifacts/axe/<label>.json. Returns the violations of impact serious or critical;
 * opts.all returns every violation; opts.options are extra axe.run options (e.g. rules).
 */
export async function checkA11y(page, label = 'page', opts = {}) {
  const loaded = await page.evaluate(() => typeof window.axe === 'object').catch(() => false);
  if (!loaded) {
    try {
      await page.addScriptTag({ path: AXE_PATH });
    } catch {
      // A CSP that forbids inline scripts (a context without bypassCSP): evaluate is exempt.
      await page.evaluate(fs.readFileSync(AXE_PATH, 'utf8'));
    }
  }
  const result = await page.evaluate(async ({ tags, extra }) => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'], ...extra });
    return { url: r.url, violations: r.violations, passes: r.passes.length, incomplete: r.incomplete.length };
  }, { tags: AXE_TAGS, extra: opts.options ?? {} });
  const dir = await ensureDir(path.join(ARTIFACTS_DIR, 'axe'));
  await fsp.writeFile(path.join(dir, `${safeName(label)}.json`), JSON.stringify(result, null, 2));
  return opts.all ? result.violations : result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/// One line per violation: id, impact, help, the first 3 targets.
export function formatViolations(violations) {
  return violations.map((v) => {
    const targets = v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ');
    const more = v.nodes.length > 3 ? ` (+${v.nodes.length - 3} more)` : '';
    return `  - ${v.id} [${v.impact}] ${v.help}: ${targets}${more}`;
  }).join('\n');
}

/// Fails (AssertionError) when axe finds a serious or critical violation, listing them.
export async function assertNoSeriousA11y(page, label = 'page', opts = {}) {
  const violations = await checkA11y(page, label, opts);
  if (violations.length) {
    assert.fail(`${label}: ${violations.length} serious/critical accessibility violation(s) on ${page.url()}:\n${formatViolations(violations)}`);
  }
}

// ---------------------------------------------------------------------------------------
// Keyboard

/**
 * Presses Tab `n` times; after each press records the focused element: {tag, text,
 * ariaLabel, role, id, href, outline, boxShadow, focusVisible, hasFocusIndicator}.
 * hasFocusIndicator: a non-zero, non-`none` outline or a box-shadow while focused.
 */
export async function tabThrough(page, n, { key = 'Tab' } = {}) {
  const out = [];
  for (let i = 0; i < n; i += 1) {
    await page.keyboard.press(key);
    out.push(await page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return { tag: el ? 'body' : null, hasFocusIndicator: false };
      const cs = getComputedStyle(el);
      const outlineWidth = parseFloat(cs.outlineWidth) || 0;
      const outlineVisible = cs.outlineStyle !== 'none' && outlineWidth > 0 && cs.outlineColor !== 'transparent' && cs.outlineColor !== 'rgba(0, 0, 0, 0)';
      const shadow = cs.boxShadow && cs.boxShadow !== 'none';
      let focusVisible = false;
      try { focusVisible = el.matches(':focus-visible'); } catch { /* old engine */ }
      return {
        tag: el.tagName.toLowerCase(),
        text: (el.innerText ?? el.value ?? '').trim().replace(/\s+/g, ' ').slice(0, 80),
        ariaLabel: el.getAttribute('aria-label'),
        role: el.getAttribute('role'),
        id: el.id || null,
        href: el.getAttribute('href'),
        outline: `${cs.outlineStyle} ${cs.outlineWidth} ${cs.outlineColor}`,
        boxShadow: cs.boxShadow,
        focusVisible,
        hasFocusIndicator: outlineVisible || Boolean(shadow),
      };
    }));
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Lighthouse

async function launchDebuggableChromium(userDataDir) {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (set BITSAGE_CHROMIUM)`);
  const child = spawn(CHROMIUM, [
    ...CHROMIUM_FLAGS,
    '--remote-debugging-port=0',
    `--user-data-dir=${userDataDir}`,
    'about:blank',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  STARTED.add(child);
  child.on('exit', () => STARTED.delete(child));
  let err = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`chromium printed no DevTools port in 30 s:\n${tail(err)}`)), 30_000);
    child.stderr.on('data', (d) => {
      err += d;
      const m = /DevTools listening on ws:\/\/[^:]+:(\d+)\//.exec(err);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`chromium exited (${code}):\n${tail(err)}`)); });
  });
  return { child, port };
}

/**
 * Lighthouse 12 (desktop preset; accessibility + performance by default) against `url` in a
 * fresh headless Chromium. opts.cookies: a Cookie header string, an array of {name, value},
 * or a page (its context's cookies) — sent as an extra header for pages behind login.
 * opts.name names the JSON report (artifacts/lighthouse/<name>.json).
 * Returns {accessibility, performance, ...other categories} as 0–100, plus `report` (its
 * path) and `lhr`. Lighthouse scores HTML documents only: a page it cannot load or score (a
 * JSON endpoint: NOT_HTML) throws, unless opts.allowErrors (then the scores are null and
 * `runtimeError` says why).
 */
export async function lighthouse(url, opts = {}) {
  const [{ default: runLighthouse }, { default: desktopConfig }] = await Promise.all([
    import('lighthouse'),
    import('lighthouse/core/config/desktop-config.js'),
  ]);
  let cookie = opts.cookies;
  if (cookie && typeof cookie.context === 'function') cookie = await cookieHeader(cookie, url);
  if (Array.isArray(cookie)) cookie = cookie.map((c) => `${c.name}=${c.value}`).join('; ');
  const categories = opts.categories ?? ['accessibility', 'performance'];
  const userDataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'bitsage-lh-'));
  const { child, port } = await launchDebuggableChromium(userDataDir);
  try {
    const flags = {
      port,
      output: 'json',
      logLevel: 'error',
      onlyCategories: categories,
      ...(cookie ? { extraHeaders: { Cookie: cookie } } : {}),
    };
    const config = opts.formFactor === 'mobile' ? undefined : desktopConfig;
    const result = await runLighthouse(url, flags, config);
    if (!result) throw new Error(`lighthouse returned nothing for ${url}`);
    const { runtimeError } = result.lhr;
    if (runtimeError && !opts.allowErrors) {
      // e.g. NOT_HTML (Lighthouse scores HTML documents only), ERRORED_DOCUMENT_REQUEST.
      throw new Error(`lighthouse could not score ${url}: ${runtimeError.code}: ${runtimeError.message}`);
    }
    const dir = await ensureDir(path.join(ARTIFACTS_DIR, 'lighthouse'));
    const name = opts.name ?? (new URL(url).pathname.replace(/\//g, '_') || 'root');
    const report = path.join(dir, `${safeName(name)}.json`);
    await fsp.writeFile(report, typeof result.report === 'string' ? result.report : JSON.stringify(result.lhr));
    const scores = {};
    for (const [id, cat] of Object.entries(result.lhr.categories)) {
      scores[id] = cat.score === null ? null : Math.round(cat.score * 100);
    }
    return { ...scores, report, lhr: result.lhr, runtimeError: result.lhr.runtimeError };
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null && child.signalCode === null) {
      await within(new Promise((r) => child.once('exit', r)), 5_000);
    }
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await fsp.rm(userDataDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------
// Additions for the console's flow tests: Cargo examples (test doubles), navigation counts,
// live-region observation.

/// The path of a Cargo example binary of the workspace (target/debug/examples/<name>, or
/// $BITSAGE_EXAMPLES_DIR/<name>).
export function exampleBin(name) {
  const dir = process.env.BITSAGE_EXAMPLES_DIR || path.join(REPO_ROOT, 'target/debug/examples');
  return path.join(dir, name);
}

/**
 * Makes sure the example `name` of `pkg` is built: when its binary is missing or older than
 * its source (<pkg dir>/examples/<name>.rs), runs `cargo build -p <pkg> --example <name>`
 * (its output goes to artifacts/logs/cargo-<name>.log; `cargo test --workspace` builds
 * examples too, so after it nothing is built here). Resolves with the binary's path, or
 * throws with the reason (a failed build, or cargo running past `timeout` ms).
 * opts: pkgDir (default bins/<pkg>), timeout (default 600000).
 */
export async function ensureExample(pkg, name, opts = {}) {
  const bin = exampleBin(name);
  const src = path.join(REPO_ROOT, opts.pkgDir ?? `bins/${pkg}`, 'examples', `${name}.rs`);
  const fresh = () => fs.existsSync(bin)
    && (!fs.existsSync(src) || fs.statSync(bin).mtimeMs >= fs.statSync(src).mtimeMs);
  if (fresh()) return bin;
  if (process.env.BITSAGE_EXAMPLES_DIR) throw new Error(`${bin} is missing or older than ${src}`);
  const logDir = await ensureDir(path.join(ARTIFACTS_DIR, 'logs'));
  const logFile = path.join(logDir, `cargo-${safeName(name)}.log`);
  const log = fs.createWriteStream(logFile);
  const args = ['build', '-p', pkg, '--example', name];
  log.write(`$ cargo ${args.join(' ')}\n`);
  const child = spawn('cargo', args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  STARTED.add(child);
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  const done = new Promise((resolve) => {
    child.on('error', (e) => resolve({ code: null, error: e }));
    child.on('close', (code, signal) => { STARTED.delete(child); resolve({ code, signal }); });
  });
  const r = await within(done, opts.timeout ?? 600_000);
  if (r === 'timeout') {
    try { child.kill('SIGKILL'); } catch { /* gone */ }
    log.end('\n[harness] timed out\n');
    throw new Error(`cargo ${args.join(' ')} ran past ${opts.timeout ?? 600_000} ms; log: ${logFile}`);
  }
  log.end(`\n[harness] exited ${JSON.stringify(r)}\n`);
  if (r.code !== 0 || !fresh()) {
    throw new Error(`cargo ${args.join(' ')} failed (${JSON.stringify(r)}); log: ${logFile}`);
  }
  return bin;
}

/**
 * Starts any binary with its output logged like the coordinator's (artifacts/logs/<name>.log).
 * Returns the handle: {process, name, logFile, output(), waitForOutput(re, ms), exited,
 * stop(signal, ms)}.
 */
export async function startProcess(bin, args = [], opts = {}) {
  return spawnLogged(bin, args, {
    name: opts.name ?? uniqueName(path.basename(bin)),
    env: { ...process.env, ...(opts.env ?? {}) },
    cwd: opts.cwd,
  });
}

/**
 * Counts the page's main-frame navigations (loads, reloads, link follows) from now on:
 * returns a function answering the count. A live update that swaps regions in place is no
 * navigation.
 */
export function trackNavigations(page) {
  let n = 0;
  page.on('framenavigated', (frame) => { if (frame === page.mainFrame()) n += 1; });
  return () => n;
}

/**
 * Records in the page when each element matching `selector` carrying attribute `attr` first
 * appears (a MutationObserver on the whole document; the elements already there count as
 * seen now). Read with seenAt(page): {value → epoch ms}. Runs again after a navigation only
 * when called again.
 */
export async function observeAppearances(page, selector, attr) {
  await page.evaluate(({ selector, attr }) => {
    const seen = {};
    window.__bitsageSeen = seen;
    const now = () => performance.timeOrigin + performance.now();
    const scan = () => {
      document.querySelectorAll(selector).forEach((el) => {
        const v = el.getAttribute(attr);
        if (v && !(v in seen)) seen[v] = now();
      });
    };
    scan();
    new MutationObserver(scan).observe(document.documentElement, { childList: true, subtree: true });
  }, { selector, attr });
}

/// What observeAppearances recorded so far: {attribute value → epoch ms first seen}.
export async function seenAt(page) {
  return page.evaluate(() => ({ ...(window.__bitsageSeen ?? {}) }));
}
