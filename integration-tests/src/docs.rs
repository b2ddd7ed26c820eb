//! The project's Markdown pages, for the tests that keep them true
//! (`docs_commands`, `docs_paths`, `cli_reference`), and the README's Rust
//! example as a doctest.

use std::path::{Path, PathBuf};

/// The repository's root, where the pages are.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the repository root").to_owned()
}

/// The README, ARCHITECTURE.md and every page of `docs/`, as paths from the
/// root.
pub fn pages() -> Vec<String> {
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("a docs/ entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    ["README.md".to_owned(), "ARCHITECTURE.md".to_owned()].into_iter().chain(docs).collect()
}

/// A page's text, by its path from the root.
pub fn read(page: &str) -> String {
    std::fs::read_to_string(root().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"))
}

/// The README's Rust example, compiled by the doctests (`cargo test --doc
/// -p integration-tests`) so that it keeps to `hsm-client`'s API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
#[derive(Debug)]
pub struct ReadmeExamples;
