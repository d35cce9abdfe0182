// The proxy's dashboard: one WebSocket to /ws at a time, redrawn from its messages.
//
// - Every handler is registered once: the page's own (the ping button, the key form) at
//   load, a socket's on that socket alone, when it is made. A reconnect therefore never
//   adds a second handler, and nothing is sent or handled twice.
// - After a drop it reconnects with exponential backoff and jitter (0.5 s doubling to
//   30 s), and says so, with the close code, until it is back.
// - `init` replaces the whole state; events then change it. A stream is kept by its id,
//   so a snapshot that repeats one already shown cannot show it twice.
// - Every message's `seq` must be the previous one plus one; a gap or a repeat is counted
//   and shown, never ignored.
// - Text from the proxy (model names come from clients) is only ever set as textContent.
"use strict";

const MAX_STREAMS = 50;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30000;

// What the page has seen, per connection where it says so; tests read it too.
const feed = {
  connection: 0, // connections opened so far
  seq: 0, // the last seq of this connection
  messages: 0, // messages handled on this connection
  pings: 0, // pings sent on this connection
  pongs: 0, // pongs received on this connection
  seqErrors: 0, // gaps and repeats, over all connections
  lastClose: null, // {code, reason} of the last drop
};
window.streamproofFeed = feed;

let socket = null;
let attempt = 0;
let reconnectTimer = null;
let summary = null;
const streams = new Map(); // id -> {started, record}; record is null while active
let alerts = [];

const $ = (id) => document.getElementById(id);

function connect() {
  const url = new URL("/ws", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(url);
  socket = ws;
  feed.connection += 1;
  feed.seq = 0;
  feed.messages = 0;
  feed.pings = 0;
  feed.pongs = 0;
  showConnection("connecting", "connecting…");
  ws.addEventListener("open", () => {
    attempt = 0;
    showConnection("connected", "live");
  });
  ws.addEventListener("message", (event) => {
    if (ws === socket) receive(event.data);
  });
  ws.addEventListener("close", (event) => {
    if (ws !== socket) return;
    socket = null;
    feed.lastClose = { code: event.code, reason: event.reason };
    if (event.code === 1008 && /key/.test(event.reason)) {
      sessionStorage.removeItem("streamproof-key");
    }
    scheduleReconnect(event);
  });
}

function scheduleReconnect(event) {
  const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt) * (0.5 + Math.random() / 2);
  attempt += 1;
  const why = event.reason ? `${event.code} ${event.reason}` : `${event.code}`;
  showConnection("reconnecting", `reconnecting in ${(delay / 1000).toFixed(1)} s (attempt ${attempt}; closed: ${why})`);
  clearTimeout(reconnectTimer);
  reconnectTimer = setTimeout(connect, delay);
}

function send(message) {
  if (socket === null || socket.readyState !== WebSocket.OPEN) return false;
  socket.send(JSON.stringify(message));
  return true;
}

function sendPing() {
  if (send({ type: "ping", id: feed.pings + 1 })) feed.pings += 1;
  showFeed();
}

function receive(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch (error) {
    console.error("feed: a message that is not JSON", text.slice(0, 200));
    return;
  }
  if (message.seq !== feed.seq + 1) {
    feed.seqErrors += 1;
    console.error(`feed: seq ${message.seq} after ${feed.seq}`);
  }
  feed.seq = message.seq;
  feed.messages += 1;
  if (message.summary) summary = message.summary;
  switch (message.type) {
    case "init":
      streams.clear();
      for (const record of [...message.health.recent].reverse()) remember(record, record);
      for (const started of message.health.active_requests) remember(started, null);
      summary = message.health;
      alerts = message.health.alerts;
      break;
    case "stream_started":
      remember(message.stream, null);
      break;
    case "stream_ended":
      remember(message.stream, message.stream);
      break;
    case "alert":
      alerts = alerts.filter((alert) => alert.name !== message.alert.name);
      if (message.change === "raised") alerts.push(message.alert);
      break;
    case "pong":
      feed.pongs += 1;
      break;
    case "auth_required":
      askForKey();
      break;
    case "error":
      console.warn("feed error:", message.code, message.message);
      break;
  }
  render();
}

function remember(started, record) {
  const known = streams.get(started.id);
  streams.set(started.id, { started: known ? known.started : started, record });
  while (streams.size > MAX_STREAMS) streams.delete(streams.keys().next().value);
}

function askForKey() {
  const stored = sessionStorage.getItem("streamproof-key");
  if (stored) {
    send({ type: "auth", key: stored });
    return;
  }
  $("auth").classList.add("shown");
  showConnection("connecting", "the proxy wants its key");
}

$("auth").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("key").value.trim();
  if (!key) return;
  sessionStorage.setItem("streamproof-key", key);
  $("key").value = "";
  $("auth").classList.remove("shown");
  send({ type: "auth", key });
});
$("ping").addEventListener("click", sendPing);

function showConnection(state, text) {
  const element = $("connection");
  element.dataset.state = state;
  element.textContent = text;
}

function showFeed() {
  $("feed-state").textContent =
    `feed: connection ${feed.connection} · seq ${feed.seq} · messages ${feed.messages} · ` +
    `pings ${feed.pings} · pongs ${feed.pongs}` +
    (feed.seqErrors ? ` · ${feed.seqErrors} seq errors` : "");
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
}

function render() {
  if (summary) {
    const rate = summary.success_rate;
    $("success-rate").textContent = rate === null ? "–" : `${(rate * 100).toFixed(1)} %`;
    $("status").textContent = `status: ${summary.status}`;
    const r = summary.requests;
    $("active").textContent = r.active;
    $("totals").textContent = `${r.total} requests · ${r.succeeded} ok · ${r.failed} failed · ${r.cancelled} left`;
    const failures = $("failures");
    failures.replaceChildren();
    for (const [name, count] of Object.entries(summary.failures_by_class)) {
      const row = failures.insertRow();
      cell(row, name);
      cell(row, String(count));
    }
    $("no-failures").hidden = failures.rows.length > 0;
  }
  const list = $("alerts");
  list.replaceChildren(
    ...alerts.map((alert) => {
      const item = document.createElement("li");
      item.textContent = `${alert.name}: ${alert.message}`;
      return item;
    }),
  );
  $("no-alerts").hidden = alerts.length > 0;
  const body = $("streams");
  body.replaceChildren();
  for (const { started, record } of [...streams.values()].reverse()) {
    const row = body.insertRow();
    row.dataset.id = started.id;
    row.dataset.model = started.model;
    row.dataset.result = record ? record.result : "active";
    cell(row, String(started.id));
    cell(row, started.model, "model");
    cell(row, started.endpoint);
    cell(row, record ? record.result : "streaming…", "result");
    cell(row, record ? String(record.status) : "");
    cell(row, record && record.error_class ? record.error_class : "");
    cell(row, record ? String(record.chunks) : "");
    cell(row, record && record.usage ? String(record.usage.total_tokens) : "");
    cell(row, record ? `${(record.duration * 1000).toFixed(0)} ms` : "");
  }
  $("no-streams").hidden = streams.size > 0;
  showFeed();
}

connect();
