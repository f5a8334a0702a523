//! The sign-in pages: plain HTML, every value from the request escaped, no script, not framable
//! (a one-click sign-in inside someone else's frame would be clickjacking).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::directory::User;

/// Text made safe inside HTML (element content and quoted attributes).
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// An HTML answer with the headers a sign-in page needs.
pub(super) fn html(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f2f2f2;margin:0}\
main{max-width:440px;margin:10vh auto;background:#fff;padding:44px;box-shadow:0 2px 6px rgba(0,0,0,.2)}\
h1{font-size:24px;font-weight:600;margin:0 0 16px}p{font-size:15px;line-height:1.45}\
button{background:#0067b8;color:#fff;border:0;padding:10px 20px;font-size:15px;cursor:pointer;width:100%;margin-top:8px}\
.note{color:#555;font-size:13px}code{font-size:13px;word-break:break-all}li{margin:4px 0}";

fn page(title: &str, content: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body><main>{content}</main></body></html>",
        escape(title)
    )
}

/// What the sign-in page shows.
pub(super) struct SignIn<'a> {
    pub tenant: &'a str,
    pub flow: &'a str,
    pub client_id: &'a str,
    pub client_name: &'a str,
    pub scopes: &'a [String],
    pub users: &'a [User],
    /// Whether the browser is on this machine (one-click sign-in is offered only then).
    pub loopback: bool,
}

fn permission(scope: &str) -> String {
    match scope.rsplit('/').next().unwrap_or(scope) {
        "openid" => "Sign you in".into(),
        "profile" => "View your basic profile".into(),
        "email" => "View your email address".into(),
        "offline_access" => "Maintain access to data you have given it access to".into(),
        "Dicom.ReadWrite" | ".default" => {
            "Read and write DICOM data in the DICOM service (Dicom.ReadWrite)".into()
        }
        other => other.to_string(),
    }
}

pub(super) fn sign_in(s: &SignIn) -> String {
    let mut perms: Vec<String> = s.scopes.iter().map(|x| permission(x)).collect();
    perms.dedup();
    let perms: String = perms
        .iter()
        .map(|p| format!("<li>{}</li>", escape(p)))
        .collect();
    let accounts = if s.loopback {
        let buttons: String = s
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let id = if i == 0 {
                    "signin".to_string()
                } else {
                    format!("signin-{i}")
                };
                format!(
                    "<button id=\"{id}\" type=\"submit\" name=\"user\" value=\"{}\">Sign in as {}</button>",
                    escape(&u.oid),
                    escape(&u.upn)
                )
            })
            .collect();
        format!(
            "<form method=\"post\" action=\"/{}/login\"><input type=\"hidden\" name=\"flow\" value=\"{}\">{buttons}</form>",
            escape(s.tenant),
            escape(s.flow)
        )
    } else {
        "<p id=\"msg\">The practice tenant signs its learner in with one click only in a browser on this machine. Over SSH, forward the ports (<code>ssh -L</code>) and open the viewer on 127.0.0.1.</p>".to_string()
    };
    page(
        "Sign in to your account",
        &format!(
            "<h1>Sign in</h1><p>to <b>{}</b> <span class=\"note\">({})</span></p><p>It asks for permission to:</p><ul>{perms}</ul>{accounts}<p class=\"note\">dicomlab practice tenant <code>{}</code>. It has one user, the learner; on Azure you sign in with your own account of your tenant.</p>",
            escape(if s.client_name.is_empty() {
                s.client_id
            } else {
                s.client_name
            }),
            escape(s.client_id),
            escape(s.tenant)
        ),
    )
}

/// The page Entra shows when it will not send the browser back to the app.
pub(super) fn error(code: u32, message: &str) -> String {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    page(
        "Sign in to your account",
        &format!(
            "<h1>Sign in</h1><p>Sorry, but we're having trouble signing you in.</p><p id=\"msg\">AADSTS{code}: {}</p><p class=\"note\">Request Id: {}<br>Correlation Id: {}<br>Timestamp: {}<br>Message: AADSTS{code}</p>",
            escape(message),
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
            escape(&now)
        ),
    )
}

pub(super) fn signed_out() -> String {
    page(
        "Signed out",
        "<h1>You signed out of your account</h1><p>It's a good idea to close all browser windows.</p>",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        assert_eq!(
            escape("<script>\"x\"&'y'</script>"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;"
        );
        let e = error(50011, "The redirect URI '<img src=x>' …");
        assert!(e.contains("AADSTS50011: The redirect URI &#39;&lt;img src=x&gt;&#39;"));
        assert!(!e.contains("<img"));
    }
}
