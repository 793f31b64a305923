"""python-pkcs11 from 8 threads at once against one token, every result checked with
`cryptography`.

Usage: threads.py MODULE TOKEN_LABEL PIN [--take-turns]

python-pkcs11 calls C_Initialize with no arguments, which tells a module that the
application will not call it from several threads at once; SoftHSM2 then turns its own
locking off. The appliance's library is thread safe whatever it is told, but the
reference needs `--take-turns`: the threads then hold one lock around each round.

The token holds an RSA-2048 signing pair with CKA_ID 01, a P-256 pair with CKA_ID 02 and
an RSA-2048 decryption pair with CKA_ID 03 (made by the calling test: an appliance key
has one usage). The main thread imports a known AES-256 key by RSA-OAEP unwrap, as a
session object (python-pkcs11's default), which every session of the application uses; then
each thread, in its own session, finds objects, signs (RSA PKCS#1 v1.5 SHA-256, ECDSA on a
SHA-256 digest), verifies, encrypts and decrypts (RSA-OAEP, AES-GCM), ROUNDS times.
Prints "ok N" with the number of checked operations, or a traceback and exits 1.
"""

import contextlib
import os
import sys
import threading

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.mechanisms import GCMParams, MGF
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import load_der_public_key

THREADS = 8
SIGN_ID = b"\x01"
DECRYPT_ID = b"\x03"
ROUNDS = 4
OAEP_SHA1 = (Mechanism.SHA_1, MGF.SHA1, None)


def one(session, attrs):
    found = list(session.get_objects(attrs))
    if len(found) != 1:
        raise AssertionError(f"{attrs}: found {len(found)} objects")
    return found[0]


def rsa_public(session, key_id):
    key = one(session, {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: key_id})
    n = int.from_bytes(key[Attribute.MODULUS], "big")
    e = int.from_bytes(key[Attribute.PUBLIC_EXPONENT], "big")
    return key, rsa.RSAPublicNumbers(e, n).public_key()


def ec_public(session):
    key = one(session, {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: b"\x02"})
    point = key[Attribute.EC_POINT]
    # CKA_EC_POINT is a DER OCTET STRING around the uncompressed point (04 || X || Y).
    if point[0] == 0x04 and point[1] == len(point) - 2:
        point = point[2:]
    return key, ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


def one_round(s, aes_id, index, round_):
    """Finds, signs, verifies, encrypts and decrypts once; the number of checks made."""
    done = 0
    msg = f"thread {index} round {round_}".encode()
    # find objects
    priv = one(s, {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: SIGN_ID})
    pub, rsa_pub = rsa_public(s, SIGN_ID)
    dec = one(s, {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: DECRYPT_ID})
    enc, rsa_enc = rsa_public(s, DECRYPT_ID)
    ec_priv = one(s, {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: b"\x02"})
    ec_pub, ec_key = ec_public(s)
    aes = one(s, {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.ID: aes_id})
    done += 7

    # RSA sign, verify through the token and with cryptography
    sig = priv.sign(msg, mechanism=Mechanism.SHA256_RSA_PKCS)
    rsa_pub.verify(sig, msg, padding.PKCS1v15(), hashes.SHA256())
    assert pub.verify(msg, sig, mechanism=Mechanism.SHA256_RSA_PKCS)
    assert not pub.verify(msg + b"!", sig, mechanism=Mechanism.SHA256_RSA_PKCS)
    done += 3

    # ECDSA on a digest made here
    h = hashes.Hash(hashes.SHA256())
    h.update(msg)
    digest = h.finalize()
    raw = ec_priv.sign(digest, mechanism=Mechanism.ECDSA)
    half = len(raw) // 2
    der = encode_dss_signature(
        int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    )
    ec_key.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    assert ec_pub.verify(digest, raw, mechanism=Mechanism.ECDSA)
    done += 2

    # RSA-OAEP: cryptography encrypts, the token decrypts; and both ways on the token
    ct = rsa_enc.encrypt(
        msg,
        padding.OAEP(
            mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None
        ),
    )
    assert dec.decrypt(ct, mechanism=Mechanism.RSA_PKCS_OAEP,
                       mechanism_param=OAEP_SHA1) == msg
    ct = enc.encrypt(msg, mechanism=Mechanism.RSA_PKCS_OAEP,
                     mechanism_param=OAEP_SHA1)
    assert dec.decrypt(ct, mechanism=Mechanism.RSA_PKCS_OAEP,
                       mechanism_param=OAEP_SHA1) == msg
    done += 2

    # AES-GCM with the imported key: token -> cryptography and back
    nonce = os.urandom(12)
    aad = b"aad %d" % index
    ct = aes.encrypt(msg, mechanism=Mechanism.AES_GCM,
                     mechanism_param=GCMParams(nonce, aad, 128))
    assert AESGCM(AES_KEY).decrypt(nonce, ct, aad) == msg
    ct = AESGCM(AES_KEY).encrypt(nonce, msg + b"?", aad)
    assert aes.decrypt(ct, mechanism=Mechanism.AES_GCM,
                       mechanism_param=GCMParams(nonce, aad, 128)) == msg + b"?"
    done += 2
    return done


def worker(token, aes_id, turns, errors, counts, index):
    try:
        done = 0
        # Login is per application: the main thread's session holds it for all.
        with turns:
            s = token.open()
        try:
            for round_ in range(ROUNDS):
                with turns:
                    done += one_round(s, aes_id, index, round_)
        finally:
            with turns:
                s.close()
        counts[index] = done
    except BaseException as e:  # noqa: BLE001 - reported by the main thread
        import traceback

        errors.append(f"thread {index}: {e!r}\n{traceback.format_exc()}")


AES_KEY = os.urandom(32)


def main():
    module, label, pin = sys.argv[1:4]
    turns = threading.Lock() if "--take-turns" in sys.argv[4:] else contextlib.nullcontext()
    lib = pkcs11.lib(module)
    token = lib.get_token(token_label=label)
    aes_id = b"\x07"
    with token.open(user_pin=pin, rw=True) as s:
        dec = one(s, {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: DECRYPT_ID})
        _, rsa_enc = rsa_public(s, DECRYPT_ID)
        wrapped = rsa_enc.encrypt(
            AES_KEY,
            padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None),
        )
        dec.unwrap_key(
            ObjectClass.SECRET_KEY,
            KeyType.AES,
            wrapped,
            id=aes_id,
            label="py-aes",
            mechanism=Mechanism.RSA_PKCS_OAEP,
            mechanism_param=OAEP_SHA1,
            template={
      Attribute.SENSITIVE: True,
      Attribute.EXTRACTABLE: False,
      Attribute.ENCRYPT: True,
      Attribute.DECRYPT: True,
            },
        )
        errors, counts = [], [0] * THREADS
        threads = [
            threading.Thread(target=worker, args=(token, aes_id, turns, errors, counts, i))
            for i in range(THREADS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        print("\n".join(errors))
        sys.exit(1)
    if 0 in counts:
        print(f"a thread did no work: {counts}")
        sys.exit(1)
    print(f"ok {sum(counts)}")


if __name__ == "__main__":
    main()
