"""A stand-in for GCP Cloud KMS's import path and Google's OAuth token endpoint, for tests.

Speaks the documented REST shapes (Cloud KMS v1: keyRings, cryptoKeys with importOnly,
importJobs, cryptoKeyVersions:import, publicKey, labels PATCH; the JWT-bearer grant at
/token) and checks what it receives independently of the product: the service account's
JWT is verified against the public key the test registers, and every import is unwrapped
with `cryptography` (RSA-OAEP with the job's hash, then AES-KWP, RFC 5649) into a strict
PKCS#8 private key whose public key is kept for the test to compare.

Listens on 127.0.0.1:0 and prints PORT=<n> first. Admin endpoints (not GCP's):
  POST /_emulator/setup  {"serviceAccounts": [{"clientEmail", "publicKeyPem"}],
                          "keyRings": ["projects/p/locations/l/keyRings/r"]}
  GET  /_emulator/state
  POST /_emulator/fault  {"mode": "none" | "deny" | "expired" | "error500",
                          "permission": "cloudkms.importJobs.create" (deny only that one)}
"""

import base64
import json
import os
import re
import sys
import threading
import time
import urllib.parse
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

LOCK = threading.Lock()
STATE = {
    "serviceAccounts": {},  # clientEmail -> public key object
    "tokens": {},  # access token -> clientEmail
    "tokensIssued": 0,
    "keyRings": {},  # name -> resource
    "cryptoKeys": {},  # name -> resource (+ "_versions": [version])
    "importJobs": {},  # name -> resource (+ "_private": key)
    "fault": {"mode": "none"},
}

IMPORT_METHODS = {
    "RSA_OAEP_3072_SHA1_AES_256": (3072, hashes.SHA1),
    "RSA_OAEP_3072_SHA256_AES_256": (3072, hashes.SHA256),
    "RSA_OAEP_4096_SHA1_AES_256": (4096, hashes.SHA1),
    "RSA_OAEP_4096_SHA256_AES_256": (4096, hashes.SHA256),
}
RSA_ALGORITHM = re.compile(r"^RSA_(SIGN_PKCS1|SIGN_PSS|DECRYPT_OAEP)_(2048|3072|4096)_SHA256$")
LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
ID = re.compile(r"^[a-zA-Z0-9_-]{1,63}$")


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class GcpError(Exception):
    def __init__(self, code, status, message):
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


def not_found(what, name):
    return GcpError(404, "NOT_FOUND", f"{what} {name} not found.")


def invalid(message):
    return GcpError(400, "INVALID_ARGUMENT", message)


def public(resource):
    return {k: v for k, v in resource.items() if not k.startswith("_")}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        # Quiet unless asked: the tests' output is about the product, not each request.
        if os.environ.get("IRONSEAL_EMULATOR_LOG"):
            sys.stderr.write("gcp_kms: " + (fmt % args) + "\n")

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PATCH(self):
        self.route("PATCH")

    def route(self, method):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        raw = self.body()
        try:
            if url.path.startswith("/_emulator/"):
                return self.admin(method, url.path, raw)
            if url.path == "/token" and method == "POST":
                return self.token(raw)
            if url.path.startswith("/v1/"):
                return self.kms(method, url.path[len("/v1/"):], query, raw)
            raise GcpError(404, "NOT_FOUND", f"no such route: {method} {url.path}")
        except GcpError as e:
            self.reply(e.code, {"error": {"code": e.code, "message": e.message, "status": e.status}})

    # --- admin -----------------------------------------------------------------------

    def admin(self, method, path, raw):
        with LOCK:
            if path == "/_emulator/state" and method == "GET":
                return self.reply(200, snapshot())
            if path == "/_emulator/fault" and method == "POST":
                STATE["fault"] = json.loads(raw or b"{}")
                return self.reply(200, STATE["fault"])
            if path == "/_emulator/setup" and method == "POST":
                setup = json.loads(raw or b"{}")
                for account in setup.get("serviceAccounts", []):
                    key = serialization.load_pem_public_key(account["publicKeyPem"].encode())
                    STATE["serviceAccounts"][account["clientEmail"]] = key
                for ring in setup.get("keyRings", []):
                    STATE["keyRings"][ring] = {"name": ring, "createTime": now()}
                return self.reply(200, {})
        raise GcpError(404, "NOT_FOUND", path)

    # --- OAuth (RFC 7523 JWT bearer) ---------------------------------------------------

    def token(self, raw):
        fault = STATE["fault"].get("mode")
        if fault == "error500":
            return self.reply(500, {"error": "internal_failure", "error_description": "Backend Error"})
        form = dict(urllib.parse.parse_qsl(raw.decode()))
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self.reply(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type."})
        try:
            head, claims, signature = form.get("assertion", "").split(".")
            header = json.loads(b64url_decode(head))
            payload = json.loads(b64url_decode(claims))
        except ValueError:
            return self.reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT."})
        if fault == "expired":
            return self.reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        key = STATE["serviceAccounts"].get(payload.get("iss"))
        if header.get("alg") != "RS256" or key is None:
            return self.reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        try:
            key.verify(b64url_decode(signature), f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return self.reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        expected_aud = f"http://127.0.0.1:{self.server.server_port}/token"
        issued, expires = payload.get("iat", 0), payload.get("exp", 0)
        if payload.get("aud") != expected_aud:
            return self.reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT: aud is not the token endpoint."})
        if not (expires > time.time() - 60 and issued < time.time() + 60 and 0 < expires - issued <= 3600):
            return self.reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."})
        if "https://www.googleapis.com/auth/cloudkms" not in payload.get("scope", "").split():
            return self.reply(400, {"error": "invalid_scope", "error_description": "cloudkms scope missing."})
        token = "ya29.emulator-" + uuid.uuid4().hex
        with LOCK:
            STATE["tokens"][token] = payload["iss"]
            STATE["tokensIssued"] += 1
        self.reply(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    # --- Cloud KMS v1 ------------------------------------------------------------------

    def kms(self, method, path, query, raw):
        fault = STATE["fault"]
        if fault.get("mode") == "error500":
            raise GcpError(500, "INTERNAL", "Internal error encountered.")
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in STATE["tokens"] or fault.get("mode") == "expired":
            raise GcpError(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
        body = json.loads(raw) if raw else {}
        with LOCK:
            return self.kms_locked(method, path, query, body, fault)

    def deny(self, fault, permission, resource):
        if fault.get("mode") == "deny" and fault.get("permission", permission) == permission:
            raise GcpError(403, "PERMISSION_DENIED", f"Permission '{permission}' denied on resource '{resource}' (or it may not exist).")

    def kms_locked(self, method, path, query, body, fault):
        parts = path.split("/")
        # projects/P/locations/L/keyRings/R ...
        if len(parts) < 6 or parts[0] != "projects" or parts[2] != "locations" or parts[4] != "keyRings":
            raise GcpError(404, "NOT_FOUND", f"no such resource: {path}")
        ring = "/".join(parts[:6])
        rest = parts[6:]
        if not rest and method == "GET":
            self.deny(fault, "cloudkms.keyRings.get", ring)
            if ring not in STATE["keyRings"]:
                raise not_found("KeyRing", ring)
            return self.reply(200, STATE["keyRings"][ring])
        if ring not in STATE["keyRings"]:
            raise not_found("KeyRing", ring)
        if rest == ["importJobs"] and method == "POST":
            return self.create_import_job(ring, query, body, fault)
        if len(rest) == 2 and rest[0] == "importJobs" and method == "GET":
            name = f"{ring}/importJobs/{rest[1]}"
            self.deny(fault, "cloudkms.importJobs.get", name)
            job = STATE["importJobs"].get(name) or raise_(not_found("ImportJob", name))
            if job["state"] == "PENDING_GENERATION":
                # Generation is asynchronous at GCP: the first look finds it pending.
                job["state"] = "ACTIVE"
                job["generateTime"] = now()
                job["publicKey"] = {"pem": job["_private"].public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()}
            return self.reply(200, public(job))
        if rest == ["cryptoKeys"] and method == "POST":
            return self.create_crypto_key(ring, query, body, fault)
        if len(rest) >= 2 and rest[0] == "cryptoKeys":
            key_id, verb = (rest[1].split(":", 1) + [None])[:2]
            key_name = f"{ring}/cryptoKeys/{key_id}"
            key = STATE["cryptoKeys"].get(key_name)
            tail = rest[2:]
            if not tail and verb is None and method == "GET":
                self.deny(fault, "cloudkms.cryptoKeys.get", key_name)
                return self.reply(200, public(key or raise_(not_found("CryptoKey", key_name))))
            if not tail and verb is None and method == "PATCH":
                return self.patch_crypto_key(key_name, key, query, body, fault)
            if key is None:
                raise not_found("CryptoKey", key_name)
            if tail == ["cryptoKeyVersions:import"] and method == "POST":
                return self.import_version(key_name, key, body, fault)
            if tail == ["cryptoKeyVersions"] and method == "GET":
                self.deny(fault, "cloudkms.cryptoKeyVersions.list", key_name)
                versions = [public(v) for v in key["_versions"]]
                return self.reply(200, {"cryptoKeyVersions": versions, "totalSize": len(versions)} if versions else {})
            if len(tail) >= 2 and tail[0] == "cryptoKeyVersions":
                name = f"{key_name}/cryptoKeyVersions/{tail[1]}"
                version = next((v for v in key["_versions"] if v["name"] == name), None)
                if version is None:
                    raise not_found("CryptoKeyVersion", name)
                if len(tail) == 2 and method == "GET":
                    self.deny(fault, "cloudkms.cryptoKeyVersions.get", name)
                    if version["state"] == "PENDING_IMPORT":
                        settle(version)
                    return self.reply(200, public(version))
                if tail[2:] == ["publicKey"] and method == "GET":
                    self.deny(fault, "cloudkms.cryptoKeyVersions.viewPublicKey", name)
                    if version["state"] != "ENABLED":
                        raise GcpError(400, "FAILED_PRECONDITION", f"{name} is not enabled, current state is: {version['state']}.")
                    return self.reply(200, {"pem": version["_publicKeyPem"], "algorithm": version["algorithm"], "name": name})
        raise GcpError(404, "NOT_FOUND", f"no such resource: {method} {path}")

    def create_import_job(self, ring, query, body, fault):
        self.deny(fault, "cloudkms.importJobs.create", ring)
        job_id = query.get("importJobId", "")
        if not ID.match(job_id):
            raise invalid("importJobId must match [a-zA-Z0-9_-]{1,63}.")
        name = f"{ring}/importJobs/{job_id}"
        if name in STATE["importJobs"]:
            raise GcpError(409, "ALREADY_EXISTS", f"ImportJob {name} already exists.")
        method = body.get("importMethod")
        if method not in IMPORT_METHODS:
            raise invalid(f"importMethod {method!r} is not supported.")
        if body.get("protectionLevel") not in ("SOFTWARE", "HSM"):
            raise invalid("protectionLevel must be SOFTWARE or HSM.")
        bits, _ = IMPORT_METHODS[method]
        job = {
            "name": name,
            "importMethod": method,
            "protectionLevel": body["protectionLevel"],
            "createTime": now(),
            "state": "PENDING_GENERATION",
            "_private": rsa.generate_private_key(public_exponent=65537, key_size=bits),
        }
        STATE["importJobs"][name] = job
        self.reply(200, public(job))

    def create_crypto_key(self, ring, query, body, fault):
        self.deny(fault, "cloudkms.cryptoKeys.create", ring)
        key_id = query.get("cryptoKeyId", "")
        if not ID.match(key_id):
            raise invalid("cryptoKeyId must match [a-zA-Z0-9_-]{1,63}.")
        name = f"{ring}/cryptoKeys/{key_id}"
        if name in STATE["cryptoKeys"]:
            raise GcpError(409, "ALREADY_EXISTS", f"CryptoKey {name} already exists.")
        if body.get("importOnly") and query.get("skipInitialVersionCreation") != "true":
            raise invalid("Import-only CryptoKeys require skipInitialVersionCreation.")
        purpose = body.get("purpose")
        algorithm = (body.get("versionTemplate") or {}).get("algorithm", "")
        if purpose not in ("ASYMMETRIC_SIGN", "ASYMMETRIC_DECRYPT", "ENCRYPT_DECRYPT") or not algorithm:
            raise invalid("purpose and versionTemplate.algorithm are required.")
        check_labels(body.get("labels") or {})
        key = {
            "name": name,
            "purpose": purpose,
            "createTime": now(),
            "versionTemplate": {"algorithm": algorithm, "protectionLevel": body["versionTemplate"].get("protectionLevel", "SOFTWARE")},
            "importOnly": bool(body.get("importOnly")),
            "labels": body.get("labels") or {},
            "_versions": [],
        }
        STATE["cryptoKeys"][name] = key
        self.reply(200, public(key))

    def patch_crypto_key(self, name, key, query, body, fault):
        self.deny(fault, "cloudkms.cryptoKeys.update", name)
        if key is None:
            raise not_found("CryptoKey", name)
        if query.get("updateMask") != "labels":
            raise invalid("the emulator updates labels only (updateMask=labels).")
        labels = body.get("labels") or {}
        check_labels(labels)
        key["labels"] = labels
        self.reply(200, public(key))

    def import_version(self, key_name, key, body, fault):
        self.deny(fault, "cloudkms.cryptoKeyVersions.create", key_name)
        algorithm = body.get("algorithm", "")
        job = STATE["importJobs"].get(body.get("importJob", ""))
        if job is None:
            raise invalid(f"importJob {body.get('importJob')!r} not found.")
        if job["state"] != "ACTIVE":
            raise GcpError(400, "FAILED_PRECONDITION", f"ImportJob {job['name']} is not ACTIVE.")
        self.deny(fault, "cloudkms.importJobs.useToImport", job["name"])
        match = RSA_ALGORITHM.match(algorithm)
        if not match:
            raise invalid(f"algorithm {algorithm!r} is not an RSA algorithm this emulator imports.")
        family = "ASYMMETRIC_DECRYPT" if match.group(1) == "DECRYPT_OAEP" else "ASYMMETRIC_SIGN"
        if family != key["purpose"]:
            raise invalid(f"algorithm {algorithm} does not fit a {key['purpose']} CryptoKey.")
        wrapped = base64.b64decode(body.get("wrappedKey", ""))
        version = {
            "name": f"{key_name}/cryptoKeyVersions/{len(key['_versions']) + 1}",
            "state": "PENDING_IMPORT",
            "protectionLevel": key["versionTemplate"]["protectionLevel"],
            "algorithm": algorithm,
            "createTime": now(),
            "importJob": job["name"],
            "_wrapped": wrapped,
            "_job": job,
            "_bits": int(match.group(2)),
        }
        key["_versions"].append(version)
        self.reply(200, public(version))


def raise_(error):
    raise error


def check_labels(labels):
    if len(labels) > 64:
        raise invalid("A resource may have at most 64 labels.")
    for k, v in labels.items():
        if not LABEL.match(k) or not isinstance(v, str) or not LABEL_VALUE.match(v):
            raise invalid(f"Invalid label {k!r}: {v!r}.")


def settle(version):
    """Unwraps an import the way GCP documents it; the version ends ENABLED or IMPORT_FAILED."""
    job = version.pop("_job")
    wrapped = version.pop("_wrapped")
    bits, digest = IMPORT_METHODS[job["importMethod"]]
    try:
        rsa_part, kwp_part = wrapped[: bits // 8], wrapped[bits // 8:]
        ephemeral = job["_private"].decrypt(
            rsa_part, padding.OAEP(mgf=padding.MGF1(algorithm=digest()), algorithm=digest(), label=None))
        if len(ephemeral) != 32:
            raise ValueError(f"the ephemeral key is {len(ephemeral)} bytes, not 32")
        pkcs8 = aes_key_unwrap_with_padding(ephemeral, kwp_part)
        private = serialization.load_der_private_key(pkcs8, password=None)
        if not isinstance(private, rsa.RSAPrivateKey) or private.key_size != version["_bits"]:
            raise ValueError(f"the key is not RSA-{version['_bits']}")
    except Exception as e:  # every failure is the import's, reported as GCP does
        version["state"] = "IMPORT_FAILED"
        version["importFailureReason"] = f"The wrapped key could not be imported: {e}"
        return
    version["state"] = "ENABLED"
    version["importTime"] = now()
    version["_publicKeyPem"] = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def snapshot():
    keys = {}
    for name, key in STATE["cryptoKeys"].items():
        versions = []
        for v in key["_versions"]:
            if v["state"] == "PENDING_IMPORT":
                settle(v)
            versions.append({**public(v), "publicKeyPem": v.get("_publicKeyPem")})
        keys[name] = {**public(key), "versions": versions}
    return {
        "keyRings": sorted(STATE["keyRings"]),
        "cryptoKeys": keys,
        "importJobs": [{k: v for k, v in public(j).items() if k != "publicKey"} for j in STATE["importJobs"].values()],
        "tokensIssued": STATE["tokensIssued"],
        "fault": STATE["fault"],
    }


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"PORT={server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
