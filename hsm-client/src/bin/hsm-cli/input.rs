//! What the key and crypto commands read and write besides the HSM: base64
//! and hex flags, data files, output files, and filters that must select
//! exactly one key. Every error names the flag it is about and never repeats
//! the flag's value (it may be secret data).

use std::{
    fs,
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hsm_client::{ClientError, ClusterSession, KeyInfo, ListKeys};

use crate::grammar::common::{CiphertextSource, DataSource, Pair, SignatureSource, tuples};

/// Base64 text of bytes, as the CLI prints data.
pub(crate) fn base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// `0x` and lower-case hex, as the CLI prints IVs and attributes.
pub(crate) fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// Decodes a base64 flag value (surrounding whitespace ignored).
pub(crate) fn base64_flag(flag: &str, value: &str) -> Result<Vec<u8>, String> {
    STANDARD.decode(value.trim()).map_err(|e| format!("{flag}: not valid base64 ({e})"))
}

/// Decodes a hex flag value, with or without `0x`.
pub(crate) fn hex_flag(flag: &str, value: &str) -> Result<Vec<u8>, String> {
    let value = value.trim();
    let digits = value.strip_prefix("0x").or_else(|| value.strip_prefix("0X")).unwrap_or(value);
    hex::decode(digits).map_err(|e| format!("{flag}: not valid hex ({e})"))
}

/// A file's bytes; the error names the flag and the path.
pub(crate) fn read_file(flag: &str, path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
}

/// Writes a file whole (owner-only when `private`), replacing what was there.
pub(crate) fn write_file(flag: &str, path: &Path, contents: &[u8], private: bool) -> Result<(), String> {
    let failed = |e: std::io::Error| format!("{flag} {}: {e}", path.display());
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true).mode(if private { 0o600 } else { 0o644 });
    let mut file = options.open(path).map_err(failed)?;
    file.write_all(contents).map_err(failed)
}

/// One of a `--X BASE64` / `--X-path FILE` pair (clap makes sure exactly one
/// is given).
fn inline_or_file(inline: (&str, Option<&String>), file: (&str, Option<&PathBuf>)) -> Result<Vec<u8>, String> {
    match (inline.1, file.1) {
        (Some(value), _) => base64_flag(inline.0, value),
        (None, Some(path)) => read_file(file.0, path),
        (None, None) => Err(format!("give {} or {}", inline.0, file.0)),
    }
}

impl DataSource {
    pub(crate) fn read(&self) -> Result<Vec<u8>, String> {
        inline_or_file(("--data", self.data.as_ref()), ("--data-path", self.data_path.as_ref()))
    }
}

impl SignatureSource {
    pub(crate) fn read(&self) -> Result<Vec<u8>, String> {
        inline_or_file(("--signature", self.signature.as_ref()), ("--signature-path", self.signature_path.as_ref()))
    }
}

impl CiphertextSource {
    pub(crate) fn read(&self) -> Result<Vec<u8>, String> {
        inline_or_file(("--ciphertext", self.ciphertext.as_ref()), ("--ciphertext-path", self.ciphertext_path.as_ref()))
    }
}

/// A filter as the user wrote it, for messages.
pub(crate) fn shown_filter(terms: &[Pair]) -> String {
    terms.iter().map(|p| format!("{}={}", p.name, p.value)).collect::<Vec<_>>().join(" ")
}

/// The one key that `terms` (given to `flag`) select among the keys the
/// session can see on any HSM of the cluster.
pub(crate) async fn resolve(session: &ClusterSession, flag: &str, terms: &[Pair]) -> Result<KeyInfo, String> {
    let filters = tuples(terms);
    let page = session.list_keys(ListKeys::default().filters(&filters).max_items(2)).await;
    let page = page.map_err(|e| filter_error(flag, &e))?;
    match (page.total, page.keys.into_iter().next()) {
        (1, Some(key)) => Ok(key.info),
        (0, _) | (_, None) => Err(format!("no key matches the filter {flag} {}", shown_filter(terms))),
        (n, Some(_)) => Err(format!(
            "multiple keys match the filter {flag} {} ({n} keys); refine it to select a single key",
            shown_filter(terms)
        )),
    }
}

fn filter_error(flag: &str, err: &ClientError) -> String {
    match err {
        ClientError::InvalidArgument(message) => format!("{flag}: {message}"),
        other => other.to_string(),
    }
}
