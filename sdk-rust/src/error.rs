//! The one error type of the client.

use sluice_protocol::{ErrorBody, ErrorCode};

/// What can go wrong talking to a broker.
///
/// Match on the variant, and for [`Error::Broker`] on the [`ErrorCode`], never on messages.
/// [`Error::is_retriable`] says whether trying the same thing again later may succeed; the
/// producer and the consumer already retry those themselves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The broker answered with an error.
    #[error("broker error {code}: {message}")]
    Broker {
        /// The stable code (`unknown_topic`, `record_too_large`, ...); codes this client does
        /// not know are [`ErrorCode::Internal`].
        code: ErrorCode,
        /// What happened, for humans.
        message: String,
    },
    /// No connection could be made, or it was lost while the request was in flight. Whether
    /// the broker acted on a request that was in flight is unknown.
    #[error("connection error: {0}")]
    Connection(String),
    /// No answer came within the time allowed (`request_timeout_ms`, `connect_timeout_ms`).
    /// Whether the broker acted on the request is unknown.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The broker sent something this client does not understand (a bug on one side, or a
    /// broker that speaks another protocol).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The client, producer or consumer was closed.
    #[error("closed")]
    Closed,
    /// The caller asked for something impossible (a bad URL, an empty topic name, a record
    /// larger than the topic allows, a partition the topic does not have).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl Error {
    /// Whether the same request may succeed if tried again later: connection losses, timeouts,
    /// and the broker codes `shutting_down`, `storage_error`, `too_many_requests` and
    /// `too_many_connections`.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Connection(_) | Error::Timeout(_) => true,
            Error::Broker { code, .. } => matches!(
                code,
                ErrorCode::ShuttingDown
                    | ErrorCode::StorageError
                    | ErrorCode::TooManyRequests
                    | ErrorCode::TooManyConnections
            ),
            Error::Protocol(_) | Error::Closed | Error::InvalidInput(_) => false,
        }
    }

    /// The broker's error code, for [`Error::Broker`].
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<ErrorBody> for Error {
    fn from(e: ErrorBody) -> Self {
        Error::Broker {
            code: e.code,
            message: e.message,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retriable_codes() {
        let broker = |code| Error::Broker {
            code,
            message: String::new(),
        };
        assert!(broker(ErrorCode::ShuttingDown).is_retriable());
        assert!(broker(ErrorCode::TooManyRequests).is_retriable());
        assert!(!broker(ErrorCode::UnknownTopic).is_retriable());
        assert!(!broker(ErrorCode::InvalidRecords).is_retriable());
        assert!(Error::Connection("x".into()).is_retriable());
        assert!(Error::Timeout("x".into()).is_retriable());
        assert!(!Error::Closed.is_retriable());
        assert_eq!(
            broker(ErrorCode::UnknownTopic).code(),
            Some(ErrorCode::UnknownTopic)
        );
    }
}
