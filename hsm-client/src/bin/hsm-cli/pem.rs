//! PEM files: finding the key in a file `key import pem` reads and telling
//! what kind of key it is, and writing the key reference file of
//! `key generate-file --encoding reference-pem`.
//!
//! # The reference PEM
//! CloudHSM's "fake PEM" format is not documented publicly, so the emulator
//! writes a stand-in of its own, readable by any PEM parser:
//!
//! ```text
//! -----BEGIN HSM EMULATOR KEY REFERENCE-----
//! Key-Reference: 0x0000000000100002
//! Key-Type: ec
//! Class: private-key
//!
//! <base64 of the key's public half, SubjectPublicKeyInfo DER>
//! -----END HSM EMULATOR KEY REFERENCE-----
//! ```
//!
//! It holds no private key material: the headers name the key on the HSM and
//! the body is its public key.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hsm_client::KeyInfo;

/// The label of the reference PEM block.
pub(crate) const REFERENCE_LABEL: &str = "HSM EMULATOR KEY REFERENCE";

/// One PEM block: its label and its text (BEGIN line to END line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) label: String,
    pub(crate) text: String,
    body: String,
}

/// The PEM blocks in `text`, in order; unterminated blocks are left out.
fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) {
            current = Some((label.to_owned(), vec![line]));
        } else if let Some(label) = line.strip_prefix("-----END ").and_then(|l| l.strip_suffix("-----")) {
            if let Some((begun, mut lines)) = current.take()
                && begun == label
            {
                lines.push(line);
                let body = lines[1..lines.len() - 1]
                    .iter()
                    .filter(|l| !l.contains(':') && !l.is_empty())
                    .copied()
                    .collect::<String>();
                let mut text = lines.join("\n");
                text.push('\n');
                out.push(Block { label: begun, text, body });
            }
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line);
        }
    }
    out
}

/// The one key block of a PEM file.
pub(crate) fn key_block(text: &str) -> Result<Block, String> {
    let all = blocks(text);
    if all.is_empty() {
        return Err("no PEM block found".into());
    }
    let mut keys: Vec<Block> = all.iter().filter(|b| b.label.ends_with("KEY")).cloned().collect();
    match keys.len() {
        0 => {
            let labels: Vec<&str> = all.iter().map(|b| b.label.as_str()).collect();
            Err(format!("no key in the file (it holds: {})", labels.join(", ")))
        }
        1 => {
            let block = keys.remove(0);
            if block.label == "ENCRYPTED PRIVATE KEY" {
                return Err("the private key is encrypted; decrypt it first (e.g. openssl pkey -in FILE)".into());
            }
            Ok(block)
        }
        n => Err(format!("{n} keys in one file; give a file with a single key")),
    }
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

impl Block {
    /// The `key-type` and `class` the HSM will give this key, when the block
    /// says clearly enough: by label for PKCS #1 and SEC1, by the algorithm
    /// identifier for PKCS #8 and SubjectPublicKeyInfo.
    pub(crate) fn kind(&self) -> Option<(&'static str, &'static str)> {
        match self.label.as_str() {
            "RSA PRIVATE KEY" => Some(("rsa", "private-key")),
            "RSA PUBLIC KEY" => Some(("rsa", "public-key")),
            "EC PRIVATE KEY" => Some(("ec", "private-key")),
            "PRIVATE KEY" => Some((algorithm(&self.der()?, true)?, "private-key")),
            "PUBLIC KEY" => Some((algorithm(&self.der()?, false)?, "public-key")),
            _ => None,
        }
    }

    pub(crate) fn der(&self) -> Option<Vec<u8>> {
        STANDARD.decode(&self.body).ok()
    }
}

/// The key type named by the algorithm identifier of a PKCS #8
/// `PrivateKeyInfo` (`private`) or a `SubjectPublicKeyInfo`.
fn algorithm(der: &[u8], private: bool) -> Option<&'static str> {
    let (tag, info, _) = tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let mut rest = info;
    if private {
        let (tag, _, after_version) = tlv(rest)?;
        if tag != 0x02 {
            return None;
        }
        rest = after_version;
    }
    let (tag, identifier, _) = tlv(rest)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, oid, _) = tlv(identifier)?;
    if tag != 0x06 {
        return None;
    }
    match oid {
        OID_RSA => Some("rsa"),
        OID_EC => Some("ec"),
        OID_ED25519 => Some("ec-edwards"),
        _ => None,
    }
}

/// One DER tag-length-value: (tag, value, what follows).
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        (bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b)), rest)
    };
    if rest.len() < len {
        return None;
    }
    let (value, after) = rest.split_at(len);
    Some((tag, value, after))
}

/// A key type for messages, with its article: `ec-edwards` is what CloudHSM
/// calls Ed25519.
pub(crate) fn describe(key_type: &str) -> String {
    match key_type {
        "ec-edwards" => "an Ed25519 (ec-edwards)".to_owned(),
        "generic-secret" => "a generic-secret".to_owned(),
        other => format!("an {other}"),
    }
}

/// The reference PEM of a private key, from its public half's PEM.
pub(crate) fn reference_pem(key: &KeyInfo, public_pem: &str) -> Result<String, String> {
    let public = blocks(public_pem)
        .into_iter()
        .next()
        .ok_or("unexpected response from the HSM: the exported public key is not PEM")?;
    let mut out = format!("-----BEGIN {REFERENCE_LABEL}-----\n");
    out.push_str(&format!("Key-Reference: {}\n", key.reference));
    out.push_str(&format!("Key-Type: {}\n", key.attribute("key-type").unwrap_or("unknown")));
    out.push_str(&format!("Class: {}\n\n", key.attribute("class").unwrap_or("unknown")));
    let body = public.body.as_bytes();
    for line in body.chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {REFERENCE_LABEL}-----\n"));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // An Ed25519 public key (RFC 8410's example) and private key.
    const ED25519_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\n\
        MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n\
        -----END PUBLIC KEY-----\n";
    const ED25519_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
        -----END PRIVATE KEY-----\n";

    #[test]
    fn the_algorithm_of_pkcs8_and_spki_keys_is_read() {
        assert_eq!(key_block(ED25519_PUBLIC).unwrap().kind(), Some(("ec-edwards", "public-key")));
        assert_eq!(key_block(ED25519_PRIVATE).unwrap().kind(), Some(("ec-edwards", "private-key")));
    }

    #[test]
    fn the_key_block_is_picked_out_of_other_blocks() {
        let text =
            format!("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{ED25519_PRIVATE}");
        let block = key_block(&text).unwrap();
        assert_eq!(block.label, "PRIVATE KEY");
        assert!(
            block.text.starts_with("-----BEGIN PRIVATE KEY-----\n")
                && block.text.ends_with("-----END PRIVATE KEY-----\n")
        );
    }

    #[test]
    fn files_without_exactly_one_usable_key_are_refused() {
        assert_eq!(key_block("hello").unwrap_err(), "no PEM block found");
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(key_block(cert).unwrap_err(), "no key in the file (it holds: CERTIFICATE)");
        let two = format!("{ED25519_PUBLIC}{ED25519_PUBLIC}");
        assert_eq!(key_block(&two).unwrap_err(), "2 keys in one file; give a file with a single key");
        let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(key_block(encrypted).unwrap_err().contains("encrypted"));
    }

    #[test]
    fn labels_say_the_kind_of_pkcs1_and_sec1_keys_and_garbage_says_nothing() {
        let rsa = "-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n";
        assert_eq!(key_block(rsa).unwrap().kind(), Some(("rsa", "public-key")));
        let garbage = "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n";
        assert_eq!(key_block(garbage).unwrap().kind(), None);
    }

    #[test]
    fn the_reference_pem_names_the_key_and_carries_its_public_half() {
        let key = KeyInfo {
            reference: "0x0000000000100002".into(),
            attributes: vec![("key-type".into(), "ec-edwards".into()), ("class".into(), "private-key".into())],
            owner: "cu1".into(),
            shared_users: vec![],
            session: false,
            manage_quorum: 0,
            use_quorum: 0,
        };
        let text = reference_pem(&key, ED25519_PUBLIC).unwrap();
        assert_eq!(
            text,
            "-----BEGIN HSM EMULATOR KEY REFERENCE-----\n\
             Key-Reference: 0x0000000000100002\n\
             Key-Type: ec-edwards\n\
             Class: private-key\n\
             \n\
             MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n\
             -----END HSM EMULATOR KEY REFERENCE-----\n"
        );
        let parsed = blocks(&text);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].label, REFERENCE_LABEL);
    }
}
