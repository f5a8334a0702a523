//! The environment screen (exercise "Set up the environment"): the profile's values (Azure's client
//! credentials and base URL, or a DICOMweb server's URL and basic auth), the secret masked until `s`,
//! each value copyable (`y`, OSC 52), checked as they are typed. `P` writes the workshop's Postman files
//! for the target (its environment and its collection, the token request pointed at the target's token
//! URL; over SSH it copies the environment instead); `I` imports the workshop's Postman environment
//! file; `w` saves the profile into the config file (mode 0600) and the app opens its target. An import
//! saved and opened credits the lab's import step. The embedded practice service's values are its own:
//! shown, read-only.

use std::path::{Path, PathBuf};
use dicomlab_lab::model::CheckKind;

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use dicomlab_lab::config::{Config, Profile};
use dicomlab_dicomweb::Secret;
use dicomlab_lab::engine::Session;
use dicomlab_lab::model::Lab;
use dicomlab_lab::postman::{self, Exported, Variables};
use dicomlab_lab::targets::TargetKind;
use crate::component::{Command, Component, Ctx, Io, MOVE_KEYS, Out};
use crate::widgets::{
    FieldKey, Form, FormKey, expand_home, notice_line, outcome_line, paragraph,
};

/// The environment screen's state.
pub struct Environment {
    /// The profile's name: where `w` saves it, and the profile the app then opens.
    pub name: String,
    /// The profile the form edits: what the form does not show is kept from it.
    pub base: Profile,
    /// False for the embedded practice service, whose values are its own.
    pub editable: bool,
    /// The values the form shows (`i` edits them).
    pub form: Form<Setting>,
    /// The Postman environment file being typed (`I`).
    pub import: Option<Form<ImportFile>>,
    /// Typed or imported, not saved yet.
    pub dirty: bool,
    /// An import not saved yet: the variables it read, for the import step's evidence once the profile
    /// is saved and opened.
    pub imported: Option<String>,
    /// What the last import, save, copy or export said.
    pub notice: Option<Result<String, String>>,
    /// The folder the Postman files are being written to (`P`).
    pub export: Option<Form<ExportFolder>>,
    /// What the last export wrote, and how to use it (until the next notice).
    pub exported: Option<Exported>,
}

/// A value of the profile, as the form names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    TenantId,
    ClientId,
    Secret,
    Resource,
    BaseUrl,
    Username,
    Password,
}

impl FieldKey for Setting {
    fn label(self) -> &'static str {
        match self {
            Setting::TenantId => "tenant id",
            Setting::ClientId => "client id",
            Setting::Secret => "secret",
            Setting::Resource => "resource",
            Setting::BaseUrl => "base URL",
            Setting::Username => "username",
            Setting::Password => "password",
        }
    }
    fn masked(self) -> bool {
        matches!(self, Setting::Secret | Setting::Password)
    }
}

/// The one field of the import form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportFile;

impl FieldKey for ImportFile {
    fn label(self) -> &'static str {
        "Postman file"
    }
}

/// The one field of the export form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportFolder;

impl FieldKey for ExportFolder {
    fn label(self) -> &'static str {
        "folder"
    }
}

/// Where `P` writes the Postman files unless told (beside where dicomlab was started).
pub const EXPORT_FOLDER: &str = "dicomlab-postman";

/// What the environment screen asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// Read a Postman environment into `into` (the profile the form shows, or a new azure one).
    Import { path: PathBuf, into: Box<Profile> },
    /// Write the profile into the config file and make it the active one.
    Save { name: String, profile: Box<Profile> },
    /// Write the workshop's Postman files for these values into `dir`.
    Export {
        dir: PathBuf,
        vars: Box<Variables>,
    },
}

/// What comes back.
#[derive(Debug, Clone)]
pub enum Done {
    /// The profile open now, as the form shows it (the runtime sends it at start and after a switch);
    /// `editable` is false for the embedded service.
    Profile {
        name: String,
        profile: Profile,
        editable: bool,
    },
    /// The profile with the imported values, and the variables read; or why not.
    Imported(Result<(Profile, Vec<String>), String>),
    /// The profile saved (where), or why not.
    Saved {
        name: String,
        profile: Box<Profile>,
        result: Result<PathBuf, String>,
    },
    /// What the export wrote, or why not.
    Exported(Result<Exported, String>),
}

/// The fields of a profile: Azure's client credentials, or a DICOMweb server's URL and basic auth.
fn form_of(p: &Profile) -> Form<Setting> {
    if p.kind == TargetKind::Generic {
        return Form::new([
            (Setting::BaseUrl, p.base_url.as_str()),
            (Setting::Username, p.username.as_str()),
            (Setting::Password, p.password.expose()),
        ]);
    }
    Form::new([
        (Setting::TenantId, p.tenant_id.as_str()),
        (Setting::ClientId, p.client_id.as_str()),
        (Setting::Secret, p.client_secret.expose()),
        (Setting::Resource, p.resource.as_str()),
        (Setting::BaseUrl, p.base_url.as_str()),
    ])
}

impl Environment {
    /// Shows a profile in the form.
    pub fn load(&mut self, name: String, profile: Profile, editable: bool) {
        self.form = form_of(&profile);
        self.export = None;
        self.name = name;
        self.base = profile;
        self.editable = editable;
        self.dirty = false;
        self.import = None;
    }

    /// The profile as the form has it now.
    pub fn profile(&self) -> Profile {
        let mut p = self.base.clone();
        for f in &self.form.fields {
            let v = f.value().trim().to_string();
            match f.key {
                Setting::TenantId => p.tenant_id = v,
                Setting::ClientId => p.client_id = v,
                Setting::Secret => p.client_secret = Secret::new(v),
                Setting::Resource => p.resource = v,
                Setting::BaseUrl => p.base_url = v,
                Setting::Username => p.username = v,
                Setting::Password => p.password = Secret::new(v),
            }
        }
        p
    }

    /// What is wrong with what is typed (nothing for the read-only embedded service).
    pub fn problems(&self) -> Vec<String> {
        if !self.editable {
            return Vec::new();
        }
        self.profile().problems()
    }

    fn start_editing(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        self.form.editing = true;
        Vec::new()
    }

    fn read_only(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        self.say(Err(
            "the embedded practice service fills these in; press I to import your Postman environment into the azure profile, or t to switch target".into(),
        ));
        Vec::new()
    }

    fn open_import(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        self.import = Some(Form::editing([(
            ImportFile,
            "dicom-service.postman_environment.json",
        )]));
        Vec::new()
    }

    fn save(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        let problems = self.problems();
        if !problems.is_empty() {
            self.say(Err(format!("not saved: {}", problems.join("; "))));
            return Vec::new();
        }
        vec![Out::Work(Work::Save {
            name: self.name.clone(),
            profile: Box::new(self.profile()),
        })]
    }

    /// ↑↓: the value `y` copies.
    fn pick(&mut self, key: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        let n = self.form.fields.len();
        crate::widgets::move_selection(&mut self.form.focus, n, key.code);
        Vec::new()
    }

    fn toggle_reveal(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        self.form.reveal = !self.form.reveal;
        Vec::new()
    }

    /// Copies the chosen value — the secret in clear too: that is what Postman or curl needs.
    fn copy(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        let Some((key, value)) = self.form.focused() else {
            return Vec::new();
        };
        if value.trim().is_empty() {
            self.say(Err(format!("the {} is empty: nothing to copy", key.label())));
            return Vec::new();
        }
        self.say(Ok(format!(
            "copied the {} to your clipboard (OSC 52)",
            key.label()
        )));
        vec![Out::Copy(Secret::new(value))]
    }

    /// The Postman files: a folder to write them into; over SSH (nothing is written on the classroom's
    /// machine) the environment goes to the clipboard instead.
    fn open_export(&mut self, _: KeyEvent, ctx: &Ctx) -> Vec<Out<Work>> {
        let Some(vars) = self.postman_variables(ctx) else {
            return Vec::new();
        };
        if ctx.remote {
            self.say(Ok(format!(
                "copied a Postman environment (JSON) to your clipboard: paste it into a file and import it in Postman. In the workshop's collection, point AuthorizeGetToken at {}",
                vars.token_url()
            )));
            return vec![Out::Copy(Secret::new(postman::environment(&vars).to_string()))];
        }
        self.export = Some(Form::editing([(ExportFolder, EXPORT_FOLDER)]));
        Vec::new()
    }

    /// The values shown, as the workshop's Postman environment names them; or, said, why there are none.
    fn postman_variables(&mut self, ctx: &Ctx) -> Option<Variables> {
        Variables::of_profile(&ctx.profile, &self.profile())
            .map_err(|e| self.say(Err(e.to_string())))
            .ok()
    }

    /// A new notice replaces the last one and the last export's lines.
    fn say(&mut self, notice: Result<String, String>) {
        self.exported = None;
        self.notice = Some(notice);
    }
}

impl Component for Environment {
    type Work = Work;
    type Done = Done;
    const TITLE: &'static str = "Environment";

    fn new(_: &Lab) -> Environment {
        let practice = Profile::new(TargetKind::Practice);
        Environment {
            name: "practice".into(),
            form: form_of(&practice),
            base: practice,
            editable: false,
            import: None,
            dirty: false,
            imported: None,
            notice: None,
            export: None,
            exported: None,
        }
    }

    fn commands(&self, _: &Ctx) -> Vec<Command<Environment>> {
        let mut commands = if self.editable {
            vec![
                Command::bar(
                    &[KeyCode::Char('i')],
                    "i",
                    "edit",
                    Environment::start_editing,
                ),
                Command::help(
                    &[KeyCode::Enter],
                    "Enter",
                    "edit",
                    Environment::start_editing,
                ),
                Command::bar(&[KeyCode::Char('w')], "w", "save", Environment::save),
            ]
        } else {
            vec![Command::help(
                &[KeyCode::Char('i'), KeyCode::Enter],
                "i Enter",
                "edit (says why these are read-only)",
                Environment::read_only,
            )]
        };
        commands.extend([
            Command::help(MOVE_KEYS, "↑↓ j k", "choose a value", Environment::pick),
            Command::bar(
                &[KeyCode::Char('s')],
                "s",
                if self.form.reveal {
                    "hide secret"
                } else {
                    "show secret"
                },
                Environment::toggle_reveal,
            ),
            Command::bar(&[KeyCode::Char('y')], "y", "copy", Environment::copy),
            Command::bar(
                &[KeyCode::Char('P')],
                "P",
                "Postman files",
                Environment::open_export,
            ),
            Command::bar(
                &[KeyCode::Char('I')],
                "I",
                "import Postman",
                Environment::open_import,
            ),
        ]);
        commands
    }

    fn editing(&self) -> bool {
        self.form.editing
            || self.import.as_ref().is_some_and(|f| f.editing)
            || self.export.as_ref().is_some_and(|f| f.editing)
    }

    fn edit(&mut self, key: KeyEvent, ctx: &Ctx) -> Vec<Out<Work>> {
        if let Some(form) = &mut self.export {
            return match form.key(key) {
                FormKey::Submit => {
                    let dir = form.value(ExportFolder).trim().to_string();
                    self.export = None;
                    match self.postman_variables(ctx) {
                        Some(vars) if !dir.is_empty() => vec![Out::Work(Work::Export {
                            dir: expand_home(&dir),
                            vars: Box::new(vars),
                        })],
                        _ => Vec::new(),
                    }
                }
                FormKey::Leave => {
                    self.export = None;
                    Vec::new()
                }
                FormKey::Used => Vec::new(),
            };
        }
        if let Some(form) = &mut self.import {
            return match form.key(key) {
                FormKey::Submit => {
                    let path = form.value(ImportFile).trim().to_string();
                    self.import = None;
                    let into = if self.editable {
                        self.profile()
                    } else {
                        Profile::new(TargetKind::Azure)
                    };
                    if path.is_empty() {
                        Vec::new()
                    } else {
                        vec![Out::Work(Work::Import {
                            path: expand_home(&path),
                            into: Box::new(into),
                        })]
                    }
                }
                FormKey::Leave => {
                    self.import = None;
                    Vec::new()
                }
                FormKey::Used => Vec::new(),
            };
        }
        if let FormKey::Submit | FormKey::Leave = self.form.key(key) {
            self.form.editing = false;
        } else {
            self.dirty = true;
        }
        Vec::new()
    }

    // Its requests take no time worth cancelling; the save's switch is the app's.
    fn busy(&self) -> bool {
        false
    }

    fn cancel(&mut self) {}

    /// The profile just opened is checked at once; an import saved with it is the import step's evidence.
    fn switched(&mut self, ctx: &Ctx) -> Vec<Out<Work>> {
        let mut outs = Vec::new();
        if let Some(what) = self.imported.take() {
            outs.push(Out::Credit {
                kind: CheckKind::PostmanImport,
                summary: format!(
                    "imported the workshop's Postman environment ({what}) and saved it as profile {}",
                    ctx.profile
                ),
            });
        }
        outs.push(Out::Check);
        outs
    }

    fn done(&mut self, done: Done, _: &Ctx) -> Vec<Out<Work>> {
        match done {
            Done::Profile {
                name,
                profile,
                editable,
            } => self.load(name, profile, editable),
            Done::Imported(Ok((profile, names))) => {
                let name = if self.editable {
                    self.name.clone()
                } else {
                    "azure".to_string()
                };
                self.load(name, profile, true);
                self.dirty = true;
                self.imported = Some(names.join(", "));
                self.say(Ok(format!(
                    "imported {} into profile {}: press w to save it and switch to it",
                    names.join(", "),
                    self.name
                )));
            }
            Done::Imported(Err(e)) => self.say(Err(e)),
            Done::Saved {
                name,
                profile,
                result: Ok(path),
            } => {
                self.dirty = false;
                self.say(Ok(format!(
                    "saved to {} (mode 0600); opening profile {name}…",
                    path.display(),
                )));
                return vec![Out::Open { name, profile }];
            }
            Done::Saved { result: Err(e), .. } => {
                self.say(Err(format!("not saved: {e}")));
            }
            Done::Exported(Ok(exported)) => {
                self.notice = None;
                self.exported = Some(exported);
            }
            Done::Exported(Err(e)) => self.say(Err(format!("no Postman files written: {e}"))),
        }
        Vec::new()
    }

    fn height(&self, _: &Ctx) -> u16 {
        let problems = self.problems().len().max(1) as u16;
        // The export's lines name paths: room for them to wrap.
        let exported = self
            .exported
            .as_ref()
            .map_or(0, |e| e.summary().len() as u16 + 3);
        2 + self.form.fields.len() as u16
            + 2 * u16::from(self.import.is_some())
            + 2 * u16::from(self.export.is_some())
            + problems
            + 2 * u16::from(self.notice.is_some())
            + exported
    }

    fn draw(&self, ctx: &Ctx, f: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let mut lines = vec![Line::raw(if self.editable {
            format!(
                "profile {} · i edits (Tab next field, Enter done) · w saves (mode 0600) and opens it · I imports a Postman environment",
                self.name
            )
        } else {
            format!(
                "profile {}: the embedded practice service's own values (read-only)",
                self.name
            )
        })];
        lines.extend(self.form.lines_picking(theme, area.width, ctx.focused));
        if let Some(import) = &self.import {
            lines.push(import.line(theme, ImportFile, area.width));
            lines.push(Line::raw("  Enter imports this file · Esc cancels"));
        }
        if let Some(export) = &self.export {
            lines.push(export.line(theme, ExportFolder, area.width));
            lines.push(Line::raw(
                "  Enter writes the Postman files there (made when missing) · Esc cancels",
            ));
        }
        if self.editable {
            let problems = self.problems();
            if problems.is_empty() {
                lines.push(Line::from(vec![
                    theme.ok(true),
                    Span::raw(" every value looks right"),
                    Span::raw(if self.dirty { " (not saved yet: w)" } else { "" }),
                ]));
            } else {
                lines.extend(problems.iter().map(|p| outcome_line(theme, false, p)));
            }
        }
        lines.extend(self.notice.as_ref().map(|n| notice_line(theme, n)));
        if let Some(e) = &self.exported {
            let mut said = e.summary().into_iter();
            lines.extend(said.next().map(|first| outcome_line(theme, true, &first)));
            lines.extend(said.map(|l| Line::raw(format!("  {l}"))));
        }
        paragraph(f, area, lines);
    }

    async fn run(work: Work, io: Io<Done>) {
        match work {
            Work::Import { .. } if io.remote => io.send(Done::Imported(Err(
                "over SSH no file of the classroom's machine is read: your values are already filled in".into(),
            ))),
            Work::Import { path, into } => {
                let r = tokio::task::spawn_blocking(move || {
                    let mut p = *into;
                    dicomlab_lab::config::import_postman(&path, &mut p)
                        .map(|names| (p, names))
                        .map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
                io.send(Done::Imported(r));
            }
            Work::Save { name, profile } => {
                let result = save(io.config.clone(), &name, &profile).await;
                io.send(Done::Saved {
                    name,
                    profile,
                    result,
                });
            }
            Work::Export { .. } if io.remote => io.send(Done::Exported(Err(
                "over SSH nothing is written on the classroom's machine: P copies your Postman environment instead".into(),
            ))),
            Work::Export { dir, vars } => {
                let r = tokio::task::spawn_blocking(move || {
                    postman::export(&vars, &dir).map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
                io.send(Done::Exported(r));
            }
        }
    }
}

/// The profile a session opened, as the form shows it: the embedded service's own values (read-only),
/// or the profile's. The runtime sends it at start and after each switch.
pub fn shown(name: &str, profile: &Profile, session: &Session) -> Done {
    let embedded = session.practice.is_some();
    let mut shown = profile.clone();
    if embedded
        && let dicomlab_dicomweb::AuthConfig::Azure {
            tenant_id,
            client_id,
            client_secret,
            resource,
            authority,
            ..
        } = session.client.auth()
    {
        shown.authority = authority.clone();
        shown.tenant_id = tenant_id.clone();
        shown.client_id = client_id.clone();
        shown.client_secret = client_secret.clone();
        shown.resource = resource.clone();
        shown.base_url = session.client.base().to_string();
    }
    Done::Profile {
        name: name.to_string(),
        profile: shown,
        editable: !embedded,
    }
}

/// Writes a profile into the config file (mode 0600, atomically) and makes it the active one; a value
/// that came from an environment variable goes back as the file had it.
async fn save(path: Option<PathBuf>, name: &str, profile: &Profile) -> Result<PathBuf, String> {
    let path = path.ok_or("no config file: start dicomlab with --config FILE")?;
    let (name, profile) = (name.to_string(), profile.clone());
    tokio::task::spawn_blocking(move || write(&path, &name, &profile).map(|()| path))
        .await
        .map_err(|e| e.to_string())?
}

fn write(path: &Path, name: &str, profile: &Profile) -> Result<(), String> {
    let mut config = Config::load(path).map_err(|e| e.to_string())?;
    let stored = config
        .profiles
        .get(name)
        .cloned()
        .unwrap_or_else(|| Profile::new(profile.kind));
    let profile = dicomlab_lab::config::without_env(profile, &stored, |k| std::env::var(k).ok());
    config.profiles.insert(name.to_string(), profile);
    config.profile = name.to_string();
    config.save(path).map_err(|e| e.to_string())
}
