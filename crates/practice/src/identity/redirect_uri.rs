//! Entra's rules for redirect URIs, as the portal checks them before it saves one: absolute `https://`
//! (`http://` only for a loopback host), no fragment or wildcard, and limits on their length and number.

/// Most redirect URIs an app may register (Entra's limit).
pub(crate) const MAX_REDIRECT_URIS: usize = 256;
/// Longest redirect URI (Entra's limit).
pub(crate) const MAX_REDIRECT_URI_LEN: usize = 256;
/// Why a redirect URI cannot be registered (Entra's rules).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error(
        "'{0}' is not a redirect URI: it must be an absolute https:// URI (http:// only for localhost or 127.0.0.1), without a fragment or wildcard, at most {MAX_REDIRECT_URI_LEN} characters"
    )]
    Invalid(String),
    #[error("an app has at most {MAX_REDIRECT_URIS} redirect URIs")]
    TooMany,
}

/// Checks a redirect URI as the portal does before it saves it.
pub(crate) fn check_redirect_uri(uri: &str) -> Result<String, RedirectUriError> {
    let uri = uri.trim();
    let bad = || {
        RedirectUriError::Invalid(
            dicomlab_dicom::text::visible(uri)
                .chars()
                .take(300)
                .collect(),
        )
    };
    if uri.is_empty()
        || uri.len() > MAX_REDIRECT_URI_LEN
        || uri.contains(['#', '*', ' ', '"', '<', '>', '\\'])
        || uri.chars().any(char::is_control)
    {
        return Err(bad());
    }
    let (scheme, rest) = uri.split_once("://").ok_or_else(bad)?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .to_ascii_lowercase();
    let host = if host.starts_with('[') {
        host.split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or("").to_string()
    };
    if host.is_empty() {
        return Err(bad());
    }
    let loopback = host == "localhost" || host == "127.0.0.1" || host == "[::1]";
    match scheme.to_ascii_lowercase().as_str() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(bad()),
    }
    Ok(uri.to_string())
}
