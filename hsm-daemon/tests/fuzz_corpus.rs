//! The fuzz targets' inputs, replayed on stable Rust: every seed (each must
//! get past parsing, on HSMs of its own), every file of the committed corpus
//! (`fuzz/corpus/TARGET/`) and every crash a fuzzer found and was fixed
//! (`fuzz/regressions/TARGET/`). A target that panics on any of them fails
//! here, without nightly or `cargo fuzz`.
//!
//! `HSM_FUZZ_WRITE_SEEDS=1 cargo test -p hsm-daemon --test fuzz_corpus`
//! also writes the seeds into the corpus folders (named, as libFuzzer
//! names its files, by their SHA-1).

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly on the first unexpected error")]

use std::path::{Path, PathBuf};

use hsm_daemon::fuzzing::Target;
use sha1::{Digest as _, Sha1};

fn folder(kind: &str, target: Target) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind).join(target.name())
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

#[test]
fn every_seed_gets_past_parsing() {
    let write = std::env::var_os("HSM_FUZZ_WRITE_SEEDS").is_some();
    for target in Target::ALL {
        let seeds = target.seeds();
        assert!(!seeds.is_empty(), "{} has no seeds", target.name());
        for (i, seed) in seeds.iter().enumerate() {
            assert!(target.run_alone(seed), "seed {i} of {} stops at parsing", target.name());
            if write {
                let dir = folder("corpus", target);
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join(hex::encode(Sha1::digest(seed))), seed).unwrap();
            }
        }
    }
}

#[test]
fn the_committed_corpus_and_regressions_replay() {
    let mut replayed = 0;
    for target in Target::ALL {
        let corpus = files(&folder("corpus", target));
        assert!(!corpus.is_empty(), "{} has no committed corpus", target.name());
        // The corpus as a fuzzer runs it (HSMs kept across inputs), each
        // crash found alone, as it was replayed when it was fixed.
        let regressions = files(&folder("regressions", target));
        let runs = corpus.iter().map(|p| (p, false)).chain(regressions.iter().map(|p| (p, true)));
        for (path, alone) in runs {
            let data = std::fs::read(path).unwrap();
            let outcome = std::panic::catch_unwind(|| if alone { target.run_alone(&data) } else { target.run(&data) });
            assert!(outcome.is_ok(), "{} panics on {}", target.name(), path.display());
            replayed += 1;
        }
    }
    assert!(replayed >= Target::ALL.len());
}
