//! dicomlab's configuration: profiles (`practice` — the embedded service, `azure`, `generic`), loaded from
//! the config dir or `--config FILE`, with environment variables overriding fields. Files holding a secret
//! are written with mode 0600.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::targets::kind::TargetKind;
use dicomlab_dicomweb::auth::{AZURE_AUTHORITY, DICOM_RESOURCE, Secret, TokenVersion};

fn default_resource() -> String {
    DICOM_RESOURCE.into()
}
fn default_authority() -> String {
    AZURE_AUTHORITY.into()
}
fn default_profile() -> String {
    "practice".into()
}

/// How a generic DICOMweb server authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GenericAuth {
    #[default]
    None,
    Basic,
    Bearer,
}

/// One target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub kind: TargetKind,
    /// Ends in `/v1` for Azure and the practice service. Empty for `practice` = the embedded service.
    #[serde(default)]
    pub base_url: String,
    #[serde(default)]
    pub tenant_id: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub client_secret: Secret,
    #[serde(default = "default_resource")]
    pub resource: String,
    /// `https://login.microsoftonline.com`, or a practice service's origin.
    #[serde(default = "default_authority")]
    pub authority: String,
    #[serde(default)]
    pub token_version: TokenVersion,
    /// Generic servers: none, basic or bearer.
    #[serde(default)]
    pub auth: GenericAuth,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub password: Secret,
    /// A pasted bearer token (generic `bearer`).
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub token: Secret,
    /// The Log Analytics workspace the DICOM service sends its audit logs to (Azure: its Workspace
    /// ID; a served practice service: found by itself). Empty: no audit log.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log_workspace: String,
    /// The Log Analytics query API (default `https://api.loganalytics.io`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log_endpoint: String,
    /// How late audit records may arrive, in seconds (Azure: 600 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_delay_secs: Option<u64>,
    /// The service is shared with other learners: the change feed alone cannot say who stored what.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

/// What progress is keyed by for a profile: `practice` for the embedded service, else its base URL.
pub fn target_key(p: &Profile) -> String {
    if p.kind == TargetKind::Practice && p.base_url.trim().is_empty() {
        "practice".into()
    } else {
        p.base_url.trim().trim_end_matches('/').to_string()
    }
}

/// `scheme://host[:port]` of a URL (the practice service's routes outside the versioned base).
pub fn origin_of(url: &str) -> String {
    match reqwest::Url::parse(url.trim()) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => url.trim().trim_end_matches('/').to_string(),
    }
}

/// Where a practice service's routes outside the versioned base live (`/loganalytics`, `/admin`, the
/// token endpoint): the URL up to its version segment (`http://h:8080/l/ada` of
/// `http://h:8080/l/ada/v1`, as a classroom serves each learner's), else the URL itself (a root
/// stays a root).
pub fn service_root(url: &str) -> String {
    let Ok(u) = reqwest::Url::parse(url.trim()) else {
        return origin_of(url);
    };
    let origin = u.origin().ascii_serialization();
    let segs: Vec<&str> = u.path_segments().map(Iterator::collect).unwrap_or_default();
    let is_version = |s: &&str| {
        s.strip_prefix('v')
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    };
    let end = segs.iter().position(is_version).unwrap_or(segs.len());
    let path: Vec<&str> = segs[..end]
        .iter()
        .copied()
        .filter(|s| !s.is_empty())
        .collect();
    if path.is_empty() {
        origin
    } else {
        format!("{origin}/{}", path.join("/"))
    }
}

impl Profile {
    pub fn new(kind: TargetKind) -> Self {
        Profile {
            kind,
            base_url: String::new(),
            tenant_id: String::new(),
            client_id: String::new(),
            client_secret: Secret::default(),
            resource: default_resource(),
            authority: default_authority(),
            token_version: TokenVersion::V1,
            auth: GenericAuth::None,
            username: String::new(),
            password: Secret::default(),
            token: Secret::default(),
            log_workspace: String::new(),
            log_endpoint: String::new(),
            log_delay_secs: None,
            shared: false,
        }
    }

    /// What is wrong with the values, in the learner's words.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let base = self.base_url.trim();
        if self.kind == TargetKind::Practice && base.is_empty() {
            return out; // the embedded service fills everything in
        }
        if base.is_empty() {
            out.push("the base URL is missing".into());
        } else if reqwest::Url::parse(base).is_err() {
            out.push(format!("the base URL '{base}' is not a URL"));
        } else {
            let b = base.trim_end_matches('/');
            if b.ends_with("/studies") {
                out.push("the base URL ends in /studies: remove it".into());
            } else {
                let parsed = dicomlab_dicomweb::BaseUrl::parse(b);
                if let Some(name) = parsed.partition() {
                    // A data partition (docs/contract.md §1.2): …/v1/partitions/{name}.
                    if parsed.version().is_none() {
                        out.push(
                            "a partition goes after the version: …/v1/partitions/{name}".into(),
                        );
                    }
                    if name.is_empty()
                        || name.len() > 64
                        || !name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
                    {
                        out.push(format!(
                            "the partition name '{name}' may hold up to 64 letters, digits, '.', '-' and '_'"
                        ));
                    }
                } else if self.kind != TargetKind::Generic && parsed.version().is_none() {
                    out.push(
                        "the base URL must end in /v1 — add /v1 to it (every DICOM route is versioned)"
                            .into(),
                    );
                }
            }
            if self.kind == TargetKind::Azure && b.starts_with("http://") {
                out.push("Azure's DICOM service is served over https only".into());
            }
        }
        if self.kind != TargetKind::Generic {
            for (v, name) in [
                (&self.tenant_id, "tenant id"),
                (&self.client_id, "client id"),
                (&self.resource, "resource"),
            ] {
                if v.trim().is_empty() {
                    out.push(format!("the {name} is missing"));
                }
            }
            if self.client_secret.is_empty() {
                out.push("the client secret is missing".into());
            }
        }
        out
    }

    /// Whether saving this profile writes a secret.
    fn has_secret(&self) -> bool {
        !(self.client_secret.is_empty() && self.password.is_empty() && self.token.is_empty())
    }
}

/// The config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The active profile.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// The learner's name, for the report an instructor reads (asked once; empty: declined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learner: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

impl Default for Config {
    fn default() -> Self {
        let mut profiles = BTreeMap::new();
        profiles.insert("practice".into(), Profile::new(TargetKind::Practice));
        profiles.insert("azure".into(), Profile::new(TargetKind::Azure));
        let mut generic = Profile::new(TargetKind::Generic);
        generic.base_url = "http://localhost:8042/dicom-web".into();
        profiles.insert("generic".into(), generic);
        Config {
            profile: default_profile(),
            learner: None,
            profiles,
        }
    }
}

/// Why the config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no profile named '{0}' (profiles: practice, azure, generic, or one you added)")]
    NoProfile(String),
    #[error("{path} is not a Postman environment: {message}")]
    Postman { path: PathBuf, message: String },
}

/// The default config file: `<config dir>/dicomlab/config.toml`.
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "dicomlab").map(|d| d.config_dir().join("config.toml"))
}

/// The config dir (the config file; `dicomlab join`'s classroom tokens).
pub fn config_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "dicomlab").map(|d| d.config_dir().to_path_buf())
}

/// The data dir (progress, practice data, logs).
pub fn data_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "dicomlab").map_or_else(
        || std::env::temp_dir().join("dicomlab"),
        |d| d.data_dir().to_path_buf(),
    )
}

impl Config {
    /// Loads `path`; a missing file gives the defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.into(),
                    source,
                });
            }
        };
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        for (name, p) in Config::default().profiles {
            config.profiles.entry(name).or_insert(p);
        }
        Ok(config)
    }

    /// The active profile (or `name`), with environment overrides applied.
    pub fn active(&self, name: Option<&str>) -> Result<(String, Profile), ConfigError> {
        let env_profile = std::env::var("DICOMLAB_PROFILE").ok();
        let name = name
            .map(str::to_string)
            .or(env_profile)
            .unwrap_or_else(|| self.profile.clone());
        let mut p = self
            .profiles
            .get(&name)
            .cloned()
            .ok_or_else(|| ConfigError::NoProfile(name.clone()))?;
        apply_env(&mut p, |k| std::env::var(k).ok());
        Ok((name, p))
    }

    /// Writes the config atomically, with mode 0600 when it holds a secret.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let err = |source| ConfigError::Write {
            path: path.into(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut text = String::from(
            "# dicomlab configuration (see config.example.toml). Holds secrets: keep it private.\n",
        );
        text.push_str(&toml::to_string_pretty(self).map_err(|e| err(std::io::Error::other(e)))?);
        let tmp = path.with_extension("toml.tmp");
        write_private(
            &tmp,
            text.as_bytes(),
            self.profiles.values().any(Profile::has_secret),
        )
        .map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }
}

/// Environment variables that override profile fields.
pub const ENV_OVERRIDES: &[&str] = &[
    "DICOMLAB_BASE_URL",
    "DICOMLAB_TENANT_ID",
    "DICOMLAB_CLIENT_ID",
    "DICOMLAB_CLIENT_SECRET",
    "DICOMLAB_RESOURCE",
    "DICOMLAB_AUTHORITY",
    "DICOMLAB_TOKEN",
    "DICOMLAB_USERNAME",
    "DICOMLAB_PASSWORD",
];

fn apply_env(p: &mut Profile, get: impl Fn(&str) -> Option<String>) {
    let set = |field: &mut String, key: &str| {
        if let Some(v) = get(key).filter(|v| !v.is_empty()) {
            *field = v;
        }
    };
    set(&mut p.base_url, "DICOMLAB_BASE_URL");
    set(&mut p.tenant_id, "DICOMLAB_TENANT_ID");
    set(&mut p.client_id, "DICOMLAB_CLIENT_ID");
    set(&mut p.resource, "DICOMLAB_RESOURCE");
    set(&mut p.authority, "DICOMLAB_AUTHORITY");
    set(&mut p.username, "DICOMLAB_USERNAME");
    for (field, key) in [
        (&mut p.client_secret, "DICOMLAB_CLIENT_SECRET"),
        (&mut p.password, "DICOMLAB_PASSWORD"),
        (&mut p.token, "DICOMLAB_TOKEN"),
    ] {
        if let Some(v) = get(key).filter(|v| !v.is_empty()) {
            *field = Secret::new(v);
        }
    }
}

/// What to write back for a profile edited after environment overrides were applied (the TUI's
/// environment screen): a value that came from an environment variable and was left as it was goes
/// back to the file's own, so a `DICOMLAB_CLIENT_SECRET` never lands in the file by a save.
pub fn without_env(
    edited: &Profile,
    stored: &Profile,
    get: impl Fn(&str) -> Option<String>,
) -> Profile {
    let mut overridden = stored.clone();
    apply_env(&mut overridden, get);
    let mut out = edited.clone();
    macro_rules! keep_file_value {
        ($($f:ident),*) => {$(
            if overridden.$f != stored.$f && edited.$f == overridden.$f {
                out.$f = stored.$f.clone();
            }
        )*};
    }
    keep_file_value!(
        base_url,
        tenant_id,
        client_id,
        resource,
        authority,
        username,
        client_secret,
        password,
        token
    );
    out
}

/// Writes a file that may hold a secret: created with mode 0600 on Unix.
pub fn write_private(path: &Path, bytes: &[u8], secret: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        if secret {
            opts.mode(0o600);
        }
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(bytes)?;
    f.sync_all()
}

/// Reads the workshop's Postman environment (`values`: tenantId, clientId, clientSecret, resource, baseUrl)
/// into an `azure` profile. Empty values are left as they were.
pub fn import_postman(path: &Path, into: &mut Profile) -> Result<Vec<String>, ConfigError> {
    let bad = |message: String| ConfigError::Postman {
        path: path.into(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON ({e})")))?;
    let values = v
        .get("values")
        .and_then(|x| x.as_array())
        .ok_or_else(|| bad("it has no `values` array".into()))?;
    let mut imported = Vec::new();
    for item in values {
        let (Some(key), Some(value)) = (
            item.get("key").and_then(|k| k.as_str()),
            item.get("value").and_then(|k| k.as_str()),
        ) else {
            continue;
        };
        if value.trim().is_empty() {
            continue;
        }
        let value = value.trim().to_string();
        match key {
            "tenantId" => into.tenant_id = value,
            "clientId" => into.client_id = value,
            "clientSecret" => into.client_secret = Secret::new(value),
            "resource" => into.resource = value,
            "baseUrl" => into.base_url = value,
            _ => continue,
        }
        imported.push(key.to_string());
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_root_keeps_the_path_before_the_version() {
        assert_eq!(
            service_root("http://127.0.0.1:8042/v1"),
            "http://127.0.0.1:8042"
        );
        assert_eq!(
            service_root("http://127.0.0.1:8042"),
            "http://127.0.0.1:8042"
        );
        assert_eq!(
            service_root("http://h:8080/l/ada/v1/studies?x=1"),
            "http://h:8080/l/ada"
        );
        assert_eq!(
            service_root("https://x.dicom.azurehealthcareapis.com/v2/"),
            "https://x.dicom.azurehealthcareapis.com"
        );
        assert_eq!(
            service_root(&service_root("http://h/l/ada/v1")),
            "http://h/l/ada",
            "a root stays a root"
        );
    }

    #[test]
    fn validation_speaks_the_learners_language() {
        let mut p = Profile::new(TargetKind::Azure);
        p.base_url = "https://ws-dicom.dicom.azurehealthcareapis.com".into();
        assert!(p.problems().iter().any(|m| m.contains("/v1")));
        p.base_url = "https://ws-dicom.dicom.azurehealthcareapis.com/v1/studies".into();
        assert!(p.problems().iter().any(|m| m.contains("/studies")));
        p.base_url = "http://ws-dicom.dicom.azurehealthcareapis.com/v1".into();
        assert!(p.problems().iter().any(|m| m.contains("https")));
        assert!(p.problems().iter().any(|m| m.contains("client secret")));
        assert!(Profile::new(TargetKind::Practice).problems().is_empty());
        // A data partition is accepted after the version, with a valid name.
        p.base_url = "https://ws-dicom.dicom.azurehealthcareapis.com/v1/partitions/lab-a".into();
        assert!(
            !p.problems()
                .iter()
                .any(|m| m.contains("base URL") || m.contains("partition")),
            "{:?}",
            p.problems()
        );
        p.base_url = "https://ws-dicom.dicom.azurehealthcareapis.com/partitions/lab-a".into();
        assert!(p.problems().iter().any(|m| m.contains("after the version")));
        p.base_url = "https://ws-dicom.dicom.azurehealthcareapis.com/v1/partitions/a b".into();
        assert!(p.problems().iter().any(|m| m.contains("partition name")));
    }

    #[test]
    fn env_overrides_fields() {
        let mut p = Profile::new(TargetKind::Azure);
        apply_env(&mut p, |k| {
            (k == "DICOMLAB_CLIENT_SECRET").then(|| "s3cret".to_string())
        });
        assert_eq!(p.client_secret.expose(), "s3cret");
    }

    #[test]
    fn saved_with_mode_0600_and_loaded_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        let mut c = Config::default();
        if let Some(p) = c.profiles.get_mut("azure") {
            p.client_secret = Secret::new("value-of-the-secret");
            p.base_url = "https://x.dicom.azurehealthcareapis.com/v1".into();
        }
        c.save(&path).expect("save");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(Config::load(&path).expect("load"), c);
    }

    #[test]
    fn imports_the_workshop_environment() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("env.json");
        std::fs::write(&path, r#"{"values":[{"key":"tenantId","value":"t"},{"key":"clientSecret","value":"s"},{"key":"baseUrl","value":"https://a/v1"},{"key":"bearerToken","value":"x"}]}"#).expect("write");
        let mut p = Profile::new(TargetKind::Azure);
        let got = import_postman(&path, &mut p).expect("import");
        assert_eq!(got, ["tenantId", "clientSecret", "baseUrl"]);
        assert_eq!(
            (
                p.tenant_id.as_str(),
                p.client_secret.expose(),
                p.base_url.as_str()
            ),
            ("t", "s", "https://a/v1")
        );
        std::fs::write(&path, "[]").expect("write");
        assert!(import_postman(&path, &mut p).is_err());
    }

    #[test]
    fn a_save_does_not_write_what_the_environment_provided() {
        let mut stored = Profile::new(TargetKind::Azure);
        stored.client_secret = Secret::new("from-the-file");
        stored.tenant_id = "t-file".into();
        let env = |k: &str| match k {
            "DICOMLAB_CLIENT_SECRET" => Some("from-the-env".to_string()),
            "DICOMLAB_TENANT_ID" => Some("t-env".to_string()),
            _ => None,
        };
        let mut shown = stored.clone();
        apply_env(&mut shown, env);
        // The learner changed the tenant id in the form, not the secret.
        let mut edited = shown.clone();
        edited.tenant_id = "t-typed".into();
        let out = without_env(&edited, &stored, env);
        assert_eq!(out.client_secret.expose(), "from-the-file");
        assert_eq!(out.tenant_id, "t-typed");
    }
}
