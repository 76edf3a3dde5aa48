#!/usr/bin/env python3
"""Print Core Lightning notifications relayed by clnrest, one JSON object per line.

Needs python-socketio 5.x with its asyncio client (aiohttp):

    python3 -m pip install "python-socketio[asyncio-client]>=5,<6"

Examples:

    # everything, live (a node with --clnrest-protocol=http)
    ./notifications.py http://127.0.0.1:3010 "$RUNE"

    # HTTPS with the node's CA, only payments, with sequence numbers, resuming after the
    # notification printed with "epoch": "3f9a1c0e5b7d2a48", "seq": 41
    ./notifications.py https://localhost:3010 "$RUNE" \\
        --ca-cert ~/.lightning/regtest/ca.pem --topics invoice_payment --seq \\
        --since 3f9a1c0e5b7d2a48-41

The rune must allow the method `listclnrest-notifications`, e.g.
`lightning-cli createrune restrictions='[["method=listclnrest-notifications"]]'`.

Output (stdout): without --seq, each line is the `message` event as lightningd sent it,
`{"<topic>": {...}}`; with --seq, each line is the `notification` event,
`{"seq": n, "epoch": "...", "topic": "...", "payload": {...}}`. Status lines (connected,
gap, disconnect reasons) go to stderr.

Reconnects: when the connection drops (or the server cut this client off as a slow
consumer), it reconnects. With --seq it resumes with `since` = "<epoch>-<seq>" of the last
notification it printed, so nothing is lost or printed twice while the server still holds
those notifications (a `gap` line on stderr says when it does not, e.g. after the plugin
restarted: then it replays everything the new process has). Without --seq it cannot know
where it stopped and reconnects live. A refused or revoked rune ends the program (exit 1).

Why socketio.AsyncClient: the threaded socketio.Client runs each incoming event's handler
in a thread of its own, so two notifications that arrive close together can be handled
(and printed) in the wrong order. The asyncio client handles them in arrival order.
"""

import argparse
import asyncio
import json
import ssl
import sys

import aiohttp
import engineio.payload
import socketio


def status(text):
    print(text, file=sys.stderr, flush=True)


def parse_args():
    parser = argparse.ArgumentParser(
        description="Print Core Lightning notifications relayed by clnrest (Socket.IO).")
    parser.add_argument("url", help="clnrest's base URL, e.g. https://localhost:3010")
    parser.add_argument("rune", help="a rune that allows listclnrest-notifications")
    parser.add_argument("--since", metavar="EPOCH-SEQ",
                        help="first replay the retained notifications after this position: "
                             "EPOCH-SEQ as printed with --seq (or a bare sequence number)")
    parser.add_argument("--topics", metavar="T1,T2",
                        help="only these topics (comma-separated), e.g. invoice_payment,connect")
    parser.add_argument("--seq", action="store_true",
                        help="receive `notification` events with sequence numbers; reconnects "
                             "resume after the last one seen")
    parser.add_argument("--ca-cert", metavar="PATH",
                        help="CA certificate for HTTPS: the node's ca.pem (clnrest-certs dir)")
    parser.add_argument("--transport", choices=("auto", "websocket", "polling"), default="auto",
                        help="auto: long-polling then upgrade to websocket (default); "
                             "websocket: websocket only; polling: long-polling only")
    parser.add_argument("--count", type=int, metavar="N",
                        help="exit after printing N notifications")
    return parser.parse_args()


async def main(args):
    topics = [t.strip() for t in args.topics.split(",") if t.strip()] if args.topics else None

    http_session = None
    if args.ca_cert:
        # One TLS context trusting the node's CA, for the polling requests and the websocket.
        context = ssl.create_default_context(cafile=args.ca_cert)

        def http_session():
            return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))

    if args.transport == "polling":
        # python-engineio refuses a long-polling response of more than 16 packets and the
        # server sends all it has queued (up to 100000 bytes): allow what fits.
        engineio.payload.Payload.max_decode_packets = 100000
    transports = {"websocket": ["websocket"], "polling": ["polling"]}.get(args.transport)

    sio = socketio.AsyncClient(reconnection=True, reconnection_delay=1,
                               reconnection_delay_max=30, http_session=http_session)
    state = {
        "last_position": None,  # "<epoch>-<seq>" of the last notification printed (--seq)
        "connects": 0,
        "printed": 0,
        "done": False,         # --count reached
        "fatal": None,         # why we must not reconnect
        "connect_error": None,
    }

    def auth():
        # Called on every (re)connect, so `since` follows what we have already printed.
        payload = {"rune": args.rune}
        if args.seq and state["last_position"] is not None:
            payload["since"] = state["last_position"]
        elif args.since is not None and state["connects"] == 0:
            since = args.since.strip()
            payload["since"] = int(since) if since.isdigit() else since
        if args.seq:
            payload["seq"] = True
        if topics:
            payload["topics"] = topics
        return payload

    async def emit(line):
        if state["done"]:
            return
        print(json.dumps(line), flush=True)
        state["printed"] += 1
        if args.count is not None and state["printed"] >= args.count:
            state["done"] = True
            await sio.disconnect()

    @sio.event
    async def connect():
        state["connects"] += 1
        status(f"connected ({sio.transport()})")

    @sio.event
    async def connect_error(data):
        message = data.get("message") if isinstance(data, dict) else data
        state["connect_error"] = message
        refused = isinstance(data, dict) and "message" in data and "code" not in data
        if state["connects"] and refused and "unreachable" not in str(message):
            # Refused while reconnecting (rune revoked meanwhile...): stop retrying.
            status(f"cannot reconnect: {message}")
            state["fatal"] = message
            asyncio.ensure_future(sio.shutdown())

    @sio.on("message")
    async def on_message(data):
        await emit(data)

    @sio.on("notification")
    async def on_notification(data):
        # The epoch names this plugin process's numbering: after a restart the server sees
        # a position of another epoch and replays everything the new process has.
        if "seq" in data and "epoch" in data:
            state["last_position"] = f"{data['epoch']}-{data['seq']}"
        await emit(data)

    @sio.on("gap")
    async def on_gap(data):
        if "epoch" in data and not str(data.get("since")).startswith(f"{data['epoch']}-"):
            status(f"gap: {data.get('since')} is a position of an earlier plugin process "
                   f"(it restarted): replaying all it still has, from {data['epoch']}-"
                   f"{data.get('oldest')}; some notifications may have been missed")
        else:
            status(f"gap: asked for notifications after {data.get('since')}, the oldest the "
                   f"server still has is {data.get('oldest')}: some were missed")

    @sio.on("disconnect_reason")
    async def on_disconnect_reason(data):
        reason = data.get("reason", "") if isinstance(data, dict) else str(data)
        status(f"server is disconnecting us: {reason}")
        if reason.startswith("rune revoked"):
            state["fatal"] = reason

    @sio.event
    async def disconnect(reason=None):
        if not state["done"]:
            status(f"disconnected ({reason})")

    backoff = 1
    while not state["done"]:
        state["connect_error"] = None
        try:
            await sio.connect(args.url, auth=auth, transports=transports, wait_timeout=10)
            backoff = 1
        except socketio.exceptions.ConnectionError as error:
            # Engine.IO-level failures (network, TLS, HTTP errors) come with a cause; a
            # refusal by the server (rune, options) comes as a connect_error {"message"}.
            refusal = state["connect_error"] if error.__cause__ is None else None
            status(f"cannot connect: {refusal or error}")
            if refusal is not None and "unreachable" not in str(refusal):
                return 1  # retrying will not help, unless lightningd was unreachable
            if "certificate verify failed" in str(error).lower():
                status("give the node's CA with --ca-cert (ca.pem in its clnrest-certs "
                       "directory, by default the network directory)")
                return 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30)
            continue
        # Returns once disconnected for good: by us (--count), by the server (a server-side
        # disconnect is not retried by socketio), or after automatic reconnection gave up.
        await sio.wait()
        if state["fatal"]:
            return 1
        if not state["done"]:
            await asyncio.sleep(1)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main(parse_args())))
    except KeyboardInterrupt:
        sys.exit(130)
