"""Response wrapping driven by hvac, the Python Vault client: a wrapped kv read and a
wrapped token create, each unwrapped once (a second unwrap is refused), lookup without a
token, rewrap (the old token stops working, the new one unwraps), and arbitrary data
wrapped through sys/wrapping/wrap. The address, root token and CA come from VAULT_ADDR,
VAULT_TOKEN and VAULT_CACERT; prints "ok" when every check passed."""

import os
import sys

import hvac
import hvac.exceptions

INVALID = "wrapping token is not valid or does not exist"


def client(token):
    """A client presenting `token` ("": none; hvac would take VAULT_TOKEN for None)."""
    verify = os.environ.get("VAULT_CACERT") or True
    return hvac.Client(url=os.environ["VAULT_ADDR"], token=token, verify=verify)


def refused(what, call):
    try:
        call()
    except hvac.exceptions.InvalidRequest as e:
        assert INVALID in str(e), f"{what}: {e}"
        return
    raise AssertionError(f"{what}: not refused")


def main():
    root = client(os.environ["VAULT_TOKEN"])
    secret = sys.argv[1]
    root.secrets.kv.v2.create_or_update_secret(path="hvac-wrapped", secret={"v": secret})

    # A wrapped kv read: only the wrapping token comes back.
    wrapped = root.read("secret/data/hvac-wrapped", wrap_ttl="60s")
    assert secret not in str(wrapped), wrapped
    info = wrapped["wrap_info"]
    assert info["ttl"] == 60, info
    assert info["creation_path"] == "secret/data/hvac-wrapped", info
    assert info["accessor"], info

    # Looked up without a token, as Vault allows.
    anonymous = client("")
    looked = anonymous.adapter.post("/v1/sys/wrapping/lookup", json={"token": info["token"]})
    assert looked["data"]["creation_path"] == "secret/data/hvac-wrapped", looked
    assert looked["data"]["creation_ttl"] == 60, looked

    # Unwrapped once with the wrapping token itself, then never again.
    unwrapped = client(info["token"]).sys.unwrap()
    assert unwrapped["data"]["data"]["v"] == secret, unwrapped
    refused("second unwrap", lambda: root.sys.unwrap(info["token"]))
    refused("lookup after unwrap", lambda: anonymous.adapter.post(
        "/v1/sys/wrapping/lookup", json={"token": info["token"]}))

    # A wrapped token create: the accessor is visible, the token only once unwrapped.
    created = root.auth.token.create(policies=["default"], ttl="1h", wrap_ttl="2m")
    info = created["wrap_info"]
    assert info["creation_path"] == "auth/token/create", info
    assert info["wrapped_accessor"], info
    auth = root.sys.unwrap(info["token"])["auth"]
    assert auth["accessor"] == info["wrapped_accessor"], (auth, info)
    me = client(auth["client_token"]).auth.token.lookup_self()
    assert me["data"]["accessor"] == info["wrapped_accessor"], me
    refused("second unwrap of a token", lambda: root.sys.unwrap(info["token"]))

    # Arbitrary data, rewrapped: the old token is gone, the new one holds the data.
    wrapped = root.sys.wrap(payload={"note": secret}, ttl=300)["wrap_info"]
    assert wrapped["creation_path"] == "sys/wrapping/wrap", wrapped
    rewrapped = root.adapter.post("/v1/sys/wrapping/rewrap", json={"token": wrapped["token"]})
    new = rewrapped["wrap_info"]
    assert new["token"] != wrapped["token"], rewrapped
    assert new["creation_path"] == "sys/wrapping/wrap", rewrapped
    assert new["ttl"] == 300, rewrapped
    refused("unwrap after rewrap", lambda: root.sys.unwrap(wrapped["token"]))
    assert root.sys.unwrap(new["token"])["data"]["note"] == secret

    print("ok")


if __name__ == "__main__":
    main()
