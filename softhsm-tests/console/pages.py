"""The console's pages, each step asserting what the page shows: keys, the Cloud
Exports card against the Scaleway emulator, kv secrets, transit, policies, tokens and
the audit page. Screenshots and axe on each page."""

import json
import re
import urllib.request

from console_lib import Http, env, expect, run

SCW_URL = env("CONSOLE_SCALEWAY_URL")
SCW_PROJECT = env("CONSOLE_SCALEWAY_PROJECT")
SCW_SECRET = env("CONSOLE_SCALEWAY_SECRET")


def emulator_fault(mode):
    req = urllib.request.Request(
        f"{SCW_URL}/_emulator/fault",
        data=json.dumps({"mode": mode}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(req, timeout=10).read()


def confirm(c, name):
    dialog = c.page.locator("dialog[open]")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name=name).click()
    expect(dialog).to_have_count(0)


def row(scope, text):
    return scope.get_by_role("row").filter(has_text=text)


def keys(c):
    # Enough keys through the proxy for a second page (20 a page).
    http = Http()
    http.session()
    http.sign_in(c.token)
    for i in range(21):
        status, _, _, text = http.api(
            "POST", "/api/v1/keys", {"name": f"bulk-{i:02}", "algorithm": "EC_P256"}
        )
        assert status == 201, text

    c.page.get_by_role("navigation", name="Main").get_by_role("link", name="Keys").click()
    c.heading("Keys")
    keys_table = c.page.locator("#key-list")
    expect(keys_table.get_by_role("row")).to_have_count(21)  # header + 20
    expect(c.page.get_by_text("Page 1", exact=True)).to_be_visible()
    expect(c.page.get_by_role("button", name="Previous")).to_be_disabled()
    c.page.get_by_role("button", name="Next").click()
    expect(c.page.get_by_text("Page 2", exact=True)).to_be_visible()
    expect(keys_table.get_by_role("row")).to_have_count(2)
    expect(c.page.get_by_role("button", name="Next")).to_be_disabled()
    c.page.get_by_role("button", name="Previous").click()
    expect(c.page.get_by_text("Page 1", exact=True)).to_be_visible()
    expect(keys_table.get_by_role("row")).to_have_count(21)

    form = c.page.get_by_role("form", name="Create a key")
    # A refusal in the API's words, next to the button.
    form.get_by_label("Name").fill("bad labels")
    form.get_by_label("Labels").fill("team")
    form.get_by_role("button", name="Create key").click()
    expect(form.locator(".error-near")).to_contain_text('"team" is not name=value')

    form.get_by_label("Name").fill("signer")
    form.get_by_label("Algorithm").select_option("EC_P256")
    form.get_by_label("Labels").fill("team=identity")
    form.get_by_role("button", name="Create key").click()
    c.heading("signer")
    expect(c.page.locator("#public-pem")).to_contain_text("BEGIN PUBLIC KEY")
    expect(c.page.locator("#public-jwk")).to_contain_text('"kty": "EC"')
    expect(c.page.get_by_role("button", name="Copy PEM")).to_be_visible()

    c.goto("/ui/keys")
    c.heading("Keys")
    form = c.page.get_by_role("form", name="Create a key")
    form.get_by_label("Name").fill("payments")
    form.get_by_label("Algorithm").select_option("AES_256")
    form.get_by_label("Labels").fill("team=payments, env=prod")
    form.get_by_label("Exportable (to cloud KMS providers)").check()
    form.get_by_label(re.compile("Allow unwrapped export")).check()
    form.get_by_role("button", name="Create key").click()
    c.heading("payments")
    expect(c.page.get_by_text("AES_256 is a secret key")).to_be_visible()
    expect(c.page.locator("#primary-version")).to_have_text("1")

    c.page.get_by_role("button", name="Rotate").click()
    expect(c.page.locator("#primary-version")).to_have_text("2")
    versions = c.page.get_by_role("table", name="Versions of payments")
    expect(versions.get_by_role("row")).to_have_count(3)
    # Newest first: version 1 is the last row.
    v1 = versions.get_by_role("row").nth(2)
    expect(v1).to_contain_text("enabled")
    c.page.get_by_role("button", name="Disable version 1").click()
    expect(c.page.get_by_role("button", name="Enable version 1")).to_be_visible()
    expect(v1).to_contain_text("disabled")
    c.page.get_by_role("button", name="Enable version 1").click()
    expect(c.page.get_by_role("button", name="Disable version 1")).to_be_visible()
    expect(v1).to_contain_text("enabled")

    c.page.get_by_label("Days before destruction").fill("3")
    c.page.get_by_role("button", name="Schedule destruction").click()
    confirm(c, "Schedule destruction")
    expect(c.page.locator("#destroy-time")).to_contain_text("This key will be destroyed on")
    expect(c.page.get_by_text("pending destruction", exact=True)).to_be_visible()
    c.axe("key-detail-destruction")
    c.page.get_by_role("button", name="Cancel destruction").click()
    expect(c.page.get_by_role("button", name="Schedule destruction")).to_be_visible()

    # Filters: algorithm, label, state.
    c.goto("/ui/keys")
    filters = c.page.get_by_role("search", name="Filter keys")
    filters.get_by_label("Algorithm").select_option("AES_256")
    filters.get_by_role("button", name="Filter").click()
    expect(keys_table.get_by_role("row")).to_have_count(2)
    expect(keys_table.get_by_role("link", name="payments")).to_be_visible()
    filters.get_by_label("Algorithm").select_option("")
    filters.get_by_label("Label").fill("team=identity")
    filters.get_by_role("button", name="Filter").click()
    expect(keys_table.get_by_role("row")).to_have_count(2)
    expect(keys_table.get_by_role("link", name="signer")).to_be_visible()
    filters.get_by_label("State").select_option("PENDING_DESTRUCTION")
    filters.get_by_role("button", name="Filter").click()
    expect(keys_table).to_contain_text("No key matches these filters.")
    filters.get_by_label("Label").fill("")
    filters.get_by_label("State").select_option("")
    filters.get_by_label("Name starts with").fill("pay")
    filters.get_by_role("button", name="Filter").click()
    expect(keys_table.get_by_role("row")).to_have_count(2)
    c.axe("keys")
    c.screenshot("keys")
    keys_table.get_by_role("link", name="payments").click()
    c.heading("payments")


def cloud_exports(c):
    card = c.page.locator("#cloud-exports-card")
    expect(card).to_contain_text("This key is not exported to any cloud KMS yet.")
    form = card.get_by_role("form", name="New cloud export")
    form.get_by_label("Provider").select_option("ScalewayKms")
    perms = form.get_by_role("complementary", name="Required permissions")
    expect(perms).to_contain_text("KeyManager (full access)")
    form.get_by_label("Project ID").fill(SCW_PROJECT)
    form.get_by_label("Region").fill("fr-par")
    form.get_by_label("Access key").fill("SCWXXXXXXXXXXXXXXXXX")
    form.get_by_label("Secret key").fill(SCW_SECRET)
    form.get_by_text("Advanced").click()
    form.get_by_label("Endpoint").fill(SCW_URL)
    form.get_by_role("button", name="Export").click()
    progress = c.page.locator("#export-progress")
    expect(progress).to_contain_text("Export: synced to Scaleway Key Manager")
    exports = card.get_by_role("table", name="Cloud exports")
    scw = row(exports, "Scaleway Key Manager")
    expect(scw).to_contain_text(f"{SCW_PROJECT} · fr-par")
    expect(scw).to_contain_text("synced")
    expect(scw.locator(".last-sync")).not_to_have_text("—")
    expect(scw).to_contain_text("None")

    auto = scw.locator("input.auto-sync")
    expect(auto).to_be_checked()
    auto.uncheck()
    expect(scw.locator(".check-inline label")).to_have_text("Off")
    expect(scw.locator("input.auto-sync")).not_to_be_checked()
    scw.locator("input.auto-sync").check()
    expect(scw.locator(".check-inline label")).to_have_text("On")

    scw.get_by_role("button", name=re.compile("^Sync now")).click()
    expect(progress).to_contain_text("Sync: synced to Scaleway Key Manager")

    # The provider refuses: the card shows its words.
    emulator_fault("deny")
    scw.get_by_role("button", name=re.compile("^Sync now")).click()
    expect(progress).to_contain_text("Sync failed:")
    expect(progress).to_contain_text("insufficient permissions")
    expect(scw.locator(".sync-error")).to_contain_text("insufficient permissions")
    expect(scw).to_contain_text("failed")
    c.axe("key-detail")
    c.screenshot("key-detail")
    emulator_fault("none")
    scw.get_by_role("button", name=re.compile("^Sync now")).click()
    expect(progress).to_contain_text("Sync: synced")
    expect(scw).to_contain_text("None")

    scw.get_by_role("button", name=re.compile("^Delete the export")).click()
    confirm(c, "Delete export")
    expect(progress).to_contain_text("The export was deleted.")
    expect(card).to_contain_text("This key is not exported to any cloud KMS yet.")


def secrets(c):
    c.page.get_by_role("navigation", name="Main").get_by_role("link", name="Secrets").click()
    c.heading("Secrets")
    c.page.get_by_role("link", name="secret/").click()
    c.heading("secret/")
    expect(c.page.get_by_text("Nothing stored here yet.")).to_be_visible()
    form = c.page.get_by_role("form", name="Create a secret")
    form.get_by_label("Path").fill("app/db")
    form.get_by_label("Data (JSON object)").fill('{"password": "one"}')
    form.get_by_role("button", name="Create secret").click()
    c.heading("db")
    expect(c.page.locator("#secret-data")).to_contain_text("one")
    form = c.page.get_by_role("form", name="New version")
    form.get_by_label("Data (JSON object)").fill("not json")
    form.get_by_role("button", name="Save new version").click()
    expect(form.locator(".error-near")).to_be_visible()
    form.get_by_label("Data (JSON object)").fill('{"password": "two"}')
    form.get_by_role("button", name="Save new version").click()
    expect(c.page.locator("#secret-data")).to_contain_text("two")
    versions = c.page.get_by_role("table", name="Versions")
    v2 = row(versions, "Version 2")
    expect(v2).to_contain_text("active")

    # Browse: the folder lists it.
    c.page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="app").click()
    c.heading("secret/app/")
    c.page.get_by_role("link", name="db").click()
    c.heading("db")

    v2 = row(c.page.get_by_role("table", name="Versions"), "Version 2")
    v2.get_by_role("button", name="Delete").click()
    v2 = row(c.page.get_by_role("table", name="Versions"), "Version 2")
    expect(v2).to_contain_text("deleted")
    expect(c.page.locator("#secret-data")).to_contain_text("Version 2 is deleted")
    v1 = row(c.page.get_by_role("table", name="Versions"), "Version 1")
    expect(v1).to_contain_text("active")
    c.axe("secret")
    c.screenshot("secret")
    v2.get_by_role("button", name="Undelete").click()
    v2 = row(c.page.get_by_role("table", name="Versions"), "Version 2")
    expect(v2).to_contain_text("active")
    expect(c.page.locator("#secret-data")).to_contain_text("two")

    v1.get_by_role("button", name="Destroy").click()
    confirm(c, "Destroy")
    v1 = row(c.page.get_by_role("table", name="Versions"), "Version 1")
    expect(v1).to_contain_text("destroyed")


def transit(c):
    c.goto("/ui/transit")
    c.heading("Transit")
    c.page.get_by_role("link", name="transit/").click()
    c.heading("transit/")
    form = c.page.get_by_role("form", name="Create a transit key")
    form.get_by_label("Name").fill("orders")
    form.get_by_role("button", name="Create key").click()
    c.heading("orders")
    expect(c.page.locator("#transit-latest")).to_have_text("1")
    c.page.get_by_role("button", name="Rotate").click()
    expect(c.page.locator("#transit-latest")).to_have_text("2")
    c.page.get_by_label("Plaintext").fill("hello, console")
    c.page.get_by_role("button", name="Encrypt").click()
    expect(c.page.get_by_label("Ciphertext")).to_have_value(re.compile(r"^vault:v2:"))
    c.page.get_by_label("Plaintext").fill("")
    c.page.get_by_role("button", name="Decrypt").click()
    expect(c.page.get_by_label("Plaintext")).to_have_value("hello, console")
    c.page.get_by_label("Ciphertext").fill("vault:v9:AAAA")
    c.page.get_by_role("button", name="Decrypt").click()
    expect(c.page.locator(".error-near")).to_be_visible()
    c.axe("transit")
    c.screenshot("transit")


def policies(c):
    c.goto("/ui/policies")
    c.heading("Policies")
    expect(c.page.get_by_role("link", name="default")).to_be_visible()
    c.page.get_by_label("Name").fill("readers")
    c.page.get_by_role("button", name="New policy").click()
    c.heading("readers")
    editor = c.page.get_by_label("Policy (HCL)")
    editor.fill('path "secret/data/*" {\n  capabilities = ["read"]\n  oops here\n}\n')
    c.page.get_by_role("button", name="Save policy").click()
    expect(c.page.locator(".error-near")).to_contain_text("line 3")
    expect(editor).to_have_attribute("aria-invalid", "true")
    expect(c.page.locator(".bad-line")).to_contain_text("oops here")
    expect(c.page.locator(".policy-lines-title")).to_have_text("Line 3:")
    c.axe("policy")
    c.screenshot("policy")
    editor.fill('path "secret/data/*" {\n  capabilities = ["read"]\n}\n')
    c.page.get_by_role("button", name="Save policy").click()
    expect(c.page.get_by_text("Policy readers saved.")).to_be_visible()
    expect(c.page.locator(".error-near")).to_have_count(0)
    c.goto("/ui/policies")
    expect(c.page.get_by_role("link", name="readers")).to_be_visible()


def tokens(c):
    c.goto("/ui/tokens")
    c.heading("Tokens")
    form = c.page.get_by_role("form", name="Create a token")
    form.get_by_label("Display name").fill("reader")
    form.get_by_label("Policies").fill("readers")
    form.get_by_label("TTL").fill("1h")
    form.get_by_role("button", name="Create token").click()
    expect(c.page.locator("#new-token")).to_have_text(re.compile(r"\S{20,}"))
    expect(form).to_contain_text("policies default, readers")
    expect(form).to_contain_text("TTL 3600 s")
    c.axe("tokens")
    c.screenshot("tokens")


def audit(c):
    c.goto("/ui/audit")
    c.heading("Audit")
    expect(c.page.locator("#chain-result")).to_contain_text("is intact")
    entries = c.page.locator("#audit-entries")
    expect(entries.get_by_role("row").nth(1)).to_be_visible()
    filters = c.page.get_by_role("search", name="Filter audit entries")
    # What the other steps did, each found by its path.
    for path in ("/rotate", "/cloud-exports", "secret/undelete/app/db", "transit/encrypt/orders"):
        filters.get_by_label("Path contains").fill(path)
        filters.get_by_role("button", name="Filter").click()
        expect(entries.get_by_role("row").nth(1)).to_contain_text(path)
        expect(entries.get_by_role("row").nth(1)).to_contain_text("root")
    filters.get_by_label("Path contains").fill("sys/policies/acl/readers")
    filters.get_by_label("Outcome").select_option("error")
    filters.get_by_role("button", name="Filter").click()
    rows = entries.get_by_role("row")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("update")
    expect(rows.nth(1)).to_contain_text("line 3")
    expect(rows.nth(1)).to_contain_text("root")
    filters.get_by_label("Outcome").select_option("success")
    filters.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("success")
    filters.get_by_label("Path contains").fill("")
    filters.get_by_label("Outcome").select_option("")
    filters.get_by_label("Operation").select_option("delete")
    filters.get_by_role("button", name="Filter").click()
    expect(entries).to_contain_text("cloud-exports")
    filters.get_by_label("Operation").select_option("")
    filters.get_by_role("button", name="Filter").click()
    c.axe("audit")
    c.screenshot("audit")


def test(c):
    c.sign_in()
    keys(c)
    cloud_exports(c)
    secrets(c)
    transit(c)
    policies(c)
    tokens(c)
    audit(c)


run(test)
