"""A fresh appliance through the console: the init wizard (keys shown once, behind an
"I have saved them" confirmation), the unseal wizard ("1 of 2 keys"), sign-in with the
new root token, and the status page (seal, storage health, the TLS fingerprint, the
audit device). Axe and screenshots on init, unseal and status.

Environment besides console_lib's: CONSOLE_TLS_SHA256 (the listener certificate's
fingerprint), CONSOLE_AUDIT_FILE (where to enable a file audit device), CONSOLE_OUT (a
file to write the root token to, for the Rust test's audit checks)."""

import re

from console_lib import Http, env, expect, run


def test(c):
    page = c.page
    c.goto("/ui/")
    c.heading("Initialise the appliance")
    expect(page).to_have_url(re.compile(r"/ui/init$"))
    expect(page.locator("#seal-state")).to_contain_text("Not initialised")
    c.axe("init")
    c.screenshot("init")

    page.get_by_label("Key shares").fill("3")
    page.get_by_label("Key threshold").fill("2")
    page.get_by_role("button", name="Initialise").click()
    c.heading("Save the keys")
    expect(page.get_by_text("These keys and the root token are shown only once.")).to_be_visible()
    keys = page.locator(".keys-list .key-value").all_inner_texts()
    assert len(keys) == 3, keys
    root_token = page.locator("#root-token").inner_text()
    assert root_token, "no root token shown"
    cont = page.get_by_role("button", name="Continue to unseal")
    expect(cont).to_be_disabled()
    c.axe("init-keys")
    c.screenshot("init-keys")
    page.get_by_label("I have saved the keys and the root token").check()
    expect(cont).to_be_enabled()
    cont.click()

    c.heading("Unseal the appliance")
    expect(page).to_have_url(re.compile(r"/ui/unseal$"))
    expect(page.locator("#seal-state")).to_contain_text("Sealed")
    expect(page.locator("#unseal-progress")).to_have_text("Unseal progress: 0 of 2 keys")
    c.axe("unseal")
    c.screenshot("unseal")
    key = page.get_by_role("textbox", name="Unseal key")
    # A key that is not a key: the API's words, next to the field.
    key.fill("not-a-key!")
    page.get_by_role("button", name="Submit key").click()
    expect(page.locator(".error-near")).to_contain_text("must be a valid hex or base64 string")
    key.fill(keys[0])
    page.get_by_role("button", name="Submit key").click()
    expect(page.locator("#unseal-progress")).to_have_text("Unseal progress: 1 of 2 keys")
    expect(page.locator(".error-near")).to_have_count(0)
    key.fill(keys[1])
    page.get_by_role("button", name="Submit key").click()
    expect(page.locator("#unsealed")).to_have_text("The appliance is unsealed and serving requests.")
    expect(page.locator("#seal-state")).to_contain_text("Unsealed")
    page.get_by_role("button", name="Sign in").click()

    c.sign_in(root_token)
    # An audit device, enabled through the console's proxy as the signed-in operator.
    http = Http()
    status, hdrs, _, _ = http.request("GET", "/ui/session")
    assert status == 200
    # Over TLS the cookie is Secure.
    assert "Secure" in [a.strip() for a in hdrs.get("Set-Cookie").split(";")], hdrs.get("Set-Cookie")
    http.session()
    http.sign_in(root_token)
    status, _, body, text = http.api(
        "PUT", "/v1/sys/audit/file", {"type": "file", "options": {"file_path": env("CONSOLE_AUDIT_FILE")}}
    )
    assert status == 204, (status, text)

    c.goto("/ui/status")
    c.heading("Appliance status")
    main = page.locator("main")
    expect(main).to_contain_text("Shamir (unseal keys)")
    expect(main).to_contain_text("2 of 3 needed")
    expect(main.get_by_text("Unsealed", exact=True)).to_be_visible()
    expect(main).to_contain_text("redb")
    expect(main.get_by_text("Healthy", exact=True)).to_be_visible()
    expect(page.locator("#tls-fingerprint")).to_have_text(env("CONSOLE_TLS_SHA256"))
    expect(main.get_by_role("cell", name="file/", exact=True)).to_be_visible()
    expect(main.get_by_role("cell", name=env("CONSOLE_AUDIT_FILE"))).to_be_visible()
    c.axe("status")
    c.screenshot("status")
    c.assert_token_kept_out(root_token)
    for k in keys:
        assert k not in c.storage()
    with open(env("CONSOLE_OUT"), "w") as f:
        f.write(root_token)


run(test)
