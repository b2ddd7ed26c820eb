//! The AWS CLI and boto3 that `.ci/aws-tools` installs, which tests drive
//! against a [`hsm_daemon::testing::TestControlPlane`].

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use crate::docs::root;

/// The virtual environment holding `aws` and boto3 (`HSM_AWS_VENV`, else
/// `.venv-aws` at the repository's root), or `None` when it is missing and
/// `HSM_AWS_REQUIRE_TOOLS` is not set (CI sets it): the test then says it
/// is skipped. Run `.ci/aws-tools` to install it.
pub fn venv(test: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("HSM_AWS_VENV").map(PathBuf::from).unwrap_or_else(|| root().join(".venv-aws"));
    if venv.join("bin/aws").exists() && venv.join("bin/python").exists() {
        return Some(venv);
    }
    assert!(
        std::env::var_os("HSM_AWS_REQUIRE_TOOLS").is_none(),
        "{test}: the AWS CLI and boto3 are not in {} and HSM_AWS_REQUIRE_TOOLS is set; run .ci/aws-tools",
        venv.display()
    );
    eprintln!("{test}: skipped: no AWS CLI and boto3 in {} (run .ci/aws-tools)", venv.display());
    None
}

/// Runs `program` of the virtual environment with `args`, its endpoint and
/// dummy credentials in the environment (never AWS's own endpoint), without
/// blocking the runtime's workers.
pub async fn run(venv: &Path, program: &str, args: &[&str], endpoint: &str, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(venv.join("bin").join(program));
    command
        .args(args)
        .env("AWS_ENDPOINT_URL_CLOUDHSM_V2", endpoint)
        // Anything else a script calls stays here too.
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE");
    for (name, value) in env {
        command.env(name, value);
    }
    tokio::process::Command::from(command).output().await.expect("run the venv's program")
}
