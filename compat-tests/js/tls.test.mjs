// TLS termination (issue 5): herald with `[server.tls]` and a self-signed certificate for
// 127.0.0.1 made by openssl in the test; pusher-js connects with `forceTLS: true` and `wssPort`,
// subscribes and receives an event triggered by the Node SDK with `useTLS: true` and `port`.
// Both clients trust the certificate properly (no NODE_TLS_REJECT_UNAUTHORIZED): the Node SDK
// through an https.Agent with the certificate as CA, pusher-js (whose Node transport takes no
// TLS options) in a child process started with NODE_EXTRA_CA_CERTS.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import PusherServer from 'pusher';
import WebSocket from 'ws';
import { HOST, startHerald } from './herald.mjs';
import { WAIT_MS, unique, withTimeout } from './helpers.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
let dir;
let certFile;
let certPem;
let herald;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'herald-compat-tls-'));
  certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  // A self-signed certificate for the IP address the tests use (the SAN is what TLS checks).
  execFileSync(
    'openssl',
    [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', keyFile, '-out', certFile,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 },
  );
  certPem = readFileSync(certFile, 'utf8');
  herald = await startHerald({ server: { tls: { cert_path: certFile, key_path: keyFile } }, ca: certPem });
});
after(async () => {
  await herald?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The Node SDK over https; `trust` gives it the certificate as CA. */
function tlsSdk({ trust = true } = {}) {
  const app = herald.app();
  return new PusherServer({
    appId: app.id,
    key: app.key,
    secret: app.secret,
    host: HOST,
    port: String(herald.port),
    useTLS: true,
    timeout: WAIT_MS,
    ...(trust ? { agent: new Agent({ ca: certPem }) } : {}),
  });
}

/** Start tls-client.mjs; `next(step)` resolves with its next line of that step (deadline-bound). */
function startChild(args, env) {
  const child = spawn(process.execPath, [join(HERE, 'tls-client.mjs'), ...args], {
    cwd: join(HERE, '..'),
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = [];
  let waiters = [];
  let buf = '';
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += c));
  child.stdout.on('data', (chunk) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      lines.push(line);
      waiters = waiters.filter((w) => {
        const hit = w.step === line.step;
        if (hit) w.resolve(line);
        return !hit;
      });
    }
  });
  const exited = new Promise((res) => child.on('exit', (code) => res(code)));
  return {
    lines,
    exited,
    kill: () => child.exitCode === null && child.kill('SIGKILL'),
    next(step, ms = WAIT_MS) {
      const seen = lines.find((l) => l.step === step);
      if (seen) return Promise.resolve(seen);
      return withTimeout(new Promise((resolve) => waiters.push({ step, resolve })), `child step ${step}`, ms).catch(
        (e) => {
          throw new Error(`${e.message}; child said ${JSON.stringify(lines)} ${stderr}`);
        },
      );
    },
  };
}

test('pusher-js with forceTLS connects over wss, subscribes and decodes an event sent by the SDK over https', async () => {
  const channel = unique('tls-room-');
  const env = { ...process.env, NODE_EXTRA_CA_CERTS: certFile };
  delete env.NODE_TLS_REJECT_UNAUTHORIZED;
  const child = startChild([herald.app().key, String(herald.port), channel, 'secure-event'], env);
  try {
    const connected = await child.next('connected');
    assert.match(connected.socketId, /^\d+\.\d+$/);
    await child.next('subscribed');
    const res = await tlsSdk().trigger(channel, 'secure-event', { over: 'tls', n: 1 });
    assert.equal(res.status, 200);
    const got = await child.next('event');
    assert.deepEqual(got.data, { over: 'tls', n: 1 });
    assert.equal(await withTimeout(child.exited, 'the child to exit'), 0);
    assert.deepEqual(
      child.lines.filter((l) => l.step === 'error'),
      [],
      'pusher-js reported errors on the way',
    );
  } finally {
    child.kill();
  }
});

test('the Node SDK over https: trusted CA works, an untrusted self-signed certificate is refused', async () => {
  const res = await tlsSdk().get({ path: '/channels' });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { channels: {} });
  // PusherRequestError wrapping node-fetch's FetchError, whose code names the TLS failure.
  await assert.rejects(tlsSdk({ trust: false }).get({ path: '/channels' }), (e) => {
    const why = `${e.error?.code ?? ''} ${e.error?.message ?? ''}`;
    assert.equal(e.name, 'PusherRequestError');
    assert.match(why, /SELF_SIGNED|self[- ]signed|certificate/i);
    return true;
  });
});

test('a wss client must trust the certificate; plain ws on the TLS port gets no handshake', async () => {
  const url = `wss://${HOST}:${herald.port}/app/${herald.app().key}?protocol=7&client=js&version=8.6.0`;
  const trusted = new WebSocket(url, { ca: certPem });
  const first = await withTimeout(
    new Promise((resolve, reject) => {
      trusted.once('message', (m) => resolve(JSON.parse(m.toString())));
      trusted.once('error', reject);
    }),
    'connection_established over wss',
  );
  assert.equal(first.event, 'pusher:connection_established');
  trusted.close();

  const untrusted = new WebSocket(url);
  const err = await withTimeout(
    new Promise((resolve) => {
      untrusted.once('error', resolve);
      untrusted.once('open', () => resolve(new Error('opened without trusting the certificate')));
    }),
    'the untrusted wss client to fail',
  );
  assert.match(String(err.code ?? err.message), /SELF_SIGNED|self[- ]signed|certificate/i);

  const plain = new WebSocket(url.replace('wss://', 'ws://'));
  const outcome = await withTimeout(
    new Promise((resolve) => {
      plain.once('message', () => resolve('message'));
      plain.once('error', () => resolve('error'));
      plain.once('close', () => resolve('close'));
    }),
    'the plain ws client to be refused',
  );
  assert.notEqual(outcome, 'message');
  plain.terminate();
});
