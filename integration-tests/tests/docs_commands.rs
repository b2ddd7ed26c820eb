//! Every shell block of the README and `docs/` is run by a test or by CI, or
//! says why not, so that a reader who pastes one gets what the page says.
//!
//! A fenced `sh`, `bash`, `shell` or `console` block is preceded by a mark:
//! - `<!-- run-by: integration-tests/tests/docs_commands.rs#ID -->`: a test
//!   below runs the block itself, as a reader would (the built binaries on
//!   `PATH`, `/tmp/NAME` paths moved into a temporary directory, fixed ports
//!   made free ones), checks every command's exit status (1 where the
//!   command's comment says "refused", 0 otherwise) and what the page says
//!   it prints.
//! - `<!-- run-by: PATH -->`: the test or CI script at `PATH` runs the same
//!   commands; it must exist and contain the block's first command (setup
//!   such as `cargo build`, `export` and assignments aside).
//! - `<!-- not-run: REASON -->`: nothing runs it, for the reason given.
//!
//! `every_shell_block_is_run_or_says_why_not` checks the marks; the other
//! tests are the runners, one per `ID`.

use std::{
    collections::BTreeMap,
    io::Read as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{
    DevProcess, bin_dir,
    docs::{pages, read, root},
    process::HANG_GUARD,
};

/// This file, as marks name it.
const THIS_FILE: &str = "integration-tests/tests/docs_commands.rs";

/// The blocks the tests below run, by the id their mark gives.
const RUNNERS: &[&str] =
    &["quick-start", "cli-session", "as-a-process", "seed", "faults", "metrics", "three-hsms", "getting-started"];

/// Fence languages that hold commands.
const SHELL: &[&str] = &["sh", "bash", "shell", "console"];

#[test]
fn every_shell_block_is_run_or_says_why_not() {
    let mut problems = Vec::new();
    let mut run_here: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for block in blocks().iter().filter(|b| SHELL.contains(&b.lang.as_str())) {
        let at = format!("{}:{}", block.doc, block.line);
        match &block.mark {
            None => problems.push(format!(
                "{at}: a ```{} block without a `<!-- run-by: PATH -->` or `<!-- not-run: REASON -->` mark",
                block.lang
            )),
            Some(Mark::NotRun(reason)) if reason.is_empty() => problems.push(format!("{at}: not-run without a reason")),
            Some(Mark::NotRun(_)) => {}
            Some(Mark::RunBy(target)) => match target.split_once('#') {
                Some((THIS_FILE, id)) => run_here.entry(id.to_owned()).or_default().push(at),
                Some(_) => problems.push(format!("{at}: only {THIS_FILE} takes an #ID: {target}")),
                None => problems.extend(check_runner(&at, target, block)),
            },
        }
    }
    for (id, places) in &run_here {
        if !RUNNERS.contains(&id.as_str()) {
            problems.push(format!("{}: {THIS_FILE} has no runner #{id}", places.join(", ")));
        } else if places.len() > 1 {
            problems.push(format!("#{id} marks {} blocks: {}", places.len(), places.join(", ")));
        }
    }
    for id in RUNNERS.iter().filter(|id| !run_here.contains_key(**id)) {
        problems.push(format!("no block is marked for the runner #{id}"));
    }
    assert!(problems.is_empty(), "shell blocks in the docs:\n{}", problems.join("\n"));
}

/// `hsm-daemon dev` as the README's quick start starts it, then the README's
/// CLI session against it.
#[test]
fn the_quick_start_and_the_cli_session() {
    let start = block("quick-start");
    let command = start.trim();
    let args = command
        .strip_prefix("cargo run --release -p hsm-daemon -- ")
        .unwrap_or_else(|| panic!("the quick start is no longer `cargo run ... -p hsm-daemon -- ARGS`: {command}"));
    let work = Work::new();
    let dev = work.start_dev(&format!("hsm-daemon {args}"));
    let cwd = work.dir("session");
    let steps = work.run(&block("cli-session"), &cwd);

    assert!(steps.output("hsm-cli cluster hsm-info", 0).contains("\"hsms\""), "{steps}");
    assert!(steps.output("hsm-cli user list", 0).contains("unauthenticated"), "{steps}");
    assert!(steps.output("hsm-cli user list", 1).contains("\"alice\""), "{steps}");
    // The README shows this refusal's envelope.
    let refused = steps.output("user create --username bob", 0);
    assert!(refused.contains("user create is not permitted for role crypto-user (CU)"), "{steps}");
    assert!(steps.output("hsm-cli crypto sign ecdsa", 0).contains("\"signature\""), "{steps}");
    let pem = std::fs::read_to_string(cwd.join("p256.pem")).expect("key generate-file wrote p256.pem");
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    assert!(steps.output("hsm-cli interactive", 0).contains("\"alice\""), "{steps}");
    drop(dev);
}

/// AWS's getting-started guide through the CloudHSM v2 API, against the
/// quick start's `hsm-daemon dev`: the AWS CLI and openssl as a CloudHSM
/// user runs them, then `hsm-cli` trusting the customer's CA.
#[test]
fn getting_started_through_the_aws_api() {
    let Some(venv) = integration_tests::aws::venv("the getting-started walkthrough") else { return };
    let start = block("quick-start");
    let args = start.trim().strip_prefix("cargo run --release -p hsm-daemon -- ").expect("the quick start");
    let mut work = Work::new();
    work.replace("$PWD/.venv-aws", &venv.display().to_string());
    let dev = work.start_dev(&format!("hsm-daemon {args}"));
    let steps = work.run(&block("getting-started"), &work.dir("cwd"));

    let verified = |n| steps.output("openssl verify", n).trim().ends_with(": OK");
    assert!(verified(0) && verified(1), "both chains verify to the emulator's roots:\n{steps}");
    assert!(steps.output("hsm-cli cluster activate", 0).contains("successful"), "{steps}");
    assert!(steps.output("hsm-cli crypto sign ecdsa", 0).contains("\"signature\""), "{steps}");
    assert!(steps.output("hsm-cli key list", 0).contains("\"signer\""), "the second HSM has the key:\n{steps}");
    assert!(steps.output("hsm-cli crypto sign ecdsa", 1).contains("\"signature\""), "{steps}");
    let last = steps
        .output("aws cloudhsmv2 describe-clusters --filters clusterIds=\"$CLUSTER\" --query 'Clusters[0].[State", 0);
    assert!(last.contains("\"ACTIVE\""), "{steps}");
    assert_eq!(last.matches("127.").count(), 1, "only the second HSM is left:\n{steps}");
    drop(dev);
}

/// `hsm-daemon dev` in the background of a shell script, as any test
/// framework would start it.
#[test]
fn dev_as_a_process() {
    let work = Work::new();
    let steps = work.run(&block("as-a-process"), &work.dir("cwd"));
    assert!(steps.output("hsm-cli user list", 0).contains("\"app_user\""), "{steps}");
}

/// The seed file example, on a new cluster.
#[test]
fn a_seeded_cluster() {
    let text = block("seed");
    let work = Work::new();
    let dev = work.start_dev(text.trim());
    let admin = dev.cli(&[("CLOUDHSM_ROLE", "admin"), ("CLOUDHSM_PIN", "admin:admin-pass")], &["user", "list"]).ok();
    let names: Vec<&str> = admin["users"].as_array().unwrap().iter().filter_map(|u| u["username"].as_str()).collect();
    assert!(names.contains(&"alice") && names.contains(&"bob"), "{admin}");
    let alice = [("CLOUDHSM_ROLE", "crypto-user"), ("CLOUDHSM_PIN", "alice:alice-pass")];
    let keys = dev.cli(&alice, &["key", "list", "--filter", "attr.label=alice-p256"]).ok();
    assert_eq!(keys["total_key_count"], 1, "{keys}");
}

/// Fault injection on a three-HSM `dev` cluster.
#[test]
fn fault_injection() {
    let text = block("faults");
    let (first, rest) = text.split_once('\n').expect("a dev command, then hsm-cli commands");
    let work = Work::new();
    let _dev = work.start_dev(first);
    let steps = work.run(rest, &work.dir("cwd"));
    assert!(steps.output("hsm-cli faults set", 0).contains("\"rule\""), "{steps}");
    assert!(steps.output("hsm-cli faults list", 0).contains("\"mode-hits\""), "{steps}");
    assert!(steps.output("hsm-cli faults snapshot", 0).contains("\"clean\""), "{steps}");
}

/// A metrics scrape of `hsm-daemon dev`.
#[test]
fn a_metrics_scrape() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("skipped: curl is not installed");
        return;
    }
    let mut work = Work::new();
    work.replace("127.0.0.1:9464", &format!("127.0.0.1:{}", free_port()));
    let steps = work.run(&block("metrics"), &work.dir("cwd"));
    let scraped = steps.output("curl -s http://127.0.0.1:9464/metrics | grep -v", 0);
    assert!(scraped.contains("hsm_info{") && scraped.contains("hsm_sessions_active{"), "{steps}");
}

/// Three `hsm-daemon run` processes, one stopped and started again.
#[test]
fn three_hsms_by_hand() {
    let work = Work::new();
    // "In step again within a sync interval": HSM 3 catches up by itself,
    // and the test waits for it before the script stops the HSMs.
    let catch_up = "for i in $(seq 300); do hsm-cli cluster sync-status | grep -q '\"in-sync\": true' && break; \
                    sleep 0.2; done; hsm-cli cluster sync-status";
    let steps = work.run_then(&block("three-hsms"), &work.dir("cwd"), catch_up);
    assert_eq!(steps.output("hsm-cli cluster hsm-info", 0).matches("\"address\"").count(), 3, "{steps}");
    assert!(steps.output("hsm-cli cluster sync-status", 0).contains("\"in-sync\": true"), "{steps}");
    // The pair made while HSM 3 was down says so, and signs.
    let made = steps.output("--private-label k2", 0);
    assert!(made.contains("\"failed-hsms\""), "{steps}");
    assert!(steps.output("hsm-cli crypto sign ecdsa", 0).contains("\"signature\""), "{steps}");
    let last = steps.steps.last().expect("the catch-up step");
    assert!(last.output.contains("\"in-sync\": true") && !last.output.contains("\"error\""), "{steps}");
}

// ---------------------------------------------------------------------------
// The pages and their blocks

/// A fenced block of a page.
#[derive(Debug)]
struct Block {
    /// The page, from the repository root.
    doc: String,
    /// The line of the opening fence.
    line: usize,
    lang: String,
    text: String,
    mark: Option<Mark>,
}

/// What the line before a block says runs it.
#[derive(Debug)]
enum Mark {
    RunBy(String),
    NotRun(String),
}

fn blocks() -> Vec<Block> {
    let mut blocks = Vec::new();
    for doc in pages() {
        let text = read(&doc);
        let lines: Vec<&str> = text.lines().collect();
        let mut at = 0;
        while at < lines.len() {
            let Some(info) = lines[at].strip_prefix("```") else {
                at += 1;
                continue;
            };
            let end = (at + 1..lines.len())
                .find(|i| lines[*i].trim_end() == "```")
                .unwrap_or_else(|| panic!("{doc}:{}: a fence that is never closed", at + 1));
            let mark = lines[..at].iter().rev().find(|l| !l.trim().is_empty()).and_then(|l| mark(l));
            blocks.push(Block {
                doc: doc.clone(),
                line: at + 1,
                lang: info.split([' ', ',']).next().unwrap_or_default().to_owned(),
                text: lines[at + 1..end].join("\n"),
                mark,
            });
            at = end + 1;
        }
    }
    blocks
}

fn mark(line: &str) -> Option<Mark> {
    let inner = line.trim().strip_prefix("<!--")?.strip_suffix("-->")?.trim();
    if let Some(target) = inner.strip_prefix("run-by:") {
        Some(Mark::RunBy(target.trim().to_owned()))
    } else {
        inner.strip_prefix("not-run:").map(|reason| Mark::NotRun(reason.trim().to_owned()))
    }
}

/// The text of the block marked `run-by: THIS_FILE#id`.
fn block(id: &str) -> String {
    let target = format!("{THIS_FILE}#{id}");
    blocks()
        .into_iter()
        .find(|b| matches!(&b.mark, Some(Mark::RunBy(t)) if *t == target))
        .unwrap_or_else(|| panic!("no block is marked run-by: {target}"))
        .text
}

/// Why `target` does not vouch for the block, if it does not.
fn check_runner(at: &str, target: &str, block: &Block) -> Option<String> {
    let path = root().join(target);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Some(format!("{at}: run-by names {target}, which does not exist"));
    };
    let Some(words) = first_command(&block.text) else {
        return Some(format!("{at}: the block has no command"));
    };
    (!contains_command(&text, &words))
        .then(|| format!("{at}: {target} does not contain the block's first command, `{}`", words.join(" ")))
}

/// The block's first command (the program and up to two subcommand words),
/// setup aside.
fn first_command(text: &str) -> Option<Vec<String>> {
    const SETUP: &[&str] = &["export", "set", "cd", "mkdir", "printf", "echo", "apt-get", "sudo", "true"];
    for line in logical_lines(text) {
        let line = line.trim_start().strip_prefix("$ ").unwrap_or(line.trim_start());
        let mut words = line.split_whitespace().skip_while(|w| is_assignment(w)).peekable();
        let Some(program) = words.next() else { continue };
        if program.starts_with('#') || SETUP.contains(&program) {
            continue;
        }
        // Two subcommand words say which command it is; a third is often
        // an argument a script passes as a variable (`ec`, `rsa`).
        let rest: Vec<&str> = words.take_while(|w| is_subcommand(w)).take(2).collect();
        if program == "cargo" && rest.first() == Some(&"build") {
            continue;
        }
        return Some(std::iter::once(program).chain(rest).map(str::to_owned).collect());
    }
    None
}

/// `NAME=value` before a command.
fn is_assignment(word: &str) -> bool {
    word.split_once('=')
        .is_some_and(|(name, _)| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// A word that names a subcommand: lower case, digits and dashes.
fn is_subcommand(word: &str) -> bool {
    word.starts_with(|c: char| c.is_ascii_lowercase())
        && word.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Whether `text` runs `words`: it names the program and has the subcommand
/// words in order, as a shell line (`a b`) or as Rust arguments (`"a", "b"`).
fn contains_command(text: &str, words: &[String]) -> bool {
    let program = words[0].rsplit('/').next().unwrap_or(&words[0]);
    let rest = &words[1..];
    text.contains(program)
        && (rest.is_empty()
            || contains_words(text, &rest.join(" "))
            || text.contains(&format!("\"{}\"", rest.join("\", \""))))
}

/// Whether `phrase` occurs in `text` as whole words.
fn contains_words(text: &str, phrase: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    text.match_indices(phrase)
        .any(|(at, _)| !word(text[..at].chars().next_back()) && !word(text[at + phrase.len()..].chars().next()))
}

/// The lines of a script, continuation lines (`\` at the end) joined.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        current.push_str(line);
        if current.ends_with('\\') {
            current.push('\n');
        } else {
            lines.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

// ---------------------------------------------------------------------------
// Running a block

/// A temporary directory that stands for `/tmp`, and the rewrites that make a
/// block run there with the binaries cargo built.
struct Work {
    dir: tempfile::TempDir,
    replacements: Vec<(String, String)>,
}

impl Work {
    fn new() -> Work {
        let dir = tempfile::tempdir().expect("temp dir");
        let replacements = vec![
            // The binaries cargo built for the tests, not a release build.
            ("$PWD/target/release".to_owned(), bin_dir().display().to_string()),
            ("/tmp/".to_owned(), format!("{}/", dir.path().display())),
        ];
        Work { dir, replacements }
    }

    fn replace(&mut self, from: &str, to: &str) {
        self.replacements.insert(0, (from.to_owned(), to.to_owned()));
    }

    fn rewrite(&self, text: &str) -> String {
        self.replacements.iter().fold(text.to_owned(), |text, (from, to)| text.replace(from, to))
    }

    /// A new directory inside the work directory.
    fn dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).expect("a work directory");
        dir
    }

    /// Starts `hsm-daemon dev ARGS` (one line of a page, run in the
    /// foreground there, "in one terminal") and waits until it serves.
    /// Arguments naming files of the repository are taken from its root.
    fn start_dev(&self, line: &str) -> DevProcess {
        let words: Vec<String> = self.rewrite(line).split_whitespace().map(str::to_owned).collect();
        assert!(words.len() >= 2 && words[0] == "hsm-daemon" && words[1] == "dev", "not `hsm-daemon dev`: {line}");
        let at = words.iter().position(|w| w == "--dir").unwrap_or_else(|| panic!("no --dir: {line}"));
        let dir = PathBuf::from(&words[at + 1]);
        let args: Vec<String> = words[2..at]
            .iter()
            .chain(&words[at + 2..])
            .map(|arg| {
                let in_repo = root().join(arg);
                if in_repo.is_file() { in_repo.display().to_string() } else { arg.clone() }
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        std::fs::create_dir_all(dir.parent().expect("--dir has a parent")).expect("--dir's parent");
        let holder = tempfile::Builder::new().prefix("dev").tempdir_in(self.dir.path()).expect("temp dir");
        // The page's directory is a link to one DevProcess owns.
        std::os::unix::fs::symlink(holder.path(), &dir).expect("link --dir");
        DevProcess::start_in(holder, &args)
    }

    /// Runs `text` with bash in `cwd`, each command between markers, and
    /// checks each exit status: 1 where its comment says "refused", else 0.
    fn run(&self, text: &str, cwd: &Path) -> Steps {
        self.run_then(text, cwd, "")
    }

    /// As [`Self::run`], then `more` (the test's own commands, one a line),
    /// before what the block left running is stopped.
    fn run_then(&self, text: &str, cwd: &Path, more: &str) -> Steps {
        let mut script = String::new();
        let mut commands = Vec::new();
        for line in logical_lines(text).into_iter().chain(logical_lines(more)) {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            // A reader builds first; the tests run what cargo built for them.
            let line = if trimmed.starts_with("cargo build") { "true".to_owned() } else { self.rewrite(&line) };
            let n = commands.len();
            script.push_str(&format!("echo '@@cmd {n}'\n{line}\necho \"@@rc {n} $?\"\n"));
            commands.push(trimmed.to_owned());
        }
        // Whatever the block left running in the background stops.
        script.push_str("kill $(jobs -p) 2>/dev/null; wait\n");
        let (stdout, stderr) = self.bash(&script, cwd);
        let steps = Steps::parse(&commands, &stdout, &stderr);
        for (n, step) in steps.steps.iter().enumerate() {
            let expected = if step.command.contains("# refused") { 1 } else { 0 };
            assert_eq!(
                step.status,
                Some(expected),
                "command {n}, `{}`, exited with {:?}:\n{steps}",
                step.command,
                step.status
            );
        }
        steps
    }

    /// Runs `script` with bash in a process group of its own, which is
    /// killed (with whatever the script started) if it outlives the guard.
    fn bash(&self, script: &str, cwd: &Path) -> (String, String) {
        use std::os::unix::process::CommandExt as _;
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin_dir().to_owned()];
        paths.extend(std::env::split_paths(&path));
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(cwd)
            .env("PATH", std::env::join_paths(paths).expect("PATH"))
            .env("TMPDIR", self.dir.path())
            // The cheap password hashing the tests use; hsm-daemon reads these.
            .env("HSM_KDF_MEMORY_KIB", "8")
            .env("HSM_KDF_ITERATIONS", "1")
            .env_remove("CLOUDHSM_ROLE")
            .env_remove("CLOUDHSM_PIN")
            .env_remove("HSM_ENDPOINTS")
            .env_remove("HSM_CA_CERT")
            .env_remove("HSM_ADMIN_PASSWORD")
            .env_remove("HSM_SEED")
            .env_remove("HSM_DETERMINISTIC")
            .env_remove("HSM_DISABLE_KEY_AVAILABILITY_CHECK")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("bash");
        let group = KillGroup(child.id());
        let read = |mut pipe: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        };
        let stdout = read(Box::new(child.stdout.take().expect("stdout")));
        let stderr = read(Box::new(child.stderr.take().expect("stderr")));
        let deadline = Instant::now() + 2 * HANG_GUARD;
        while child.try_wait().expect("bash status").is_none() {
            if Instant::now() > deadline {
                drop(group);
                panic!("the script ran for over {:?}:\n{script}", 2 * HANG_GUARD);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(group);
        (stdout.join().expect("stdout reader"), stderr.join().expect("stderr reader"))
    }
}

/// Kills a process group (a script and what it started) when dropped.
struct KillGroup(u32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.0)]).stderr(Stdio::null()).status();
    }
}

/// What each command of a script printed, and its exit status.
struct Steps {
    steps: Vec<Step>,
    stderr: String,
}

struct Step {
    command: String,
    output: String,
    status: Option<i32>,
}

impl Steps {
    fn parse(commands: &[String], stdout: &str, stderr: &str) -> Steps {
        let mut steps: Vec<Step> =
            commands.iter().map(|c| Step { command: c.clone(), output: String::new(), status: None }).collect();
        let mut current = None;
        for line in stdout.lines() {
            if let Some(n) = line.strip_prefix("@@cmd ") {
                current = n.parse::<usize>().ok();
            } else if let Some(rest) = line.strip_prefix("@@rc ") {
                let (n, status) = rest.split_once(' ').expect("@@rc N STATUS");
                if let (Ok(n), Ok(status)) = (n.parse::<usize>(), status.parse()) {
                    steps[n].status = Some(status);
                }
                current = None;
            } else if let Some(n) = current {
                steps[n].output.push_str(line);
                steps[n].output.push('\n');
            }
        }
        Steps { steps, stderr: stderr.to_owned() }
    }

    /// The output of the `nth` command (from 0) that contains `needle`.
    fn output(&self, needle: &str, nth: usize) -> &str {
        &self
            .steps
            .iter()
            .filter(|s| s.command.contains(needle))
            .nth(nth)
            .unwrap_or_else(|| panic!("no command {nth} containing `{needle}`:\n{self}"))
            .output
    }
}

impl std::fmt::Display for Steps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for step in &self.steps {
            writeln!(f, "$ {}\n{}[exit {:?}]", step.command, step.output, step.status)?;
        }
        write!(f, "standard error:\n{}", self.stderr)
    }
}

/// A port nothing listens on at the moment.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}
