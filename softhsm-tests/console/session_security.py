"""The session API and the proxy at the HTTP level: security headers on every /ui answer,
the cookie's attributes, CSRF on every proxied request and session change (refused with
403, nothing changed), no caller-supplied token through the proxy, a new session id at
sign-in, and a signed-out cookie refused.

Environment besides console_lib's: CONSOLE_ASSETS (every asset path below
/ui/assets/, comma-separated), CONSOLE_SECURE ("1" when the cookie must be Secure)."""

import json
import urllib.request

from console_lib import Http, env, run_http

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
CSRF_WORDS = {"errors": ["missing or invalid CSRF token"]}


def assert_headers(what, hdrs, api=False):
    assert hdrs.get("Content-Security-Policy") == CSP, (what, hdrs.get("Content-Security-Policy"))
    assert hdrs.get("X-Frame-Options") == "DENY", what
    assert hdrs.get("X-Content-Type-Options") == "nosniff", what
    assert hdrs.get("Referrer-Policy") == "no-referrer", what
    if api:
        assert hdrs.get("Cache-Control") == "no-store", (what, hdrs.get("Cache-Control"))


def direct(method, path, token, body=None):
    """A request straight to the API (not through the console)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(env("CONSOLE_ADDR") + path, data=data, method=method)
    req.add_header("X-Vault-Token", token)
    try:
        resp = urllib.request.urlopen(req, timeout=30)
        return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test():
    token = env("CONSOLE_TOKEN")
    anon = Http()

    # Every page and asset, and the API answers, carry the headers.
    for path in ["/ui", "/ui/", "/ui/status", "/ui/signin", "/ui/init", "/ui/unseal", "/ui/keys/some-key",
                 "/ui/secrets/secret/a/b"]:
        status, hdrs, _, text = anon.request("GET", path, cookie=False)
        assert status == 200, (path, status)
        assert hdrs.get("Content-Type") == "text/html; charset=utf-8", path
        assert '<script type="module" src="/ui/assets/js/app.js">' in text, path
        assert_headers(path, hdrs)
    for asset in env("CONSOLE_ASSETS").split(","):
        status, hdrs, _, _ = anon.request("GET", "/ui/assets/" + asset, cookie=False)
        assert status == 200, (asset, status)
        assert_headers(asset, hdrs)
    for path in ["/ui/assets/nope.js", "/ui/favicon.ico", "/ui/assets/../../etc/passwd"]:
        status, hdrs, _, _ = anon.request("GET", path, cookie=False)
        assert status == 404, (path, status)
        assert_headers(path, hdrs, api=True)
    # axe-core is for the tests only: never served.
    status, _, _, _ = anon.request("GET", "/ui/assets/vendor/axe.min.js", cookie=False)
    assert status == 404

    # An anonymous session: its cookie and CSRF token.
    status, hdrs, body, _ = anon.request("GET", "/ui/session")
    assert status == 200
    assert_headers("/ui/session", hdrs, api=True)
    cookie = hdrs.get("Set-Cookie")
    attrs = [a.strip() for a in cookie.split(";")]
    name, value = attrs[0].split("=", 1)
    assert name == "ironseal_console" and len(value) == 43, cookie
    assert "HttpOnly" in attrs and "SameSite=Strict" in attrs and "Path=/ui" in attrs, cookie
    assert ("Secure" in attrs) == (env("CONSOLE_SECURE") == "1"), cookie
    assert body["signed_in"] is False and body["csrf"], body
    anon.csrf = body["csrf"]

    # Unauthenticated Vault paths work with the anonymous session...
    status, hdrs, body, _ = anon.api("GET", "/v1/sys/seal-status")
    assert status == 200 and body["sealed"] is False, body
    assert_headers("proxy", hdrs, api=True)
    # ...and the rest answers as Vault does without a token.
    status, _, body, _ = anon.api("GET", "/v1/sys/policies/acl?list=true")
    assert status == 403, (status, body)

    # Sign-in needs the CSRF token; a wrong token is refused in the API's words.
    status, _, body, _ = anon.request("POST", "/ui/session", {"token": token})
    assert (status, body) == (403, CSRF_WORDS), (status, body)
    status, _, body, _ = anon.request("POST", "/ui/session", {"token": "nope"}, {"X-CSRF-Token": anon.csrf})
    assert (status, body) == (403, {"errors": ["permission denied"]}), (status, body)
    anon_cookie, anon_csrf = anon.cookie, anon.csrf
    s = anon.sign_in(token)
    assert s["signed_in"] is True and s["display_name"] == "token-console" and s["policies"] == ["root"], s
    assert anon.cookie != anon_cookie, "sign-in must issue a new session id"
    # The pre-sign-in id is worth nothing now.
    old = Http()
    old.cookie, old.csrf = anon_cookie, anon_csrf
    status, _, body, _ = old.api("GET", "/v1/auth/token/lookup-self")
    assert (status, body) == (403, CSRF_WORDS), (status, body)

    status, _, body, _ = anon.api("GET", "/v1/auth/token/lookup-self")
    assert status == 200 and body["data"]["display_name"] == "token-console", body
    assert body["data"]["id"] == token

    # Every proxied request needs the CSRF header, reads included; a refused write
    # changes nothing.
    policy = {"policy": 'path "secret/*" { capabilities = ["read"] }'}
    for csrf in (False, "wrong-" + anon.csrf[6:], ""):
        status, hdrs, body, _ = anon.api("PUT", "/v1/sys/policies/acl/console-csrf", policy, csrf=csrf)
        assert (status, body) == (403, CSRF_WORDS), (csrf, status, body)
        assert_headers("csrf refusal", hdrs, api=True)
    status, _, body, _ = anon.api("GET", "/v1/sys/policies/acl/console-csrf", csrf=False)
    assert (status, body) == (403, CSRF_WORDS)
    status, text = direct("GET", "/v1/sys/policies/acl/console-csrf", token)
    assert status == 404, (status, text)
    # The key API through the proxy too.
    status, _, body, _ = anon.api("POST", "/api/v1/keys", {"name": "console-csrf", "algorithm": "EC_P256"}, csrf=False)
    assert (status, body) == (403, CSRF_WORDS), (status, body)
    status, text = direct("GET", "/api/v1/keys?name=console-csrf", token)
    assert status == 200 and json.loads(text)["keys"] == [], (status, text)

    # With it, the write goes through.
    status, _, body, _ = anon.api("PUT", "/v1/sys/policies/acl/console-csrf", policy)
    assert status == 204, (status, body)
    status, text = direct("GET", "/v1/sys/policies/acl/console-csrf", token)
    assert status == 200, (status, text)

    # The proxy adds the session's token: a request bringing its own is refused.
    for h in ({"X-Vault-Token": token}, {"Authorization": "Bearer " + token}):
        status, _, body, _ = anon.api("GET", "/v1/auth/token/lookup-self", headers=h)
        assert status == 400, (h, status, body)
    # Only /v1 and /api/v1 are proxied.
    status, _, _, _ = anon.api("GET", "/v2/x")
    assert status == 404

    # Sign-out needs the CSRF token too; then the old cookie is refused.
    status, _, body, _ = anon.request("DELETE", "/ui/session")
    assert (status, body) == (403, CSRF_WORDS), (status, body)
    kept_cookie, kept_csrf = anon.cookie, anon.csrf
    status, hdrs, _, _ = anon.request("DELETE", "/ui/session", headers={"X-CSRF-Token": anon.csrf})
    assert status == 204, status
    assert "Max-Age=0" in hdrs.get("Set-Cookie"), hdrs.get("Set-Cookie")
    replay = Http()
    replay.cookie, replay.csrf = kept_cookie, kept_csrf
    status, _, body, _ = replay.api("GET", "/v1/auth/token/lookup-self")
    assert (status, body) == (403, CSRF_WORDS), (status, body)
    status, _, body, _ = replay.request("GET", "/ui/session")
    assert status == 200 and body["signed_in"] is False, body
    assert replay.cookie != kept_cookie, "a dropped session is not revived"

    # Sealing ends every signed-in session, for good: unsealing does not bring it back.
    op = Http()
    op.session()
    op.sign_in(token)
    status, _, body, _ = op.api("PUT", "/v1/sys/seal")
    assert status == 204, (status, body)
    status, _, body, _ = op.api("GET", "/v1/auth/token/lookup-self")
    assert (status, body) == (401, {"errors": ["session ended: the appliance was sealed"]}), (status, body)
    # The session is anonymous again, with a new CSRF token, and still unseals.
    s = op.session()
    assert s["signed_in"] is False, s
    status, _, body, _ = op.api("PUT", "/v1/sys/unseal", {"key": env("CONSOLE_UNSEAL_KEY")})
    assert status == 200 and body["sealed"] is False, (status, body)
    status, _, body, _ = op.api("GET", "/v1/auth/token/lookup-self")
    assert status == 403, (status, body)
    # Signed in before the seal, untouched since: ended all the same.
    before = Http()
    before.session()
    before.sign_in(token)
    status, _, body, _ = before.api("PUT", "/v1/sys/seal")
    assert status == 204, (status, body)
    status, _, body, _ = op.api("PUT", "/v1/sys/unseal", {"key": env("CONSOLE_UNSEAL_KEY")})
    assert status == 200 and body["sealed"] is False, (status, body)
    s = before.session()
    assert s["signed_in"] is False and s["ended"] == "session ended: the appliance was sealed", s


run_http(test)
