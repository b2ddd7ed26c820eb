//! The CLI reference (`docs/cli.md`) against `hsm-cli` itself: every command
//! the reference lists is there with every flag it names (AWS's names),
//! every command listed as not built is absent, and every command `hsm-cli`
//! has is in the reference, so that neither can drift from the other.

use std::{collections::BTreeSet, process::Command};

use integration_tests::{bin_dir, docs};

/// The rows of the reference's table between `<!-- NAME:start -->` and
/// `<!-- NAME:end -->`: (command words, flags named in the second column,
/// whole row).
fn table(page: &str, name: &str) -> Vec<(Vec<String>, Vec<String>, String)> {
    let start = format!("<!-- {name}:start -->");
    let end = format!("<!-- {name}:end -->");
    let from = page.find(&start).unwrap_or_else(|| panic!("docs/cli.md lacks {start}"));
    let to = page[from..].find(&end).unwrap_or_else(|| panic!("docs/cli.md lacks {end}")) + from;
    page[from + start.len()..to]
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            let command = backticked(cells[0]).into_iter().next().unwrap_or_default();
            let flags = cells.get(1).map(|c| backticked(c)).unwrap_or_default();
            let words = command.split_whitespace().map(str::to_owned).collect();
            (words, flags.into_iter().filter(|f| f.starts_with("--")).collect(), line.to_owned())
        })
        .collect()
}

/// The `code` spans of a Markdown table cell.
fn backticked(cell: &str) -> Vec<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

fn reference() -> String {
    docs::read("docs/cli.md")
}

/// `hsm-cli WORDS --help`: its text, or `None` when clap refuses the words.
fn help(words: &[String]) -> Option<String> {
    let out = Command::new(bin_dir().join("hsm-cli"))
        .args(words)
        .arg("--help")
        .env_remove("HSM_ENDPOINTS")
        .output()
        .expect("hsm-cli runs");
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether a help text documents `flag` (not merely a longer flag that
/// starts with it, as `--data` within `--data-path`).
fn documents(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(at, _)| {
        let next = help[at + flag.len()..].chars().next();
        !matches!(next, Some(c) if c.is_ascii_alphanumeric() || c == '-')
    })
}

/// The subcommands a help text lists under `Commands:`, `help` aside.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| line.trim() != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Every command `hsm-cli` accepts that has no subcommands, as words.
fn leaves(words: Vec<String>, out: &mut Vec<Vec<String>>) {
    let text = help(&words).unwrap_or_else(|| panic!("hsm-cli {} --help failed", words.join(" ")));
    let children = subcommands(&text);
    if children.is_empty() {
        out.push(words);
        return;
    }
    for child in children {
        let mut next = words.clone();
        next.push(child);
        leaves(next, out);
    }
}

#[test]
fn every_command_and_flag_in_the_reference_is_in_hsm_cli() {
    let page = reference();
    let rows = table(&page, "cli-reference");
    assert!(rows.len() > 40, "the reference lists the CloudHSM CLI's commands: {} rows", rows.len());
    for (words, flags, row) in &rows {
        if row.contains("not built") {
            assert!(help(words).is_none(), "docs/cli.md says `{}` is not built, but hsm-cli has it", words.join(" "));
            continue;
        }
        let text = help(words).unwrap_or_else(|| panic!("hsm-cli has no `{}` ({row})", words.join(" ")));
        for flag in flags {
            assert!(documents(&text, flag), "`hsm-cli {}` lacks {flag}:\n{text}", words.join(" "));
        }
        assert!(documents(&text, "--cluster-id"), "`hsm-cli {}` lacks --cluster-id", words.join(" "));
    }
}

#[test]
fn every_hsm_cli_command_is_in_the_reference() {
    let page = reference();
    let listed: BTreeSet<Vec<String>> = ["cli-reference", "cli-extensions"]
        .iter()
        .flat_map(|name| table(&page, name))
        .map(|(words, ..)| words)
        .collect();
    let mut all = Vec::new();
    leaves(Vec::new(), &mut all);
    let missing: Vec<String> = all.iter().filter(|words| !listed.contains(*words)).map(|w| w.join(" ")).collect();
    assert!(missing.is_empty(), "hsm-cli commands docs/cli.md does not list: {missing:?}");
}
