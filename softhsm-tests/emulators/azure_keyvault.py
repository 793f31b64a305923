"""A stand-in for Azure Key Vault and its Entra ID token endpoint, for the BYOK tests.

It speaks the documented shapes (Key Vault REST API 7.4, Microsoft's "Bring your own key
specification", the identity platform's client-credentials grant) and checks what arrives
with its own cryptography (Python `cryptography`, not the product's code): the KEK's
private key stays here, an import's transfer blob is parsed as the specification says,
unwrapped (RSA-OAEP SHA-1, then AES key wrap with padding, RFC 5649) and loaded as PKCS#8.

Run: python azure_keyvault.py [--tenant T] [--client-id C] [--client-secret S]
[--page-size N]. It listens on 127.0.0.1:0 and prints PORT=<n> as its first line. One
process serves the token endpoint (/{tenant}/oauth2/v2.0/token) and one vault (/keys/...).

Admin endpoints (not Azure's): GET /_emulator/state (keys, versions, tags, and for each
imported version the public key PEM of the private key received), POST /_emulator/fault
{"mode": "none" | "deny" | "expired" | "error500" | "hang"}. "hang" holds each import
(PUT /keys/{name}) until the mode changes, at most HOLD_LIMIT seconds, as a provider that
stops answering in the middle of a call; the import then goes ahead whether or not its
caller is still connected, as a provider that had received it would. counts.held says how
many imports were held.
"""

import argparse
import base64
import binascii
import json
import re
import secrets
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap_with_padding,
)

VAULT_SCOPE = "https://vault.azure.net/.default"
API_VERSION = "7.4"
KEY_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
BASE64URL = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")
CURVES = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}
TOKEN_LIFETIME = 3599
HOLD_LIMIT = 300


class Failure(Exception):
    """An answer in Azure's error shape."""

    def __init__(self, status, body, headers=None):
        super().__init__(body)
        self.status = status
        self.body = body
        self.headers = headers or {}


def vault_error(status, code, message, inner=None):
    error = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return Failure(status, {"error": error})


def entra_error(error, code, description):
    stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    text = (
        f"AADSTS{code}: {description}\r\nTrace ID: {uuid.uuid4()}\r\n"
        f"Correlation ID: {uuid.uuid4()}\r\nTimestamp: {stamp}"
    )
    return Failure(
        401,
        {
            "error": error,
            "error_description": text,
            "error_codes": [code],
            "timestamp": stamp,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        },
    )


def b64url_decode(text, what):
    if not isinstance(text, str) or not BASE64URL.match(text):
        raise vault_error(400, "BadParameter", f"{what} is not base64url.")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise vault_error(400, "BadParameter", f"{what} is not base64url.")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_bytes(value):
    return value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.fault = "none"
        self.tokens = {}  # token -> (client id, expiry)
        self.keys = {}  # name -> [version dict], oldest first
        self.private = {}  # kid -> private key object (KEKs only)
        self.counts = {"tokens": 0, "creates": 0, "imports": 0, "listings": 0, "held": 0}

    def snapshot(self):
        keys = []
        for name, versions in self.keys.items():
            keys.append(
                {
                    "name": name,
                    "versions": [
                        {
                            k: v
                            for k, v in version.items()
                            if k in ("version", "kid", "kty", "crv", "key_ops", "tags",
                                     "origin", "publicKeyPem", "keySize")
                        }
                        for version in versions
                    ],
                }
            )
        return {"keys": keys, "counts": dict(self.counts), "fault": self.fault}


def public_jwk(public_key, kid, kty, key_ops):
    jwk = {"kid": kid, "kty": kty, "key_ops": key_ops}
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        jwk["n"] = b64url(int_bytes(numbers.n))
        jwk["e"] = b64url(int_bytes(numbers.e))
    else:
        numbers = public_key.public_numbers()
        size = (public_key.curve.key_size + 7) // 8
        jwk["crv"] = {v.name: k for k, v in CURVES.items()}.get(public_key.curve.name)
        jwk["x"] = b64url(numbers.x.to_bytes(size, "big"))
        jwk["y"] = b64url(numbers.y.to_bytes(size, "big"))
    return jwk


def bundle(version):
    now = version["created"]
    return {
        "key": public_jwk(version["public"], version["kid"], version["kty"], version["key_ops"]),
        "attributes": {
            "enabled": True,
            "created": now,
            "updated": now,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        },
        "tags": version["tags"],
    }


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def base(self):
            host, port = self.server.server_address[:2]
            return f"http://{host}:{port}"

        def reply(self, status, body, headers=None):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                # The caller went away while its request was held: nobody to answer.
                pass

        def body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def json_body(self):
            try:
                value = json.loads(self.body() or b"null")
            except ValueError:
                raise vault_error(400, "BadParameter", "The request body is not JSON.")
            if not isinstance(value, dict):
                raise vault_error(400, "BadParameter", "The request body must be a JSON object.")
            return value

        def dispatch(self, method):
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            parts = [p for p in url.path.split("/") if p]
            try:
                if parts[:1] == ["_emulator"]:
                    return self.admin(method, parts[1:])
                if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"] and method == "POST":
                    return self.token(parts[0])
                if parts[:1] == ["keys"]:
                    return self.vault(method, parts[1:], query)
                raise vault_error(404, "NotFound", f"No route for {method} {url.path}.")
            except Failure as failure:
                self.reply(failure.status, failure.body, failure.headers)

        def do_GET(self):
            self.dispatch("GET")

        def do_POST(self):
            self.dispatch("POST")

        def do_PUT(self):
            self.dispatch("PUT")

        # ---- admin ----------------------------------------------------------------------

        def admin(self, method, parts):
            if method == "GET" and parts == ["state"]:
                with state.lock:
                    return self.reply(200, state.snapshot())
            if method == "POST" and parts == ["fault"]:
                mode = self.json_body().get("mode")
                if mode not in ("none", "deny", "expired", "error500", "hang"):
                    raise vault_error(400, "BadParameter", f"unknown fault mode {mode!r}")
                with state.lock:
                    state.fault = mode
                return self.reply(200, {"mode": mode})
            raise vault_error(404, "NotFound", "unknown admin endpoint")

        # ---- Entra ID -------------------------------------------------------------------

        def token(self, tenant):
            form = parse_qs(self.body().decode(errors="replace"))
            field = lambda name: (form.get(name) or [None])[0]
            client_id = field("client_id")
            if tenant != state.args.tenant:
                raise Failure(
                    400,
                    {
                        "error": "invalid_request",
                        "error_description": f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
                        "error_codes": [90002],
                    },
                )
            if field("grant_type") != "client_credentials":
                raise Failure(400, {"error": "unsupported_grant_type",
                                    "error_description": "AADSTS70003: The app requested an unsupported grant type."})
            if field("scope") != VAULT_SCOPE:
                raise Failure(400, {"error": "invalid_scope",
                                    "error_description": f"AADSTS70011: The provided value for the input parameter 'scope' is not valid. The scope {field('scope')} is not valid."})
            if client_id != state.args.client_id:
                raise Failure(400, {"error": "unauthorized_client",
                                    "error_description": f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'."})
            with state.lock:
                fault = state.fault
            if fault == "expired":
                raise entra_error(
                    "invalid_client",
                    7000222,
                    f"The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.",
                )
            if field("client_secret") != state.args.client_secret:
                raise entra_error(
                    "invalid_client",
                    7000215,
                    f"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'.",
                )
            token = secrets.token_urlsafe(32)
            with state.lock:
                state.tokens[token] = (client_id, time.time() + TOKEN_LIFETIME)
                state.counts["tokens"] += 1
            self.reply(200, {"token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
                             "ext_expires_in": TOKEN_LIFETIME, "access_token": token})

        # ---- the vault ------------------------------------------------------------------

        def authorize(self, action, resource):
            header = self.headers.get("Authorization") or ""
            challenge = {
                "WWW-Authenticate": f'Bearer authorization="https://login.microsoftonline.com/{state.args.tenant}", resource="https://vault.azure.net"'
            }
            if not header.startswith("Bearer "):
                raise Failure(401, {"error": {"code": "Unauthorized",
                                              "message": "AKV10000: Request is missing a Bearer or PoP token."}},
                              challenge)
            with state.lock:
                entry = state.tokens.get(header[len("Bearer "):])
                fault = state.fault
            if entry is None:
                raise Failure(401, {"error": {"code": "Unauthorized",
                                              "message": "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/..."}},
                              challenge)
            client_id, expiry = entry
            if expiry < time.time():
                raise Failure(401, {"error": {"code": "Unauthorized",
                                              "message": "[TokenExpired] Error validating token: 'S2S12086'."}},
                              challenge)
            if fault == "error500":
                raise vault_error(500, "InternalServerError",
                                  "The service encountered an internal error. Please try again later.")
            if fault == "deny":
                raise vault_error(
                    403,
                    "Forbidden",
                    "Caller is not authorized to perform action on resource.\r\n"
                    "If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n"
                    f"Caller: appid={client_id};oid={uuid.uuid5(uuid.NAMESPACE_URL, client_id)};iss=https://sts.windows.net/{state.args.tenant}/\r\n"
                    f"Action: '{action}'\r\n"
                    f"Resource: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/ironseal-test/providers/microsoft.keyvault/vaults/emulator/{resource}'\r\n"
                    "Assignment: (not found)\r\n"
                    "DenyAssignmentId: null\r\n"
                    "DecisionReason: null \r\n"
                    "Vault: emulator;location=westeurope\r\n",
                    "ForbiddenByRbac",
                )

        def vault(self, method, parts, query):
            if (query.get("api-version") or [None])[0] != API_VERSION:
                raise vault_error(400, "BadParameter",
                                  f"The api-version parameter must be {API_VERSION} for this emulator.")
            if not parts or not KEY_NAME.match(parts[0]):
                raise vault_error(400, "BadParameter",
                                  "The key name must match ^[0-9a-zA-Z-]+$ (1 to 127 characters).")
            name = parts[0]
            if method == "POST" and parts[1:] == ["create"]:
                self.authorize("Microsoft.KeyVault/vaults/keys/create/action", f"keys/{name}")
                return self.create(name, self.json_body())
            if method == "PUT" and len(parts) == 1:
                self.authorize("Microsoft.KeyVault/vaults/keys/import/action", f"keys/{name}")
                body = self.json_body()
                self.hold()
                return self.import_key(name, body)
            if method == "GET" and parts[1:] == ["versions"]:
                self.authorize("Microsoft.KeyVault/vaults/keys/read", f"keys/{name}")
                return self.versions(name, query)
            raise vault_error(405, "MethodNotAllowed", f"{method} is not allowed here.")

        def hold(self):
            with state.lock:
                if state.fault != "hang":
                    return
                state.counts["held"] += 1
            deadline = time.time() + HOLD_LIMIT
            while time.time() < deadline:
                with state.lock:
                    if state.fault != "hang":
                        return
                time.sleep(0.05)

        def new_version(self, name, fields):
            version = uuid.uuid4().hex
            record = dict(fields)
            record["version"] = version
            record["kid"] = f"{self.base()}/keys/{name}/{version}"
            record["created"] = int(time.time())
            record["publicKeyPem"] = record["public"].public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode()
            state.keys.setdefault(name, []).append(record)
            return record

        def create(self, name, body):
            kty = body.get("kty")
            if kty not in ("RSA", "RSA-HSM"):
                raise vault_error(400, "BadParameter",
                                  "This emulator creates RSA and RSA-HSM keys only (key exchange keys).")
            size = body.get("key_size", 2048)
            if size not in (2048, 3072, 4096):
                raise vault_error(400, "BadParameter", f"The key size {size} is not supported.")
            key_ops = body.get("key_ops") or ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]
            private = rsa.generate_private_key(public_exponent=65537, key_size=size)
            with state.lock:
                record = self.new_version(name, {
                    "kty": kty, "key_ops": key_ops, "tags": body.get("tags") or {},
                    "public": private.public_key(), "origin": "generated", "keySize": size,
                })
                state.private[record["kid"]] = private
                state.counts["creates"] += 1
                answer = bundle(record)
            self.reply(200, answer)

        def import_key(self, name, body):
            key = body.get("key")
            if not isinstance(key, dict):
                raise vault_error(400, "BadParameter", "Property 'key' is required.")
            kty = key.get("kty")
            if kty not in ("RSA-HSM", "EC-HSM"):
                raise vault_error(400, "BadParameter",
                                  f"A BYOK import takes kty RSA-HSM or EC-HSM, not {kty!r}.")
            crv = key.get("crv")
            if kty == "EC-HSM" and crv not in CURVES:
                raise vault_error(400, "BadParameter", "An EC-HSM key needs crv P-256, P-384 or P-521.")
            if "key_hsm" not in key:
                raise vault_error(400, "BadParameter", "This emulator imports BYOK keys (key.key_hsm) only.")
            blob_bytes = b64url_decode(key["key_hsm"], "key.key_hsm")
            private = self.open_blob(blob_bytes)
            if kty == "RSA-HSM":
                if not isinstance(private, rsa.RSAPrivateKey):
                    raise vault_error(400, "BadParameter", "The transfer blob does not hold an RSA key, as kty says.")
            else:
                if not isinstance(private, ec.EllipticCurvePrivateKey) or private.curve.name != CURVES[crv].name:
                    raise vault_error(400, "BadParameter", f"The transfer blob does not hold an EC {crv} key, as kty and crv say.")
            tags = body.get("tags") or {}
            if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
                raise vault_error(400, "BadParameter", "Tags must be a map of strings.")
            with state.lock:
                record = self.new_version(name, {
                    "kty": kty, "crv": crv, "key_ops": key.get("key_ops") or [],
                    "tags": tags, "public": private.public_key(), "origin": "byok",
                })
                state.counts["imports"] += 1
                answer = bundle(record)
            self.reply(200, answer)

        def open_blob(self, blob_bytes):
            """The specification's transfer blob, checked field by field, then unwrapped."""
            try:
                blob = json.loads(blob_bytes)
            except ValueError:
                raise vault_error(400, "BadParameter", "The key transfer blob is not JSON.")
            if not isinstance(blob, dict) or set(blob) - {"schema_version", "header", "ciphertext", "generator"}:
                raise vault_error(400, "BadParameter", "The key transfer blob has unknown fields.")
            if blob.get("schema_version") != "1.0.0":
                raise vault_error(400, "BadParameter", "The key transfer blob's schema_version must be 1.0.0.")
            header = blob.get("header")
            if not isinstance(header, dict) or header.get("alg") != "dir" or header.get("enc") != "CKM_RSA_AES_KEY_WRAP":
                raise vault_error(400, "BadParameter",
                                  "The key transfer blob's header must have alg 'dir' and enc 'CKM_RSA_AES_KEY_WRAP'.")
            if not isinstance(blob.get("generator"), str):
                raise vault_error(400, "BadParameter", "The key transfer blob has no generator.")
            kid = header.get("kid")
            with state.lock:
                kek = state.private.get(kid)
                kek_record = next((v for versions in state.keys.values() for v in versions if v["kid"] == kid), None)
            if kek is None or kek_record is None:
                raise vault_error(400, "BadParameter", f"The key exchange key '{kid}' was not found in this vault.")
            if kek_record["key_ops"] != ["import"]:
                raise vault_error(400, "BadParameter",
                                  f"The key exchange key '{kid}' must have key_ops ['import'] only.")
            ciphertext = b64url_decode(blob.get("ciphertext"), "The key transfer blob's ciphertext")
            split = kek.key_size // 8
            if len(ciphertext) <= split:
                raise vault_error(400, "BadParameter", "The key transfer blob's ciphertext is too short.")
            try:
                aes_key = kek.decrypt(
                    ciphertext[:split],
                    padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None),
                )
            except ValueError:
                raise vault_error(400, "BadParameter",
                                  "The wrapping key could not be decrypted with RSA-OAEP (SHA-1) under the key exchange key.")
            if len(aes_key) not in (16, 24, 32):
                raise vault_error(400, "BadParameter", "The wrapping key is not an AES key.")
            try:
                plaintext = aes_key_unwrap_with_padding(aes_key, ciphertext[split:])
            except InvalidUnwrap:
                raise vault_error(400, "BadParameter",
                                  "The target key could not be unwrapped with AES key wrap with padding (RFC 5649).")
            try:
                return serialization.load_der_private_key(plaintext, password=None)
            except (ValueError, TypeError):
                raise vault_error(400, "BadParameter", "The target key is not a PKCS#8 private key.")

        def versions(self, name, query):
            with state.lock:
                versions = list(state.keys.get(name) or [])
                state.counts["listings"] += 1
            if not versions:
                raise vault_error(
                    404,
                    "KeyNotFound",
                    f"A key with (name/id) {name} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
                )
            size = min(int((query.get("maxresults") or [25])[0]), 25, state.args.page_size)
            start = int((query.get("$skiptoken") or [0])[0])
            page = versions[start:start + size]
            items = []
            for version in page:
                entry = bundle(version)
                items.append({"kid": version["kid"], "attributes": entry["attributes"], "tags": version["tags"]})
            next_link = None
            if start + size < len(versions):
                next_link = (f"{self.base()}/keys/{name}/versions?api-version={API_VERSION}"
                             f"&$skiptoken={start + size}&maxresults={size}")
            self.reply(200, {"value": items, "nextLink": next_link})

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenant", default="ironseal-test-tenant")
    parser.add_argument("--client-id", default="ironseal-test-client")
    parser.add_argument("--client-secret", default="ironseal-test-secret")
    parser.add_argument("--page-size", type=int, default=25)
    args = parser.parse_args()
    state = State(args)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    print(f"PORT={server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
