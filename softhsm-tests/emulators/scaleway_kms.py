"""A stand-in for Scaleway Key Manager (v1alpha1) BYOK, for tests.

Speaks the documented REST shapes: keys created with origin "external" start in
pending_key_material, import-key-material takes base64 `key_material` (and an optional
`salt`) once, while the key is pending (a second import answers precondition_failed), and
the key becomes enabled. Requests authenticate with X-Auth-Token (the API key's secret).
What arrives is recorded as its SHA-256, and in hex (`materialHex`): this is a test
stand-in, and the tests decrypt the appliance's ciphertexts with the very bytes received.

Listens on 127.0.0.1:0 and prints PORT=<n> first. Admin endpoints (not Scaleway's):
  POST /_emulator/setup  {"secretKeys": ["..."]}
  GET  /_emulator/state
  POST /_emulator/fault  {"mode": "none" | "deny" | "expired" | "error500"}
"""

import base64
import binascii
import hashlib
import json
import os
import re
import sys
import threading
import urllib.parse
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"secretKeys": set(), "keys": {}, "fault": {"mode": "none"}}
KEYS_PATH = re.compile(r"^/key-manager/v1alpha1/regions/([a-z0-9-]+)/keys(?:/([0-9a-f-]+)(?:/([a-z-]+))?)?$")


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ScwError(Exception):
    def __init__(self, status, body):
        super().__init__(body.get("message"))
        self.status, self.body = status, body


def invalid(argument, help_message):
    return ScwError(400, {
        "type": "invalid_arguments",
        "message": "invalid argument(s)",
        "details": [{"argument_name": argument, "reason": "constraint", "help_message": help_message}],
    })


def public(key):
    return {k: v for k, v in key.items() if not k.startswith("_")}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        # Quiet unless asked: the tests' output is about the product, not each request.
        if os.environ.get("IRONSEAL_EMULATOR_LOG"):
            sys.stderr.write("scaleway_kms: " + (fmt % args) + "\n")

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def route(self, method):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            with LOCK:
                if url.path.startswith("/_emulator/"):
                    return self.admin(method, url.path, raw)
                match = KEYS_PATH.match(url.path)
                if not match:
                    raise ScwError(404, {"type": "not_found", "message": f"no such route: {url.path}"})
                self.authenticate()
                region, key_id, verb = match.groups()
                query = urllib.parse.parse_qs(url.query)
                body = json.loads(raw) if raw else {}
                if key_id is None and method == "POST":
                    return self.create(region, body)
                if key_id is None and method == "GET":
                    return self.list(region, query)
                key = STATE["keys"].get(key_id)
                if key is None or key["region"] != region:
                    raise ScwError(404, {"type": "not_found", "message": "resource is not found",
                                         "resource": "key", "resource_id": key_id})
                if verb is None and method == "GET":
                    self.deny("read")
                    return self.reply(200, public(key))
                if verb == "import-key-material" and method == "POST":
                    return self.import_material(key, body)
                raise ScwError(404, {"type": "not_found", "message": f"no such route: {method} {url.path}"})
        except ScwError as e:
            self.reply(e.status, e.body)

    def admin(self, method, path, raw):
        if path == "/_emulator/state" and method == "GET":
            return self.reply(200, {"keys": [{**public(k), "materialSha256": k["_sha256"], "materialHex": k["_hex"],
                                              "materialLength": k["_length"], "imports": k["_imports"]}
                                             for k in STATE["keys"].values()],
                                    "fault": STATE["fault"]})
        if path == "/_emulator/fault" and method == "POST":
            STATE["fault"] = json.loads(raw or b"{}")
            return self.reply(200, STATE["fault"])
        if path == "/_emulator/setup" and method == "POST":
            STATE["secretKeys"].update(json.loads(raw or b"{}").get("secretKeys", []))
            return self.reply(200, {})
        raise ScwError(404, {"type": "not_found", "message": path})

    def authenticate(self):
        mode = STATE["fault"].get("mode")
        if mode == "error500":
            raise ScwError(500, {"type": "internal_error", "message": "internal error"})
        token = self.headers.get("X-Auth-Token")
        if token not in STATE["secretKeys"]:
            raise ScwError(401, {"type": "denied_authentication", "message": "authentication is denied",
                                 "method": "api_key", "reason": "invalid_argument"})
        if mode == "expired":
            raise ScwError(401, {"type": "denied_authentication", "message": "authentication is denied",
                                 "method": "api_key", "reason": "expired"})

    def deny(self, action):
        if STATE["fault"].get("mode") == "deny":
            raise ScwError(403, {"type": "permissions_denied", "message": "insufficient permissions",
                                 "details": [{"resource": "kms", "action": action}]})

    def create(self, region, body):
        self.deny("write")
        for field in ("project_id",):
            if not body.get(field):
                raise invalid(field, "required")
        usage = body.get("usage") or {}
        origin = body.get("origin", "scaleway_kms")
        if origin == "external" and usage != {"symmetric_encryption": "aes_256_gcm"}:
            raise invalid("usage", "only aes_256_gcm symmetric keys can have the external origin")
        tags = body.get("tags") or []
        if not all(isinstance(t, str) for t in tags):
            raise invalid("tags", "tags are strings")
        key_id = str(uuid.uuid4())
        key = {
            "id": key_id,
            "project_id": body["project_id"],
            "name": body.get("name", ""),
            "usage": usage,
            "state": "pending_key_material" if origin == "external" else "enabled",
            "rotation_count": 0,
            "created_at": now(),
            "updated_at": now(),
            "protected": not body.get("unprotected", False),
            "locked": False,
            "description": body.get("description"),
            "tags": tags,
            "rotated_at": None,
            "origin": origin,
            "region": region,
            "_sha256": None,
            "_hex": None,
            "_length": None,
            "_imports": 0,
        }
        STATE["keys"][key_id] = key
        self.reply(200, public(key))

    def list(self, region, query):
        self.deny("read")
        wanted_tags = query.get("tags", [])
        project = (query.get("project_id") or [None])[0]
        page = int((query.get("page") or ["1"])[0])
        size = int((query.get("page_size") or ["20"])[0])
        keys = [k for k in STATE["keys"].values()
                if k["region"] == region
                and (project is None or k["project_id"] == project)
                and all(t in k["tags"] for t in wanted_tags)]
        chosen = keys[(page - 1) * size: page * size]
        self.reply(200, {"keys": [public(k) for k in chosen], "total_count": len(keys)})

    def import_material(self, key, body):
        self.deny("write")
        if key["origin"] != "external":
            raise ScwError(412, {"type": "precondition_failed", "message": "key origin must be external",
                                 "precondition": "key_origin_not_external"})
        if key["state"] != "pending_key_material":
            raise ScwError(412, {"type": "precondition_failed",
                                 "message": "key must be in pending_key_material state",
                                 "precondition": "key_not_pending_key_material"})
        try:
            material = base64.b64decode(body.get("key_material", ""), validate=True)
        except binascii.Error:
            raise invalid("key_material", "must be base64")
        if not material:
            raise invalid("key_material", "required")
        key["_sha256"] = hashlib.sha256(material).hexdigest()
        key["_hex"] = material.hex()
        key["_length"] = len(material)
        key["_imports"] += 1
        key["state"] = "enabled"
        key["rotation_count"] = 1
        key["rotated_at"] = now()
        key["updated_at"] = now()
        self.reply(200, public(key))


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"PORT={server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
