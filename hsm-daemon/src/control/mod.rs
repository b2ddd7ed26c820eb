//! The control plane: the CloudHSM v2 API (`aws cloudhsmv2 ...`, boto3,
//! the SDKs), whose clusters and HSMs are real: `create-hsm` starts an HSM
//! that `hsm-cli` and the PKCS#11 library then talk to.
//!
//! # Layout
//! - [`api`]: the wire: HTTP, AWS JSON 1.1 and Smithy RPC v2 CBOR, SigV4,
//!   the service model's shapes and errors.
//! - [`state`]: clusters, HSMs, backups, tags and policies, and the rules
//!   of each operation over them. Pure.
//! - [`plane`]: [`plane::ControlPlane`], the operations carried out on this
//!   machine: HSMs started and stopped, certificates, backup files, the
//!   state saved.
//! - [`server`]: [`server::ControlServer`], the plane and its API on a
//!   port, with the schedule: what `dev`, `control-plane` and tests start.
//! - [`clock`]: wall-clock time, which tests move forward.

pub mod api;
pub mod clock;
pub mod plane;
pub mod server;
pub mod state;
