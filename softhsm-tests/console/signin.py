"""Sign in with a wrong token, then the right one; the header shows who is signed in and
the nav every page; sign out ends the session. Screenshots and axe on the sign-in page."""

import re

from console_lib import expect, run


def test(c):
    c.goto("/ui/")
    # Initialised and unsealed, not signed in: the console asks for a token.
    c.heading("Sign in to Ironseal")
    expect(c.page).to_have_url(re.compile(r"/ui/signin$"))
    expect(c.page.locator("#seal-state")).to_contain_text("Unsealed")
    c.axe("signin")
    c.screenshot("signin")

    token = c.page.get_by_label("Token", exact=True)
    token.fill("not-a-token")
    c.page.get_by_role("button", name="Sign in").click()
    expect(c.page.locator(".error-near")).to_have_text("permission denied")
    expect(token).to_have_attribute("aria-invalid", "true")

    c.sign_in()
    expect(c.page.locator("#identity")).to_contain_text("root")
    nav = c.page.get_by_role("navigation", name="Main")
    for label in ("Status", "Keys", "Secrets", "Transit", "Policies", "Tokens", "Audit"):
        expect(nav.get_by_role("link", name=label, exact=True)).to_be_visible()
    c.assert_token_kept_out(c.token)

    c.sign_out()
    expect(c.page.locator("#signin-reason")).to_have_text("You signed out.")
    expect(c.page.locator("#identity")).to_be_empty()
    expect(nav).to_be_hidden()


run(test)
