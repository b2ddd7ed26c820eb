"""Triple DES through libhsm_pkcs11.so with python-pkcs11 (PyPI).

Usage: python3 des3.py LIBRARY MODE PIN

with HSM_PKCS11_CONFIG naming the cluster's client.env and MODE the
cluster's mode, FIPS or NON_FIPS. On a non-FIPS cluster: the four triple DES
mechanisms are listed; a generated key (CKM_DES3_KEY_GEN) encrypts and
decrypts with DES3-ECB, DES3-CBC and DES3-CBC-PAD, at once and in parts; an
imported key (C_CreateObject, CKK_DES3) gives NIST SP 800-67's known answer
and OpenSSL's CBC ciphertexts; a key whose parts repeat is refused. On a FIPS
cluster: none is listed, and each is CKR_MECHANISM_INVALID. Prints one line
per check and exits non-zero on the first failure.
"""

import sys

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from checks import check, refused

DES3 = {Mechanism.DES3_KEY_GEN, Mechanism.DES3_ECB, Mechanism.DES3_CBC, Mechanism.DES3_CBC_PAD}

# NIST SP 800-67 Rev. 1's example: K1 || K2 || K3, its message and its ECB
# ciphertext (OpenSSL agrees: openssl enc -des-ede3 -K <key> -nopad).
KEY = bytes.fromhex("0123456789abcdef23456789abcdef01456789abcdef0123")
PLAINTEXT = b"The qufck brown fox jump"
ECB = bytes.fromhex("a826fd8ce53b855fcce21c8112256fe668d5c05dd9b6b900")
# printf 'The qufck brown fox jump' | openssl enc -des-ede3-cbc -K <key> -iv <IV> | xxd -p
# (PKCS#7 padding; with -nopad, its first 24 bytes).
IV = bytes.fromhex("f69f2445df4f9b17")
CBC_PAD = bytes.fromhex("a5c282bad0de3774becd2e04386b589fb5057d8552fc4336af45148b1b044b00")




def import_des3(session, value, label):
    return session.create_object(
        {
            Attribute.CLASS: ObjectClass.SECRET_KEY,
            Attribute.KEY_TYPE: KeyType.DES3,
            Attribute.VALUE: value,
            Attribute.ENCRYPT: True,
            Attribute.DECRYPT: True,
            Attribute.LABEL: label,
        }
    )


def non_fips(token, session):
    check("the four triple DES mechanisms are listed", DES3 <= set(token.slot.get_mechanisms()))

    key = session.generate_key(KeyType.DES3, label="py-des3")
    check("a generated key is CKK_DES3", key[Attribute.KEY_TYPE] == KeyType.DES3)
    check("a generated key is 24 bytes", key[Attribute.VALUE_LEN] == 24)
    found = list(session.get_objects({Attribute.KEY_TYPE: KeyType.DES3, Attribute.LABEL: "py-des3"}))
    check("a search by CKK_DES3 finds it", len(found) == 1)
    data = b"python-pkcs11 and triple DES, 40 bytes.."
    for mechanism, param in ((Mechanism.DES3_ECB, None), (Mechanism.DES3_CBC, IV), (Mechanism.DES3_CBC_PAD, IV)):
        sealed = key.encrypt(data, mechanism=mechanism, mechanism_param=param)
        padded = mechanism == Mechanism.DES3_CBC_PAD
        check(f"{mechanism.name} ciphertext length", len(sealed) == len(data) + (8 if padded else 0))
        check(f"{mechanism.name} decrypts", key.decrypt(sealed, mechanism=mechanism, mechanism_param=param) == data)
        parts = b"".join(key.encrypt([data[:7], data[7:]], mechanism=mechanism, mechanism_param=param))
        check(f"{mechanism.name} in parts equals in one", parts == sealed)

    known = import_des3(session, KEY, "py-des3-sp800-67")
    check("SP 800-67 known answer (DES3-ECB)", known.encrypt(PLAINTEXT, mechanism=Mechanism.DES3_ECB) == ECB)
    check(
        "OpenSSL's DES3-CBC ciphertext",
        known.encrypt(PLAINTEXT, mechanism=Mechanism.DES3_CBC, mechanism_param=IV) == CBC_PAD[:24],
    )
    check(
        "OpenSSL's DES3-CBC-PAD ciphertext",
        known.encrypt(PLAINTEXT, mechanism=Mechanism.DES3_CBC_PAD, mechanism_param=IV) == CBC_PAD,
    )
    check(
        "OpenSSL's DES3-CBC-PAD ciphertext decrypts",
        known.decrypt(CBC_PAD, mechanism=Mechanism.DES3_CBC_PAD, mechanism_param=IV) == PLAINTEXT,
    )
    repeated = KEY[:8] + KEY[:8] + KEY[16:]
    check(
        "a key with K1 = K2 is refused (SP 800-67)",
        refused(pkcs11.exceptions.PKCS11Error, lambda: import_des3(session, repeated, "py-des3-bad")),
    )
    for obj in session.get_objects({Attribute.KEY_TYPE: KeyType.DES3}):
        obj.destroy()


def fips(token, session):
    check("no triple DES mechanism is listed", not DES3 & set(token.slot.get_mechanisms()))
    check(
        "DES3 key generation is CKR_MECHANISM_INVALID",
        refused(pkcs11.exceptions.MechanismInvalid, lambda: session.generate_key(KeyType.DES3, label="py-des3")),
    )
    aes = session.generate_key(KeyType.AES, 128, label="py-aes")
    check(
        "DES3-ECB encryption is CKR_MECHANISM_INVALID",
        refused(pkcs11.exceptions.MechanismInvalid, lambda: aes.encrypt(PLAINTEXT, mechanism=Mechanism.DES3_ECB)),
    )
    check(
        "importing a DES3 key is refused",
        refused(pkcs11.exceptions.AttributeValueInvalid, lambda: import_des3(session, KEY, "py-des3")),
    )


def main():
    library, mode, pin = sys.argv[1], sys.argv[2], sys.argv[3]
    token = pkcs11.lib(library).get_token(token_label="hsm-emulator")
    with token.open(user_pin=pin, rw=True) as session:
        if mode == "NON_FIPS":
            non_fips(token, session)
        else:
            fips(token, session)
    print("all checks passed")


if __name__ == "__main__":
    main()
