#!/usr/bin/env node
// Print Core Lightning notifications relayed by clnrest, one JSON object per line.
//
//   npm install            # socket.io-client 4.x (package.json beside this file)
//   node notifications.mjs http://127.0.0.1:3010 "$RUNE"
//   node notifications.mjs https://localhost:3010 "$RUNE" \
//       --ca-cert ~/.lightning/regtest/ca.pem --topics invoice_payment --seq \
//       --since 3f9a1c0e5b7d2a48-41      # "<epoch>-<seq>" of a notification printed with --seq
//
// The rune must allow the method `listclnrest-notifications`, e.g.
// `lightning-cli createrune restrictions='[["method=listclnrest-notifications"]]'`.
//
// Output (stdout): without --seq, each line is the `message` event as lightningd sent it,
// `{"<topic>": {...}}`; with --seq, each line is the `notification` event,
// `{"seq": n, "epoch": "...", "topic": "...", "payload": {...}}`. Status lines go to stderr.
//
// Reconnects: socket.io-client reconnects by itself when the connection drops; we also
// reconnect when the server cut us off as a slow consumer. With --seq each reconnect resumes
// with `since` = "<epoch>-<seq>" of the last notification printed (after a plugin restart
// the server answers with `gap` and replays everything the new process has). A refused or
// revoked rune ends the program (exit 1).
//
// Numbers: JSON.parse turns integers above 2^53 into approximations; lightningd sends some
// (e.g. `groupid` of pay_part_* and sendpay_*), so treat such fields as approximate here.

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { io } from "socket.io-client";

const usage = `usage: node notifications.mjs URL RUNE [--since EPOCH-SEQ] [--topics T1,T2] [--seq]
                             [--ca-cert PATH] [--transport auto|websocket|polling] [--count N]`;

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      since: { type: "string" },
      topics: { type: "string" },
      seq: { type: "boolean", default: false },
      "ca-cert": { type: "string" },
      transport: { type: "string", default: "auto" },
      count: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
} catch (error) {
  console.error(`${error.message}\n${usage}`);
  process.exit(2);
}
const { values: opts, positionals } = parsed;
if (opts.help || positionals.length !== 2 || !["auto", "websocket", "polling"].includes(opts.transport)) {
  console.error(usage);
  process.exit(opts.help ? 0 : 2);
}
const [url, rune] = positionals;
const topics = opts.topics ? opts.topics.split(",").map((t) => t.trim()).filter(Boolean) : null;
const count = opts.count === undefined ? null : Number(opts.count);
const status = (text) => console.error(text);

let lastPosition = null; // "<epoch>-<seq>" of the last notification printed (--seq)
let connects = 0;
let printed = 0;
let done = false;
let revoked = false;

const socket = io(url, {
  // Called on every (re)connect, so `since` follows what we have already printed.
  // Instead of the auth payload, the rune may go in a header where the transport allows it
  // (not in browsers' websockets):  extraHeaders: { Rune: rune }
  auth: (send) => {
    const auth = { rune };
    if (opts.seq && lastPosition !== null) auth.since = lastPosition;
    else if (opts.since !== undefined && connects === 0) {
      // "<epoch>-<seq>", or a bare sequence number.
      auth.since = /^\d+$/.test(opts.since) ? Number(opts.since) : opts.since;
    }
    if (opts.seq) auth.seq = true;
    if (topics) auth.topics = topics;
    send(auth);
  },
  transports: { websocket: ["websocket"], polling: ["polling"] }[opts.transport] ?? ["polling", "websocket"],
  // HTTPS with the node's self-signed CA (Node.js only; browsers use their trust store).
  ...(opts["ca-cert"] ? { ca: readFileSync(opts["ca-cert"]) } : {}),
  reconnectionDelay: 1000,
  reconnectionDelayMax: 30000,
});

function print(line) {
  if (done) return;
  process.stdout.write(JSON.stringify(line) + "\n");
  printed += 1;
  if (count !== null && printed >= count) {
    done = true;
    socket.disconnect();
    process.stdout.write("", () => process.exit(0));
  }
}

socket.on("connect", () => {
  connects += 1;
  status(`connected (${socket.io.engine.transport.name})`);
});

socket.on("message", (data) => print(data));

socket.on("notification", (data) => {
  // The epoch names this plugin process's numbering: after a restart the server sees a
  // position of another epoch and replays everything the new process has.
  if (data.epoch !== undefined && data.seq !== undefined) lastPosition = `${data.epoch}-${data.seq}`;
  print(data);
});

socket.on("gap", ({ since, oldest, epoch }) => {
  if (epoch !== undefined && !String(since).startsWith(`${epoch}-`)) {
    status(`gap: ${since} is a position of an earlier plugin process (it restarted): replaying all it still has, from ${epoch}-${oldest}; some notifications may have been missed`);
  } else {
    status(`gap: asked for notifications after ${since}, the oldest the server still has is ${oldest}: some were missed`);
  }
});

socket.on("disconnect_reason", ({ reason }) => {
  status(`server is disconnecting us: ${reason}`);
  if (String(reason).startsWith("rune revoked")) revoked = true;
});

socket.on("connect_error", (error) => {
  // Transport errors carry the cause (e.g. a certificate the CA does not vouch for).
  // (websocket: error.description; long-polling in Node.js: the XHR's statusText)
  const cause = error.description?.message ?? error.context?.statusText?.message;
  status(`cannot connect: ${error.message}${cause ? ` (${cause})` : ""}`);
  if (/certificate|self[- ]signed/i.test(cause ?? "")) {
    status("give the node's CA with --ca-cert (ca.pem in its clnrest-certs directory, by default the network directory)");
    process.exit(1);
  }
  // socket.active is false when the server refused us (rune, options): retrying will not
  // help, unless it only could not reach lightningd. Otherwise socket.io-client retries.
  if (!socket.active && !error.message.includes("unreachable")) process.exit(1);
  if (!socket.active) setTimeout(() => socket.connect(), 5000);
});

socket.on("disconnect", (reason) => {
  if (done) return;
  status(`disconnected (${reason})`);
  if (revoked) process.exit(1);
  // A disconnect by the server (e.g. "slow consumer") is not retried by socket.io-client.
  if (reason === "io server disconnect") setTimeout(() => socket.connect(), 1000);
});
