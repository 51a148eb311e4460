//! The one error type of the request path, mapped to an HTTP status at the
//! boundary (`platform`). Messages are short and safe to show to a client.

use std::fmt;

use crate::config::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppError {
    /// The worker is misconfigured; the message names the variable.
    Config(ConfigError),
    MethodNotAllowed,
    /// A WebSocket endpoint asked for without `Upgrade: websocket`.
    UpgradeRequired(String),
    NotFound(String),
    BadRequest(String),
    /// Upstream could not be reached or answered with something unusable.
    BadGateway(String),
    /// Upstream did not answer within `UPSTREAM_TIMEOUT_MS`.
    GatewayTimeout(String),
    /// A bug or a runtime failure on our side.
    Internal(String),
}

impl AppError {
    pub fn status(&self) -> u16 {
        match self {
            AppError::Config(_) | AppError::Internal(_) => 500,
            AppError::MethodNotAllowed => 405,
            AppError::UpgradeRequired(_) => 426,
            AppError::NotFound(_) => 404,
            AppError::BadRequest(_) => 400,
            AppError::BadGateway(_) => 502,
            AppError::GatewayTimeout(_) => 504,
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Config(e) => write!(f, "live-torrent is misconfigured: {e}"),
            AppError::MethodNotAllowed => f.write_str("method not allowed; use GET, HEAD or OPTIONS"),
            AppError::UpgradeRequired(what) => write!(f, "upgrade required: {what}"),
            AppError::NotFound(what) => write!(f, "not found: {what}"),
            AppError::BadRequest(why) => write!(f, "bad request: {why}"),
            AppError::BadGateway(why) => write!(f, "upstream failed: {why}"),
            AppError::GatewayTimeout(why) => write!(f, "upstream timed out: {why}"),
            AppError::Internal(why) => write!(f, "internal error: {why}"),
        }
    }
}

impl std::error::Error for AppError {}

impl From<ConfigError> for AppError {
    fn from(e: ConfigError) -> Self {
        AppError::Config(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_status_and_a_message_naming_the_cause() {
        let config = AppError::from(ConfigError { variable: "UPSTREAM", problem: "is not set".into() });
        assert_eq!(config.status(), 500);
        assert!(config.to_string().contains("UPSTREAM: is not set"));
        assert_eq!(AppError::MethodNotAllowed.status(), 405);
        assert_eq!(AppError::NotFound("x".into()).status(), 404);
        assert_eq!(AppError::UpgradeRequired("x".into()).status(), 426);
        assert_eq!(AppError::BadRequest("x".into()).status(), 400);
        assert_eq!(AppError::BadGateway("x".into()).status(), 502);
        assert_eq!(AppError::GatewayTimeout("x".into()).status(), 504);
        assert_eq!(AppError::Internal("x".into()).status(), 500);
    }
}
