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
//! The path of a request ([`serve`]): method and path pick the protocol
//! (`POST /` is AWS JSON 1.1, `POST /service/BaldrApiService/operation/<Op>`
//! is RPC v2 CBOR, `GET` asks [`Handler::document`]); the SigV4
//! `Authorization` header is checked before the body is read, the body is
//! read up to [`ApiConfig::max_body`], the signature is checked over it;
//! the body is decoded into JSON (CBOR timestamps become epoch seconds),
//! checked against the operation's input shape, and handed to the
//! [`Handler`]; its output (or [`ApiError`]) is encoded in the request's
//! protocol, timestamps as that protocol wants.
//!
//! # Layout
//! - `mod.rs`: [`Operation`], [`ApiError`] (the model's exceptions and the
//!   protocols' own, with their names and statuses), [`Handler`].
//! - `service-2.json`: the service model, botocore's
//!   `botocore/data/cloudhsmv2/2017-04-28/service-2.json` (Apache-2.0,
//!   from botocore 1.44.18) with every `documentation` field removed.
//! - `model.rs`: that model, parsed once: operations and shapes.
//! - `validate.rs`: input checked against the shapes, in AWS's validation
//!   messages.
//! - `json.rs`: AWS JSON 1.1 (`X-Amz-Target`).
//! - `cbor.rs`: Smithy RPC v2 CBOR (`smithy-protocol: rpc-v2-cbor`).
//! - `sigv4.rs`: SigV4 verification ([`Credentials`]).
//! - `server.rs`: the HTTP server ([`serve`], [`ApiConfig`]): routing, body
//!   limits, logging, graceful shutdown.
//! - `time.rs`: the ISO 8601 basic format SigV4 dates use (the clock is
//!   [`crate::control::clock`]'s).
//! - Tests: each file's own (`cbor_tests.rs` and `sigv4_tests.rs` beside
//!   theirs); `tests.rs` and `tests_*.rs` drive the server with a fake
//!   handler; `testdata/` holds requests botocore signed. Real botocore
//!   and the AWS CLI drive the whole plane in
//!   `integration-tests/tests/control_plane.rs`.

mod cbor;
mod json;
mod model;
mod server;
mod sigv4;
mod time;
mod validate;

#[cfg(test)]
mod tests;

use std::{future::Future, pin::Pin};

use http::StatusCode;

pub use self::{
    server::{ApiConfig, DEFAULT_MAX_BODY, serve},
    sigv4::Credentials,
};

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

impl Operation {
    /// The operation's name in the model and on the wire
    /// (`X-Amz-Target: BaldrApiService.<name>`, `.../operation/<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Operation::CopyBackupToRegion => "CopyBackupToRegion",
            Operation::CreateCluster => "CreateCluster",
            Operation::CreateHsm => "CreateHsm",
            Operation::DeleteBackup => "DeleteBackup",
            Operation::DeleteCluster => "DeleteCluster",
            Operation::DeleteHsm => "DeleteHsm",
            Operation::DeleteResourcePolicy => "DeleteResourcePolicy",
            Operation::DescribeBackups => "DescribeBackups",
            Operation::DescribeClusters => "DescribeClusters",
            Operation::GetResourcePolicy => "GetResourcePolicy",
            Operation::InitializeCluster => "InitializeCluster",
            Operation::ListTags => "ListTags",
            Operation::ModifyBackupAttributes => "ModifyBackupAttributes",
            Operation::ModifyCluster => "ModifyCluster",
            Operation::PutResourcePolicy => "PutResourcePolicy",
            Operation::RestoreBackup => "RestoreBackup",
            Operation::TagResource => "TagResource",
            Operation::UntagResource => "UntagResource",
        }
    }

    /// The operation of that exact name (case matters, as on AWS).
    pub fn parse(name: &str) -> Option<Operation> {
        Operation::ALL.iter().copied().find(|operation| operation.name() == name)
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
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
    /// No such operation: an unknown `X-Amz-Target`, or an RPC v2 path
    /// that names no operation of this service.
    #[error("{message}")]
    UnknownOperation {
        message: String,
        /// 400 for AWS JSON (the target header is wrong), 404 for RPC v2
        /// (the path names nothing).
        status: StatusCode,
    },
    /// The body is not the protocol's format (bad JSON or CBOR, not a
    /// map, a type CBOR allows but JSON cannot hold), or a header the
    /// protocol needs is missing.
    #[error("{0}")]
    Serialization(String),
    /// The `Content-Type` is not the protocol's.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The `Accept` header of an RPC v2 request rules out CBOR.
    #[error("{0}")]
    NotAcceptable(String),
    /// The body is over [`ApiConfig::max_body`].
    #[error("{0}")]
    RequestEntityTooLarge(String),
    /// Neither `POST` (operations) nor `GET` (documents).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// Credentials are configured and the request is not signed.
    #[error("{0}")]
    MissingAuthenticationToken(String),
    /// The `Authorization` header is not a well-formed SigV4 header.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The access key id is not the configured one.
    #[error("{0}")]
    UnrecognizedClient(String),
    /// The signature does not match, or is out of date.
    #[error("{0}")]
    InvalidSignature(String),
}

impl ApiError {
    /// The error's name on the wire (`__type`, `x-amzn-ErrorType`), as
    /// the model and AWS's common errors spell it.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::AccessDenied(_) => "CloudHsmAccessDeniedException",
            ApiError::InternalFailure(_) => "CloudHsmInternalFailureException",
            ApiError::InvalidRequest(_) => "CloudHsmInvalidRequestException",
            ApiError::ResourceLimitExceeded(_) => "CloudHsmResourceLimitExceededException",
            ApiError::ResourceNotFound(_) => "CloudHsmResourceNotFoundException",
            ApiError::Service(_) => "CloudHsmServiceException",
            ApiError::Tag(_) => "CloudHsmTagException",
            ApiError::UnknownOperation { .. } => "UnknownOperationException",
            ApiError::Serialization(_) => "SerializationException",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaTypeException",
            ApiError::NotAcceptable(_) => "NotAcceptableException",
            ApiError::RequestEntityTooLarge(_) => "RequestEntityTooLargeException",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowedException",
            ApiError::MissingAuthenticationToken(_) => "MissingAuthenticationTokenException",
            ApiError::IncompleteSignature(_) => "IncompleteSignatureException",
            ApiError::UnrecognizedClient(_) => "UnrecognizedClientException",
            ApiError::InvalidSignature(_) => "InvalidSignatureException",
        }
    }

    /// The HTTP status: 500 for the model's one fault (internal failure),
    /// 400 for its client errors, AWS's statuses for the protocol's own.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InternalFailure(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::AccessDenied(_)
            | ApiError::InvalidRequest(_)
            | ApiError::ResourceLimitExceeded(_)
            | ApiError::ResourceNotFound(_)
            | ApiError::Service(_)
            | ApiError::Tag(_)
            | ApiError::Serialization(_)
            | ApiError::IncompleteSignature(_) => StatusCode::BAD_REQUEST,
            ApiError::UnknownOperation { status, .. } => *status,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::RequestEntityTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::MissingAuthenticationToken(_)
            | ApiError::UnrecognizedClient(_)
            | ApiError::InvalidSignature(_) => StatusCode::FORBIDDEN,
        }
    }

    /// The message the SDKs show (`Message` in the body).
    pub fn message(&self) -> &str {
        match self {
            ApiError::AccessDenied(message)
            | ApiError::InternalFailure(message)
            | ApiError::InvalidRequest(message)
            | ApiError::ResourceLimitExceeded(message)
            | ApiError::ResourceNotFound(message)
            | ApiError::Service(message)
            | ApiError::Tag(message)
            | ApiError::UnknownOperation { message, .. }
            | ApiError::Serialization(message)
            | ApiError::UnsupportedMediaType(message)
            | ApiError::NotAcceptable(message)
            | ApiError::RequestEntityTooLarge(message)
            | ApiError::MethodNotAllowed(message)
            | ApiError::MissingAuthenticationToken(message)
            | ApiError::IncompleteSignature(message)
            | ApiError::UnrecognizedClient(message)
            | ApiError::InvalidSignature(message) => message,
        }
    }
}

/// Answers the operations: input and output are JSON values in the
/// model's member names (`ClusterId`, `Hsms`, ...); timestamps are epoch
/// seconds (numbers), which the protocol layer encodes as each protocol
/// wants. The input has been checked against the model (required members,
/// types, lengths, ranges, patterns, enums) before it gets here, and holds
/// only the model's members (unknown ones and nulls are dropped).
pub trait Handler: Send + Sync + 'static {
    fn call(
        &self,
        context: RequestContext,
        operation: Operation,
        input: serde_json::Value,
    ) -> Pin<Box<dyn Future<Output = Result<serde_json::Value, ApiError>> + Send + '_>>;

    /// A static document served on `GET <path>` (the emulator's root
    /// certificates, say), or `None` for a 404. GET needs no signature:
    /// what it serves is public. None by default.
    fn document(&self, path: &str) -> Option<Document> {
        let _ = path;
        None
    }
}

/// What `GET` returns: a body and its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The `Content-Type`, e.g. `application/x-pem-file`.
    pub content_type: String,
    pub body: Vec<u8>,
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
