"""Session keys made by python-pkcs11's defaults (`store=False`, so CKA_TOKEN false), each
result checked with `cryptography`.

Usage: session_keys.py MODULE TOKEN_LABEL PIN
       session_keys.py MODULE TOKEN_LABEL PIN count LABEL

The first form, in one session: generates an RSA-2048 and a P-256 pair and an AES-256
key as session objects; signs with both pairs (verified by `cryptography` on the public
keys the token answers, and by the token); encrypts and decrypts with the AES key; and,
the one `store=True` case, generates a token AES key "py-stored". A second session of this
application sees the session keys (PKCS#11: session objects belong to the application);
another process (the second form, its own C_Initialize) does not; after the first
session closes, a new one does not either. Prints "ok N" with the number of checks, or a
traceback and exits 1. The second form prints how many objects carry LABEL.
"""

import os
import subprocess
import sys

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.mechanisms import GCMParams
from pkcs11.util.ec import encode_named_curve_parameters
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    encode_dss_signature,
)

LABELS = ("py-session-rsa", "py-session-ec", "py-session-aes")


def count(session, label):
    return len(list(session.get_objects({Attribute.LABEL: label})))


def counted_elsewhere(argv, label):
    """How many objects carrying `label` another library instance finds."""
    out = subprocess.run(
        [sys.executable, __file__, *argv[1:4], "count", label],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip())


def make(argv):
    module, label, pin = argv[1:4]
    token = pkcs11.lib(module).get_token(token_label=label)
    checks = 0
    msg = b"signed by a session key"
    s = token.open(user_pin=pin, rw=True)

    pub, priv = s.generate_keypair(KeyType.RSA, 2048, label=LABELS[0], id=b"\x21")
    assert not priv[Attribute.TOKEN] and not pub[Attribute.TOKEN]
    assert priv[Attribute.LOCAL] and priv[Attribute.SENSITIVE]
    assert not priv[Attribute.EXTRACTABLE]
    sig = priv.sign(msg, mechanism=Mechanism.SHA256_RSA_PKCS)
    n = int.from_bytes(pub[Attribute.MODULUS], "big")
    e = int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big")
    rsa.RSAPublicNumbers(e, n).public_key().verify(
        sig, msg, padding.PKCS1v15(), hashes.SHA256()
    )
    assert pub.verify(msg, sig, mechanism=Mechanism.SHA256_RSA_PKCS)
    checks += 2

    params = s.create_domain_parameters(
        KeyType.EC,
        {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
        local=True,
    )
    ec_pub, ec_priv = params.generate_keypair(label=LABELS[1], id=b"\x22")
    assert not ec_priv[Attribute.TOKEN]
    # CKM_ECDSA on a digest made here: SoftHSM2, the reference, has no CKM_ECDSA_SHA256.
    h = hashes.Hash(hashes.SHA256())
    h.update(msg)
    digest = h.finalize()
    raw = ec_priv.sign(digest, mechanism=Mechanism.ECDSA)
    point = ec_pub[Attribute.EC_POINT]
    if point[0] == 0x04 and point[1] == len(point) - 2:
        point = point[2:]
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    half = len(raw) // 2
    der = encode_dss_signature(
        int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    )
    key.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    assert ec_pub.verify(digest, raw, mechanism=Mechanism.ECDSA)
    checks += 2

    aes = s.generate_key(KeyType.AES, 256, label=LABELS[2], id=b"\x23")
    assert not aes[Attribute.TOKEN]
    nonce = os.urandom(12)
    ct = aes.encrypt(msg, mechanism=Mechanism.AES_GCM,
                     mechanism_param=GCMParams(nonce, b"", 128))
    assert aes.decrypt(ct, mechanism=Mechanism.AES_GCM,
                       mechanism_param=GCMParams(nonce, b"", 128)) == msg
    checks += 1

    stored = s.generate_key(KeyType.AES, 256, label="py-stored", id=b"\x24", store=True)
    assert stored[Attribute.TOKEN]
    checks += 1

    other = token.open()
    for name in LABELS:
        assert count(other, name) > 0, f"another session of this application misses {name}"
        assert counted_elsewhere(argv, name) == 0, f"another application sees {name}"
        checks += 2
    other.close()
    s.close()

    with token.open(user_pin=pin) as again:
        for name in LABELS:
            assert count(again, name) == 0, f"{name} outlived its session"
            checks += 1
        assert count(again, "py-stored") == 1
        checks += 1
    print(f"ok {checks}")


def main():
    if sys.argv[4:5] == ["count"]:
        module, label, pin = sys.argv[1:4]
        token = pkcs11.lib(module).get_token(token_label=label)
        with token.open(user_pin=pin) as s:
            print(count(s, sys.argv[5]))
        return
    make(sys.argv)


if __name__ == "__main__":
    main()
