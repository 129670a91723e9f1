// Live events from the server: a WebSocket (/api/v1/ws?after=LAST), falling back to
// long-polling (/api/v1/events?after=LAST&timeout=25) when the socket cannot be opened or
// keeps closing. Both resume after the last event id seen, so nothing is missed or repeated.
// Ids restart when the server does: each answer names the server's epoch (the WebSocket in
// its first, "hello" message) and every request sends it back; an answer with reset: true
// means the server restarted, so ids start again from its ring's beginning.
// Pages subscribe(fn) and get each event; {kind: "resync"} means events were missed (the
// server's ring moved on, or the server restarted) and everything shown should be read again.

import { getJSON } from "./api.js";

const POLL_TIMEOUT_S = 25;
const CLOSES_BEFORE_POLLING = 3;
const CLOSE_WINDOW_MS = 60_000;
const MAX_BACKOFF_MS = 30_000;

const listeners = new Set();
const statusListeners = new Set();
let lastId = null;
let epoch = null;
let status = "reconnecting";
let closes = [];
let started = false;

export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function onStatus(fn) {
  statusListeners.add(fn);
  fn(status);
  return () => statusListeners.delete(fn);
}

export function currentStatus() {
  return status;
}

function setStatus(next) {
  if (next === status) return;
  status = next;
  for (const fn of statusListeners) fn(status);
}

function emit(event) {
  for (const fn of [...listeners]) {
    try { fn(event); } catch (e) { console.error("live listener failed", e); }
  }
}

// The server restarted (or forgot us): its ids start again, and whatever happened meanwhile
// was never sent, so every page reads its data again.
function restart(newEpoch) {
  epoch = newEpoch;
  lastId = 0;
  emit({ kind: "resync" });
}

function hello(message) {
  if (message.reset) restart(message.epoch);
  else epoch = message.epoch;
}

function take(event) {
  if (event.kind === "hello") { hello(event); return; }
  if (typeof event.id !== "number") return;
  if (lastId !== null && event.id <= lastId) return; // already seen
  if (lastId !== null && event.id > lastId + 1) emit({ kind: "resync" });
  lastId = event.id;
  emit(event);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const backoff = (n) => Math.min(MAX_BACKOFF_MS, 500 * 2 ** n) * (0.75 + Math.random() / 2);

export async function start() {
  if (started) return;
  started = true;
  for (let attempt = 0; lastId === null; attempt += 1) {
    try {
      const reply = await getJSON("/api/v1/events?timeout=0");
      epoch = reply.epoch;
      lastId = reply.last_id;
    } catch {
      setStatus("reconnecting");
      await sleep(backoff(attempt));
    }
  }
  openSocket();
}

function resumeQuery() {
  return `after=${lastId}&epoch=${encodeURIComponent(epoch || "")}`;
}

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/api/v1/ws?${resumeQuery()}`;
}

function openSocket() {
  let socket;
  try {
    socket = new WebSocket(socketUrl());
  } catch (e) {
    console.warn("WebSocket unavailable, long-polling instead", e);
    poll();
    return;
  }
  let opened = false;
  socket.addEventListener("open", () => { opened = true; setStatus("websocket"); });
  socket.addEventListener("message", (m) => {
    try { take(JSON.parse(m.data)); } catch (e) { console.error("bad event", e); }
  });
  socket.addEventListener("close", () => {
    const now = Date.now();
    closes = closes.filter((t) => now - t < CLOSE_WINDOW_MS);
    closes.push(now);
    if (!opened || closes.length >= CLOSES_BEFORE_POLLING) {
      poll();
      return;
    }
    setStatus("reconnecting");
    setTimeout(openSocket, backoff(closes.length));
  });
}

async function poll() {
  setStatus("polling");
  for (let failures = 0; ;) {
    try {
      const reply = await getJSON(
        `/api/v1/events?${resumeQuery()}&timeout=${POLL_TIMEOUT_S}`);
      if (reply.reset) restart(reply.epoch);
      for (const event of reply.events) take(event);
      if (reply.last_id > lastId) lastId = reply.last_id;
      failures = 0;
      setStatus("polling");
    } catch {
      setStatus("reconnecting");
      await sleep(backoff(failures));
      failures += 1;
    }
  }
}
