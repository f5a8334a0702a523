//! The practice tenant's directory: its users (one, the learner, to start with) and what each app
//! registration says about sign-in — its redirect URIs by platform (Entra's "Authentication" blade:
//! single-page application or web) and whether the implicit grant may issue access or ID tokens.
//! Kept in the index, so a restart keeps them; read from memory on every sign-in.

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use super::error::IdentityError;
use super::redirect_uri::{MAX_REDIRECT_URIS, RedirectUriError, check_redirect_uri};
use crate::db::Db;

/// The domain of the practice tenant's users (a reserved name: it can never be a real tenant's).
pub const USER_DOMAIN: &str = "practice.dicomlab.test";

/// A user of the practice tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The object id: what role assignments and tokens' `oid` name.
    pub oid: String,
    /// `learner@practice.dicomlab.test`: the token's `upn` / `preferred_username`.
    pub upn: String,
    pub name: String,
}

/// Where a redirect URI is registered (Entra's platforms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Single-page application: codes redeemed cross-origin, with PKCE, without a secret.
    Spa,
    /// Web: codes redeemed by a server with the client secret; the implicit grant when enabled.
    Web,
}

impl Platform {
    pub fn parse(s: &str) -> Option<Platform> {
        match s.trim().to_ascii_lowercase().as_str() {
            "spa" | "single-page application" | "single-page" => Some(Platform::Spa),
            "web" => Some(Platform::Web),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Platform::Spa => "spa",
            Platform::Web => "web",
        }
    }
}

/// One registered redirect URI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedirectUri {
    pub uri: String,
    pub platform: Platform,
}

/// An app registration's sign-in settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppSignIn {
    pub redirect_uris: Vec<RedirectUri>,
    /// "Access tokens (used for implicit flows)".
    pub implicit_access_tokens: bool,
    /// "ID tokens (used for implicit and hybrid flows)".
    pub implicit_id_tokens: bool,
}

/// Users and apps' sign-in settings.
pub struct Directory {
    users: RwLock<Vec<User>>,
    apps: RwLock<BTreeMap<String, AppSignIn>>,
}

impl Directory {
    /// Opens the directory's tables; the learner user is made on first start.
    pub fn load(db: &Db) -> Result<Self, IdentityError> {
        let c = db.lock()?;
        c.execute_batch(
            r"
CREATE TABLE IF NOT EXISTS users(oid TEXT PRIMARY KEY, upn TEXT NOT NULL UNIQUE, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS redirect_uris(client_id TEXT NOT NULL, uri TEXT NOT NULL, platform TEXT NOT NULL,
    PRIMARY KEY(client_id, uri));
CREATE TABLE IF NOT EXISTS implicit_grants(client_id TEXT PRIMARY KEY, access_tokens INTEGER NOT NULL,
    id_tokens INTEGER NOT NULL);
",
        )?;
        c.execute(
            "INSERT OR IGNORE INTO users(oid, upn, name) SELECT ?1, ?2, 'Practice Learner' WHERE NOT EXISTS (SELECT 1 FROM users)",
            rusqlite::params![
                uuid::Uuid::new_v4().to_string(),
                format!("learner@{USER_DOMAIN}")
            ],
        )?;
        let mut users = Vec::new();
        let mut stmt = c.prepare("SELECT oid, upn, name FROM users ORDER BY upn")?;
        for u in stmt.query_map([], |r| {
            Ok(User {
                oid: r.get(0)?,
                upn: r.get(1)?,
                name: r.get(2)?,
            })
        })? {
            users.push(u?);
        }
        let mut apps: BTreeMap<String, AppSignIn> = BTreeMap::new();
        let mut stmt =
            c.prepare("SELECT client_id, uri, platform FROM redirect_uris ORDER BY rowid")?;
        for row in stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })? {
            let (client, uri, platform) = row?;
            if let Some(platform) = Platform::parse(&platform) {
                apps.entry(client)
                    .or_default()
                    .redirect_uris
                    .push(RedirectUri { uri, platform });
            }
        }
        let mut stmt =
            c.prepare("SELECT client_id, access_tokens, id_tokens FROM implicit_grants")?;
        for row in stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, bool>(2)?,
            ))
        })? {
            let (client, access, id) = row?;
            let app = apps.entry(client).or_default();
            app.implicit_access_tokens = access;
            app.implicit_id_tokens = id;
        }
        Ok(Self {
            users: RwLock::new(users),
            apps: RwLock::new(apps),
        })
    }

    pub fn users(&self) -> Vec<User> {
        self.users.read().map(|u| u.clone()).unwrap_or_default()
    }

    /// The user with this object id, UPN, or UPN's name part (`learner`).
    pub fn user(&self, id: &str) -> Option<User> {
        let id = id.trim();
        self.users().into_iter().find(|u| {
            u.oid.eq_ignore_ascii_case(id)
                || u.upn.eq_ignore_ascii_case(id)
                || u.upn
                    .split('@')
                    .next()
                    .is_some_and(|n| n.eq_ignore_ascii_case(id))
        })
    }

    /// The learner (the first user).
    pub fn learner(&self) -> Option<User> {
        self.users().into_iter().next()
    }

    pub fn app(&self, client_id: &str) -> AppSignIn {
        self.apps
            .read()
            .ok()
            .and_then(|a| a.get(client_id).cloned())
            .unwrap_or_default()
    }

    /// The platform a redirect URI is registered on for the app (exact comparison, as Entra's).
    pub fn registered(&self, client_id: &str, uri: &str) -> Option<Platform> {
        self.app(client_id)
            .redirect_uris
            .iter()
            .find(|r| r.uri == uri)
            .map(|r| r.platform)
    }

    /// Registers (or moves to another platform) a redirect URI. Returns the app's settings.
    pub fn add_redirect_uri(
        &self,
        db: &Db,
        client_id: &str,
        uri: &str,
        platform: Platform,
    ) -> Result<AppSignIn, IdentityError> {
        let uri = check_redirect_uri(uri)?;
        let app = self.app(client_id);
        if app.redirect_uris.len() >= MAX_REDIRECT_URIS
            && !app.redirect_uris.iter().any(|r| r.uri == uri)
        {
            return Err(RedirectUriError::TooMany.into());
        }
        db.lock()?.execute(
            "INSERT INTO redirect_uris(client_id, uri, platform) VALUES(?1, ?2, ?3) ON CONFLICT(client_id, uri) DO UPDATE SET platform = excluded.platform",
            rusqlite::params![client_id, uri, platform.name()],
        )?;
        Ok(self.change(client_id, |a| {
            a.redirect_uris.retain(|r| r.uri != uri);
            a.redirect_uris.push(RedirectUri { uri, platform });
        }))
    }

    /// Removes a redirect URI; whether it was there.
    pub fn remove_redirect_uri(
        &self,
        db: &Db,
        client_id: &str,
        uri: &str,
    ) -> Result<bool, IdentityError> {
        let n = db.lock()?.execute(
            "DELETE FROM redirect_uris WHERE client_id = ?1 AND uri = ?2",
            rusqlite::params![client_id, uri.trim()],
        )?;
        self.change(client_id, |a| {
            a.redirect_uris.retain(|r| r.uri != uri.trim())
        });
        Ok(n > 0)
    }

    /// The implicit grant's two check boxes.
    pub fn set_implicit(
        &self,
        db: &Db,
        client_id: &str,
        access_tokens: bool,
        id_tokens: bool,
    ) -> Result<AppSignIn, IdentityError> {
        db.lock()?.execute(
            "INSERT INTO implicit_grants(client_id, access_tokens, id_tokens) VALUES(?1, ?2, ?3) ON CONFLICT(client_id) DO UPDATE SET access_tokens = excluded.access_tokens, id_tokens = excluded.id_tokens",
            rusqlite::params![client_id, access_tokens, id_tokens],
        )?;
        Ok(self.change(client_id, |a| {
            a.implicit_access_tokens = access_tokens;
            a.implicit_id_tokens = id_tokens;
        }))
    }

    fn change(&self, client_id: &str, f: impl FnOnce(&mut AppSignIn)) -> AppSignIn {
        match self.apps.write() {
            Ok(mut apps) => {
                let app = apps.entry(client_id.to_string()).or_default();
                f(app);
                app.clone()
            }
            Err(_) => AppSignIn::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_follow_entras_rules() {
        for ok in [
            "http://127.0.0.1:3000/callback",
            "http://localhost:3000/callback",
            "https://viewer.example/callback",
            "http://[::1]:3000/callback",
        ] {
            assert_eq!(check_redirect_uri(ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in [
            "http://viewer.example/callback",
            "https://*.example/callback",
            "https://viewer.example/cb#x",
            "/callback",
            "javascript:alert(1)",
            "http://127.0.0.1.evil.example/cb",
            "http://localhost@evil.example/cb",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
        assert!(check_redirect_uri(&format!("https://a.example/{}", "x".repeat(300))).is_err());
    }

    #[test]
    fn the_directory_is_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = Db::open(&dir.path().join("index.sqlite")).expect("db");
        let d = Directory::load(&db).expect("load");
        let learner = d.learner().expect("a learner");
        assert_eq!(learner.upn, format!("learner@{USER_DOMAIN}"));
        assert_eq!(d.user("learner"), Some(learner.clone()));
        d.add_redirect_uri(&db, "app", "http://127.0.0.1:3000/callback", Platform::Spa)
            .expect("add");
        d.set_implicit(&db, "app", true, false).expect("implicit");
        let again = Directory::load(&db).expect("reload");
        assert_eq!(again.learner(), Some(learner));
        assert_eq!(
            again.registered("app", "http://127.0.0.1:3000/callback"),
            Some(Platform::Spa)
        );
        assert_eq!(
            again.registered("app", "http://127.0.0.1:3000/callback/"),
            None
        );
        assert!(again.app("app").implicit_access_tokens);
        assert!(
            again
                .remove_redirect_uri(&db, "app", "http://127.0.0.1:3000/callback")
                .expect("rm")
        );
        assert_eq!(
            again.registered("app", "http://127.0.0.1:3000/callback"),
            None
        );
    }
}
