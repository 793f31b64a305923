"""What every console browser test shares: the browser (Debian's chromium, driven by
Playwright, launched with the flags the contract names), sign-in, screenshots at laptop
and phone width, and the axe-core accessibility check.

The Rust harness (softhsm-tests/src/console.rs) sets the environment:
CONSOLE_ADDR (http[s]://host:port), CONSOLE_TOKEN (a token to sign in with, when the
test has one), CONSOLE_SCREENSHOTS (where to save PNGs), CONSOLE_AXE (axe.min.js).
"""

import json
import os
import re
import sys
import urllib.error
import urllib.request
import ssl
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

CHROMIUM = os.environ.get("CONSOLE_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAPTOP = {"width": 1366, "height": 850}
PHONE = {"width": 390, "height": 844}
# How long a page may take to show what a step expects.
STEP_MS = 15_000

expect.set_options(timeout=STEP_MS)


def env(name, default=None):
    value = os.environ.get(name, default)
    if value is None:
        sys.exit(f"{name} is not set: run this script from the Rust harness")
    return value


class Console:
    """One browser with one page on the console."""

    def __init__(self, pw):
        self.addr = env("CONSOLE_ADDR").rstrip("/")
        self.token = os.environ.get("CONSOLE_TOKEN", "")
        self.shots = Path(env("CONSOLE_SCREENSHOTS"))
        self.shots.mkdir(parents=True, exist_ok=True)
        self.browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        self.context = self.browser.new_context(
            viewport=LAPTOP, ignore_https_errors=self.addr.startswith("https")
        )
        self.context.set_default_timeout(STEP_MS)
        self.page = self.context.new_page()
        self.urls = []
        self.problems = []
        self.page.on("request", lambda r: self.urls.append(r.url))
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))

    def _console(self, msg):
        text = msg.text
        # A refused API call is logged by the browser as a failed resource load: the
        # tests assert what the page shows for those.
        if "Failed to load resource" in text:
            return
        if msg.type == "error" or "Content Security Policy" in text:
            self.problems.append(f"console {msg.type}: {text}")

    def url(self, path="/ui/"):
        return self.addr + path

    def goto(self, path="/ui/"):
        self.page.goto(self.url(path))

    def heading(self, text):
        """Waits for the page's h1 to read `text` (a string or regex)."""
        expect(self.page.locator("main h1")).to_have_text(text)

    def sign_in(self, token=None):
        """Signs in through the sign-in page and waits for the status page."""
        token = token or self.token
        self.goto("/ui/signin")
        self.heading("Sign in to Ironseal")
        self.page.get_by_label("Token", exact=True).fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.locator("#sign-out")).to_be_visible()
        expect(self.page).to_have_url(re.compile(r"/ui/status$"))

    def sign_out(self):
        self.page.locator("#sign-out").click()
        self.heading("Sign in to Ironseal")

    def screenshot(self, name):
        """`<name>-laptop.png` and `<name>-phone.png`, whole page."""
        for label, size in (("laptop", LAPTOP), ("phone", PHONE)):
            self.page.set_viewport_size(size)
            self.page.wait_for_timeout(0)
            self.page.screenshot(path=str(self.shots / f"{name}-{label}.png"), full_page=True)
        self.page.set_viewport_size(LAPTOP)

    def axe(self, name):
        """Runs axe-core on the page; fails on a serious or critical violation."""
        if not self.page.evaluate("() => typeof window.axe !== 'undefined'"):
            # Injected through the DevTools protocol, not a <script>: the console's CSP
            # (rightly) allows none, and the check must not weaken it.
            self.page.evaluate(Path(env("CONSOLE_AXE")).read_text())
        result = self.page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        )
        bad = [v for v in result if v.get("impact") in ("serious", "critical")]
        if bad:
            lines = [f"axe on {name}: {len(bad)} serious/critical violation(s)"]
            for v in bad:
                lines.append(f"  {v['id']} ({v['impact']}): {v['help']}")
                for n in v.get("nodes", [])[:5]:
                    lines.append(f"    {n.get('target')}: {n.get('failureSummary', '').strip()}")
            raise AssertionError("\n".join(lines))
        print(f"axe {name}: no serious or critical violation ({len(result)} minor)")

    def storage(self):
        """Everything the page keeps in localStorage and sessionStorage, as one string."""
        return self.page.evaluate(
            "() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
        )

    def assert_token_kept_out(self, token):
        """The token is in no URL the page loaded and in none of its storage."""
        for u in self.urls:
            assert token not in u, f"the token appeared in a URL: {u}"
        assert token not in self.storage(), "the token is in localStorage/sessionStorage"
        assert token not in self.page.url

    def close(self):
        self.context.close()
        self.browser.close()
        if self.problems:
            raise AssertionError("the browser reported:\n" + "\n".join(self.problems))


def run(test):
    """Runs `test(console)` with a fresh browser; the exit status tells the harness."""
    with sync_playwright() as pw:
        c = Console(pw)
        try:
            test(c)
        except BaseException:
            try:
                c.page.screenshot(path=str(c.shots / f"failure-{Path(sys.argv[0]).stem}.png"), full_page=True)
            except Exception:  # noqa: BLE001 - the failure itself matters more
                pass
            raise
        c.close()
    print("console script passed")


# ---- plain HTTP, for what is not about the page -------------------------------------


class Http:
    """A small cookie-keeping client for the session API and the proxy."""

    def __init__(self, addr=None):
        self.addr = (addr or env("CONSOLE_ADDR")).rstrip("/")
        self.cookie = ""
        self.csrf = ""
        self.ctx = ssl._create_unverified_context() if self.addr.startswith("https") else None

    def request(self, method, path, body=None, headers=None, cookie=True):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.addr + path, data=data, method=method)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        if cookie and self.cookie:
            req.add_header("Cookie", self.cookie)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            resp = urllib.request.urlopen(req, context=self.ctx, timeout=30)
            status, hdrs, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            status, hdrs, raw = e.code, e.headers, e.read()
        set_cookie = hdrs.get("Set-Cookie")
        if set_cookie and cookie:
            pair = set_cookie.split(";")[0]
            self.cookie = "" if "Max-Age=0" in set_cookie else pair
        text = raw.decode("utf-8", "replace")
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return status, hdrs, parsed, text

    def session(self):
        status, _, body, _ = self.request("GET", "/ui/session")
        assert status == 200, (status, body)
        self.csrf = body["csrf"]
        return body

    def sign_in(self, token):
        status, _, body, text = self.request(
            "POST", "/ui/session", {"token": token}, {"X-CSRF-Token": self.csrf}
        )
        assert status == 200, (status, text)
        self.csrf = body["csrf"]
        return body

    def api(self, method, path, body=None, csrf=True, headers=None):
        h = dict(headers or {})
        if csrf:
            h["X-CSRF-Token"] = self.csrf if csrf is True else csrf
        return self.request(method, "/ui/api" + path, body, h)


def run_http(test):
    """Runs `test()` (plain HTTP, no browser); the exit status tells the harness."""
    test()
    print("console script passed")
