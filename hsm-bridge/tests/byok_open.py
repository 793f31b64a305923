"""Opens the appliance's BYOK blobs with an implementation independent of it (pyca's
`cryptography`), as a cloud provider would.

    byok_open.py keygen KEY_FILE        -> writes an RSA-3072 private key (PKCS#8 DER) to
                                           KEY_FILE, prints its public key (SPKI DER, hex)
    byok_open.py open KEY_FILE CASES    -> CASES: a JSON list of blobs to open; prints a
                                           JSON object {name: "ok" | what went wrong}

A case: name, hash ("sha1" | "sha256"), rsa_aes (bool), blob (hex), and either public
(the SPKI DER, hex, that the received private key must have) or iv, ciphertext,
plaintext (hex: AES-GCM made by the appliance that the received AES key must open).
"""

import json
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def keygen(path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    with open(path, "wb") as f:
        f.write(
            key.private_bytes(
                DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    print(key.public_key().public_bytes(DER, SPKI).hex())


def check(key, case):
    blob = bytes.fromhex(case["blob"])
    h = hashes.SHA1() if case["hash"] == "sha1" else hashes.SHA256()
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=h, label=None)
    size = key.key_size // 8
    if case["rsa_aes"]:
        ephemeral = key.decrypt(blob[:size], oaep)
        if len(ephemeral) != 32:
            return f"the ephemeral key is {len(ephemeral)} bytes, not 32"
        material = aes_key_unwrap_with_padding(ephemeral, blob[size:])
    else:
        if len(blob) != size:
            return f"an RSA-OAEP blob of {len(blob)} bytes under a {size}-byte key"
        material = key.decrypt(blob, oaep)
    if "public" in case:
        private = serialization.load_der_private_key(material, password=None)
        got = private.public_key().public_bytes(DER, SPKI)
        if got != bytes.fromhex(case["public"]):
            return "the private key received does not match the appliance's public key"
        return "ok"
    if len(material) != 32:
        return f"the AES key received is {len(material)} bytes"
    plain = AESGCM(material).decrypt(
        bytes.fromhex(case["iv"]), bytes.fromhex(case["ciphertext"]), None
    )
    if plain != bytes.fromhex(case["plaintext"]):
        return "the AES key received decrypts the appliance's ciphertext to other data"
    return "ok"


def open_cases(key_path, cases_path):
    with open(key_path, "rb") as f:
        key = serialization.load_der_private_key(f.read(), password=None)
    with open(cases_path) as f:
        cases = json.load(f)
    results = {}
    for case in cases:
        try:
            results[case["name"]] = check(key, case)
        except Exception as e:  # every failure is a finding to report, not a crash
            results[case["name"]] = f"{type(e).__name__}: {e}"
    print(json.dumps(results))


if __name__ == "__main__":
    if sys.argv[1] == "keygen":
        keygen(sys.argv[2])
    else:
        open_cases(sys.argv[2], sys.argv[3])
