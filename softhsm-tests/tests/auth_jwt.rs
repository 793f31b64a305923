//! JWT auth (`auth/jwt`): tokens signed in the test with an EC and an RSA key log in
//! with hvac and the bao CLI and read a secret; tokens that must not log in (`alg:
//! none`, HS256 keyed with the public key, expired, not yet valid, wrong audience, wrong
//! issuer, a claim outside the role's glob) are refused; a JWKS served over TLS by the
//! test, trusted through `jwks_ca_pem`.

use std::process::Command;

use serde_json::Value;
use softhsm_tests::tools::{python, run_ok};
use softhsm_tests::{Body, Daemon};

const APP_READ: &str = r#"path "secret/data/app/*" { capabilities = ["read"] }"#;

/// Signs JWTs with `cryptography` alone, so the test controls every header and claim.
const SIGNER: &str = r#"
import base64, json, time
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def pem(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

def sign(key, alg, claims, kid=None, secret=None):
    header = {"alg": alg, "typ": "JWT"}
    if kid:
        header["kid"] = kid
    msg = (b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())).encode()
    if alg == "ES256":
        r, s = utils.decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    elif alg == "RS256":
        sig = key.sign(msg, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "HS256":
        h = hmac.HMAC(secret, hashes.SHA256())
        h.update(msg)
        sig = h.finalize()
    else:
        sig = b""
    return msg.decode() + "." + b64(sig)

def claims(**over):
    now = int(time.time())
    c = {"iss": "https://ci.example", "sub": "repo:acme/app:ref:refs/heads/main",
         "aud": "ironseal", "iat": now, "nbf": now, "exp": now + 300,
         "repository": "acme/app", "actor": "alice"}
    c.update(over)
    return c

def refused(login):
    try:
        login()
        return "accepted"
    except Exception as e:
        return str(e)
"#;

fn setup() -> Daemon {
    let d = Daemon::dev(&[]);
    d.kv_put_value("app/db", "hunter2");
    d.bao_policy_write("app-read", APP_READ);
    d.bao(&["auth", "enable", "jwt"]).ok();
    d
}

fn run_python(d: &Daemon, script: &str) -> Value {
    let out = run_ok(
        Command::new(python())
            .arg("-c")
            .arg(format!("{SIGNER}\n{script}"))
            .env("ADDR", &d.addr)
            .env("ROOT", d.token.as_deref().unwrap_or_default())
            .env(
                "BAO_BIN",
                std::env::var("BAO_BIN").unwrap_or_else(|_| "bao".into()),
            ),
    );
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn read_secret(d: &Daemon, token: &str) -> String {
    let r = d.http("GET", "/v1/secret/data/app/db", Some(token), Body::None);
    assert_eq!(r.status, 200, "{r}");
    r.json()["data"]["data"]["value"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn jwt_login_with_ec_and_rsa_keys_and_bad_tokens_refused() {
    let d = setup();
    let script = r#"
import os, subprocess, hvac
ec_key = ec.generate_private_key(ec.SECP256R1())
rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
admin = hvac.Client(url=os.environ["ADDR"], token=os.environ["ROOT"])
admin.adapter.post("/v1/auth/jwt/config", json={
    "jwt_validation_pubkeys": [pem(ec_key), pem(rsa_key)],
    "bound_issuer": "https://ci.example",
    "jwt_supported_algs": ["RS256", "ES256"]})
admin.adapter.post("/v1/auth/jwt/role/ci", json={
    "role_type": "jwt", "user_claim": "actor", "bound_audiences": ["ironseal"],
    "bound_claims_type": "glob", "bound_claims": {"sub": "repo:acme/*:ref:refs/heads/main"},
    "claim_mappings": {"repository": "repo"}, "token_policies": ["app-read"], "token_ttl": "20m"})
app = hvac.Client(url=os.environ["ADDR"])
login = lambda tok: app.auth.jwt.jwt_login(role="ci", jwt=tok)
rsa_login = login(sign(rsa_key, "RS256", claims()))
cli = subprocess.run([os.environ["BAO_BIN"], "write", "-format=json", "auth/jwt/login",
                      "role=ci", "jwt=" + sign(ec_key, "ES256", claims())],
                     env=dict(os.environ, BAO_ADDR=os.environ["ADDR"], VAULT_ADDR=os.environ["ADDR"]),
                     capture_output=True, text=True, check=True)
now = int(time.time())
bad = {
    "none": sign(None, "none", claims()),
    "hs256": sign(None, "HS256", claims(), secret=pem(rsa_key).encode()),
    "expired": sign(ec_key, "ES256", claims(iat=now - 4000, nbf=now - 4000, exp=now - 3600)),
    "future": sign(ec_key, "ES256", claims(iat=now + 3600, nbf=now + 3600, exp=now + 7200)),
    "audience": sign(ec_key, "ES256", claims(aud="someone-else")),
    "issuer": sign(rsa_key, "RS256", claims(iss="https://evil.example")),
    "glob": sign(rsa_key, "RS256", claims(sub="repo:other/app:ref:refs/heads/main")),
    "other_key": sign(ec.generate_private_key(ec.SECP256R1()), "ES256", claims()),
}
print(json.dumps({"rsa": rsa_login["auth"], "cli": json.loads(cli.stdout)["auth"],
                  "bad": {k: refused(lambda t=t: login(t)) for k, t in bad.items()}}))
"#;
    let v = run_python(&d, script);
    for login in ["rsa", "cli"] {
        let auth = &v[login];
        assert_eq!(auth["metadata"]["role"], "ci", "{v}");
        assert_eq!(auth["metadata"]["repo"], "acme/app", "{v}");
        assert!(
            auth["policies"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p == "app-read"),
            "{v}"
        );
        assert!(auth["lease_duration"].as_u64().unwrap() <= 1200, "{v}");
        let token = auth["client_token"].as_str().unwrap();
        assert_eq!(read_secret(&d, token), "hunter2");
    }
    let bad = &v["bad"];
    for kind in [
        "none",
        "hs256",
        "expired",
        "future",
        "audience",
        "issuer",
        "other_key",
    ] {
        let err = bad[kind].as_str().unwrap();
        assert!(err.contains("error validating token"), "{kind}: {err}");
    }
    let err = bad["glob"].as_str().unwrap();
    assert!(
        err.contains("error validating claims") && err.contains("does not match"),
        "{err}"
    );

    // A login token renews while its role exists, and not once it is gone.
    let token = v["rsa"]["client_token"].as_str().unwrap();
    let renew = || d.http("POST", "/v1/auth/token/renew-self", Some(token), Body::None);
    let r = renew();
    assert_eq!(r.status, 200, "{r}");
    let r = d.http(
        "DELETE",
        "/v1/auth/jwt/role/ci",
        d.token.as_deref(),
        Body::None,
    );
    assert_eq!(r.status, 204, "{r}");
    renew().assert_error(500, "role ci does not exist during renewal");
}

#[test]
fn jwt_login_with_a_jwks_served_over_tls() {
    let d = setup();
    let script = r#"
import datetime, http.server, ipaddress, os, ssl, tempfile, threading, hvac
from cryptography import x509
from cryptography.x509.oid import NameOID

def cert(subject, issuer_name, issuer_key, key, ca, san=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
         .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(issuer_key, hashes.SHA256())

ca_key = ec.generate_private_key(ec.SECP256R1())
ca = cert("jwks test CA", "jwks test CA", ca_key, ca_key, True)
srv_key = ec.generate_private_key(ec.SECP256R1())
srv = cert("127.0.0.1", "jwks test CA", ca_key, srv_key, False,
           [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
d = tempfile.mkdtemp()
with open(d + "/srv.pem", "wb") as f:
    f.write(srv.public_bytes(serialization.Encoding.PEM))
with open(d + "/srv.key", "wb") as f:
    f.write(srv_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
nums = rsa_key.public_key().public_numbers()
jwk = {"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
       "n": b64(nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")), "e": b64(nums.e.to_bytes(3, "big"))}
body = json.dumps({"keys": [jwk]}).encode()

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(d + "/srv.pem", d + "/srv.key")
server.socket = ctx.wrap_socket(server.socket, server_side=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = "https://127.0.0.1:%d/jwks" % server.server_address[1]

admin = hvac.Client(url=os.environ["ADDR"], token=os.environ["ROOT"])
untrusted = refused(lambda: admin.adapter.post("/v1/auth/jwt/config", json={"jwks_url": url}))
admin.adapter.post("/v1/auth/jwt/config", json={
    "jwks_url": url, "jwks_ca_pem": ca.public_bytes(serialization.Encoding.PEM).decode(),
    "default_role": "ci"})
admin.adapter.post("/v1/auth/jwt/role/ci", json={
    "role_type": "jwt", "user_claim": "sub", "bound_audiences": "ironseal",
    "token_policies": "app-read"})
app = hvac.Client(url=os.environ["ADDR"])
login = app.auth.jwt.jwt_login(role=None, jwt=sign(rsa_key, "RS256", claims(), kid="k1"))
stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
wrong = refused(lambda: app.auth.jwt.jwt_login(role="ci", jwt=sign(stranger, "RS256", claims(), kid="k1")))
print(json.dumps({"auth": login["auth"], "untrusted": untrusted, "wrong": wrong}))
"#;
    let v = run_python(&d, script);
    assert_ne!(v["untrusted"], "accepted", "{v}");
    let token = v["auth"]["client_token"].as_str().unwrap();
    assert_eq!(read_secret(&d, token), "hunter2");
    assert!(
        v["wrong"]
            .as_str()
            .unwrap()
            .contains("error validating token"),
        "{v}"
    );
}
