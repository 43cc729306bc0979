// Starts the real herald binary for the compat tests.
//
// `startHerald()` writes a temporary TOML config (format: docs/contract.md), picks a free port on
// 127.0.0.1, runs `herald --config FILE --port P`, waits until `GET /up` answers and returns a
// handle whose `stop()` kills the process. The binary is `target/release/herald` unless the
// environment variable HERALD_BIN names another one. Only 127.0.0.1 is ever used.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const HOST = '127.0.0.1';
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;

/** The app every suite uses unless it asks for more. Numeric id so the python SDK accepts it. */
export function defaultApp(overrides = {}) {
  return {
    id: '12345',
    key: 'compat-key',
    secret: 'compat-secret',
    enabled: true,
    client_events: true,
    subscription_count: true,
    ...overrides,
  };
}

export function heraldBin() {
  return process.env.HERALD_BIN || join(REPO_ROOT, 'target', 'release', 'herald');
}

function tomlValue(v) {
  if (typeof v === 'string') return JSON.stringify(v); // a TOML basic string is JSON-compatible
  if (typeof v === 'boolean' || typeof v === 'number') return String(v);
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(', ')}]`;
  // A plain object is an inline table (`tls = {cert_path = …}`, `webhooks = [{url = …}]`).
  if (v && typeof v === 'object') {
    return `{ ${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)} = ${tomlValue(x)}`).join(', ')} }`;
  }
  throw new Error(`cannot write ${typeof v} as TOML`);
}

/**
 * `{server:{…}, webhooks:{…}, apps:[{…}]}` → TOML text. Object values become inline tables
 * (`server.tls`, an app's `webhooks` list); `webhooks` is the server-wide `[webhooks]` section.
 */
export function toToml({ server = {}, apps = [], webhooks, adapter, dashboard }) {
  const lines = ['[metrics]', 'host = "127.0.0.1"', 'port = 0', '', '[server]'];
  for (const [k, v] of Object.entries(server)) lines.push(`${k} = ${tomlValue(v)}`);
  if (dashboard) {
    lines.push('', '[dashboard]');
    for (const [k, v] of Object.entries(dashboard)) lines.push(`${k} = ${tomlValue(v)}`);
  }
  if (adapter) {
    lines.push('', '[adapter]');
    for (const [k, v] of Object.entries(adapter)) lines.push(`${k} = ${tomlValue(v)}`);
  }
  if (webhooks) {
    lines.push('', '[webhooks]');
    for (const [k, v] of Object.entries(webhooks)) lines.push(`${k} = ${tomlValue(v)}`);
  }
  for (const app of apps) {
    lines.push('', '[[apps]]');
    for (const [k, v] of Object.entries(app)) lines.push(`${k} = ${tomlValue(v)}`);
  }
  return lines.join('\n') + '\n';
}

/** A port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

async function upAnswers(port, ca) {
  if (ca) {
    // TLS: the readiness probe trusts the test's certificate (global fetch cannot take a CA).
    return new Promise((res) => {
      const req = httpsGet({ host: HOST, port, path: '/up', ca, timeout: 1000 }, (r) => {
        r.resume();
        r.on('end', () => res(r.statusCode === 200));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => res(false));
    });
  }
  try {
    const r = await fetch(`http://${HOST}:${port}/up`, { signal: AbortSignal.timeout(1000) });
    await r.arrayBuffer();
    return r.status === 200;
  } catch {
    return false;
  }
}

// The environment herald inherits: without variables that would override the config file.
function childEnv() {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(HERALD_|REVERB_|PUSHER_)/.test(k)) delete env[k];
  }
  env.RUST_LOG = process.env.HERALD_RUST_LOG || 'warn';
  return env;
}

/**
 * Start herald. `apps` defaults to `[defaultApp()]`; `server` entries are added to `[server]`,
 * `webhooks` entries make the `[webhooks]` section. With `server.tls`, pass `ca` (the PEM the
 * certificate chains to) so the readiness probe can speak https.
 * Returns `{host, port, apps, app, origin, stop, output}`.
 */
export async function startHerald({ apps = [defaultApp()], server = {}, webhooks, ca, adapter, dashboard } = {}) {
  const bin = heraldBin();
  if (!existsSync(bin)) {
    throw new Error(`herald binary not found at ${bin} (run \`cargo build --release -p herald\` or set HERALD_BIN)`);
  }
  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    try {
      return await launch(bin, port, apps, server, webhooks, ca, adapter, dashboard);
    } catch (e) {
      lastError = e;
      if (!e.portInUse) break; // only a lost race for the port is worth another try
    }
  }
  throw lastError;
}

async function launch(bin, port, apps, server, webhooks, ca, adapter, dashboard) {
  const dir = mkdtempSync(join(tmpdir(), 'herald-compat-'));
  const configFile = join(dir, 'herald.toml');
  writeFileSync(configFile, toToml({ server: { host: HOST, port, ...server }, apps, webhooks, adapter, dashboard }));

  const child = spawn(bin, ['--config', configFile, '--port', String(port)], {
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = null;
  const exitPromise = new Promise((res) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      res(exited);
    });
    child.on('error', (err) => {
      exited = { code: null, signal: null, err };
      res(exited);
    });
  });

  const deadline = Date.now() + START_TIMEOUT_MS;
  // Poll /up until it answers: a readiness probe with a deadline, not a sleep used as synchronisation.
  while (!(await upAnswers(port, ca))) {
    if (exited) {
      rmSync(dir, { recursive: true, force: true });
      const err = new Error(
        `herald exited before serving /up (code ${exited.code}, signal ${exited.signal}${exited.err ? `, ${exited.err}` : ''}):\n${output}`,
      );
      err.portInUse = /address (already )?in use/i.test(output);
      throw err;
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`herald did not answer GET /up on ${HOST}:${port} within ${START_TIMEOUT_MS} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  const handle = {
    host: HOST,
    port,
    apps,
    configFile,
    origin: `${ca ? 'https' : 'http'}://${HOST}:${port}`,
    /** The app with this id (default: the first). */
    app(id) {
      return id === undefined ? apps[0] : apps.find((a) => a.id === id);
    },
    output: () => output,
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exitPromise;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
      if (process.env.HERALD_SHOW_LOGS) process.stderr.write(`--- herald output (port ${port}) ---\n${output}\n`);
    },
  };
  return handle;
}
