//! Authentication and authorization like Azure's (docs/contract.md §2): the clients, their keys and signed
//! JWTs, and per-client role assignments that can change while the service runs — like Azure RBAC, the
//! role is looked up on every request, so granting "DICOM Data Owner" turns the learner's 403 into 200
//! without a new token. The token endpoint that imitates Azure AD's client-credentials flow is
//! `token.rs`; the admin routes for clients and roles are in `assignments.rs`.

pub(crate) mod assignments;
#[cfg(test)]
#[path = "tests.rs"]
mod tests;
pub(crate) mod token;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::db::{Db, DbError};
use super::error::{ApiError, ApiResult};
use super::{Service, SharedService, origin_of};

/// The audience Azure's DICOM service expects, and what the lab's `resource` is.
pub const DICOM_RESOURCE: &str = "https://dicom.healthcareapis.azure.com";
/// The audience of the Log Analytics query API (the practice service's audit-log route takes it too).
pub const LOG_ANALYTICS_RESOURCE: &str = "https://api.loganalytics.io";

pub use dicomlab_dicom::role::Role;

/// Whether `role` allows `action` (docs/contract.md §2.2).
fn allows(role: Role, action: Action) -> bool {
    match role {
        Role::DataOwner => true,
        Role::DataReader => action == Action::Read,
        Role::LogAnalyticsReader => false,
    }
}

/// The data actions of docs/contract.md §2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
    Delete,
    ManageExtendedQueryTags,
}

/// A client of the token endpoint (an "app registration").
#[derive(Debug, Clone, Serialize)]
pub struct Client {
    pub client_id: String,
    #[serde(skip)]
    pub secret: String,
    pub name: String,
}

/// Keys, clients and role assignments.
pub struct Auth {
    /// `false` with `--no-auth`: every request is allowed.
    pub enabled: bool,
    pub tenant_id: String,
    /// The client the lab uses; created with the data directory.
    pub lab_client_id: String,
    token_lifetime: Duration,
    encoding: EncodingKey,
    decoding: DecodingKey,
    clients: RwLock<BTreeMap<String, Client>>,
    roles: RwLock<BTreeMap<String, BTreeSet<Role>>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub aud: String,
    pub iss: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub tid: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub appid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub azp: Option<String>,
    pub oid: String,
    pub sub: String,
    /// The roles assigned when the token was issued, for display only: like Azure RBAC, authorization
    /// looks the assignment up on every request.
    #[serde(default)]
    pub roles: Vec<String>,
    pub ver: String,
    /// `0` for a public client (a single-page app signing a user in).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub appidacr: Option<String>,
    /// The delegated permissions of a user's token (`Dicom.ReadWrite`): only user tokens have it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scp: Option<String>,
    /// The signed-in user's name (`learner@…`), on user tokens.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub upn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unique_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
}

fn random_secret() -> String {
    // 40 characters of two v4 UUIDs: 244 random bits, shaped like an Azure client secret value.
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{}~{}", &a[..20], &b[..19])
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Auth {
    /// Loads (or creates on first start) the tenant, the signing key, the lab client and the assignments.
    pub fn load(
        db: &Db,
        enabled: bool,
        token_lifetime: Duration,
        grant_owner: bool,
    ) -> Result<Self, DbError> {
        let get_or = |key: &str, make: &dyn Fn() -> String| -> Result<String, DbError> {
            if let Some(v) = db.meta_get(key)? {
                return Ok(v);
            }
            let v = make();
            db.meta_set(key, &v)?;
            Ok(v)
        };
        let tenant_id = get_or("tenant_id", &|| uuid::Uuid::new_v4().to_string())?;
        let key = get_or("signing_key", &random_secret)?;
        let lab_client_id = get_or("lab_client_id", &|| uuid::Uuid::new_v4().to_string())?;
        let c = db.lock()?;
        c.execute(
            "INSERT OR IGNORE INTO clients(client_id, secret, name) VALUES(?1, ?2, 'dicomlab lab client')",
            rusqlite::params![lab_client_id, random_secret()],
        )?;
        // The practice workspace is set up as an instructor sets Azure's up: the lab client may read the
        // audit log ("Log Analytics Reader"). Once: a learner may revoke it.
        if c.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES('log_reader_granted', '1')",
            [],
        )? > 0
        {
            c.execute(
                "INSERT OR IGNORE INTO role_assignments(client_id, role) VALUES(?1, ?2)",
                rusqlite::params![lab_client_id, Role::LogAnalyticsReader.name()],
            )?;
        }
        if grant_owner {
            c.execute(
                "INSERT OR IGNORE INTO role_assignments(client_id, role) VALUES(?1, ?2)",
                rusqlite::params![lab_client_id, Role::DataOwner.name()],
            )?;
        }
        let mut clients = BTreeMap::new();
        let mut stmt = c.prepare("SELECT client_id, secret, name FROM clients")?;
        for row in stmt.query_map([], |r| {
            Ok(Client {
                client_id: r.get(0)?,
                secret: r.get(1)?,
                name: r.get(2)?,
            })
        })? {
            let client = row?;
            clients.insert(client.client_id.clone(), client);
        }
        let mut roles: BTreeMap<String, BTreeSet<Role>> = BTreeMap::new();
        let mut stmt = c.prepare("SELECT client_id, role FROM role_assignments")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (client, role) = row?;
            if let Some(role) = Role::parse(&role) {
                roles.entry(client).or_default().insert(role);
            }
        }
        Ok(Self {
            enabled,
            tenant_id,
            lab_client_id,
            token_lifetime,
            encoding: EncodingKey::from_secret(key.as_bytes()),
            decoding: DecodingKey::from_secret(key.as_bytes()),
            clients: RwLock::new(clients),
            roles: RwLock::new(roles),
        })
    }

    pub fn client(&self, id: &str) -> Option<Client> {
        self.clients.read().ok()?.get(id).cloned()
    }

    /// Every registered client (their secrets stay in [`Client::secret`], never serialized).
    pub fn clients(&self) -> Vec<Client> {
        self.clients
            .read()
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The names of the roles assigned to a client or a user (by object id).
    pub fn role_names(&self, principal_id: &str) -> Vec<&'static str> {
        self.roles_of(principal_id)
            .iter()
            .map(|r| r.name())
            .collect()
    }

    pub fn roles_of(&self, client_id: &str) -> BTreeSet<Role> {
        self.roles
            .read()
            .ok()
            .and_then(|r| r.get(client_id).cloned())
            .unwrap_or_default()
    }

    /// Grants a role for as long as this service runs, without keeping it in the index: what a lab file
    /// says the practice service starts with (`[practice] roles`), so that another lab, started on the
    /// same data later, begins without it. A revoke takes it away as it takes a kept one.
    pub fn hold(&self, client_id: &str, role: Role) {
        if let Ok(mut roles) = self.roles.write() {
            roles.entry(client_id.to_string()).or_default().insert(role);
        }
    }

    /// Grants or revokes a role, in memory and in the index. Returns whether anything changed.
    pub fn set_role(
        &self,
        db: &Db,
        client_id: &str,
        role: Role,
        granted: bool,
    ) -> Result<bool, DbError> {
        let c = db.lock()?;
        let changed = if granted {
            c.execute(
                "INSERT OR IGNORE INTO role_assignments(client_id, role) VALUES(?1, ?2)",
                rusqlite::params![client_id, role.name()],
            )?
        } else {
            c.execute(
                "DELETE FROM role_assignments WHERE client_id = ?1 AND role = ?2",
                rusqlite::params![client_id, role.name()],
            )?
        };
        if let Ok(mut roles) = self.roles.write() {
            let set = roles.entry(client_id.to_string()).or_default();
            if granted {
                set.insert(role);
            } else {
                set.remove(&role);
            }
        }
        Ok(changed > 0)
    }

    /// Registers another client (e.g. a read-only one for a classroom demo).
    pub fn create_client(&self, db: &Db, name: &str) -> Result<Client, DbError> {
        let client = Client {
            client_id: uuid::Uuid::new_v4().to_string(),
            secret: random_secret(),
            name: name.to_string(),
        };
        {
            let c = db.lock()?;
            c.execute(
                "INSERT INTO clients(client_id, secret, name) VALUES(?1, ?2, ?3)",
                rusqlite::params![client.client_id, client.secret, client.name],
            )?;
            c.execute(
                "INSERT OR IGNORE INTO role_assignments(client_id, role) VALUES(?1, ?2)",
                rusqlite::params![client.client_id, Role::LogAnalyticsReader.name()],
            )?;
        }
        if let Ok(mut clients) = self.clients.write() {
            clients.insert(client.client_id.clone(), client.clone());
        }
        if let Ok(mut roles) = self.roles.write() {
            roles
                .entry(client.client_id.clone())
                .or_default()
                .insert(Role::LogAnalyticsReader);
        }
        Ok(client)
    }

    /// Issues a token for a client.
    pub fn issue(
        &self,
        client_id: &str,
        audience: &str,
        v2: bool,
    ) -> Result<(String, u64), jsonwebtoken::errors::Error> {
        let now = now_secs();
        let exp = now + self.token_lifetime.as_secs();
        let claims = Claims {
            aud: audience.to_string(),
            iss: if v2 {
                format!("https://login.microsoftonline.com/{}/v2.0", self.tenant_id)
            } else {
                format!("https://sts.windows.net/{}/", self.tenant_id)
            },
            iat: now,
            nbf: now,
            exp,
            tid: self.tenant_id.clone(),
            appid: (!v2).then(|| client_id.to_string()),
            azp: v2.then(|| client_id.to_string()),
            oid: client_id.to_string(),
            sub: client_id.to_string(),
            roles: self
                .roles_of(client_id)
                .iter()
                .map(|r| r.name().to_string())
                .collect(),
            ver: if v2 { "2.0".into() } else { "1.0".into() },
            appidacr: None,
            scp: None,
            upn: None,
            unique_name: None,
            name: None,
        };
        self.sign(&claims)
    }

    /// Signs `claims` (HS256, the service's key); answers the token and how long tokens live (seconds).
    pub(crate) fn sign(
        &self,
        claims: &Claims,
    ) -> Result<(String, u64), jsonwebtoken::errors::Error> {
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)?;
        Ok((token, self.token_lifetime.as_secs()))
    }

    /// How long the tokens it issues live.
    pub(crate) fn token_lifetime(&self) -> Duration {
        self.token_lifetime
    }

    /// Checks a bearer token for the DICOM service and returns the client it was issued to, or what is
    /// wrong with it (the `error_description` of the 401).
    pub fn verify(&self, token: &str) -> Result<String, &'static str> {
        self.check(token, DICOM_RESOURCE)
            .map_err(TokenProblem::description)
    }

    /// Checks a bearer token for `audience`: signature, `exp`, `nbf`, `aud`, `iss` and `tid`, and the
    /// client must be named (`appid` on v1, `azp` on v2) — a token without one is not "auth off".
    /// Every route that takes this service's tokens goes through here.
    pub fn check(&self, token: &str, audience: &str) -> Result<String, TokenProblem> {
        self.principal(token, audience).map(|p| p.client_id)
    }

    /// [`Auth::check`], and who the token speaks for: the app itself, or a signed-in user (a token with
    /// `scp`), whose role assignments are keyed by their `oid`.
    pub fn principal(&self, token: &str, audience: &str) -> Result<TokenPrincipal, TokenProblem> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_audience(&[audience, &format!("{audience}/")]);
        v.set_issuer(&[
            format!("https://sts.windows.net/{}/", self.tenant_id),
            format!("https://login.microsoftonline.com/{}/v2.0", self.tenant_id),
        ]);
        v.set_required_spec_claims(&["exp", "nbf", "aud", "iss"]);
        v.validate_nbf = true;
        v.leeway = 0;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| match e.into_kind() {
                ErrorKind::InvalidAudience => TokenProblem::Audience,
                ErrorKind::ExpiredSignature => TokenProblem::Other("The token is expired"),
                ErrorKind::ImmatureSignature => {
                    TokenProblem::Other("The token is not valid yet (nbf)")
                }
                ErrorKind::InvalidIssuer => TokenProblem::Other("The issuer is invalid"),
                ErrorKind::InvalidSignature => TokenProblem::Other("The signature is invalid"),
                ErrorKind::MissingRequiredClaim(_) => {
                    TokenProblem::Other("The token lacks a required claim")
                }
                _ => TokenProblem::Other("The token is malformed"),
            })?;
        if !claims.tid.eq_ignore_ascii_case(&self.tenant_id) {
            return Err(TokenProblem::Other(
                "The token was issued for another tenant",
            ));
        }
        let client_id = claims
            .appid
            .or(claims.azp)
            .filter(|c| !c.trim().is_empty())
            .ok_or(TokenProblem::NoClient)?;
        let user = claims.scp.filter(|s| !s.trim().is_empty()).map(|_| {
            claims
                .upn
                .or(claims.unique_name)
                .unwrap_or_else(|| claims.oid.clone())
        });
        Ok(TokenPrincipal {
            principal_id: if user.is_some() {
                claims.oid
            } else {
                client_id.clone()
            },
            client_id,
            user,
        })
    }
}

/// Who a valid token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPrincipal {
    /// The app it was issued to (`appid` / `azp`).
    pub client_id: String,
    /// Whose role assignments count: the app's id, or the signed-in user's object id.
    pub principal_id: String,
    /// The signed-in user's name, on a delegated (user) token.
    pub user: Option<String>,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// Issued for another audience.
    Audience,
    /// Names no client (`appid` / `azp`).
    NoClient,
    /// Anything else: expired, not yet valid, another issuer or tenant, a bad signature, malformed.
    Other(&'static str),
}

impl TokenProblem {
    pub fn description(self) -> &'static str {
        match self {
            TokenProblem::Audience => "The audience is invalid",
            TokenProblem::NoClient => "The token names no client (appid or azp)",
            TokenProblem::Other(d) => d,
        }
    }
}

/// Compares a presented secret with the stored one in time that does not depend on where they differ.
pub(crate) fn secret_matches(presented: &str, stored: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(presented.as_bytes().ct_eq(stored.as_bytes()))
}

/// Why a token was refused by the Log Analytics route (its error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    Invalid,
    Audience,
    NoApp,
}

impl TokenRefusal {
    pub fn code(self) -> &'static str {
        match self {
            TokenRefusal::Invalid | TokenRefusal::NoApp => "InvalidAuthenticationToken",
            TokenRefusal::Audience => "InvalidAuthenticationTokenAudience",
        }
    }
    pub fn message(self) -> &'static str {
        match self {
            TokenRefusal::Invalid => {
                "The access token is invalid (expired, or not signed by this service)."
            }
            TokenRefusal::Audience => {
                "The access token has the wrong audience: ask for a token with resource https://api.loganalytics.io (v2: scope https://api.loganalytics.io/.default)."
            }
            TokenRefusal::NoApp => "The access token names no application (appid / azp).",
        }
    }
}

impl Auth {
    /// Verifies a token for another audience than the DICOM service's (every check of
    /// [`Auth::check`]); answers the app it was issued to.
    pub fn verify_for(&self, token: &str, audience: &str) -> Result<String, TokenRefusal> {
        self.check(token, audience).map_err(|p| match p {
            TokenProblem::Audience => TokenRefusal::Audience,
            TokenProblem::NoClient => TokenRefusal::NoApp,
            TokenProblem::Other(_) => TokenRefusal::Invalid,
        })
    }

    /// Who a request says it is, for the audit log's `Identity` column: the claims of its bearer token
    /// when this service signed it (expired or for another audience too: the log names the caller of a
    /// refused request), else `{}`.
    pub fn identity(&self, headers: &axum::http::HeaderMap) -> serde_json::Value {
        let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
        else {
            return json!({});
        };
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_aud = false;
        v.validate_exp = false;
        v.validate_nbf = false;
        v.required_spec_claims.clear();
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &v) {
            Ok(d) => {
                let c = d.claims;
                let mut claims = serde_json::Map::new();
                claims.insert("iss".into(), c.iss.into());
                claims.insert("oid".into(), c.oid.into());
                claims.insert("tid".into(), c.tid.into());
                claims.insert("aud".into(), c.aud.into());
                if let Some(a) = c.appid {
                    claims.insert("appid".into(), a.into());
                }
                if let Some(a) = c.azp {
                    claims.insert("azp".into(), a.into());
                }
                // A user's (delegated) token: what tells it from the app's in the log.
                if let Some(s) = c.scp {
                    claims.insert("scp".into(), s.into());
                }
                if let Some(u) = c.upn {
                    claims.insert("upn".into(), u.into());
                }
                json!({"claims": claims})
            }
            Err(_) => json!({}),
        }
    }
}

/// Who is calling a DICOM route.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `None` when auth is off.
    pub client_id: Option<String>,
    /// Whose role assignments count: the app, or the signed-in user (their object id).
    pub principal: Option<String>,
}

impl Caller {
    /// The role check that the real service runs when the handler starts (after the Accept filter).
    pub fn require(&self, service: &Service, action: Action) -> ApiResult<()> {
        let Some(client) = self.principal.as_ref().or(self.client_id.as_ref()) else {
            return Ok(());
        };
        if service
            .auth
            .roles_of(client)
            .iter()
            .any(|&r| allows(r, action))
        {
            Ok(())
        } else {
            tracing::info!(client, ?action, "403: no role allows this data action");
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "Authorization failed.",
            ))
        }
    }
}

fn unauthorized(origin: &str, tenant: &str, error: Option<&str>) -> ApiError {
    let mut value = format!(
        "Bearer authorization_uri=\"{origin}/{tenant}\", resource_id=\"{DICOM_RESOURCE}\", realm=\"{DICOM_RESOURCE}\""
    );
    if let Some(desc) = error {
        value.push_str(&format!(
            ", error=\"invalid_token\", error_description=\"{desc}\""
        ));
    }
    ApiError::empty(StatusCode::UNAUTHORIZED).with_header(header::WWW_AUTHENTICATE, value)
}

impl FromRequestParts<SharedService> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &SharedService,
    ) -> Result<Self, Self::Rejection> {
        let auth = &service.auth;
        if !auth.enabled {
            return Ok(Caller {
                client_id: None,
                principal: None,
            });
        }
        let origin = origin_of(&parts.headers, service);
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some(value) = value else {
            return Err(unauthorized(&origin, &auth.tenant_id, None));
        };
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                return Err(unauthorized(
                    &origin,
                    &auth.tenant_id,
                    Some("The authorization scheme is not Bearer"),
                ));
            }
        };
        match auth.principal(token, DICOM_RESOURCE) {
            Ok(p) => Ok(Caller {
                client_id: Some(p.client_id),
                principal: Some(p.principal_id),
            }),
            Err(problem) => {
                let desc = problem.description();
                tracing::info!("401: {desc}");
                Err(unauthorized(&origin, &auth.tenant_id, Some(desc)))
            }
        }
    }
}

/// Azure AD's error body.
pub(crate) fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let now = time::OffsetDateTime::now_utc();
    let ts = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let trace = uuid::Uuid::new_v4();
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description}\r\nTrace ID: {trace}\r\nCorrelation ID: {}\r\nTimestamp: {ts}", uuid::Uuid::new_v4()),
        "error_codes": [code],
        "timestamp": ts,
        "trace_id": trace.to_string(),
        "correlation_id": uuid::Uuid::new_v4().to_string(),
    });
    (status, Json(body)).into_response()
}
