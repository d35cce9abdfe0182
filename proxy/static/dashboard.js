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
// - The headline, the status and the alerts are drawn from one message's `summary`, so an
//   alert's figures are always those of the success rate next to it (the server rebuilds
//   an alert's message after every request; its `alert` events only say raised or cleared).
// - The chart is the report's timeline (requests per bucket, the success rate at the end of
//   each), kept up to date from each `stream_ended`'s `bucket` and drawn as inline SVG; it
//   moves on with the server's clock (each summary's `time`), also when nothing happens.
"use strict";

const MAX_STREAMS = 50;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30000;
const SVG = "http://www.w3.org/2000/svg";
const CHART_HEIGHT = 170;
const CHART_MARGIN = { left: 40, right: 46, top: 20, bottom: 22 };

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
let thresholds = null; // the report's, from init
let timeline = null; // {seconds, size, rateBefore, buckets: Map(key -> bucket)}
let clock = null; // {server: a summary's time (s), local: performance.now() then (ms)}

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
      thresholds = message.health.thresholds;
      setTimeline(message.health.timeline);
      break;
    case "stream_started":
      remember(message.stream, null);
      break;
    case "stream_ended":
      remember(message.stream, message.stream);
      if (timeline && message.bucket) timeline.buckets.set(bucketKey(message.bucket.start), message.bucket);
      break;
    case "alert":
      break; // its summary has the alerts in force, drawn with the rest
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
  if (summary && typeof summary.time === "number") {
    clock = { server: summary.time, local: performance.now() };
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

// A fraction as the proxy writes it in its messages (proxy.health.percent): "62.5 %".
function percent(fraction) {
  return `${(fraction * 100).toFixed(1)} %`;
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

// A wall-clock time (seconds) as HH:MM:SS, local time.
function clockTime(seconds) {
  const date = new Date(seconds * 1000);
  return [date.getHours(), date.getMinutes(), date.getSeconds()]
    .map((part) => String(part).padStart(2, "0"))
    .join(":");
}

function render() {
  if (summary) {
    const rate = summary.success_rate;
    const current = summary.alerts || [];
    const low = current.some((alert) => alert.name === "low_success_rate");
    $("success-rate").textContent = rate === null ? "–" : percent(rate);
    $("success-rate").dataset.state = low ? "bad" : "ok";
    const held = summary.window; // the requests the rate is over
    $("window").textContent = held
      ? held.requests === 0
        ? `no finished requests yet (window ${held.size})`
        : `over the last ${plural(held.requests, "request")} (window ${held.size})`
      : "";
    const run = summary.consecutive_failures;
    $("status").textContent = `status: ${summary.status}` + (run ? ` · ${plural(run, "consecutive failure")}` : "");
    $("status").dataset.state = summary.status;
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
  const alerts = summary && summary.alerts ? summary.alerts : [];
  const list = $("alerts");
  list.replaceChildren(
    ...alerts.map((alert) => {
      const item = document.createElement("li");
      item.dataset.name = alert.name;
      for (const [className, text] of [
        ["name", alert.name],
        ["message", alert.message],
        ["since", `since ${clockTime(alert.since)}`],
      ]) {
        const part = document.createElement("span");
        part.className = className;
        part.textContent = text;
        item.append(part);
      }
      return item;
    }),
  );
  $("no-alerts").hidden = alerts.length > 0;
  if (alerts.length > 0) $("alerts-card").dataset.active = "";
  else delete $("alerts-card").dataset.active;
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
  renderChart();
  showFeed();
}

// --- the chart ---------------------------------------------------------------------------

function bucketKey(start) {
  return Math.round(start * 1000); // starts are rounded to the millisecond by the proxy
}

function setTimeline(report) {
  timeline = report
    ? {
        seconds: report.bucket_seconds,
        size: report.buckets,
        rateBefore: report.rate_before,
        buckets: new Map(report.points.map((bucket) => [bucketKey(bucket.start), bucket])),
      }
    : null;
}

// The buckets shown now, oldest first, each with the success rate at its end (carried over
// buckets in which nothing ended); the older ones are forgotten, their rate kept.
function chartSeries() {
  if (timeline === null || clock === null) return null;
  const now = clock.server + (performance.now() - clock.local) / 1000;
  const step = timeline.seconds;
  let current = Math.floor(now / step) * step;
  for (const bucket of timeline.buckets.values()) current = Math.max(current, bucket.start);
  const first = current - (timeline.size - 1) * step;
  const known = [...timeline.buckets.values()].sort((a, b) => a.start - b.start);
  for (const bucket of known) {
    if (bucket.start >= first - step / 1000) break;
    timeline.rateBefore = bucket.success_rate;
    timeline.buckets.delete(bucketKey(bucket.start));
  }
  let rate = timeline.rateBefore;
  const series = [];
  for (let i = 0; i < timeline.size; i += 1) {
    const start = first + i * step;
    const bucket = timeline.buckets.get(bucketKey(start));
    if (bucket) rate = bucket.success_rate;
    series.push({
      start,
      succeeded: bucket ? bucket.succeeded : 0,
      failed: bucket ? bucket.failed : 0,
      cancelled: bucket ? bucket.cancelled : 0,
      chunks: bucket ? bucket.chunks : 0,
      rate,
      ended: Boolean(bucket),
    });
  }
  return series;
}

// The smallest of 2, 4, 6, 8, 10 times a power of ten that is at least `value` (>= 1): the
// axis's middle tick is then a whole number too.
function niceTop(value) {
  for (let scale = 1; ; scale *= 10) {
    for (const step of [2, 4, 6, 8, 10]) if (step * scale >= value) return step * scale;
  }
}

function svg(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

function renderChart() {
  const chart = $("chart");
  const series = chartSeries();
  if (series === null) return;
  const step = timeline.seconds;
  const span = step * timeline.size;
  $("chart-title").textContent = `Last ${span % 60 === 0 ? plural(span / 60, "minute") : `${span} s`}`;
  const width = Math.max(360, Math.round(chart.getBoundingClientRect().width) || 720);
  const height = CHART_HEIGHT;
  const m = CHART_MARGIN;
  const plotWidth = width - m.left - m.right;
  const plotHeight = height - m.top - m.bottom;
  const slot = plotWidth / series.length;
  // Bars keep below 80 % of the height: the top band is the success rate's, where it
  // usually is, near 100 % and its threshold.
  const top = niceTop(Math.max(1, ...series.map((s) => s.succeeded + s.failed + s.cancelled)) / 0.8);
  const yCount = (count) => m.top + plotHeight * (1 - count / top);
  const yRate = (rate) => m.top + plotHeight * (1 - rate);
  const parts = [svg("title", {}, `Requests ended per ${step} s, and the success rate, over the last ${span} s`)];

  for (const fraction of [0, 0.5, 1]) {
    const y = Math.round(m.top + plotHeight * (1 - fraction)) + 0.5;
    parts.push(svg("line", { class: fraction === 0 ? "axis" : "grid", x1: m.left, x2: width - m.right, y1: y, y2: y }));
    parts.push(svg("text", { x: m.left - 6, y: y + 4, "text-anchor": "end" }, String(top * fraction)));
    parts.push(svg("text", { x: width - m.right + 6, y: y + 4 }, `${fraction * 100} %`));
  }
  parts.push(svg("text", { x: 2, y: 11 }, `requests / ${step} s`));
  parts.push(svg("text", { x: width - 2, y: 11, "text-anchor": "end" }, "success rate"));
  const ticks = [
    [0, `−${span % 60 === 0 ? `${span / 60} min` : `${span} s`}`],
    [0.5, `−${span % 120 === 0 ? `${span / 120} min` : `${span / 2} s`}`],
    [1, "now"],
  ];
  for (const [fraction, label] of ticks) {
    const x = m.left + plotWidth * fraction;
    const anchor = fraction === 0 ? "start" : fraction === 1 ? "end" : "middle";
    parts.push(svg("text", { x, y: height - 6, "text-anchor": anchor }, label));
  }

  series.forEach((s, i) => {
    const x = Math.round(m.left + i * slot + slot * 0.15);
    const barWidth = Math.max(2, Math.round(slot * 0.7));
    let below = 0;
    for (const [count, className] of [
      [s.succeeded, "bar-ok"],
      [s.failed, "bar-failed"],
      [s.cancelled, "bar-left"],
    ]) {
      if (count === 0) continue;
      const y0 = Math.round(yCount(below));
      const y1 = Math.round(yCount(below + count));
      parts.push(
        svg("rect", {
          class: className,
          x,
          y: y1,
          width: barWidth,
          height: Math.max(1, y0 - y1),
          "data-count": count,
          "shape-rendering": "crispEdges",
        }),
      );
      below += count;
    }
  });

  const threshold = thresholds ? thresholds.min_success_rate : 0;
  if (threshold > 0) {
    const y = Math.round(yRate(threshold)) + 0.5;
    parts.push(svg("line", { class: "threshold", x1: m.left, x2: width - m.right, y1: y, y2: y }));
  }
  $("legend-threshold").hidden = !(threshold > 0);
  $("threshold-text").textContent = threshold > 0 ? `alert below ${percent(threshold)}` : "";

  // The success rate: a step at each bucket in which requests ended, level in between.
  const points = [];
  const segments = [];
  series.forEach((s, i) => {
    if (s.rate === null) {
      if (points.length) segments.push(points.splice(0));
      return;
    }
    const y = yRate(s.rate).toFixed(1);
    const x0 = (m.left + i * slot).toFixed(1);
    const x1 = (m.left + (i + 1) * slot).toFixed(1);
    points.push(`${x0},${y}`, `${x1},${y}`);
  });
  if (points.length) segments.push(points);
  for (const segment of segments) parts.push(svg("polyline", { class: "rate", points: segment.join(" ") }));
  series.forEach((s, i) => {
    if (s.ended && s.rate !== null) {
      parts.push(svg("circle", { class: "rate-dot", cx: (m.left + (i + 0.5) * slot).toFixed(1), cy: yRate(s.rate).toFixed(1), r: 2.5 }));
    }
  });

  chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
  chart.replaceChildren(...parts);

  const total = (key) => series.reduce((sum, s) => sum + s[key], 0);
  const requests = total("succeeded") + total("failed") + total("cancelled");
  const busiest = Math.max(...series.map((s) => s.succeeded + s.failed + s.cancelled));
  const last = series[series.length - 1].rate;
  const held = summary && summary.window ? summary.window.requests : null;
  chart.dataset.requests = requests;
  chart.dataset.rate = last === null ? "" : last;
  $("chart-summary").textContent =
    `${plural(requests, "request")} ended in the last ${span} s ` +
    `(${(requests / span).toFixed(2)} per second): ${total("succeeded")} ok, ${total("failed")} failed, ` +
    `${total("cancelled")} left by the client; ${plural(total("chunks"), "chunk")} ` +
    `(${(total("chunks") / span).toFixed(2)} per second); busiest ${step} s: ${plural(busiest, "request")}. ` +
    (last === null
      ? "No success rate yet."
      : `Success rate now ${percent(last)}` + (held ? ` over the last ${plural(held, "request")}` : "") +
        (threshold > 0 ? `; the alert is below ${percent(threshold)}.` : "."));
  const body = $("chart-data");
  body.replaceChildren();
  for (const s of series) {
    if (!s.ended) continue;
    const row = body.insertRow();
    cell(row, clockTime(s.start));
    cell(row, String(s.succeeded));
    cell(row, String(s.failed));
    cell(row, String(s.cancelled));
    cell(row, String(s.chunks));
    cell(row, s.rate === null ? "–" : percent(s.rate));
  }
}

setInterval(renderChart, 1000); // the chart moves on with the clock, also when all is quiet
window.addEventListener("resize", renderChart);

connect();
