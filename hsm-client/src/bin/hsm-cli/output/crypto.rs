//! The crypto commands' data: signatures, ciphertexts, plaintexts and
//! digests, base64.

use serde::Serialize;
use serde_json::Value;

use super::to_value;

/// `crypto sign` and `crypto hmac sign`: the key and the base64 signature.
pub(crate) fn signature(reference: &str, signature: &str) -> Value {
    #[derive(Serialize)]
    struct Signed<'a> {
        #[serde(rename = "key-reference")]
        key_reference: &'a str,
        signature: &'a str,
    }
    to_value(Signed { key_reference: reference, signature })
}

/// `crypto encrypt`: the key, the IV (base64, when the cipher has one) and
/// the ciphertext (base64).
pub(crate) fn encrypted(reference: &str, iv: Option<&str>, ciphertext: &str) -> Value {
    #[derive(Serialize)]
    struct Encrypted<'a> {
        #[serde(rename = "key-reference")]
        key_reference: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        iv: Option<&'a str>,
        ciphertext: &'a str,
    }
    to_value(Encrypted { key_reference: reference, iv, ciphertext })
}

/// `crypto decrypt`: the key and the plaintext (base64).
pub(crate) fn decrypted(reference: &str, plaintext: &str) -> Value {
    #[derive(Serialize)]
    struct Decrypted<'a> {
        #[serde(rename = "key-reference")]
        key_reference: &'a str,
        plaintext: &'a str,
    }
    to_value(Decrypted { key_reference: reference, plaintext })
}

/// `crypto digest`: the hash function and the digest (base64).
pub(crate) fn digest(hash_function: &str, digest: &str) -> Value {
    #[derive(Serialize)]
    struct Digest<'a> {
        #[serde(rename = "hash-function")]
        hash_function: &'a str,
        digest: &'a str,
    }
    to_value(Digest { hash_function, digest })
}
