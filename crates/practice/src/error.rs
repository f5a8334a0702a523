//! Errors as the service answers them (docs/contract.md §9.2): plain text with one message, or an empty body where
//! the real service sends none (401, 406 from the Accept filter, operation 404, 204, 304).

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An HTTP error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// `None` sends an empty body.
    pub message: Option<String>,
    pub headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: Some(message.into()),
            headers: Vec::new(),
        }
    }
    pub fn empty(status: StatusCode) -> Self {
        Self {
            status,
            message: None,
            headers: Vec::new(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_ACCEPTABLE, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn unsupported_media() -> Self {
        Self::empty(StatusCode::UNSUPPORTED_MEDIA_TYPE)
    }
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!("{context}: {err}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An internal error occurred. Please retry; if it persists, see the practice service's log.",
        )
    }
    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// A query parameter that does not validate (docs/contract.md §9.2 form).
    pub fn bad_query_param(name: &str, reason: &str) -> Self {
        Self::bad_request(format!("The query parameter '{name}' is invalid. {reason}"))
    }
    /// A UID in the path that does not validate (docs/contract.md §4.5 form).
    pub fn bad_uid(element: &str, value: &str) -> Self {
        Self::bad_request(format!(
            "Dicom element '{element}' failed validation for VR 'UI': DICOM Identifier is invalid. Value length should not exceed the maximum length of 64 characters. Value should contain characters in '0'-'9' and '.'. Each component must start with non-zero number. Value: '{value}'"
        ))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            self.status,
            self.message.as_deref().unwrap_or("")
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.append(name, v);
            }
        }
        match self.message {
            Some(m) => {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                (self.status, headers, m).into_response()
            }
            None => (self.status, headers).into_response(),
        }
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
