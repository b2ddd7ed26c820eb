//! The docs point at things that exist: every path ARCHITECTURE.md names in
//! backticks is in the repository, and every relative link of the README,
//! ARCHITECTURE.md and `docs/` reaches a file, and a heading of it where the
//! link names one (GitHub's anchors).

use std::path::{Path, PathBuf};

use integration_tests::docs::{pages, read, root};

#[test]
fn every_path_architecture_names_exists() {
    let text = read("ARCHITECTURE.md");
    let missing: Vec<String> = code_spans(&text)
        .into_iter()
        .filter(|span| looks_like_path(span))
        .filter(|span| !root().join(span.trim_end_matches('/')).exists())
        .collect();
    assert!(missing.is_empty(), "ARCHITECTURE.md names paths that do not exist: {missing:?}");
    assert!(code_spans(&text).iter().filter(|s| looks_like_path(s)).count() > 10, "the check found the paths");
}

#[test]
fn every_link_between_the_pages_reaches_its_target() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = read(&page);
        let dir = Path::new(&page).parent().unwrap_or(Path::new(""));
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = link.split_once('#').map_or((link.as_str(), None), |(f, a)| (f, Some(a)));
            let target = if file.is_empty() { PathBuf::from(&page) } else { normalize(&dir.join(file)) };
            let target_name = target.display().to_string();
            if !root().join(&target).exists() {
                broken.push(format!("{page}: ({link}): {target_name} does not exist"));
                continue;
            }
            if let Some(anchor) = anchor.filter(|_| target_name.ends_with(".md"))
                && !anchors(&read(&target_name)).iter().any(|a| a == anchor)
            {
                broken.push(format!("{page}: ({link}): {target_name} has no heading #{anchor}"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The page's lines outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|line| {
            if line.starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// The inline code spans of the page's prose.
fn code_spans(text: &str) -> Vec<String> {
    prose(text).join("\n").split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// A repository path: no spaces or URL, a directory (`/`) or a file with
/// one of the repository's extensions, not a gRPC path (`/hsm.v1...`).
fn looks_like_path(span: &str) -> bool {
    let extensions = [".rs", ".md", ".toml", ".proto", ".sh", ".yaml"];
    !span.contains(char::is_whitespace)
        && !span.contains(':')
        && !span.starts_with('/')
        && !span.contains('*')
        && (span.contains('/') || extensions.iter().any(|e| span.ends_with(e)))
}

/// The targets of the page's Markdown links, `[text](target)`.
fn links(text: &str) -> Vec<String> {
    let prose = prose(text).join("\n");
    prose
        .match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &prose[at + 2..];
            rest.find(')').map(|end| rest[..end].to_owned())
        })
        .collect()
}

/// The anchors GitHub gives the page's headings: lower case, punctuation
/// but `-` and `_` dropped, spaces as `-`; a repeated one gets `-1`, `-2`...
fn anchors(text: &str) -> Vec<String> {
    let mut anchors: Vec<String> = Vec::new();
    let mut bases: Vec<String> = Vec::new();
    for line in prose(text) {
        let Some(heading) = line.strip_prefix('#') else { continue };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let slug: String = heading
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let repeats = bases.iter().filter(|b| **b == slug).count();
        anchors.push(if repeats == 0 { slug.clone() } else { format!("{slug}-{repeats}") });
        bases.push(slug);
    }
    anchors
}

/// `a/../b` as `b`: link targets are relative to their page.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
