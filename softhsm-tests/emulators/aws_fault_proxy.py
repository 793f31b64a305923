"""A pass-through to an AWS KMS stand-in (LocalStack) that can answer as AWS does when the
caller lacks a permission or its credentials have expired, which LocalStack's community
edition never does (it checks no IAM policy and accepts any credentials).

Run: python aws_fault_proxy.py --upstream http://127.0.0.1:<localstack port>. It listens
on 127.0.0.1:0 and prints PORT=<n> as its first line. Every request goes to the upstream
unchanged, unless a fault is set. Admin endpoints (not AWS's):
  GET  /_emulator/state  {"fault": ..., "forwarded": n, "refused": n}
  POST /_emulator/fault  {"mode": "none" | "deny" | "expired" | "error500"}
"""

import argparse
import http.client
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"fault": {"mode": "none"}, "forwarded": 0, "refused": 0}


def refusal(mode, target):
    """AWS's answer (JSON 1.1 protocol) for `mode` to the action in X-Amz-Target."""
    action = target.rsplit(".", 1)[-1] if target else "Unknown"
    if mode == "deny":
        return 400, {
            "__type": "AccessDeniedException",
            "message": f"User: arn:aws:iam::111122223333:user/ironseal is not authorized to perform: "
                       f"kms:{action} because no identity-based policy allows the kms:{action} action",
        }
    if mode == "expired":
        return 400, {"__type": "ExpiredTokenException",
                     "message": "The security token included in the request is expired"}
    return 500, {"__type": "KMSInternalException", "message": "An internal error occurred."}


def make_handler(upstream):
    up = urllib.parse.urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def answer(self, status, body, content_type):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def handle_any(self, method):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.path.startswith("/_emulator/"):
                with LOCK:
                    if self.path == "/_emulator/fault" and method == "POST":
                        STATE["fault"] = json.loads(raw or b"{}")
                    body = json.dumps(STATE).encode()
                return self.answer(200, body, "application/json")
            with LOCK:
                mode = STATE["fault"].get("mode", "none")
                STATE["refused" if mode != "none" else "forwarded"] += 1
            if mode != "none":
                status, body = refusal(mode, self.headers.get("X-Amz-Target"))
                return self.answer(status, json.dumps(body).encode(), "application/x-amz-json-1.1")
            connection = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
            connection.request(method, self.path, body=raw, headers=headers)
            reply = connection.getresponse()
            data = reply.read()
            connection.close()
            self.answer(reply.status, data, reply.getheader("Content-Type") or "application/json")

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(args.upstream))
    print(f"PORT={server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
