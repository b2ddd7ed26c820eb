//! [`ClientError`]: what a call to the HSM can end in.

use std::error::Error as _;

use tonic::{Code, Status};

/// A failed call. The variants follow the HSM's outcomes; the message is the
/// HSM's own (it names the field, rule, operation or role involved).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The client was set up wrongly (endpoints, CA file).
    #[error("{0}")]
    Config(String),
    /// The HSM could not be reached.
    #[error("{0}")]
    Unavailable(String),
    /// Not logged in, bad credentials, or an expired session.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller's role may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// A request field breaks a rule.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The HSM is not in a state that allows this (locked user, logged-in
    /// user, already activated, ...).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A quota is full.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The HSM answered something this client does not understand.
    #[error("unexpected response from the HSM: {0}")]
    Protocol(String),
    /// Any other gRPC status.
    #[error("{code:?}: {message}")]
    Other { code: Code, message: String },
}

impl From<Status> for ClientError {
    fn from(status: Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            Code::Unauthenticated => ClientError::Unauthenticated(message),
            Code::PermissionDenied => ClientError::PermissionDenied(message),
            Code::InvalidArgument => ClientError::InvalidArgument(message),
            Code::NotFound => ClientError::NotFound(message),
            Code::AlreadyExists => ClientError::AlreadyExists(message),
            Code::FailedPrecondition => ClientError::FailedPrecondition(message),
            Code::ResourceExhausted => ClientError::ResourceExhausted(message),
            // A transport failure keeps its cause (refused connection, bad
            // certificate) in the sources.
            Code::Unavailable => ClientError::Unavailable(with_causes(message, status.source())),
            // The connection itself broke (the HSM closed it: refused at the
            // TLS handshake, say, for want of a client certificate under mTLS
            // enforcement): the HSM is unavailable to this client.
            Code::Cancelled | Code::Unknown if status.source().is_some() => ClientError::Unavailable(with_causes(
                format!("the connection to the HSM was closed ({message})"),
                status.source(),
            )),
            code => ClientError::Other { code, message },
        }
    }
}

impl ClientError {
    /// The same kind of error with its message rewritten (to add which HSM
    /// it came from, say).
    pub(crate) fn map_message(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            ClientError::Config(m) => ClientError::Config(f(m)),
            ClientError::Unavailable(m) => ClientError::Unavailable(f(m)),
            ClientError::Unauthenticated(m) => ClientError::Unauthenticated(f(m)),
            ClientError::PermissionDenied(m) => ClientError::PermissionDenied(f(m)),
            ClientError::InvalidArgument(m) => ClientError::InvalidArgument(f(m)),
            ClientError::NotFound(m) => ClientError::NotFound(f(m)),
            ClientError::AlreadyExists(m) => ClientError::AlreadyExists(f(m)),
            ClientError::FailedPrecondition(m) => ClientError::FailedPrecondition(f(m)),
            ClientError::ResourceExhausted(m) => ClientError::ResourceExhausted(f(m)),
            ClientError::Protocol(m) => ClientError::Protocol(f(m)),
            ClientError::Other { code, message } => ClientError::Other { code, message: f(message) },
        }
    }
}

/// An error and its causes on one line: transport errors hide the useful
/// part (refused connection, bad certificate) in their sources.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    with_causes(err.to_string(), err.source())
}

/// `text` followed by each cause not already said (transport errors repeat
/// themselves down the chain).
fn with_causes(mut text: String, mut cause: Option<&dyn std::error::Error>) -> String {
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}
