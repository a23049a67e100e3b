//! Errors as they cross into JavaScript.
//!
//! napi-rs rejects promises with a plain `Error`; the kind, the broker's code and whether a
//! retry may help travel in front of the message, `sluice:<kind>:<code>:<retriable>: <text>`,
//! and `ts/errors.ts` parses them back into typed `SluiceError` subclasses. Kinds:
//! `broker` (with the broker's stable code, `unknown_topic`, ...), `connection`, `timeout`,
//! `protocol`, `closed`, `invalid_input`, `queue_full`.

use napi::Status;

/// A napi error of a kind, with a code (empty unless `broker`).
pub fn js_error(
    kind: &str,
    code: &str,
    retriable: bool,
    message: impl std::fmt::Display,
) -> napi::Error {
    napi::Error::new(
        Status::GenericFailure,
        format!("sluice:{kind}:{code}:{}: {message}", u8::from(retriable)),
    )
}

/// An invalid argument from JavaScript.
pub fn invalid(message: impl std::fmt::Display) -> napi::Error {
    js_error("invalid_input", "", false, message)
}

/// The SDK's error, for JavaScript.
pub fn from_sdk(e: sluice_client::Error) -> napi::Error {
    use sluice_client::Error;
    let retriable = e.is_retriable();
    let (kind, code, message) = match &e {
        Error::Broker { code, message } => ("broker", code.as_str(), message.clone()),
        Error::Connection(m) => ("connection", "", m.clone()),
        Error::Timeout(m) => ("timeout", "", m.clone()),
        Error::Protocol(m) => ("protocol", "", m.clone()),
        Error::Closed => ("closed", "", "closed".to_string()),
        Error::InvalidInput(m) => ("invalid_input", "", m.clone()),
        // A kind added to the SDK later: keep its text.
        _ => ("protocol", "", e.to_string()),
    };
    js_error(kind, code, retriable, message)
}

/// `Result` with the SDK's error mapped.
pub trait IntoJs<T> {
    fn js(self) -> napi::Result<T>;
}

impl<T> IntoJs<T> for sluice_client::Result<T> {
    fn js(self) -> napi::Result<T> {
        self.map_err(from_sdk)
    }
}
