//! How the client authenticates, and tokens: Azure AD client credentials (v1 `resource` / v2 `scope`,
//! authority host configurable so the practice service's endpoint works the same way), a pasted bearer
//! token, basic (Orthanc), or none. Expiry comes from `expires_in` (a string on v1!); claims are decoded
//! for display only (no signature check on the client).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A secret that never prints: `Debug` and `Display` show it masked.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
    /// `••••••••3f2a`: enough to tell two secrets apart, never enough to use one.
    pub fn masked(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        let tail: String = self
            .0
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if self.0.chars().count() <= 8 {
            "••••••••".into()
        } else {
            format!("••••••••{tail}")
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({})", self.masked())
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Which Azure AD token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenVersion {
    /// `/oauth2/token` with `resource` (what the workshop's Postman collection uses).
    #[default]
    V1,
    /// `/oauth2/v2.0/token` with `scope = <resource>/.default`.
    V2,
}

pub const AZURE_AUTHORITY: &str = "https://login.microsoftonline.com";
pub const DICOM_RESOURCE: &str = "https://dicom.healthcareapis.azure.com";

/// How requests are authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AuthConfig {
    Azure {
        tenant_id: String,
        client_id: String,
        client_secret: Secret,
        resource: String,
        /// `https://login.microsoftonline.com`, or the practice service's origin.
        authority: String,
        #[serde(default)]
        token_version: TokenVersion,
    },
    Bearer {
        token: Secret,
    },
    Basic {
        username: String,
        password: Secret,
    },
    None,
}

impl AuthConfig {
    /// The token endpoint of an `azure` config.
    pub fn token_url(&self) -> Option<String> {
        match self {
            AuthConfig::Azure {
                tenant_id,
                authority,
                token_version,
                ..
            } => Some(format!(
                "{}/{}/oauth2/{}token",
                authority.trim_end_matches('/'),
                tenant_id.trim(),
                if *token_version == TokenVersion::V2 {
                    "v2.0/"
                } else {
                    ""
                }
            )),
            _ => None,
        }
    }
}

/// Decoded claims of an access token (display only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Claims {
    pub aud: Option<String>,
    pub tid: Option<String>,
    /// `appid` (v1) or `azp` (v2): the client the token was issued to.
    pub app: Option<String>,
    pub roles: Vec<String>,
    pub exp: Option<u64>,
    /// The object id of the app's service principal: what Azure's logs name the caller by.
    pub oid: Option<String>,
}

impl Claims {
    /// Decodes the payload of a JWT without checking its signature.
    pub fn decode(jwt: &str) -> Option<Claims> {
        let payload = jwt.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        // Shown in the TUI: whatever the token holds, never an escape sequence.
        let shown = |s: &str| dicomlab_dicom::text::visible(s).into_owned();
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(shown);
        Some(Claims {
            aud: s("aud"),
            tid: s("tid"),
            app: s("appid").or_else(|| s("azp")),
            roles: v
                .get("roles")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|r| r.as_str().map(shown)).collect())
                .unwrap_or_default(),
            exp: v.get("exp").and_then(Value::as_u64),
            oid: s("oid"),
        })
    }
}

/// An access token and when it lapses.
#[derive(Debug, Clone)]
pub struct Token {
    pub access_token: Secret,
    pub expires_at: SystemTime,
    pub claims: Option<Claims>,
}

impl Token {
    /// A token with its expiry from the JWT itself (a pasted token).
    pub fn from_jwt(jwt: &str) -> Token {
        let claims = Claims::decode(jwt);
        let expires_at = claims
            .as_ref()
            .and_then(|c| c.exp)
            .and_then(|e| UNIX_EPOCH.checked_add(Duration::from_secs(e)))
            .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(3600));
        Token {
            access_token: Secret::new(jwt),
            expires_at,
            claims,
        }
    }

    /// Time left, zero once lapsed.
    pub fn remaining(&self) -> Duration {
        self.expires_at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }

    /// Refresh five minutes before it lapses (the checks require at least that much life).
    pub fn needs_refresh(&self) -> bool {
        self.remaining() < Duration::from_secs(300)
    }
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{error} ({code}): {description}")]
    Aad {
        status: u16,
        error: String,
        code: String,
        description: String,
    },
    #[error("the token endpoint answered {status}: {body}")]
    Unexpected { status: u16, body: String },
    #[error("the token endpoint's answer has no access_token")]
    NoToken,
    #[error("{0} is missing in the environment")]
    Missing(&'static str),
    /// The token endpoint's host cannot be reached.
    #[error("the token host {host} cannot be reached: {why}")]
    Unreachable { host: String, why: String },
}

impl TokenError {
    /// The AADSTS code (`AADSTS7000215`), when Azure AD gave one.
    pub fn aadsts(&self) -> Option<&str> {
        match self {
            TokenError::Aad { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Reads `expires_in` whether it is a string (v1) or a number (v2).
pub fn expires_in(v: &Value) -> Option<u64> {
    match v.get("expires_in")? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// Turns a token endpoint's answer into a token or a typed error.
pub fn parse_token_answer(status: u16, body: &[u8]) -> Result<Token, TokenError> {
    let shown = |s: &str| dicomlab_dicom::text::visible(s).into_owned();
    let v: Value = serde_json::from_slice(body).map_err(|_| TokenError::Unexpected {
        status,
        body: shown(&String::from_utf8_lossy(&body[..body.len().min(300)])),
    })?;
    if !(200..300).contains(&status) {
        let description = v
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let code = description
            .split(':')
            .next()
            .filter(|c| c.starts_with("AADSTS"))
            .map(str::to_string)
            .or_else(|| {
                v.get("error_codes")
                    .and_then(|c| c.get(0))
                    .and_then(Value::as_u64)
                    .map(|c| format!("AADSTS{c}"))
            })
            .unwrap_or_default();
        let first_line = shown(description.lines().next().unwrap_or(""));
        return Err(TokenError::Aad {
            status,
            error: shown(v.get("error").and_then(Value::as_str).unwrap_or("error")),
            code: shown(&code),
            description: first_line,
        });
    }
    let access = v
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or(TokenError::NoToken)?;
    let mut token = Token::from_jwt(access);
    if let Some(secs) = expires_in(&v) {
        token.expires_at = SystemTime::now() + Duration::from_secs(secs);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("super-secret-value-1234");
        assert_eq!(format!("{s}"), "••••••••1234");
        assert!(!format!("{s:?}").contains("super"));
    }

    #[test]
    fn expires_in_string_or_number() {
        assert_eq!(
            expires_in(&serde_json::json!({"expires_in": "3599"})),
            Some(3599)
        );
        assert_eq!(
            expires_in(&serde_json::json!({"expires_in": 3599})),
            Some(3599)
        );
    }

    #[test]
    fn aad_errors_are_typed() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x","error_codes":[7000215]}"#;
        let e = parse_token_answer(401, body).expect_err("error");
        assert_eq!(e.aadsts(), Some("AADSTS7000215"));
        assert!(e.to_string().contains("Invalid client secret"));
    }

    #[test]
    fn token_urls() {
        let mut a = AuthConfig::Azure {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: Secret::new("s"),
            resource: DICOM_RESOURCE.into(),
            authority: "https://login.microsoftonline.com/".into(),
            token_version: TokenVersion::V1,
        };
        assert_eq!(
            a.token_url().as_deref(),
            Some("https://login.microsoftonline.com/t/oauth2/token")
        );
        if let AuthConfig::Azure { token_version, .. } = &mut a {
            *token_version = TokenVersion::V2;
        }
        assert_eq!(
            a.token_url().as_deref(),
            Some("https://login.microsoftonline.com/t/oauth2/v2.0/token")
        );
    }
}
