"""The raw mechanisms TLS stacks use, through python-pkcs11 (PyPI).

Usage: python3 raw_mechanisms.py LIBRARY PIN

with HSM_PKCS11_CONFIG naming the cluster's client.env. CKM_RSA_PKCS over
arbitrary data (TLS 1.2 signs MD5 || SHA-1 this way), CKM_RSA_X_509 (raw RSA:
libp11 hands OpenSSL's own padding to it) and unpadded CKM_AES_CBC, each
checked here with plain Python arithmetic or a NIST SP 800-38A vector, and
their length rules with the return values PKCS#11 gives them. Prints one line
per check and exits non-zero on the first failure.
"""

import hashlib
import sys

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from checks import check, refused

SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")

# NIST SP 800-38A, F.2.1 CBC-AES128.Encrypt.
SP800_38A_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
SP800_38A_IV = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
SP800_38A_PLAINTEXT = bytes.fromhex(
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)
SP800_38A_CIPHERTEXT = bytes.fromhex(
    "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
    "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"
)




def type1_padded(data, k):
    """EMSA-PKCS1-v1_5 encoding (RFC 8017, 9.2) around `data` as given."""
    return b"\x00\x01" + b"\xff" * (k - len(data) - 3) + b"\x00" + data


def main():
    library, pin = sys.argv[1], sys.argv[2]
    lib = pkcs11.lib(library)
    token = lib.get_token(token_label="hsm-emulator")

    with token.open(user_pin=pin, rw=True) as session:
        public, private = session.generate_keypair(KeyType.RSA, 2048, label="py-raw-rsa")
        n = int.from_bytes(public[Attribute.MODULUS], "big")
        e = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
        k = (n.bit_length() + 7) // 8
        check("RSA-2048: k is 256", k == 256)

        def public_op(signature):
            return pow(int.from_bytes(signature, "big"), e, n).to_bytes(k, "big")

        # CKM_RSA_PKCS over raw data: TLS 1.2's MD5 || SHA-1 and the longest
        # data, k - 11 bytes.
        tls = hashlib.md5(b"handshake").digest() + hashlib.sha1(b"handshake").digest()
        for what, data in (("36 bytes (MD5 || SHA-1)", tls), ("k - 11 bytes", bytes(range(245)))):
            signature = private.sign(data, mechanism=Mechanism.RSA_PKCS)
            check(f"raw CKM_RSA_PKCS over {what} is k bytes", len(signature) == k)
            check(
                f"raw CKM_RSA_PKCS over {what}: s^e mod n is the type-1 block",
                public_op(signature) == type1_padded(data, k),
            )
            check(
                f"raw CKM_RSA_PKCS over {what} verifies",
                public.verify(data, signature, mechanism=Mechanism.RSA_PKCS),
            )
            check(
                f"raw CKM_RSA_PKCS over {what}: other data does not verify",
                not public.verify(data[:-1] + b"!", signature, mechanism=Mechanism.RSA_PKCS),
            )
        check(
            "raw CKM_RSA_PKCS over k - 10 bytes is CKR_DATA_LEN_RANGE",
            refused(pkcs11.exceptions.DataLenRange, lambda: private.sign(bytes(246), mechanism=Mechanism.RSA_PKCS)),
        )
        message = b"signed by hash or by DigestInfo"
        digest_info = SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
        check(
            "raw CKM_RSA_PKCS over a DigestInfo equals CKM_SHA256_RSA_PKCS",
            private.sign(digest_info, mechanism=Mechanism.RSA_PKCS)
            == private.sign(message, mechanism=Mechanism.SHA256_RSA_PKCS),
        )

        # CKM_RSA_X_509: the private and public operations themselves.
        m = (n // 3).to_bytes(k, "big")
        signature = private.sign(m, mechanism=Mechanism.RSA_X_509)
        check("CKM_RSA_X_509 signature: s^e mod n is the data", len(signature) == k and public_op(signature) == m)
        check("CKM_RSA_X_509 signature verifies", public.verify(m, signature, mechanism=Mechanism.RSA_X_509))
        check(
            "CKM_RSA_X_509 signature: other data does not verify",
            not public.verify(m[:-1] + b"\x00", signature, mechanism=Mechanism.RSA_X_509),
        )
        short = b"\x00" * 100 + b"leading zeros are kept"
        ciphertext = public.encrypt(short, mechanism=Mechanism.RSA_X_509)
        check(
            "CKM_RSA_X_509 encryption is m^e mod n",
            ciphertext == pow(int.from_bytes(short, "big"), e, n).to_bytes(k, "big"),
        )
        plaintext = private.decrypt(ciphertext, mechanism=Mechanism.RSA_X_509)
        check("CKM_RSA_X_509 decryption is k bytes, leading zeros kept", plaintext == bytes(k - len(short)) + short)
        check(
            "CKM_RSA_X_509 data not below n is CKR_DATA_INVALID",
            refused(
                pkcs11.exceptions.DataInvalid,
                lambda: private.sign(n.to_bytes(k, "big"), mechanism=Mechanism.RSA_X_509),
            ),
        )
        check(
            "CKM_RSA_X_509 data longer than k is CKR_DATA_LEN_RANGE",
            refused(
                pkcs11.exceptions.DataLenRange,
                lambda: public.encrypt(bytes(k + 1), mechanism=Mechanism.RSA_X_509),
            ),
        )

        # CKM_AES_CBC: SP 800-38A F.2.1 under an imported key, at once and in
        # parts; only whole blocks.
        key = session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.AES,
                Attribute.VALUE: SP800_38A_KEY,
                Attribute.ENCRYPT: True,
                Attribute.DECRYPT: True,
                Attribute.LABEL: "py-sp800-38a",
            }
        )
        cbc = {"mechanism": Mechanism.AES_CBC, "mechanism_param": SP800_38A_IV}
        check("CKM_AES_CBC matches SP 800-38A F.2.1", key.encrypt(SP800_38A_PLAINTEXT, **cbc) == SP800_38A_CIPHERTEXT)
        check("CKM_AES_CBC decrypts F.2.1", key.decrypt(SP800_38A_CIPHERTEXT, **cbc) == SP800_38A_PLAINTEXT)
        chunks = [SP800_38A_PLAINTEXT[:16], SP800_38A_PLAINTEXT[16:40], SP800_38A_PLAINTEXT[40:]]
        check("CKM_AES_CBC in parts equals at once", b"".join(key.encrypt(chunks, **cbc)) == SP800_38A_CIPHERTEXT)
        check(
            "CKM_AES_CBC over 15 bytes is CKR_DATA_LEN_RANGE",
            refused(pkcs11.exceptions.DataLenRange, lambda: key.encrypt(bytes(15), **cbc)),
        )
        check(
            "CKM_AES_CBC decrypting 17 bytes is CKR_ENCRYPTED_DATA_LEN_RANGE",
            refused(pkcs11.exceptions.EncryptedDataLenRange, lambda: key.decrypt(bytes(17), **cbc)),
        )

    print("all checks passed")


if __name__ == "__main__":
    main()
