#!/usr/bin/env python3
"""Consumes what clnrest publishes to RabbitMQ, with pika (a client independent of the
plugin's), and prints one JSON line per message received, for tests/broker.rs.

Declares the exchange (a durable topic exchange, as the plugin would create it) and a durable
queue bound to it with `#`, prints {"ready": true}, then prints every message:
{"id": message_id, "key": routing_key, "redelivered": bool, "delivery_mode": n,
"content_type": "...", "body": {...}} and acknowledges it after printing. Reconnects when the
broker goes away (the test restarts it). Exits once it has seen --count distinct message ids,
or after --timeout seconds (with no --count, runs until it is killed or times out).
"""

import argparse
import json
import sys
import time

import pika


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--exchange", default="clnrest")
    parser.add_argument("--queue", default="clnrest-test")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--setup-only", action="store_true")
    args = parser.parse_args()

    deadline = time.monotonic() + args.timeout
    seen = set()
    ready = False

    def out(line):
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    def enough():
        return args.count and len(seen) >= args.count

    while time.monotonic() < deadline and not enough():
        try:
            params = pika.ConnectionParameters(
                host="127.0.0.1", port=args.port, heartbeat=30, blocked_connection_timeout=30
            )
            connection = pika.BlockingConnection(params)
            channel = connection.channel()
            channel.exchange_declare(args.exchange, exchange_type="topic", durable=True)
            channel.queue_declare(args.queue, durable=True)
            channel.queue_bind(args.queue, args.exchange, routing_key="#")
            if not ready:
                ready = True
                out({"ready": True})
            if args.setup_only:
                connection.close()
                return
            channel.basic_qos(prefetch_count=500)
            for method, properties, body in channel.consume(
                args.queue, inactivity_timeout=1
            ):
                if method is None:
                    if time.monotonic() >= deadline:
                        break
                    continue
                out(
                    {
                        "id": properties.message_id,
                        "key": method.routing_key,
                        "redelivered": method.redelivered,
                        "delivery_mode": properties.delivery_mode,
                        "content_type": properties.content_type,
                        "body": json.loads(body),
                    }
                )
                channel.basic_ack(method.delivery_tag)
                seen.add(properties.message_id)
                if enough():
                    break
            try:
                connection.close()
            except Exception:
                pass
        except (pika.exceptions.AMQPError, OSError) as error:
            out({"disconnected": str(error) or type(error).__name__})
            time.sleep(0.2)
    out({"done": len(seen)})


if __name__ == "__main__":
    main()
