//! Test fixtures: openssl run as AWS's guide has the customer run it (a
//! CA of their own, and `openssl x509 -req` over the cluster's CSR), for
//! the tests of `pki`, `cluster` and `service` that check the customer's
//! chain.

use std::{path::Path, process::Command};

/// Runs openssl in `dir`; its stdout, or a panic with its stderr.
pub(crate) fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A self-signed CA made as AWS's guide makes `customerCA.crt` (`-days`).
pub(crate) fn customer_ca(dir: &Path, name: &str, days: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            days,
            "-subj",
            &format!("/CN={name}"),
        ],
    );
}

/// `openssl x509 -req` over `csr` with CA `ca`, exactly as AWS documents it.
pub(crate) fn sign(dir: &Path, csr: &str, ca: &str, out: &str, days: &str) {
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            days,
            "-in",
            csr,
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            out,
        ],
    );
}
