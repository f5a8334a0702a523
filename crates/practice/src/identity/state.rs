//! The sign-in state of the practice tenant: its directory, its signing key (made when first needed),
//! and what waits in memory — sign-in pages not yet clicked, codes not yet redeemed, signed-in
//! browsers' sessions — each entry expiring, at most a bounded number of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};

use super::directory::{Directory, User};
use super::error::IdentityError;
use super::keys::{self, SigningKey};
use super::request::AuthorizeRequest;
use crate::SharedService;

/// Pending sign-in pages, codes and sessions kept at most (the oldest go first).
const MAX_PENDING: usize = 512;
/// How long a sign-in page may wait for its click.
pub(super) const FLOW_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// How long a code may wait to be redeemed (Entra: minutes).
pub(super) const CODE_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// How long a sign-in session lasts.
pub(super) const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The session cookie's name.
pub(super) const SESSION_COOKIE: &str = "dicomlab-signin";

/// A code waiting to be redeemed.
#[derive(Debug, Clone)]
pub(super) struct Grant {
    pub(super) request: AuthorizeRequest,
    pub(super) user: User,
}

/// Entries that expire, at most [`MAX_PENDING`] of them.
pub(super) struct Expiring<T> {
    map: HashMap<String, (Instant, T)>,
}

impl<T: Clone> Expiring<T> {
    fn new() -> Self {
        Self {
            map: HashMap::new(),
        }
    }
    pub(super) fn insert(&mut self, key: String, lifetime: Duration, value: T) {
        let now = Instant::now();
        self.map.retain(|_, (until, _)| *until > now);
        if self.map.len() >= MAX_PENDING
            && let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, (until, _))| *until)
                .map(|(k, _)| k.clone())
        {
            self.map.remove(&oldest);
        }
        self.map.insert(key, (now + lifetime, value));
    }
    pub(super) fn get(&self, key: &str) -> Option<T> {
        self.map
            .get(key)
            .filter(|(until, _)| *until > Instant::now())
            .map(|(_, v)| v.clone())
    }
    pub(super) fn take(&mut self, key: &str) -> Option<T> {
        self.map
            .remove(key)
            .filter(|(until, _)| *until > Instant::now())
            .map(|(_, v)| v)
    }
}

/// The sign-in state of the practice tenant.
pub struct Identity {
    pub directory: Directory,
    key: tokio::sync::OnceCell<Arc<SigningKey>>,
    /// Sign-in pages shown and not yet clicked, by their flow id.
    pub(super) flows: Mutex<Expiring<AuthorizeRequest>>,
    /// Codes issued and not yet redeemed.
    pub(super) codes: Mutex<Expiring<Grant>>,
    /// Signed-in browsers, by session id: the user's object id.
    pub(super) sessions: Mutex<Expiring<String>>,
}

/// 32 random bytes, base64url: codes, flow and session ids.
pub(super) fn random_id() -> String {
    let mut b = [0u8; 32];
    // aws-lc's generator fails only when the system has no entropy source: a v4 UUID pair then.
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        return format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
    }
    keys::b64url(&b)
}

impl Identity {
    pub fn load(db: &crate::db::Db) -> Result<Self, IdentityError> {
        Ok(Self {
            directory: Directory::load(db)?,
            key: tokio::sync::OnceCell::new(),
            flows: Mutex::new(Expiring::new()),
            codes: Mutex::new(Expiring::new()),
            sessions: Mutex::new(Expiring::new()),
        })
    }

    /// The signing key, made (on the blocking pool) the first time it is needed.
    pub async fn key(service: &SharedService) -> Result<Arc<SigningKey>, IdentityError> {
        let svc = service.clone();
        service
            .identity
            .key
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || SigningKey::load(&svc.db).map(Arc::new))
                    .await
                    .map_err(|_| IdentityError::Key)?
            })
            .await
            .cloned()
    }

    pub(super) fn session_user(&self, headers: &HeaderMap) -> Option<User> {
        let sid = cookie(headers, SESSION_COOKIE)?;
        let oid = self.sessions.lock().ok()?.get(&sid)?;
        self.directory.user(&oid)
    }
}

/// A cookie's value from the request (the first of that name).
pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiring_entries_are_bounded_and_used_once() {
        let mut e: Expiring<u32> = Expiring::new();
        for i in 0..(MAX_PENDING as u32 + 10) {
            e.insert(i.to_string(), Duration::from_secs(60 + u64::from(i)), i);
        }
        assert_eq!(e.map.len(), MAX_PENDING);
        assert_eq!(e.get("0"), None, "the oldest went first");
        let last = (MAX_PENDING as u32 + 9).to_string();
        assert_eq!(e.take(&last), Some(MAX_PENDING as u32 + 9));
        assert_eq!(e.take(&last), None);
        e.insert("gone".into(), Duration::ZERO, 1);
        assert_eq!(e.get("gone"), None);
    }
}
