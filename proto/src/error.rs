//! The error every dclab service returns, and its mapping to gRPC status codes.

use tonic::{Code, Status};

/// A refused or failed request. The message names the bad input and, where it
/// helps, what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The same error with `prefix` before its message.
    pub fn context(self, prefix: &str) -> ApiError {
        let wrap = |m: String| format!("{prefix}: {m}");
        match self {
            ApiError::InvalidArgument(m) => ApiError::InvalidArgument(wrap(m)),
            ApiError::NotFound(m) => ApiError::NotFound(wrap(m)),
            ApiError::AlreadyExists(m) => ApiError::AlreadyExists(wrap(m)),
            ApiError::FailedPrecondition(m) => ApiError::FailedPrecondition(wrap(m)),
            ApiError::ResourceExhausted(m) => ApiError::ResourceExhausted(wrap(m)),
            ApiError::Unauthenticated(m) => ApiError::Unauthenticated(wrap(m)),
            ApiError::PermissionDenied(m) => ApiError::PermissionDenied(wrap(m)),
            ApiError::Unavailable(m) => ApiError::Unavailable(wrap(m)),
            ApiError::Internal(m) => ApiError::Internal(wrap(m)),
        }
    }

    pub fn code(&self) -> Code {
        match self {
            ApiError::InvalidArgument(_) => Code::InvalidArgument,
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::AlreadyExists(_) => Code::AlreadyExists,
            ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::ResourceExhausted(_) => Code::ResourceExhausted,
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::PermissionDenied(_) => Code::PermissionDenied,
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::Internal(_) => Code::Internal,
        }
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Status {
        Status::new(err.code(), clip(err.to_string()))
    }
}

/// Longest status message sent: messages quote the caller's input, and an
/// oversized one would not fit the HTTP/2 header it travels in.
pub const MAX_MESSAGE: usize = 1024;

/// `msg`, shortened to MAX_MESSAGE bytes at a character boundary.
pub fn clip(msg: String) -> String {
    if msg.len() <= MAX_MESSAGE {
        return msg;
    }
    let mut end = MAX_MESSAGE - 40;
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &msg[..end], msg.len())
}

/// Shorthand constructors used by validation code.
pub fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::InvalidArgument(msg.into())
}

pub fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError::NotFound(msg.into())
}

pub fn exists(msg: impl Into<String>) -> ApiError {
    ApiError::AlreadyExists(msg.into())
}

pub fn precondition(msg: impl Into<String>) -> ApiError {
    ApiError::FailedPrecondition(msg.into())
}

pub fn unavailable(msg: impl Into<String>) -> ApiError {
    ApiError::Unavailable(msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_clipped_at_a_char_boundary() {
        let long = format!("tenant {:?} does not exist", "é".repeat(5000));
        let status = Status::from(ApiError::NotFound(long));
        assert!(status.message().len() <= MAX_MESSAGE);
        assert!(status.message().starts_with("tenant \"éé"));
        assert!(status.message().ends_with("bytes in all)"));
        assert_eq!(clip("short".into()), "short");
    }
}
