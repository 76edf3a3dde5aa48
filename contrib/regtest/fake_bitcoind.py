#!/usr/bin/env python3
"""A stand-in Bitcoin backend plugin for a throw-away regtest lightningd with no bitcoind.

lightningd needs a backend plugin answering five methods (see ../../docs/real-node-tests.md).
This one keeps the node alive at height 0: the chain is the regtest genesis block alone, fees
are at the floor, no UTXO exists and every broadcast "succeeds". Start lightningd with
`--disable-plugin=bcli --plugin=<this file>`.

Only the standard library: it speaks the plugin protocol (JSON-RPC on stdin/stdout) itself.
"""

import hashlib
import json
import struct
import sys

# The genesis coinbase, the same on every network ("The Times 03/Jan/2009 ...").
COINBASE = bytes.fromhex(
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff"
    "4d04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72"
    "206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff"
    "0100f2052a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f"
    "61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000"
)
REGTEST_GENESIS_HASH = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"


def sha256d(data):
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def genesis_block():
    """The regtest genesis block (hex), checked against its well-known hash."""
    merkle_root = sha256d(COINBASE)
    header = (
        struct.pack("<I", 1)
        + bytes(32)
        + merkle_root
        + struct.pack("<III", 1296688602, 0x207FFFFF, 2)
    )
    block_hash = sha256d(header)[::-1].hex()
    if block_hash != REGTEST_GENESIS_HASH:
        raise SystemExit(f"fake_bitcoind: built genesis hash {block_hash} is wrong")
    return (header + b"\x01" + COINBASE).hex()


GENESIS_HEX = genesis_block()

OPTIONS = [
    "bitcoin-datadir",
    "bitcoin-cli",
    "bitcoin-rpcuser",
    "bitcoin-rpcpassword",
    "bitcoin-rpcconnect",
    "bitcoin-rpcport",
    "bitcoin-retry-timeout",
    "bitcoin-rpcclienttimeout",
]
METHODS = [
    "getchaininfo",
    "estimatefees",
    "getrawblockbyheight",
    "getutxout",
    "sendrawtransaction",
]


def answer(method, params):
    if method == "getmanifest":
        return {
            "options": [
                {"name": name, "type": "string", "description": "ignored (fake backend)"}
                for name in OPTIONS
            ],
            "rpcmethods": [
                {"name": name, "usage": "", "description": "fake Bitcoin backend"}
                for name in METHODS
            ],
            "dynamic": False,
        }
    if method == "init":
        return {}
    if method == "getchaininfo":
        return {"chain": "regtest", "headercount": 0, "blockcount": 0, "ibd": False}
    if method == "estimatefees":
        return {
            "feerate_floor": 1000,
            "feerates": [{"blocks": n, "feerate": 1000} for n in (2, 6, 12, 100)],
        }
    if method == "getrawblockbyheight":
        height = params.get("height") if isinstance(params, dict) else params[0]
        if height == 0:
            return {"blockhash": REGTEST_GENESIS_HASH, "block": GENESIS_HEX}
        return {"blockhash": None, "block": None}
    if method == "getutxout":
        return {"amount": None, "script": None}
    if method == "sendrawtransaction":
        return {"success": True, "errmsg": ""}
    return None


def main():
    decoder = json.JSONDecoder()
    buffer = ""
    for chunk in iter(lambda: sys.stdin.readline(), ""):
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
                continue  # a notification: this plugin subscribes to none
            result = answer(request.get("method"), request.get("params", {}))
            if result is None:
                reply = {"error": {"code": -32601, "message": "unknown method"}}
            else:
                reply = {"result": result}
            reply.update({"jsonrpc": "2.0", "id": request["id"]})
            sys.stdout.write(json.dumps(reply) + "\n\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
