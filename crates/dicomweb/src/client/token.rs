//! The client's token: fetched, cached and refreshed, and the Authorization header it sends.

use super::{Body, ClientError, DicomWebClient};
use crate::auth::{AuthConfig, Token, TokenError, TokenVersion, parse_token_answer};
use reqwest::Method;
use reqwest::header::HeaderValue;

impl DicomWebClient {
    /// The current token, fetched or refreshed when it is missing or lapses within five minutes.
    pub async fn token(&self) -> Result<Option<Token>, ClientError> {
        match &self.auth {
            AuthConfig::Azure { .. } => {
                let mut guard = self.token.lock().await;
                if let Some(t) = guard.as_ref().filter(|t| !t.needs_refresh()) {
                    return Ok(Some(t.clone()));
                }
                let t = self.fetch_token().await?;
                *guard = Some(t.clone());
                Ok(Some(t))
            }
            AuthConfig::Bearer { token } => Ok(Some(Token::from_jwt(token.expose()))),
            _ => Ok(None),
        }
    }

    /// The token in hand, without fetching one (for the countdown in the status bar).
    pub fn cached_token(&self) -> Option<Token> {
        match &self.auth {
            AuthConfig::Bearer { token } => Some(Token::from_jwt(token.expose())),
            _ => self.token.try_lock().ok().and_then(|t| t.clone()),
        }
    }

    /// Gets a new token now and keeps it for the requests that follow (the token step's "do it").
    pub async fn refresh_token(&self) -> Result<Token, ClientError> {
        let t = self.fetch_token().await?;
        *self.token.lock().await = Some(t.clone());
        Ok(t)
    }

    /// Asks the token endpoint for a new token (what the lab's `AuthorizeGetToken` request does).
    pub async fn fetch_token(&self) -> Result<Token, ClientError> {
        let AuthConfig::Azure {
            tenant_id,
            client_id,
            client_secret,
            resource,
            token_version,
            ..
        } = &self.auth
        else {
            return Err(ClientError::Other(
                "this target does not use Azure AD tokens".into(),
            ));
        };
        for (value, name) in [
            (tenant_id.as_str(), "tenantId"),
            (client_id.as_str(), "clientId"),
            (resource.as_str(), "resource"),
        ] {
            if value.trim().is_empty() {
                return Err(TokenError::Missing(name).into());
            }
        }
        if client_secret.is_empty() {
            return Err(TokenError::Missing("clientSecret").into());
        }
        let url = self.auth.token_url().unwrap_or_default();
        let mut form = vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("client_id".to_string(), client_id.trim().to_string()),
            (
                "client_secret".to_string(),
                client_secret.expose().trim().to_string(),
            ),
        ];
        match token_version {
            TokenVersion::V1 => form.push(("resource".into(), resource.trim().to_string())),
            TokenVersion::V2 => {
                form.push((
                    "scope".into(),
                    format!("{}/.default", resource.trim().trim_end_matches('/')),
                ));
            }
        }
        let shown: Vec<String> = form
            .iter()
            .map(|(k, v)| {
                let v = if k == "client_secret" {
                    "$CLIENT_SECRET".to_string()
                } else {
                    v.clone()
                };
                format!("--data-urlencode \"{k}={v}\"")
            })
            .collect();
        // A token host out of reach is a token failure, not the DICOM service's: it says which host.
        let answer = self
            .send(Method::POST, &url, &[], Body::Form(form, shown), false)
            .await
            .map_err(|e| match e {
                ClientError::Dns { host } => ClientError::Token(TokenError::Unreachable {
                    host,
                    why: "no such name (DNS)".into(),
                }),
                ClientError::Connect { url } | ClientError::Timeout { url, .. } => {
                    ClientError::Token(TokenError::Unreachable {
                        host: reqwest::Url::parse(&url)
                            .ok()
                            .and_then(|u| u.host_str().map(str::to_string))
                            .unwrap_or(url),
                        why: "no connection".into(),
                    })
                }
                other => other,
            })?;
        Ok(parse_token_answer(answer.status, &answer.body)?)
    }

    pub(super) async fn auth_header(&self) -> Result<Option<(HeaderValue, String)>, ClientError> {
        match &self.auth {
            AuthConfig::Basic { username, password } => {
                use base64::Engine;
                let raw = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()));
                let v = HeaderValue::from_str(&format!("Basic {raw}"))
                    .map_err(|e| ClientError::Other(e.to_string()))?;
                Ok(Some((v, "Basic $BASIC_AUTH".into())))
            }
            AuthConfig::None => Ok(None),
            _ => match self.token().await? {
                Some(t) => {
                    let v = HeaderValue::from_str(&format!("Bearer {}", t.access_token.expose()))
                        .map_err(|_| {
                        ClientError::Other("the token has characters a header cannot hold".into())
                    })?;
                    Ok(Some((v, "Bearer $TOKEN".into())))
                }
                None => Ok(None),
            },
        }
    }
}
