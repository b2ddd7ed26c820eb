//! The wire side of the control plane: the CloudHSM v2 API
//! (`BaldrApiService`, API version 2017-04-28) over HTTP, in the two
//! protocols botocore's service model lists, AWS JSON 1.1 and Smithy RPC
//! v2 CBOR, behind SigV4.
//!
//! This module knows the service model (shapes, operations, errors) and
//! nothing of clusters: it turns a request into an [`Operation`] and its
//! input, checked against the model, as JSON; a [`Handler`] answers it;
//! the answer goes back in the request's protocol.
//!
//! # Layout
//! (filled in with the files)

use std::{future::Future, pin::Pin};

listed_enum! {
    /// One operation of the service model, named as the model names it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Operation {
        CopyBackupToRegion,
        CreateCluster,
        CreateHsm,
        DeleteBackup,
        DeleteCluster,
        DeleteHsm,
        DeleteResourcePolicy,
        DescribeBackups,
        DescribeClusters,
        GetResourcePolicy,
        InitializeCluster,
        ListTags,
        ModifyBackupAttributes,
        ModifyCluster,
        PutResourcePolicy,
        RestoreBackup,
        TagResource,
        UntagResource,
    }
}

/// Why a request failed: the model's exceptions (which each operation's
/// `errors` list), then the protocol's own (AWS's common errors). The
/// message is what the SDKs show; it never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    InternalFailure(String),
    /// Bad input: the message names the field and the rule.
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    ResourceLimitExceeded(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    Service(String),
    #[error("{0}")]
    Tag(String),
}

/// Answers the operations: input and output are JSON values in the
/// model's member names (`ClusterId`, `Hsms`, ...); timestamps are epoch
/// seconds (numbers), which the protocol layer encodes as each protocol
/// wants. The input has been checked against the model (required members,
/// types, lengths, ranges, patterns, enums) before it gets here.
pub trait Handler: Send + Sync + 'static {
    fn call(
        &self,
        context: RequestContext,
        operation: Operation,
        input: serde_json::Value,
    ) -> Pin<Box<dyn Future<Output = Result<serde_json::Value, ApiError>> + Send + '_>>;
}

/// What the request says beyond its input: where and as whom.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// The region of the SigV4 credential scope (`.../us-west-2/cloudhsm/
    /// aws4_request`), or `None` for an unsigned request: the server's
    /// default region then.
    pub region: Option<String>,
    /// The access key id the request was signed with, if signed.
    pub access_key_id: Option<String>,
}
