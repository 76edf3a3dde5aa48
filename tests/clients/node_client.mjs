#!/usr/bin/env node
// socket.io-client 4.x client for tests/client_compat.rs.
//
// Usage: node node_client.mjs MODE URL RUNE [COUNT] [TIMEOUT] [AUTH_JSON]
//
//   MODE     websocket     - websocket transport only
//            polling       - long-polling first, then the upgrade to websocket (the default
//                            behaviour of Socket.IO clients)
//            polling-only  - long-polling only, never upgraded
//            refused    - expect the connection to be refused; print the connect error
//   URL      e.g. http://127.0.0.1:3010
//   RUNE     the rune, sent in the auth payload; "-" sends none
//   COUNT    how many `message`/`notification` events to collect (default 1)
//   TIMEOUT  seconds to wait for them once connected (default 60)
//   AUTH_JSON  extra members for the auth payload, e.g. '{"seq": true}'
//
// Prints `connected <transport>` once connected (so the caller knows when to send
// notifications), then one JSON summary line at the end (see python_client.py: same shape).

import { io } from "socket.io-client";

const [mode, url, rune, countArg, timeoutArg, authArg] = process.argv.slice(2);
if (!mode || !url || !rune || !["websocket", "polling", "polling-only", "refused"].includes(mode)) {
  console.error("usage: node node_client.mjs websocket|polling|polling-only|refused URL RUNE [COUNT] [TIMEOUT] [AUTH_JSON]");
  process.exit(2);
}
const count = countArg ? Number(countArg) : 1;
const timeoutMs = (timeoutArg ? Number(timeoutArg) : 60) * 1000;
const auth = authArg ? JSON.parse(authArg) : {};
if (rune !== "-") auth.rune = rune;

const socket = io(url, {
  auth,
  transports: { websocket: ["websocket"], "polling-only": ["polling"] }[mode] ?? ["polling", "websocket"],
  reconnection: false,
  timeout: 10000,
});

const messages = [];
const notifications = [];
const events = [];
let transportAtConnect = null;
let openedWith = null;
let upgraded = false;
let disconnected = null;
let finished = false;
let timer = null;

const transportName = () => socket.io.engine?.transport?.name ?? null;

// The Engine.IO connection: which transport it opened with, and whether it was upgraded.
socket.io.on("open", () => {
  openedWith = transportName();
  socket.io.engine.on("upgrade", () => {
    upgraded = true;
  });
});

function print(summary) {
  process.stdout.write(JSON.stringify(summary) + "\n", () => process.exit(0));
}

async function finish(timedOut) {
  if (finished) return;
  finished = true;
  clearTimeout(timer);
  if (mode === "polling") {
    // The upgrade runs in the background: give it a moment if it has not happened yet.
    const deadline = Date.now() + 5000;
    while (transportName() !== "websocket" && Date.now() < deadline && socket.connected) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  const summary = {
    client: "socket.io-client",
    mode,
    connected: true,
    opened_with: openedWith,
    upgraded,
    transport: transportName(),
    count: messages.length + notifications.length,
    messages,
    notifications,
    events,
    timed_out: timedOut,
    disconnected,
  };
  socket.disconnect();
  print(summary);
}

function collected() {
  if (messages.length + notifications.length >= count) finish(false);
}

socket.on("message", (data) => {
  messages.push(data);
  collected();
});
socket.on("notification", (data) => {
  notifications.push(data);
  collected();
});
socket.onAny((event, ...args) => {
  if (event !== "message" && event !== "notification") events.push({ event, data: args });
});

socket.on("connect", () => {
  transportAtConnect = transportName();
  if (mode === "refused") {
    socket.disconnect();
    process.stdout.write(
      JSON.stringify({ client: "socket.io-client", mode, refused: false, message: null, transport: transportAtConnect }) + "\n",
      () => process.exit(1),
    );
    return;
  }
  process.stdout.write(`connected ${transportAtConnect}\n`);
  timer = setTimeout(() => finish(true), timeoutMs);
});

socket.on("connect_error", (error) => {
  process.stdout.write(
    JSON.stringify({ client: "socket.io-client", mode, refused: true, message: error.message }) + "\n",
    () => process.exit(mode === "refused" ? 0 : 1),
  );
});

socket.on("disconnect", (reason) => {
  disconnected = reason;
  if (!finished && transportAtConnect !== null && mode !== "refused") finish(false);
});
