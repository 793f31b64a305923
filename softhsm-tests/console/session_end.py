"""A session ends with its token: revoked behind the console's back, the next click shows
sign-in with the reason; a short TTL running out does the same on its own. Neither token
appears in a URL or in the page's storage.

Environment besides console_lib's: CONSOLE_ROOT_TOKEN (to make and revoke the tokens
directly), CONSOLE_OUT (a file to write the tokens used to, one a line, for the Rust
test's log check)."""

import json
import urllib.request

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from console_lib import env, expect, run

REVOKED = "session ended: the token was revoked or is no longer valid"
EXPIRED = "session ended: the token expired"


def vault(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(env("CONSOLE_ADDR") + path, data=data, method=method)
    req.add_header("X-Vault-Token", env("CONSOLE_ROOT_TOKEN"))
    resp = urllib.request.urlopen(req, timeout=30)
    text = resp.read().decode()
    return json.loads(text) if text else None


def new_token(**fields):
    return vault("POST", "/v1/auth/token/create", {"policies": ["default"], **fields})["auth"]["client_token"]


def test(c):
    page = c.page
    used = []

    revoked = new_token(display_name="revoked-later", ttl="1h")
    used.append(revoked)
    c.sign_in(revoked)
    expect(page.locator("#identity")).to_contain_text("token-revoked-later")
    vault("POST", "/v1/auth/token/revoke", {"token": revoked})
    try:
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Status").click(
            timeout=5_000
        )
    except PlaywrightTimeout:
        pass  # the page's own session check got there first and replaced the nav
    c.heading("Sign in to Ironseal")
    expect(page.locator("#signin-reason")).to_have_text(REVOKED)
    expect(page.locator("#identity")).to_be_empty()
    c.assert_token_kept_out(revoked)

    # Long enough to sign in with on a loaded machine (with 4 s, a CI run beside an image
    # build signed in with an expired token), short enough to wait out.
    short = new_token(display_name="short-lived", ttl="20s", explicit_max_ttl="20s")
    used.append(short)
    c.sign_in(short)
    expect(page.locator("#identity")).to_contain_text("token-short-lived")
    # Nobody clicks: the page notices the expiry by itself.
    expect(page.locator("#signin-reason")).to_have_text(EXPIRED, timeout=60_000)
    c.heading("Sign in to Ironseal")
    c.assert_token_kept_out(short)

    with open(env("CONSOLE_OUT"), "w") as f:
        f.write("\n".join(used))


run(test)
