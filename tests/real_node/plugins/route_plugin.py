#!/usr/bin/env python3
"""A plugin written for the real-node tests: it publishes REST routes through clnrest.

Right after `init` it calls `clnrest-register-path` (through lightningd, as any plugin would)
for `POST v1/echo/{name}` -> `route-echo`, which answers with the params it received, so a
test sees the path capture and the body arrive. Standard library only.
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
    with stdout_lock:
        sys.stdout.write(json.dumps(message) + "\n\n")
        sys.stdout.flush()


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
            result = answer(request)
            reply = {"jsonrpc": "2.0", "id": request["id"]}
            if result is None:
                reply["error"] = {"code": -32601, "message": "unknown method"}
            else:
                reply["result"] = result
            write(reply)


if __name__ == "__main__":
    main()
