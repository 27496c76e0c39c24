#!/usr/bin/env python3
"""The seed's backend: POST /sales/save-order prints each order it receives and answers 200.

Usage: demo_backend.py [--host 127.0.0.1] [--port 9090]
Standard library only, so `make local` needs no build for it.
"""
import argparse
import datetime
import http.server
import json
import sys

PATH = "/sales/save-order"


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "storeforward-demo-backend"

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        if self.path != PATH:
            self._answer(404, {"error": f"no route for {self.path}"})
            return
        now = datetime.datetime.now().isoformat(timespec="milliseconds")
        key = self.headers.get("idempotency-key", "-")
        print(f"{now} order received  idempotency-key={key}  body={body.decode('utf-8', 'replace')}", flush=True)
        self._answer(200, {"status": "Received order request to persist"})

    def _answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # the order line above is the log
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9090)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"demo backend listening on http://{args.host}:{args.port}{PATH}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
