#!/usr/bin/env python3
"""python-socketio 5.x client (socketio.AsyncClient) for tests/client_compat.rs.

Usage: python_client.py MODE URL RUNE [COUNT] [TIMEOUT] [AUTH_JSON]

  MODE     websocket     - websocket transport only
           polling       - long-polling first, then the upgrade to websocket (the default
                           behaviour of Socket.IO clients)
           polling-only  - long-polling only, never upgraded
           refused       - expect the connection to be refused; print the connect error
  URL      e.g. http://127.0.0.1:3010
  RUNE     the rune, sent in the auth payload; "-" sends none
  COUNT    how many `message`/`notification` events to collect (default 1)
  TIMEOUT  seconds to wait for them once connected (default 60)
  AUTH_JSON  extra members for the auth payload, e.g. '{"seq": true}'

Prints `connected <transport>` once connected (so the caller knows when to send
notifications), then one JSON summary line at the end:
  {"client", "mode", "connected", "opened_with", "upgraded", "transport", "count",
   "messages", "notifications", "events", "timed_out", "disconnected"}
where opened_with is the Engine.IO transport of the handshake, upgraded whether it was
upgraded to websocket, and transport the one in use at the end;
or, for MODE refused: {"client", "mode", "refused", "message"}.

Why AsyncClient: the threaded socketio.Client runs every incoming event's handler in a new
thread (python-engineio starts one per message), so handlers may run out of order. The
asyncio client runs them as tasks in arrival order, so what this client records is the
order the server sent.

CLIENT_DEBUG_LOG=PATH writes python-engineio's debug log to PATH.MODE.
"""

import asyncio
import json
import logging
import os
import sys

import engineio.payload
import socketio

MODES = ("websocket", "polling", "polling-only", "refused")


async def run(mode, url, auth, count, timeout):
    # python-engineio says at INFO level which transport it opens with and when it upgrades.
    engine_log = []

    class Capture(logging.Handler):
        def emit(self, record):
            engine_log.append(record.getMessage())

    engine_logger = logging.getLogger("python_client.engineio")
    engine_logger.setLevel(logging.INFO)
    engine_logger.propagate = False
    engine_logger.addHandler(Capture())
    if os.environ.get("CLIENT_DEBUG_LOG"):
        debug = logging.FileHandler(os.environ["CLIENT_DEBUG_LOG"] + "." + mode)
        debug.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        engine_logger.addHandler(debug)
        engine_logger.setLevel(logging.DEBUG)

    def opened_with():
        for line in engine_log:
            if line.startswith("Attempting polling connection"):
                return "polling"
            if line.startswith("Attempting WebSocket connection"):
                return "websocket"
        return None

    def upgraded():
        return any(line.startswith("WebSocket upgrade was successful") for line in engine_log)

    if mode == "polling-only":
        # python-engineio refuses a long-polling response of more than 16 packets
        # ("Unexpected packet from server, aborting", then a "transport error" disconnect),
        # and the server sends every queued packet in one response (up to maxPayload,
        # 100000 bytes): more than 16 notifications between two polls. A payload cannot
        # hold more packets than bytes, so this limit only keeps the client from aborting.
        # (With the default transports the client upgrades to websocket before the
        # namespace connects, so this only matters when it stays on long-polling.)
        engineio.payload.Payload.max_decode_packets = 100000

    sio = socketio.AsyncClient(reconnection=False, engineio_logger=engine_logger)
    done = asyncio.Event()
    messages = []
    notifications = []
    events = []  # every other event: gap, disconnect_reason, ...
    state = {"connect_error": None, "disconnected": None}

    def collected():
        return len(messages) + len(notifications)

    @sio.on("message")
    async def on_message(data):
        messages.append(data)
        if collected() >= count:
            done.set()

    @sio.on("notification")
    async def on_notification(data):
        notifications.append(data)
        if collected() >= count:
            done.set()

    @sio.on("*")
    async def on_other(event, *args):
        events.append({"event": event, "data": list(args)})

    @sio.event
    async def connect_error(data):
        state["connect_error"] = data

    @sio.event
    async def disconnect(reason=None):
        state["disconnected"] = str(reason) if reason is not None else "disconnected"
        done.set()

    transports = {
        "websocket": ["websocket"],
        "polling-only": ["polling"],
    }.get(mode, ["polling", "websocket"])
    try:
        await sio.connect(url, auth=auth, transports=transports, wait_timeout=10)
    except socketio.exceptions.ConnectionError as error:
        detail = state["connect_error"]
        if isinstance(detail, dict):
            message = detail.get("message", json.dumps(detail))
        elif detail is not None:
            message = str(detail)
        else:
            message = str(error)
        print(json.dumps({
            "client": "python-socketio",
            "mode": mode,
            "refused": True,
            "message": message,
        }), flush=True)
        return 0 if mode == "refused" else 1

    at_connect = sio.transport()
    if mode == "refused":
        print(json.dumps({
            "client": "python-socketio",
            "mode": mode,
            "refused": False,
            "message": None,
            "transport": at_connect,
        }), flush=True)
        await sio.disconnect()
        return 1

    print(f"connected {at_connect}", flush=True)
    try:
        await asyncio.wait_for(done.wait(), timeout)
        timed_out = False
    except asyncio.TimeoutError:
        timed_out = True
    summary = {
        "client": "python-socketio",
        "mode": mode,
        "connected": True,
        "opened_with": opened_with(),
        "upgraded": upgraded(),
        "transport": sio.transport(),
        "count": collected(),
        "messages": list(messages),
        "notifications": list(notifications),
        "events": list(events),
        "timed_out": timed_out,
        "disconnected": state["disconnected"],
    }
    if sio.connected:
        await sio.disconnect()
    print(json.dumps(summary), flush=True)
    return 0


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in MODES:
        print(__doc__, file=sys.stderr)
        return 2
    mode, url, rune = sys.argv[1], sys.argv[2], sys.argv[3]
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 60.0
    auth = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}
    if rune != "-":
        auth["rune"] = rune
    return asyncio.run(run(mode, url, auth, count, timeout))


if __name__ == "__main__":
    sys.exit(main())
