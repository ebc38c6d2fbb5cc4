"""A webhook receiver for tests and benchmarks, run as its own process.

    python tests/webhook_receiver.py --port P --secret S --log deliveries.jsonl

Checks the HMAC signature (401 when wrong), appends one JSON line per POST it accepts
({"key", "call_id", "duplicate", "t"}) and answers 200, also for a repeated Idempotency-Key
(as a real idempotent receiver would), so callers can count duplicates from the log.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    seen: set[str] = set()
    if os.path.exists(args.log):
        with open(args.log) as fh:
            seen = {json.loads(line)["key"] for line in fh if line.strip()}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            want = "sha256=" + hmac.new(args.secret.encode(), body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(want, self.headers.get("X-Callcenter-Signature", "")):
                self._reply(401)
                return
            key = self.headers.get("Idempotency-Key", "")
            call_id = json.loads(body).get("call_id")
            record = {"key": key, "call_id": call_id, "duplicate": key in seen, "t": time.time()}
            seen.add(key)
            with open(args.log, "a") as fh:
                fh.write(json.dumps(record) + "\n")
                fh.flush()
            self._reply(200)

        def _reply(self, code: int) -> None:
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
