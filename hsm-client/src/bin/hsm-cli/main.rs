//! `hsm-cli`: the CloudHSM CLI's grammar and JSON output, against the
//! emulator. Every command works against all HSMs in `HSM_ENDPOINTS`
//! through `hsm_client`'s cluster layer (see `output` for how partial
//! results print).
//!
//! # Layout
//! - `grammar`: the commands and flags (clap), per area.
//! - `shell`: runs commands, holds each cluster's connections and session.
//! - `clusters`: the configured clusters (`--endpoint`, or a `--config`
//!   file naming several by id), `--cluster-id`, and the check that the
//!   HSMs reached report that id.
//! - `replicate`: `key replicate`, a key copied to a clone cluster.
//! - `keys`, `crypto`: run the `key ...` and `crypto ...` commands.
//! - `faults`: runs `faults ...` (an emulator extension for test suites):
//!   fault injection, snapshots and resets on one HSM (`--hsm`) or all
//!   (`--all`), on HSMs started with `--faults`; no login needed.
//! - `quorum`: quorum tokens, approvals, quorum values, approver keys and
//!   MFA (token-sign), and their token files.
//! - `input`: base64/hex flags, data files, and filters that select one key.
//! - `pem`: PEM files read by `key import pem` and written by
//!   `key generate-file --encoding reference-pem`.
//! - `output`: the `{"error_code": .., "data": ..}` envelope and data shapes.
//!
//! Single-command mode (`hsm-cli user list`) logs in from `CLOUDHSM_ROLE`
//! and `CLOUDHSM_PIN=username:password` when both are set and logs out
//! afterwards; interactive mode (`hsm-cli interactive`) keeps a session across
//! `login` and `logout`. A failure prints `error_code` 1 and exits with 1.

mod clusters;
mod crypto;
mod faults;
mod grammar;
mod input;
mod keys;
mod output;
mod pem;
mod quorum;
mod replicate;
mod shell;

use std::process::ExitCode;

use clap::Parser as _;

use crate::{
    grammar::{Cli, Mode},
    shell::Shell,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut shell = Shell::new(cli.connection);
    match cli.mode {
        Mode::Interactive => shell.interactive(cli.choice).await,
        Mode::Command(command) => shell.single(cli.choice, command).await,
    }
}
