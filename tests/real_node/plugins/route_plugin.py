#!/usr/bin/env python3
"""A plugin written for the real-node tests: it publishes REST routes through clnrest.

Right after `init` it calls `clnrest-register-path` (through lightningd, as any plugin would)
for `POST v1/echo/{name}` -> `route-echo`, which answers with the params it received, so a
test sees the path capture and the body arrive.

`route-pretty` answers after `sleep_ms` (in a thread of its own, so calls overlap) with its
reply pretty-printed and a blank line after every line, as a plugin that pretty-prints its
JSON writes it: lightningd forwards that text as it is, `"\n\n"` inside one answer.
Standard library only.
"""

import json
import os
import socket
import sys
import threading
import time

REGISTRATIONS = [
    {"path": "v1/echo/{name}", "rpc_method": "route-echo", "http_method": "POST"},
]


def log(message):
    write({"jsonrpc": "2.0", "method": "log", "params": {"level": "info", "message": message}})


stdout_lock = threading.Lock()


def write(message):
    write_text(json.dumps(message) + "\n\n")


def write_text(text):
    with stdout_lock:
        sys.stdout.write(text)
        sys.stdout.flush()


def answer_pretty(request):
    """Answers a `route-pretty` call later, pretty-printed with blank lines inside."""
    params = request.get("params", {})
    if isinstance(params, dict):
        time.sleep(params.get("sleep_ms", 0) / 1000)
    result = {
        "pretty": params,
        "lines": ["one", "two\n\nthree", "}{"],
        "nested": {"empty": {}, "list": [[], [1, 2]]},
    }
    reply = {"jsonrpc": "2.0", "id": request["id"], "result": result}
    write_text(json.dumps(reply, indent=2).replace("\n", "\n\n") + "\n\n")


def rpc(path, method, params):
    """One call on lightning-rpc; the decoded answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(path)
        request = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        connection.sendall(json.dumps(request).encode())
        decoder = json.JSONDecoder()
        buffer = ""
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                raise ConnectionError("lightning-rpc closed")
            buffer += chunk.decode()
            try:
                answer, _ = decoder.raw_decode(buffer.lstrip())
                return answer
            except json.JSONDecodeError:
                continue


def register(rpc_path):
    """Registers the routes, retrying while clnrest is not ready yet."""
    for registration in REGISTRATIONS:
        for _ in range(200):
            answer = rpc(rpc_path, "clnrest-register-path", registration)
            if "result" in answer:
                log(f"registered {registration['path']}")
                break
            time.sleep(0.05)
        else:
            log(f"could not register {registration['path']}: {answer}")


def answer(request):
    method = request.get("method")
    params = request.get("params", {})
    if method == "getmanifest":
        return {
            "options": [],
            "rpcmethods": [
                {"name": "route-echo", "usage": "", "description": "echoes its params"},
                {
                    "name": "route-pretty",
                    "usage": "[sleep_ms]",
                    "description": "answers pretty-printed, blank lines inside",
                },
            ],
            "dynamic": True,
        }
    if method == "init":
        configuration = params["configuration"]
        rpc_path = os.path.join(configuration["lightning-dir"], configuration["rpc-file"])
        threading.Thread(target=register, args=(rpc_path,), daemon=True).start()
        return {}
    if method == "route-echo":
        return {"echo": params}
    return None


def main():
    decoder = json.JSONDecoder()
    buffer = ""
    for chunk in iter(sys.stdin.readline, ""):
        buffer += chunk
        while True:
            stripped = buffer.lstrip()
            if not stripped:
                buffer = ""
                break
            try:
                request, end = decoder.raw_decode(stripped)
            except json.JSONDecodeError:
                buffer = stripped
                break
            buffer = stripped[end:]
            if "id" not in request:
                continue
            if request.get("method") == "route-pretty":
                threading.Thread(target=answer_pretty, args=(request,), daemon=True).start()
                continue
            result = answer(request)
            reply = {"jsonrpc": "2.0", "id": request["id"]}
            if result is None:
                reply["error"] = {"code": -32601, "message": "unknown method"}
            else:
                reply["result"] = result
            write(reply)


if __name__ == "__main__":
    main()
