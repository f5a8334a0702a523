//! The workshop's Postman files for one target, so the Basic path (Postman) works on every target the
//! lab runs against — the practice service included, offline. dicomlab ships its own copy of the
//! workshop's collection (`labs/workshop/`) and adapts it to the target in two places only: its token
//! request (`AuthorizeGetToken`) asks the target's token endpoint instead of `login.microsoftonline.com`,
//! and its three single-instance stores send the lab's sample files written beside it (the workshop's
//! point at a path on its author's disk). Every other request, header, body, script and variable is the
//! workshop's. The environment holds the lab's variables under the workshop's names — the client secret
//! among them, which is why it is written with mode 0600.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::config::Profile;
use crate::targets::TargetKind;
use dicomlab_dicom::samples::{self, SAMPLES};
use dicomlab_dicomweb::Secret;
use dicomlab_dicomweb::auth::AZURE_AUTHORITY;

/// The workshop's collection, as it ships (its token request asks Azure AD).
pub const WORKSHOP_COLLECTION: &str =
    include_str!("../../../labs/workshop/Conformance-as-Postman.postman_collection.json");

/// The collection's file name: the workshop's.
pub const COLLECTION_FILE: &str = "Conformance-as-Postman.postman_collection.json";

/// The environment's file name: the workshop's (what the environment screen's import asks for).
pub const ENVIRONMENT_FILE: &str = "dicom-service.postman_environment.json";

/// What marks a file as dicomlab's own export: the environment's `_postman_exported_using` starts with
/// it, the collection's `info._exporter_id` is it (Postman rewrites both when the learner exports again,
/// so an edited file is never replaced).
const EXPORTER: &str = "dicomlab";

/// Why the Postman files could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PostmanError {
    #[error(
        "a generic DICOMweb server has no Azure AD token endpoint: the workshop's collection is for Azure's DICOM service and the practice service"
    )]
    NoToken,
    #[error(
        "{} is there and was not written by dicomlab (your own, or edited in Postman): it is kept — choose another folder, or move it away",
        .0.display()
    )]
    NotOurs(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Samples(#[from] samples::SampleError),
    #[error("the workshop's collection cannot be adapted: {0}")]
    Collection(String),
}

/// The lab's variables on one target, as the workshop's environment names them.
#[derive(Debug, Clone, PartialEq)]
pub struct Variables {
    /// Where they are for, in the environment's name (`dicom-service · practice`).
    pub label: String,
    /// `baseUrl`: the service URL with its version (`…/v1`).
    pub base_url: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub resource: String,
    /// Before `/{tenant}/oauth2/token`: Azure AD's host, or a practice service's root.
    pub authority: String,
}

impl Variables {
    /// A profile's values (an embedded practice service's must be filled in first: its own, not the
    /// config's). A generic server has none to give.
    pub fn of_profile(label: &str, p: &Profile) -> Result<Variables, PostmanError> {
        if p.kind == TargetKind::Generic {
            return Err(PostmanError::NoToken);
        }
        let authority = match p.authority.trim().trim_end_matches('/') {
            "" => AZURE_AUTHORITY.to_string(),
            a => a.to_string(),
        };
        Ok(Variables {
            label: label.to_string(),
            base_url: p.base_url.trim().trim_end_matches('/').to_string(),
            tenant_id: p.tenant_id.trim().to_string(),
            client_id: p.client_id.trim().to_string(),
            client_secret: p.client_secret.clone(),
            resource: p.resource.trim().to_string(),
            authority,
        })
    }

    /// The token endpoint (v1, with `resource`: the workshop's request).
    pub fn token_url(&self) -> String {
        self.token_url_with(&self.tenant_id)
    }

    /// The token endpoint with the tenant as `tenant` (`{{tenantId}}` in the collection, as the
    /// workshop's has it).
    fn token_url_with(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/token", self.authority)
    }
}

/// The workshop's environment, filled in: `tenantId`, `clientId`, `clientSecret` (typed secret: Postman
/// masks it), `bearerToken` (empty: the token request fills it), `resource`, `baseUrl`, and `tokenUrl`.
pub fn environment(v: &Variables) -> Value {
    let var = |key: &str, value: &str, secret: bool| json!({"key": key, "value": value, "type": if secret { "secret" } else { "default" }, "enabled": true});
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "name": environment_name(v),
        "values": [
            var("tenantId", &v.tenant_id, false),
            var("clientId", &v.client_id, false),
            var("clientSecret", v.client_secret.expose(), true),
            var("bearerToken", "", true),
            var("resource", &v.resource, false),
            var("baseUrl", &v.base_url, false),
            var("tokenUrl", &v.token_url(), false),
        ],
        "_postman_variable_scope": "environment",
        "_postman_exported_at": crate::evidence::rfc3339(time::OffsetDateTime::now_utc()),
        "_postman_exported_using": format!("{EXPORTER}/{}", env!("CARGO_PKG_VERSION")),
    })
}

/// How Postman lists the environment: the workshop's name, and the target.
fn environment_name(v: &Variables) -> String {
    format!("dicom-service · {}", v.label)
}

/// A Postman URL object for `raw`, as Postman writes them (newman builds the request from the parts,
/// not from `raw`); `raw` alone when it does not parse.
fn url_object(raw: &str) -> Value {
    const TENANT: &str = "{{tenantId}}";
    const STANDIN: &str = "dicomlab-tenant-id";
    let Ok(u) = reqwest::Url::parse(&raw.replace(TENANT, STANDIN)) else {
        return json!(raw);
    };
    let mut o = json!({
        "raw": raw,
        "protocol": u.scheme(),
        "host": u.host_str().unwrap_or_default().split('.').collect::<Vec<_>>(),
        "path": u
            .path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).map(|p| if p == STANDIN { TENANT } else { p }).collect::<Vec<_>>())
            .unwrap_or_default(),
    });
    if let Some(port) = u.port() {
        o["port"] = json!(port.to_string());
    }
    o
}

/// A path as Postman's `src` names a file: absolute, with forward slashes (`/C:/…` on Windows).
fn postman_path(p: &Path) -> String {
    let s = p.display().to_string();
    if cfg!(windows) {
        let s = s.trim_start_matches(r"\\?\").replace('\\', "/");
        format!("/{s}")
    } else {
        s
    }
}

/// The workshop's collection for `v`'s target: its token request asks `v`'s token endpoint, and its
/// single-instance stores send the sample files in `samples` (by their file names). Nothing else
/// changes but the exporter mark (`info._exporter_id`).
pub fn collection(v: &Variables, samples: &Path) -> Result<Value, PostmanError> {
    let bad = |m: &str| PostmanError::Collection(m.to_string());
    let mut c: Value =
        serde_json::from_str(WORKSHOP_COLLECTION).map_err(|e| bad(&e.to_string()))?;
    c["info"]["_exporter_id"] = json!(EXPORTER);
    let items = c
        .get_mut("item")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| bad("it has no items"))?;
    let mut token_requests = 0;
    for item in items.iter_mut() {
        let Some(request) = item.get_mut("request") else {
            continue;
        };
        let raw = match &request["url"] {
            Value::String(s) => s.clone(),
            u => u["raw"].as_str().unwrap_or_default().to_string(),
        };
        if raw.contains("/oauth2/") {
            request["url"] = url_object(&v.token_url_with("{{tenantId}}"));
            token_requests += 1;
        }
        if let Some(body) = request.get_mut("body")
            && body["mode"] == "file"
            && let Some(src) = body["file"]["src"].as_str()
            && let Some(sample) = SAMPLES
                .iter()
                .find(|s| src.rsplit(['/', '\\']).next() == Some(s.file_name))
        {
            body["file"]["src"] = json!(postman_path(&samples.join(sample.file_name)));
        }
    }
    if token_requests != 1 {
        return Err(bad("it should have one token request"));
    }
    Ok(c)
}

/// What [`export`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// The folder, absolute.
    pub dir: PathBuf,
    /// The environment (mode 0600: it holds the client secret).
    pub environment: PathBuf,
    pub collection: PathBuf,
    /// The sample files the stores send (written when missing; a file already there is kept).
    pub samples: Vec<PathBuf>,
    /// What the collection's token request asks.
    pub token_url: String,
    /// The environment's name, as Postman lists it.
    pub name: String,
}

impl Exported {
    /// The same in three lines, for a screen: where, how to use it in Postman, and with newman.
    pub fn summary(&self) -> Vec<String> {
        let file = |p: &Path| {
            p.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        };
        vec![
            format!(
                "wrote the Postman files to {} (the environment is mode 0600: it holds the secret)",
                self.dir.display()
            ),
            format!(
                "Postman: Import both files, choose the environment \"{}\"; AuthorizeGetToken asks {}",
                self.name, self.token_url
            ),
            format!(
                "newman, in that folder: newman run {} -e {}",
                file(&self.collection),
                file(&self.environment)
            ),
        ]
    }

    /// What was written and how to use it, a line each (no secret in them).
    pub fn lines(&self) -> Vec<String> {
        let file = |p: &Path| {
            p.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        };
        let samples: Vec<String> = self.samples.iter().map(|p| file(p)).collect();
        vec![
            format!("wrote the Postman files to {}:", self.dir.display()),
            format!(
                "  {}  the lab's variables, mode 0600: it holds the client secret — keep it private",
                file(&self.environment)
            ),
            format!(
                "  {}  the workshop's requests; AuthorizeGetToken asks {}",
                file(&self.collection),
                self.token_url
            ),
            format!(
                "  {}  what its Store-single-instance requests send",
                samples.join(" ")
            ),
            format!(
                "Postman: Import both files, choose the environment \"{}\", send AuthorizeGetToken first.",
                self.name
            ),
            format!("newman:  {}", self.newman()),
        ]
    }

    /// The newman command that runs the collection on its environment, from any folder.
    pub fn newman(&self) -> String {
        format!(
            "newman run {} -e {}",
            shell_quote(&self.collection),
            shell_quote(&self.environment)
        )
    }
}

/// A path for a shell command line (single-quoted when it needs it).
fn shell_quote(p: &Path) -> String {
    let s = p.display().to_string();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Whether a file there may be replaced: none there, or one dicomlab wrote and nobody edited since.
fn replaceable(path: &Path, ours: impl Fn(&Value) -> bool) -> Result<(), PostmanError> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(PostmanError::Write {
            path: path.to_path_buf(),
            source,
        }),
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(v) if ours(&v) => Ok(()),
            _ => Err(PostmanError::NotOurs(path.to_path_buf())),
        },
    }
}

/// Writes `bytes` to `path` through a temporary file beside it, renamed into place; `private` makes
/// it 0600 from its creation.
fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), PostmanError> {
    let err = |source| PostmanError::Write {
        path: path.to_path_buf(),
        source,
    };
    if !private {
        return samples::write_atomically(path, bytes).map_err(PostmanError::from);
    }
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    crate::config::write_private(&tmp, bytes, true).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Writes the environment, the adapted collection and the sample files into `dir` (created when
/// missing). A file of the same name that dicomlab did not write is never replaced.
/// Blocking: call on a blocking thread.
pub fn export(v: &Variables, dir: &Path) -> Result<Exported, PostmanError> {
    let err = |source| PostmanError::Write {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let dir = std::fs::canonicalize(dir).map_err(err)?;
    let env_path = dir.join(ENVIRONMENT_FILE);
    let collection_path = dir.join(COLLECTION_FILE);
    replaceable(&env_path, |e| {
        e["_postman_exported_using"]
            .as_str()
            .is_some_and(|u| u.starts_with(EXPORTER))
    })?;
    replaceable(&collection_path, |c| c["info"]["_exporter_id"] == EXPORTER)?;
    let mut written = Vec::new();
    for s in &SAMPLES {
        let path = dir.join(s.file_name);
        if !path.exists() {
            samples::write_atomically(&path, &s.to_bytes()?)?;
        }
        written.push(path);
    }
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    write_file(
        &collection_path,
        pretty(&collection(v, &dir)?).as_bytes(),
        false,
    )?;
    write_file(&env_path, pretty(&environment(v)).as_bytes(), true)?;
    Ok(Exported {
        dir,
        environment: env_path,
        collection: collection_path,
        samples: written,
        token_url: v.token_url_with("{{tenantId}}"),
        name: environment_name(v),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn practice() -> Variables {
        Variables {
            label: "practice".into(),
            base_url: "http://127.0.0.1:8042/v1".into(),
            tenant_id: "t-1".into(),
            client_id: "c-1".into(),
            client_secret: Secret::new("s3cr3t-value"),
            resource: "https://dicom.healthcareapis.azure.com".into(),
            authority: "http://127.0.0.1:8042".into(),
        }
    }

    /// The collection's requests.
    fn requests(c: &Value) -> Vec<Value> {
        c["item"].as_array().expect("items").clone()
    }

    #[test]
    fn only_the_token_request_and_the_store_files_change() {
        let workshop: Value = serde_json::from_str(WORKSHOP_COLLECTION).expect("json");
        let adapted = collection(&practice(), Path::new("/home/ada/postman")).expect("adapted");
        let (before, after) = (requests(&workshop), requests(&adapted));
        assert_eq!(before.len(), after.len());
        let mut changed = Vec::new();
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(b["name"], a["name"]);
            if b != a {
                changed.push(a["name"].as_str().unwrap_or_default().to_string());
                // Only the URL of the token request, only the file of a store.
                let mut b = b.clone();
                b["request"]["url"] = a["request"]["url"].clone();
                if b["request"]["body"]["mode"] == "file" {
                    b["request"]["body"]["file"] = a["request"]["body"]["file"].clone();
                }
                assert_eq!(&b, a);
            }
        }
        assert_eq!(
            changed,
            [
                "AuthorizeGetToken",
                "Store-single-instance (red-triangle.dcm)",
                "Store-single-instance (green-square.dcm)",
                "Store-single-instance (blue-circle.dcm)",
            ]
        );
        let token = &after[0]["request"]["url"];
        assert_eq!(
            token["raw"],
            "http://127.0.0.1:8042/{{tenantId}}/oauth2/token"
        );
        assert_eq!(token["protocol"], "http");
        assert_eq!(token["host"], json!(["127", "0", "0", "1"]));
        assert_eq!(token["port"], "8042");
        assert_eq!(token["path"], json!(["{{tenantId}}", "oauth2", "token"]));
        assert_eq!(
            after[1]["request"]["body"]["file"]["src"],
            "/home/ada/postman/red-triangle.dcm"
        );
        // Variables, auth and scripts are the workshop's; the exporter mark is dicomlab's.
        for k in ["variable", "auth", "event"] {
            assert_eq!(workshop[k], adapted[k], "{k}");
        }
        assert_eq!(adapted["info"]["_exporter_id"], "dicomlab");
        assert_eq!(workshop["info"]["name"], adapted["info"]["name"]);
    }

    #[test]
    fn a_classroom_learners_token_url_keeps_the_path_before_the_tenant() {
        let mut v = practice();
        v.authority = "http://room.local:8080/l/ada".into();
        let c = collection(&v, Path::new("/x")).expect("adapted");
        let url = &c["item"][0]["request"]["url"];
        assert_eq!(
            url["raw"],
            "http://room.local:8080/l/ada/{{tenantId}}/oauth2/token"
        );
        assert_eq!(url["host"], json!(["room", "local"]));
        assert_eq!(
            url["path"],
            json!(["l", "ada", "{{tenantId}}", "oauth2", "token"])
        );
        // Azure: Azure AD's own, as the workshop has it.
        let mut p = Profile::new(TargetKind::Azure);
        p.tenant_id = "t".into();
        let v = Variables::of_profile("azure", &p).expect("azure");
        assert_eq!(
            v.token_url(),
            "https://login.microsoftonline.com/t/oauth2/token"
        );
        let c = collection(&v, Path::new("/x")).expect("adapted");
        assert_eq!(
            c["item"][0]["request"]["url"]["raw"],
            "https://login.microsoftonline.com/{{tenantId}}/oauth2/token"
        );
        assert!(matches!(
            Variables::of_profile("generic", &Profile::new(TargetKind::Generic)),
            Err(PostmanError::NoToken)
        ));
    }

    #[test]
    fn the_environment_has_the_workshops_variables_and_the_secret_typed_secret() {
        let e = environment(&practice());
        let values = e["values"].as_array().expect("values");
        let keys: Vec<&str> = values.iter().filter_map(|v| v["key"].as_str()).collect();
        assert_eq!(
            keys,
            [
                "tenantId",
                "clientId",
                "clientSecret",
                "bearerToken",
                "resource",
                "baseUrl",
                "tokenUrl"
            ]
        );
        let secret = values
            .iter()
            .find(|v| v["key"] == "clientSecret")
            .expect("secret");
        assert_eq!(secret["value"], "s3cr3t-value");
        assert_eq!(secret["type"], "secret");
        assert_eq!(e["name"], "dicom-service · practice");
        // What the environment screen's import reads back.
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join(ENVIRONMENT_FILE);
        std::fs::write(&path, e.to_string()).expect("write");
        let mut p = Profile::new(TargetKind::Azure);
        crate::config::import_postman(&path, &mut p).expect("import");
        assert_eq!(p.client_secret.expose(), "s3cr3t-value");
        assert_eq!(p.base_url, "http://127.0.0.1:8042/v1");
    }

    #[test]
    fn export_writes_0600_keeps_what_is_not_its_own_and_replaces_its_own() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path().join("postman");
        let got = export(&practice(), &out).expect("export");
        assert_eq!(got.samples.len(), 3);
        assert!(got.samples.iter().all(|p| p.exists()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(&got.environment), 0o600);
            assert_eq!(mode(&got.collection), 0o644);
        }
        assert!(got.newman().starts_with("newman run /"), "{}", got.newman());
        // A second export (another target) replaces dicomlab's own files.
        let mut azure = practice();
        azure.label = "azure".into();
        export(&azure, &out).expect("again");
        let e: Value =
            serde_json::from_str(&std::fs::read_to_string(&got.environment).expect("read"))
                .expect("json");
        assert_eq!(e["name"], "dicom-service · azure");
        // The learner's own environment (the workshop's, filled in Postman) is never replaced.
        let theirs = dir.path().join("theirs");
        std::fs::create_dir_all(&theirs).expect("dir");
        let workshop_env = r#"{"name":"dicom-service","values":[{"key":"clientSecret","value":"shown once"}],"_postman_exported_using":"Postman/9.20.3"}"#;
        std::fs::write(theirs.join(ENVIRONMENT_FILE), workshop_env).expect("write");
        let e = export(&practice(), &theirs).expect_err("kept");
        assert!(
            matches!(&e, PostmanError::NotOurs(p) if p.ends_with(ENVIRONMENT_FILE)),
            "{e}"
        );
        assert_eq!(
            std::fs::read_to_string(theirs.join(ENVIRONMENT_FILE)).expect("read"),
            workshop_env
        );
        // Nor the workshop's collection.
        std::fs::remove_file(theirs.join(ENVIRONMENT_FILE)).expect("rm");
        std::fs::write(theirs.join(COLLECTION_FILE), WORKSHOP_COLLECTION).expect("write");
        assert!(matches!(
            export(&practice(), &theirs),
            Err(PostmanError::NotOurs(_))
        ));
        assert!(
            !theirs.join(ENVIRONMENT_FILE).exists(),
            "nothing written when refused"
        );
    }
}
