"""An application's view of libhsm_pkcs11.so through python-pkcs11 (PyPI).

Usage: python3 roundtrip.py LIBRARY PIN

with HSM_PKCS11_CONFIG naming the cluster's client.env. Generates EC P-256,
RSA-2048, Ed25519 and AES-256 keys, signs, verifies, encrypts, decrypts and
digests through PKCS#11. ECDSA and RSA signatures are also checked here, in
plain Python arithmetic, against the public keys read out through PKCS#11,
so that a library that agreed with itself but not with the algorithms would
fail. Prints one line per check and exits non-zero on the first failure.
"""

import hashlib
import sys

import pkcs11
from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters
from checks import check

# NIST P-256 (FIPS 186-4, D.1.2.3).
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
A = P - 3
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)


def ec_add(p1, p2):
    """Affine point addition on P-256 (None is the point at infinity)."""
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2 and (y1 + y2) % P == 0:
        return None
    if p1 == p2:
        slope = (3 * x1 * x1 + A) * pow(2 * y1, -1, P) % P
    else:
        slope = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (slope * slope - x1 - x2) % P
    return (x3, (slope * (x1 - x3) - y1) % P)


def ec_mul(k, point):
    result = None
    while k:
        if k & 1:
            result = ec_add(result, point)
        point = ec_add(point, point)
        k >>= 1
    return result


def ecdsa_p256_verifies(point, digest, signature):
    """ECDSA verification (SEC 1, 4.1.4) of a raw r || s signature."""
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (0 < r < N and 0 < s < N):
        return False
    e = int.from_bytes(digest, "big")
    w = pow(s, -1, N)
    x = ec_add(ec_mul(e * w % N, G), ec_mul(r * w % N, point))
    return x is not None and x[0] % N == r


def der_octet_string(der):
    """The content of a DER OCTET STRING (CKA_EC_POINT)."""
    assert der[0] == 0x04, "CKA_EC_POINT is an OCTET STRING"
    if der[1] < 0x80:
        return der[2:]
    n = der[1] & 0x7F
    return der[2 + n :]


SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def rsa_pkcs1_sha256_verifies(n, e, message, signature):
    """RSASSA-PKCS1-v1_5 verification (RFC 8017, 8.2.2) with SHA-256."""
    k = (n.bit_length() + 7) // 8
    em = pow(int.from_bytes(signature, "big"), e, n).to_bytes(k, "big")
    t = SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    return em == b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t



def main():
    library, pin = sys.argv[1], sys.argv[2]
    lib = pkcs11.lib(library)
    token = lib.get_token(token_label="hsm-emulator")
    data = b"python-pkcs11 through the CloudHSM emulator"

    with token.open(user_pin=pin, rw=True) as session:
        random = session.generate_random(256)
        check("32 random bytes", len(random) == 32 and random != session.generate_random(256))
        check(
            "SHA-256 digest as hashlib's",
            session.digest(data, mechanism=Mechanism.SHA256) == hashlib.sha256(data).digest(),
        )

        # EC P-256: a token key pair, ECDSA-SHA256 both ways, checked here.
        params = session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True
        )
        public, private = params.generate_keypair(store=True, label="py-ec")
        signature = private.sign(data, mechanism=Mechanism.ECDSA_SHA256)
        check("ECDSA P-256 signature is r || s", len(signature) == 64)
        check("ECDSA verifies through PKCS#11", public.verify(data, signature, mechanism=Mechanism.ECDSA_SHA256))
        check(
            "ECDSA tampered data is refused",
            not public.verify(data + b"!", signature, mechanism=Mechanism.ECDSA_SHA256),
        )
        raw = der_octet_string(public[Attribute.EC_POINT])
        point = (int.from_bytes(raw[1:33], "big"), int.from_bytes(raw[33:], "big"))
        check("the public point is uncompressed", raw[0] == 4 and len(raw) == 65)
        check(
            "ECDSA verifies with P-256 arithmetic here",
            ecdsa_p256_verifies(point, hashlib.sha256(data).digest(), signature),
        )

        # RSA-2048: PKCS#1 v1.5 signatures checked here; OAEP both ways.
        public, private = session.generate_keypair(KeyType.RSA, 2048, store=True, label="py-rsa")
        signature = private.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)
        n = int.from_bytes(public[Attribute.MODULUS], "big")
        e = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
        check("RSA-2048 modulus", n.bit_length() == 2048)
        check("RSA verifies through PKCS#11", public.verify(data, signature, mechanism=Mechanism.SHA256_RSA_PKCS))
        check("RSA verifies with modular arithmetic here", rsa_pkcs1_sha256_verifies(n, e, data, signature))
        oaep = (Mechanism.SHA256, MGF.SHA256, None)
        ciphertext = public.encrypt(data, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=oaep)
        check("RSA-OAEP ciphertext is a modulus long", len(ciphertext) == 256)
        plaintext = private.decrypt(ciphertext, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=oaep)
        check("RSA-OAEP decrypts to the data", plaintext == data)

        # Ed25519: a session key pair, EdDSA both ways.
        params = session.create_domain_parameters(
            KeyType.EC_EDWARDS, {Attribute.EC_PARAMS: encode_named_curve_parameters("1.3.101.112")}, local=True
        )
        public, private = params.generate_keypair(label="py-ed25519")
        signature = private.sign(data, mechanism=Mechanism.EDDSA)
        check("Ed25519 signature is 64 bytes", len(signature) == 64)
        check("Ed25519 verifies through PKCS#11", public.verify(data, signature, mechanism=Mechanism.EDDSA))

        # AES-256: CBC with padding, under an IV from C_GenerateRandom, at
        # once and in parts; a mechanism without its IV is refused.
        key = session.generate_key(KeyType.AES, 256, label="py-aes")
        iv = session.generate_random(128)
        ciphertext = key.encrypt(data, mechanism_param=iv)
        check("AES-CBC-PAD ciphertext is the padded blocks", len(ciphertext) == 48)
        check("AES-CBC-PAD decrypts to the data", key.decrypt(ciphertext, mechanism_param=iv) == data)
        chunks = [data[:10], data[10:30], data[30:]]
        parts = b"".join(key.encrypt(chunks, mechanism_param=iv))
        check("AES-CBC-PAD in parts equals in one", parts == ciphertext)
        check("AES-CBC-PAD in parts decrypts", b"".join(key.decrypt([parts], mechanism_param=iv)) == data)
        try:
            key.encrypt(data)
            refused = False
        except pkcs11.exceptions.MechanismParamInvalid:
            refused = True
        check("AES-CBC-PAD without an IV is CKR_MECHANISM_PARAM_INVALID", refused)

        # Search: the token keys made above, by label and class.
        found = list(session.get_objects({Attribute.LABEL: "py-ec", Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
        check("one EC private key labelled py-ec", len(found) == 1)
        for label in ("py-ec", "py-rsa"):
            for obj in session.get_objects({Attribute.LABEL: label}):
                obj.destroy()
        check("token keys destroyed", not list(session.get_objects({Attribute.LABEL: "py-rsa"})))

    # An admin's PIN logs in, but the HSM's permission table refuses admins
    # key creation.
    with token.open(user_pin="admin:admin-pass", rw=True) as session:
        try:
            session.generate_key(KeyType.AES, 256, label="admin-aes")
            refused = False
        except pkcs11.exceptions.UserNotLoggedIn:
            refused = True
    check("an admin may not make keys (CKR_USER_NOT_LOGGED_IN)", refused)

    print("all checks passed")


if __name__ == "__main__":
    main()
