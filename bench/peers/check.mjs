// Protocol spot-check of a server started by bench/peers/start.sh, beyond what
// `herald-bench smoke` covers: a client event on a private channel, presence subscription and
// member_added, a client event on a presence channel, pusher:signin (reported, not required), and
// the HTTP API answers for events, batch_events, channels and users (printed, so differences
// between servers show). Loopback only; no dependencies (Node >= 20 built-in WebSocket).
//
// Usage: node --experimental-websocket bench/peers/check.mjs PORT
//        (app app1 / key1 / secret1 as start.sh configures; exits 1 on a failed check; lines
//        marked "info" are known differences between servers, not failures)
import { createHash, createHmac } from "node:crypto";

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error("usage: node --experimental-websocket check.mjs PORT");
  process.exit(2);
}
const [appId, key, secret] = ["app1", "key1", "secret1"];
const base = `127.0.0.1:${port}`;
const sign = (s) => createHmac("sha256", secret).update(s).digest("hex");

let failures = 0;
function check(label, ok, detail = "") {
  console.log(`${ok ? "ok  " : "FAIL"} ${label}${detail ? `: ${detail}` : ""}`);
  if (!ok) failures += 1;
}
// A known difference between servers: printed, never a failure.
function note(label, ok, detail = "") {
  console.log(`${ok ? "ok  " : "info"} ${label}${detail ? `: ${detail}` : ""}`);
}

class Client {
  constructor(name) {
    this.name = name;
    this.frames = [];
    this.waiters = [];
  }
  open() {
    return new Promise((resolve, reject) => {
      this.ws = new WebSocket(`ws://${base}/app/${key}?protocol=7&client=bench-check&version=1.0`);
      this.ws.onmessage = (m) => {
        const frame = JSON.parse(m.data);
        if (typeof frame.data === "string") {
          try {
            frame.data = JSON.parse(frame.data);
          } catch {
            /* plain string data */
          }
        }
        this.frames.push(frame);
        this.waiters = this.waiters.filter((w) => !w(frame));
      };
      this.ws.onerror = () => reject(new Error(`${this.name}: websocket error`));
      this.next((f) => f.event === "pusher:connection_established", 5000).then((f) => {
        this.socketId = f.data.socket_id;
        resolve(this);
      }, reject);
    });
  }
  // The first frame (already received or future) matching pred, or null after ms.
  next(pred, ms = 3000) {
    const seen = this.frames.find(pred);
    if (seen) {
      this.frames.splice(this.frames.indexOf(seen), 1);
      return Promise.resolve(seen);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(null);
      }, ms);
      const waiter = (f) => {
        if (!pred(f)) return false;
        clearTimeout(timer);
        this.frames.splice(this.frames.indexOf(f), 1);
        resolve(f);
        return true;
      };
      this.waiters.push(waiter);
    });
  }
  send(event, data, channel) {
    this.ws.send(JSON.stringify(channel === undefined ? { event, data } : { event, data, channel }));
  }
  subscribe(channel, channelData) {
    const data = { channel };
    if (channel.startsWith("private-") || channel.startsWith("presence-")) {
      let toSign = `${this.socketId}:${channel}`;
      if (channelData !== undefined) {
        data.channel_data = JSON.stringify(channelData);
        toSign += `:${data.channel_data}`;
      }
      data.auth = `${key}:${sign(toSign)}`;
    }
    this.send("pusher:subscribe", data);
    return this.next(
      (f) => f.channel === channel && /subscription_(succeeded|error)$/.test(f.event) || f.event === "pusher:error",
    );
  }
  close() {
    this.ws.close();
  }
}

async function api(method, path, body, query = {}) {
  const bodyText = body === undefined ? "" : JSON.stringify(body);
  const params = { ...query, auth_key: key, auth_timestamp: String(Math.floor(Date.now() / 1000)), auth_version: "1.0" };
  if (bodyText) params.body_md5 = createHash("md5").update(bodyText).digest("hex");
  const qs = Object.keys(params)
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join("&");
  const signature = sign(`${method}\n${path}\n${qs}`);
  const res = await fetch(`http://${base}${path}?${qs}&auth_signature=${signature}`, {
    method,
    headers: bodyText ? { "content-type": "application/json" } : {},
    body: bodyText || undefined,
  });
  return { status: res.status, text: await res.text() };
}

const a = await new Client("A").open();
const b = await new Client("B").open();
check("connection_established", Boolean(a.socketId && b.socketId), `${a.socketId}, ${b.socketId}`);

// Private channel: client event from A reaches B, not A.
const priv = "private-bench-check";
const sa = await a.subscribe(priv);
const sb = await b.subscribe(priv);
check("private subscribe", sa?.event === "pusher_internal:subscription_succeeded" && sb?.event === sa?.event, sa?.event);
a.send("client-ping", { n: 1 }, priv);
const got = await b.next((f) => f.event === "client-ping" && f.channel === priv);
check("private client event delivered", got?.data?.n === 1, JSON.stringify(got));
const echoed = await a.next((f) => f.event === "client-ping", 300);
check("client event not echoed to sender", echoed === null);

// Presence: A then B join; B's member list has both; A sees member_added.
const pres = "presence-bench-check";
const pa = await a.subscribe(pres, { user_id: "u1", user_info: { name: "A" } });
check("presence subscribe A", pa?.data?.presence?.count === 1, JSON.stringify(pa?.data));
const pb = await b.subscribe(pres, { user_id: "u2", user_info: { name: "B" } });
check("presence subscribe B sees 2 members", pb?.data?.presence?.count === 2, JSON.stringify(pb?.data));
const added = await a.next((f) => f.event === "pusher_internal:member_added" && f.channel === pres);
check("member_added", added?.data?.user_id === "u2", JSON.stringify(added?.data));
b.send("client-wave", { n: 2 }, pres);
const wave = await a.next((f) => f.event === "client-wave" && f.channel === pres);
check("presence client event delivered", wave?.data?.n === 2, JSON.stringify(wave));
// Pusher adds the sender's user_id to client events on presence channels; sockudo 5.2.0 does not.
note("presence client event carries user_id", wave?.user_id === "u2");

// User authentication.
const userData = JSON.stringify({ id: "u1", user_info: { name: "A" } });
a.send("pusher:signin", { user_data: userData, auth: `${key}:${sign(`${a.socketId}::user::${userData}`)}` });
const signin = await a.next((f) => f.event === "pusher:signin_success" || f.event === "pusher:error");
// sockudo and soketi answer signin only with PEER_USER_AUTH=1 (see start.sh).
note("pusher:signin", signin?.event === "pusher:signin_success", JSON.stringify(signin));

// HTTP API: print what each server answers.
const ev = await api("POST", `/apps/${appId}/events`, { name: "e1", channels: [priv], data: "{\"x\":1}" });
check("POST events", ev.status === 200, `${ev.status} ${ev.text}`);
const evFromApi = await a.next((f) => f.event === "e1" && f.channel === priv);
check("API event delivered", evFromApi !== null);
const batch = await api("POST", `/apps/${appId}/batch_events`, {
  batch: [
    { name: "b1", channel: priv, data: "{}" },
    { name: "b2", channel: pres, data: "{}", info: "user_count,subscription_count" },
  ],
});
check("POST batch_events", batch.status === 200, `${batch.status} ${batch.text}`);
const chans = await api("GET", `/apps/${appId}/channels`, undefined, { filter_by_prefix: "presence-", info: "user_count" });
check("GET channels (presence-, user_count)", chans.status === 200, `${chans.status} ${chans.text}`);
const chan = await api("GET", `/apps/${appId}/channels/${pres}`, undefined, { info: "user_count,subscription_count" });
check("GET channel info", chan.status === 200, `${chan.status} ${chan.text}`);
const users = await api("GET", `/apps/${appId}/channels/${pres}/users`);
check("GET users", users.status === 200, `${users.status} ${users.text}`);

a.close();
b.close();
console.log(failures === 0 ? "all checks passed" : `${failures} check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
