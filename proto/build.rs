//! Compiles `proto/hsm/v1/*.proto` and `proto/hsm/testing/v1/*.proto` with
//! protox (no system `protoc`), generates the tonic/prost code, and generates
//! the `Rpc` catalogue: one enum variant per RPC method of `hsm.v1`, so that
//! code which must classify every RPC (the permission table) stops compiling
//! when a new RPC is added. The `hsm.testing.v1` test-control plane (fault
//! injection) is outside CloudHSM's API and its permission table, so it is
//! not in the catalogue.

use std::{env, fmt::Write as _, fs, path::PathBuf};

/// Messages that carry passwords or session tokens: their `Debug` is written by
/// hand in `src/lib.rs` so that secrets never reach a log.
const SECRET_MESSAGES: &[&str] = &[
    ".hsm.v1.LoginRequest",
    ".hsm.v1.LoginResponse",
    ".hsm.v1.ActivateRequest",
    ".hsm.v1.CreateUserRequest",
    ".hsm.v1.ChangeOwnPasswordRequest",
    ".hsm.v1.ChangeUserPasswordRequest",
    ".hsm.v1.ImportKeyRequest",
    ".hsm.v1.DecryptResponse",
];

/// The package whose RPCs make up the `Rpc` catalogue.
const API_PACKAGE: &str = "hsm.v1";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let mut files = protos_in(&root.join("hsm/v1"))?;
    files.extend(protos_in(&root.join("hsm/testing/v1"))?);

    let fds = protox::compile(&files, [&root])?;
    let api = prost_types::FileDescriptorSet {
        file: fds.file.iter().filter(|f| f.package() == API_PACKAGE).cloned().collect(),
    };
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("hsm_v1_descriptor.bin"), prost::Message::encode_to_vec(&api))?;
    fs::write(out.join("rpc.rs"), rpc_catalogue(&api)?)?;

    tonic_prost_build::configure().skip_debug(SECRET_MESSAGES.iter().copied()).compile_fds(fds)?;
    Ok(())
}

/// The `.proto` files of one directory, sorted, each watched for changes.
fn protos_in(dir: &std::path::Path) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "proto") {
            println!("cargo:rerun-if-changed={}", path.display());
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Writes the `Rpc` enum: variant names are the method names, which must be
/// unique across services.
fn rpc_catalogue(fds: &prost_types::FileDescriptorSet) -> Result<String, Box<dyn std::error::Error>> {
    let mut rpcs: Vec<(String, String)> = Vec::new();
    for file in &fds.file {
        let package = file.package();
        for service in &file.service {
            for method in &service.method {
                let name = method.name().to_owned();
                if rpcs.iter().any(|(n, _)| *n == name) {
                    return Err(format!("RPC name {name} is declared twice; names must be unique").into());
                }
                rpcs.push((name, format!("/{package}.{}/{}", service.name(), method.name())));
            }
        }
    }
    let mut s = String::new();
    writeln!(s, "/// Every RPC of the protocol, one variant per method (generated).")?;
    writeln!(s, "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]")?;
    writeln!(s, "pub enum Rpc {{")?;
    for (name, path) in &rpcs {
        writeln!(s, "    /// `{path}`")?;
        writeln!(s, "    {name},")?;
    }
    writeln!(s, "}}\n")?;
    writeln!(s, "impl Rpc {{")?;
    writeln!(s, "    /// All RPCs, in declaration order.")?;
    writeln!(s, "    pub const ALL: &'static [Rpc] = &[")?;
    for (name, _) in &rpcs {
        writeln!(s, "        Rpc::{name},")?;
    }
    writeln!(s, "    ];\n")?;
    writeln!(s, "    /// The HTTP/2 path of the RPC, `/package.Service/Method`.")?;
    writeln!(s, "    pub const fn path(self) -> &'static str {{")?;
    writeln!(s, "        match self {{")?;
    for (name, path) in &rpcs {
        writeln!(s, "            Rpc::{name} => \"{path}\",")?;
    }
    writeln!(s, "        }}\n    }}\n")?;
    writeln!(s, "    /// The RPC served at an HTTP/2 path, if any.")?;
    writeln!(s, "    pub fn from_path(path: &str) -> Option<Rpc> {{")?;
    writeln!(s, "        match path {{")?;
    for (name, path) in &rpcs {
        writeln!(s, "            \"{path}\" => Some(Rpc::{name}),")?;
    }
    writeln!(s, "            _ => None,\n        }}\n    }}\n}}")?;
    Ok(s)
}
