//! The per-exercise screens: their state and their keys, pure like `update` (no I/O). Each screen's
//! work leaves as a [`Work`] effect and comes back as a [`Done`] message.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui_textarea::TextArea;
use serde_json::Value;

use crate::config::Profile;
use crate::dicomweb::{Level, StoreMode, StoreProgress, get_ci};
use crate::lab::checks::TargetKind;

/// The screens an exercise can have below its instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Role,
    Environment,
    Store,
    Search,
    Retrieve,
    ChangeFeed,
    Tags,
}

impl Screen {
    /// The screen of a step (None: the step pane is all there is; the viewer draws in it).
    pub fn of(step: &crate::lab::model::Step) -> Option<Screen> {
        use crate::lab::model::ScreenKind;
        Some(match step.screen()? {
            ScreenKind::Role => Screen::Role,
            ScreenKind::Environment => Screen::Environment,
            ScreenKind::Store => Screen::Store,
            ScreenKind::Search => Screen::Search,
            ScreenKind::Retrieve => Screen::Retrieve,
            ScreenKind::ChangeFeed => Screen::ChangeFeed,
            ScreenKind::Tags => Screen::Tags,
            ScreenKind::Viewer => return None,
        })
    }

    pub fn title(self) -> &'static str {
        match self {
            Screen::Role => "Role",
            Screen::Environment => "Environment",
            Screen::Store => "Store",
            Screen::Search => "Search",
            Screen::Retrieve => "Retrieve",
            Screen::ChangeFeed => "Change feed",
            Screen::Tags => "Extended query tags",
        }
    }
}

/// What retrieve fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Study,
    Series,
    Instance,
    Metadata,
    Frame,
    Rendered,
}

impl What {
    pub const ALL: [What; 6] = [
        What::Study,
        What::Series,
        What::Instance,
        What::Metadata,
        What::Frame,
        What::Rendered,
    ];
    pub fn label(self) -> &'static str {
        match self {
            What::Study => "study",
            What::Series => "series",
            What::Instance => "instance",
            What::Metadata => "metadata",
            What::Frame => "frame 1",
            What::Rendered => "rendered",
        }
    }
}

/// Work a screen asks for (the runtime does it; see `tui::work`).
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// The files to store: from a folder, or (None) the generated samples.
    ListFiles(Option<PathBuf>),
    Store {
        files: Vec<PathBuf>,
        mode: StoreMode,
    },
    Search {
        level: Level,
        /// The study (and series) the search is within: `/studies/{study}/series/{series}/instances`.
        scope: Scope,
        params: Vec<(String, String)>,
    },
    Retrieve {
        what: What,
        uids: Uids,
    },
    Feed {
        offset: u64,
        limit: u32,
        /// Appends to the table (live tail) instead of replacing it.
        append: bool,
    },
    FeedLatest,
    TagsList,
    TagAdd {
        path: String,
        vr: String,
        level: String,
    },
    TagGet(String),
    TagUpdate {
        path: String,
        query_status: String,
    },
    TagDelete(String),
    /// Grant (true) or revoke the lab client's DICOM Data Owner role on the practice service.
    Role(bool),
    SaveProfile {
        name: String,
        profile: Box<Profile>,
    },
    /// Reads a Postman environment into `into` (the profile the form shows, or a new azure one).
    ImportPostman {
        path: PathBuf,
        into: Box<Profile>,
    },
}

/// The instance (and its series and study) retrieve fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uids {
    pub study: String,
    pub series: String,
    pub instance: String,
}

/// Where a search looks: everywhere, within a study, or within a series of a study.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub study: Option<String>,
    pub series: Option<String>,
}

/// A file to store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreFile {
    pub path: PathBuf,
    pub size: u64,
    pub chosen: bool,
    pub sent: u64,
    /// The answer's status for this file (single-part mode).
    pub status: Option<u16>,
}

/// One instance in a STOW answer.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceResult {
    pub sop_uid: String,
    pub stored: bool,
    /// FailureReason, or WarningReason when stored.
    pub code: Option<u64>,
}

/// A change-feed row.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedRow {
    pub sequence: u64,
    pub action: String,
    pub state: String,
    pub timestamp: String,
    pub study: String,
    pub series: String,
    pub sop: String,
}

/// The folder listed (None: the generated samples) and its files with their sizes.
pub type Listing = (Option<PathBuf>, Vec<(PathBuf, u64)>);

/// Results of screen work.
#[derive(Debug, Clone)]
pub enum Done {
    Files(Result<Listing, String>),
    StoreProgress(StoreProgress),
    Stored(Result<(Vec<u16>, Vec<InstanceResult>), String>),
    Searched(Result<(u16, Vec<Value>), String>),
    Retrieved(Result<(String, Option<Vec<Value>>), String>),
    Feed {
        result: Result<Vec<FeedRow>, String>,
        append: bool,
    },
    Latest(Result<Option<FeedRow>, String>),
    Tags(Result<Vec<Value>, String>),
    Tag(Result<Value, String>),
    /// An operation's progress (status, percent).
    Operation {
        id: String,
        status: String,
        percent: Option<u64>,
    },
    TagChanged(Result<String, String>),
    Role(Result<String, String>),
    /// The profile now shown in the environment form; `editable` false for the embedded service.
    Profile {
        name: String,
        profile: Profile,
        editable: bool,
    },
    Imported(Result<(Profile, Vec<String>), String>),
    ProfileSaved(Result<PathBuf, String>),
}

impl Done {
    /// The screen whose action this result finishes (its step's check then runs).
    pub fn screen(&self) -> Option<Screen> {
        Some(match self {
            Done::Stored(_) => Screen::Store,
            Done::Searched(_) => Screen::Search,
            Done::Retrieved(_) => Screen::Retrieve,
            Done::Feed { append: false, .. } => Screen::ChangeFeed,
            Done::TagChanged(_) => Screen::Tags,
            Done::Role(_) => Screen::Role,
            _ => return None,
        })
    }
}

/// A labelled single-line input.
pub struct Field {
    pub label: &'static str,
    pub input: TextArea<'static>,
    pub masked: bool,
}

impl Field {
    pub fn new(label: &'static str, value: &str, masked: bool) -> Field {
        let mut input = TextArea::new(vec![value.to_string()]);
        input.move_cursor(ratatui_textarea::CursorMove::End);
        if masked {
            input.set_mask_char('•');
        }
        Field {
            label,
            input,
            masked,
        }
    }
    pub fn value(&self) -> String {
        self.input.lines().concat()
    }
    pub fn set(&mut self, value: &str) {
        *self = Field::new(self.label, value, self.masked);
    }
}

/// What a key did to a form.
#[derive(Debug, PartialEq, Eq)]
pub enum FormKey {
    /// Enter: the form is done.
    Submit,
    /// Esc: editing stopped.
    Leave,
    Used,
}

/// A few fields, one focused; `editing` while it has the keys.
pub struct Form {
    pub fields: Vec<Field>,
    pub focus: usize,
    pub editing: bool,
}

impl Form {
    pub fn new(fields: Vec<Field>) -> Form {
        Form {
            fields,
            focus: 0,
            editing: false,
        }
    }

    pub fn value(&self, i: usize) -> String {
        self.fields.get(i).map(Field::value).unwrap_or_default()
    }

    pub fn key(&mut self, key: KeyEvent) -> FormKey {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Enter => return FormKey::Submit,
            KeyCode::Esc => {
                self.editing = false;
                return FormKey::Leave;
            }
            KeyCode::Tab | KeyCode::Down => {
                self.focus = (self.focus + 1) % self.fields.len().max(1);
            }
            KeyCode::BackTab | KeyCode::Up => {
                self.focus = (self.focus + self.fields.len().max(1) - 1) % self.fields.len().max(1);
            }
            // Newlines have no place in a one-line field.
            KeyCode::Char('m') if ctrl => {}
            // Ctrl-U clears the field, as in a shell.
            KeyCode::Char('u') if ctrl => {
                if let Some(f) = self.fields.get_mut(self.focus) {
                    f.input.move_cursor(ratatui_textarea::CursorMove::End);
                    f.input.delete_line_by_head();
                }
            }
            _ => {
                if let Some(f) = self.fields.get_mut(self.focus) {
                    f.input.input(key);
                }
            }
        }
        FormKey::Used
    }
}

/// One row of a tag tree.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeRow {
    pub depth: u16,
    pub tag: String,
    pub keyword: String,
    pub vr: String,
    pub value: String,
    /// A sequence, an item or an instance: it folds.
    pub container: bool,
}

/// DICOM JSON as a tree, like `dicom-dump`: tag, keyword, VR, value; sequences fold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TagTree {
    pub rows: Vec<TreeRow>,
    pub folded: BTreeSet<usize>,
    /// Index into `visible()`.
    pub selected: usize,
}

impl TagTree {
    /// One dataset.
    pub fn of_dataset(v: &Value) -> TagTree {
        let mut t = TagTree::default();
        t.push_dataset(v, 0);
        t
    }

    /// Several datasets (WADO metadata): one folding node per instance, the first one open.
    pub fn of_datasets(all: &[Value]) -> TagTree {
        let mut t = TagTree::default();
        for (i, ds) in all.iter().enumerate() {
            let sop = value_of(ds, "00080018");
            t.rows.push(TreeRow {
                depth: 0,
                tag: String::new(),
                keyword: format!("Instance {}", i + 1),
                vr: String::new(),
                value: sop,
                container: true,
            });
            if i > 0 {
                t.folded.insert(t.rows.len() - 1);
            }
            t.push_dataset(ds, 1);
        }
        t
    }

    fn push_dataset(&mut self, v: &Value, depth: u16) {
        let Some(map) = v.as_object() else { return };
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for key in keys {
            let el = &map[key];
            let vr = el
                .get("vr")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let keyword = crate::dicom::json::parse_tag_key(key)
                .and_then(crate::dicom::tags::keyword)
                .unwrap_or("")
                .to_string();
            let tag = if key.len() == 8 {
                format!("({},{})", &key[..4], &key[4..])
            } else {
                key.clone()
            };
            if vr == "SQ" {
                let items = el
                    .get("Value")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                self.rows.push(TreeRow {
                    depth,
                    tag,
                    keyword,
                    vr,
                    value: format!("{} item(s)", items.len()),
                    container: true,
                });
                for (n, item) in items.iter().enumerate() {
                    self.rows.push(TreeRow {
                        depth: depth + 1,
                        tag: String::new(),
                        keyword: format!("Item #{}", n + 1),
                        vr: String::new(),
                        value: String::new(),
                        container: true,
                    });
                    self.push_dataset(item, depth + 2);
                }
            } else {
                self.rows.push(TreeRow {
                    depth,
                    tag,
                    keyword,
                    vr,
                    value: element_text(el),
                    container: false,
                });
            }
        }
    }

    /// The rows shown: the children of a folded row are hidden.
    pub fn visible(&self) -> Vec<usize> {
        let mut out = Vec::new();
        let mut hide_below: Option<u16> = None;
        for (i, r) in self.rows.iter().enumerate() {
            if let Some(d) = hide_below {
                if r.depth > d {
                    continue;
                }
                hide_below = None;
            }
            out.push(i);
            if r.container && self.folded.contains(&i) {
                hide_below = Some(r.depth);
            }
        }
        out
    }

    pub fn toggle(&mut self) {
        if let Some(&i) = self.visible().get(self.selected)
            && self.rows[i].container
            && !self.folded.remove(&i)
        {
            self.folded.insert(i);
        }
    }

    pub fn down(&mut self) {
        let n = self.visible().len();
        self.selected = (self.selected + 1).min(n.saturating_sub(1));
    }

    pub fn up(&mut self) {
        self.selected = self.selected.saturating_sub(1);
    }
}

/// An element's value as one line: PN by its alphabetic group, binary by its size.
pub fn element_text(el: &Value) -> String {
    if let Some(values) = el.get("Value").and_then(Value::as_array) {
        let parts: Vec<String> = values
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Object(o) => o
                    .get("Alphabetic")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
            .collect();
        return parts.join("\\");
    }
    if let Some(b) = el.get("InlineBinary").and_then(Value::as_str) {
        return format!("<{} bytes inline>", b.len() / 4 * 3);
    }
    if let Some(u) = el.get("BulkDataURI").and_then(Value::as_str) {
        return format!("<bulk data: {u}>");
    }
    String::new()
}

/// The value of `tag` (8 hex) in a DICOM JSON dataset, as one line.
pub fn value_of(ds: &Value, tag: &str) -> String {
    ds.get(tag).map(element_text).unwrap_or_default()
}

/// The attributes a viewer shows beside an image, those the dataset has.
pub fn key_attributes(ds: &Value) -> Vec<(String, String)> {
    [
        ("PatientName", "00100010"),
        ("PatientID", "00100020"),
        ("StudyDate", "00080020"),
        ("Modality", "00080060"),
        ("SeriesDescription", "0008103E"),
        ("InstanceNumber", "00200013"),
        ("Rows", "00280010"),
        ("Columns", "00280011"),
        ("PhotometricInterpretation", "00280004"),
        ("BitsAllocated", "00280100"),
    ]
    .iter()
    .filter(|(_, tag)| ds.get(*tag).is_some())
    .map(|(k, tag)| (k.to_string(), value_of(ds, tag)))
    .collect()
}

/// The columns of the results table per level: keywords, never only hex tags.
pub fn columns(level: Level) -> &'static [(&'static str, &'static str)] {
    match level {
        Level::Studies => &[
            ("PatientName", "00100010"),
            ("PatientID", "00100020"),
            ("StudyDate", "00080020"),
            ("ModalitiesInStudy", "00080061"),
            ("StudyDescription", "00081030"),
            ("StudyInstanceUID", "0020000D"),
        ],
        Level::Series => &[
            ("Modality", "00080060"),
            ("SeriesNumber", "00200011"),
            ("SeriesDescription", "0008103E"),
            ("SeriesInstanceUID", "0020000E"),
        ],
        Level::Instances => &[
            ("InstanceNumber", "00200013"),
            ("Rows", "00280010"),
            ("Columns", "00280011"),
            ("SOPInstanceUID", "00080018"),
        ],
    }
}

/// The store screen.
pub struct StoreScreen {
    pub mode: StoreMode,
    /// None: the generated samples.
    pub folder: Option<PathBuf>,
    pub files: Vec<StoreFile>,
    pub selected: usize,
    /// Editing the folder path.
    pub picking: Option<Form>,
    pub running: bool,
    pub loading: bool,
    pub statuses: Vec<u16>,
    pub results: Vec<InstanceResult>,
    pub error: Option<String>,
}

/// The search screen.
pub struct SearchScreen {
    pub level: Level,
    pub fuzzy: bool,
    /// Filters (`Keyword=value …`), includefield, limit, offset.
    pub form: Form,
    pub status: Option<u16>,
    pub results: Vec<Value>,
    pub selected: usize,
    pub detail: Option<TagTree>,
    pub running: bool,
    pub error: Option<String>,
}

/// The retrieve screen.
pub struct RetrieveScreen {
    pub what: What,
    /// Study, series and instance UIDs (the lab's red triangle to start with).
    pub form: Form,
    pub running: bool,
    pub result: Option<Result<String, String>>,
    pub tree: Option<TagTree>,
}

/// The change-feed screen.
pub struct FeedScreen {
    pub offset: u64,
    pub limit: u32,
    pub rows: Vec<FeedRow>,
    pub selected: usize,
    /// Offsets of earlier pages, for `[`.
    pub back: Vec<u64>,
    pub following: bool,
    pub latest: Option<FeedRow>,
    pub running: bool,
    pub error: Option<String>,
    /// The base URL is v2 (rows to skip) rather than v1 (a sequence cursor).
    pub v2: bool,
}

/// The extended-query-tags screen.
pub struct TagsScreen {
    pub rows: Vec<Value>,
    pub selected: usize,
    /// The add form: path, VR, level.
    pub form: Option<Form>,
    pub detail: Option<Value>,
    pub operation: Option<(String, String, Option<u64>)>,
    pub running: bool,
    pub message: Option<Result<String, String>>,
}

/// The environment screen.
pub struct EnvScreen {
    pub name: String,
    pub base: Profile,
    pub editable: bool,
    /// Tenant id, client id, client secret (masked), resource, base URL.
    pub form: Form,
    /// The Postman file to import.
    pub import: Option<Form>,
    pub dirty: bool,
    pub message: Option<Result<String, String>>,
}

/// The role screen.
#[derive(Default)]
pub struct RoleScreen {
    pub running: bool,
    pub message: Option<Result<String, String>>,
}

/// Every screen's state.
pub struct Screens {
    pub role: RoleScreen,
    pub env: EnvScreen,
    pub store: StoreScreen,
    pub search: SearchScreen,
    pub retrieve: RetrieveScreen,
    pub feed: FeedScreen,
    pub tags: TagsScreen,
}

impl Default for Screens {
    fn default() -> Self {
        Screens {
            role: RoleScreen::default(),
            env: EnvScreen {
                name: "practice".into(),
                base: Profile::new(TargetKind::Practice),
                editable: false,
                form: env_form(&Profile::new(TargetKind::Practice)),
                import: None,
                dirty: false,
                message: None,
            },
            store: StoreScreen {
                mode: StoreMode::Single,
                folder: None,
                files: Vec::new(),
                selected: 0,
                picking: None,
                running: false,
                loading: false,
                statuses: Vec::new(),
                results: Vec::new(),
                error: None,
            },
            search: SearchScreen {
                level: Level::Studies,
                fuzzy: false,
                form: Form::new(vec![
                    Field::new("filters", "", false),
                    Field::new("includefield", "", false),
                    Field::new("limit", "100", false),
                    Field::new("offset", "0", false),
                    Field::new("in study", "", false),
                    Field::new("in series", "", false),
                ]),
                status: None,
                results: Vec::new(),
                selected: 0,
                detail: None,
                running: false,
                error: None,
            },
            retrieve: RetrieveScreen {
                what: What::Study,
                form: Form::new(vec![
                    Field::new("study", "", false),
                    Field::new("series", "", false),
                    Field::new("instance", "", false),
                ]),
                running: false,
                result: None,
                tree: None,
            },
            feed: FeedScreen {
                offset: 0,
                limit: 10,
                rows: Vec::new(),
                selected: 0,
                back: Vec::new(),
                following: false,
                latest: None,
                running: false,
                error: None,
                v2: false,
            },
            tags: TagsScreen {
                rows: Vec::new(),
                selected: 0,
                form: None,
                detail: None,
                operation: None,
                running: false,
                message: None,
            },
        }
    }
}

/// The fields of a profile: Azure's client credentials, or a DICOMweb server's URL and basic auth.
fn env_form(p: &Profile) -> Form {
    if p.kind == TargetKind::Generic {
        return Form::new(vec![
            Field::new("base URL", &p.base_url, false),
            Field::new("username", &p.username, false),
            Field::new("password", p.password.expose(), true),
        ]);
    }
    Form::new(vec![
        Field::new("tenant id", &p.tenant_id, false),
        Field::new("client id", &p.client_id, false),
        Field::new("secret", p.client_secret.expose(), true),
        Field::new("resource", &p.resource, false),
        Field::new("base URL", &p.base_url, false),
    ])
}

impl EnvScreen {
    /// Shows a profile in the form.
    pub fn load(&mut self, name: String, profile: Profile, editable: bool) {
        self.form = env_form(&profile);
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
            match f.label {
                "tenant id" => p.tenant_id = v,
                "client id" => p.client_id = v,
                "secret" => p.client_secret = crate::dicomweb::Secret::new(v),
                "resource" => p.resource = v,
                "base URL" => p.base_url = v,
                "username" => p.username = v,
                "password" => p.password = crate::dicomweb::Secret::new(v),
                _ => {}
            }
        }
        p
    }

    /// Live validation of what is typed.
    pub fn problems(&self) -> Vec<String> {
        if !self.editable {
            return Vec::new();
        }
        self.profile().problems()
    }
}

impl SearchScreen {
    /// Where the form searches, or what is wrong with it (QIDO's routes: studies at the root only;
    /// series within a study; instances within a study or a series of it).
    pub fn scope(&self) -> Result<Scope, String> {
        let uid = |i: usize, what: &str| {
            let v = self.form.value(i).trim().to_string();
            match v.as_str() {
                "" => Ok(None),
                u if crate::dicom::uid::is_valid_uid(u) => Ok(Some(v)),
                _ => Err(format!(
                    "the {what} UID '{v}' is not a UID (digits and dots)"
                )),
            }
        };
        let scope = Scope {
            study: uid(4, "study")?,
            series: uid(5, "series")?,
        };
        match (self.level, &scope.study, &scope.series) {
            (Level::Studies, Some(_), _) | (Level::Studies, _, Some(_)) => {
                Err("studies are searched at the root: clear 'in study' / 'in series'".into())
            }
            (Level::Series, _, Some(_)) => {
                Err("series are searched within a study, not within a series".into())
            }
            (_, None, Some(_)) => Err("'in series' needs 'in study' too".into()),
            _ => Ok(scope),
        }
    }

    /// The query parameters the form makes, or what is wrong with it.
    pub fn params(&self) -> Result<Vec<(String, String)>, Vec<String>> {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        if let Err(e) = self.scope() {
            problems.push(e);
        }
        for token in self.form.value(0).split_whitespace() {
            match token.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    if crate::dicom::tags::resolve(k).is_none() {
                        problems.push(format!(
                            "{k} is neither a DICOM keyword (exact case) nor an 8-hex tag"
                        ));
                    }
                    out.push((k.to_string(), v.to_string()));
                }
                _ => problems.push(format!("'{token}' is not Keyword=value")),
            }
        }
        let include = self.form.value(1);
        for f in include.split([',', ' ']).filter(|s| !s.is_empty()) {
            if f != "all" && crate::dicom::tags::resolve(f).is_none() {
                problems.push(format!("includefield {f} is not a keyword or tag"));
            }
        }
        if !include.trim().is_empty() {
            out.push(("includefield".into(), include.trim().replace(' ', ",")));
        }
        for (i, name, max) in [(2, "limit", 200u64), (3, "offset", u64::MAX)] {
            let v = self.form.value(i);
            match v.trim().parse::<u64>() {
                Ok(n) if n <= max => out.push((name.into(), n.to_string())),
                _ if v.trim().is_empty() => {}
                _ => problems.push(format!("{name} must be a number (0–{max})")),
            }
        }
        if self.fuzzy {
            out.push(("fuzzymatching".into(), "true".into()));
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }
}

impl FeedScreen {
    /// v1 pages by sequence (the offset is the last sequence seen); v2 by rows skipped.
    pub fn next_offset(&self, v2: bool) -> u64 {
        if v2 {
            self.offset + self.rows.len() as u64
        } else {
            self.rows
                .iter()
                .map(|r| r.sequence)
                .max()
                .unwrap_or(self.offset)
        }
    }
}

impl Screens {
    /// Whether a screen's request runs.
    pub fn busy(&self) -> bool {
        self.role.running
            || self.store.running
            || self.search.running
            || self.retrieve.running
            || self.feed.running
            || self.tags.running
    }

    /// Everything stops (the runtime aborted the requests).
    pub fn cancel(&mut self) {
        self.role.running = false;
        self.store.running = false;
        self.store.loading = false;
        self.search.running = false;
        self.retrieve.running = false;
        self.feed.running = false;
        self.feed.following = false;
        self.tags.running = false;
        self.tags.operation = None;
    }

    /// Whether a form has the keys (then no global key applies but Ctrl-C).
    pub fn editing(&self, screen: Screen) -> bool {
        match screen {
            Screen::Environment => {
                self.env.form.editing || self.env.import.as_ref().is_some_and(|f| f.editing)
            }
            Screen::Store => self.store.picking.is_some(),
            Screen::Search => self.search.form.editing,
            Screen::Retrieve => self.retrieve.form.editing,
            Screen::Tags => self.tags.form.is_some(),
            _ => false,
        }
    }

    /// The keys of a screen when it has the focus; None: not the screen's key.
    pub fn key(&mut self, screen: Screen, key: KeyEvent, v2: bool) -> Option<Vec<Work>> {
        match screen {
            Screen::Role => self.role_key(key),
            Screen::Environment => self.env_key(key),
            Screen::Store => self.store_key(key),
            Screen::Search => self.search_key(key),
            Screen::Retrieve => self.retrieve_key(key),
            Screen::ChangeFeed => self.feed_key(key, v2),
            Screen::Tags => self.tags_key(key),
        }
    }

    fn role_key(&mut self, key: KeyEvent) -> Option<Vec<Work>> {
        let grant = match key.code {
            KeyCode::Char('+') => true,
            KeyCode::Char('-') => false,
            _ => return None,
        };
        if self.role.running {
            return Some(Vec::new());
        }
        self.role.running = true;
        Some(vec![Work::Role(grant)])
    }

    fn env_key(&mut self, key: KeyEvent) -> Option<Vec<Work>> {
        let env = &mut self.env;
        if let Some(form) = &mut env.import {
            return Some(match form.key(key) {
                FormKey::Submit => {
                    let path = form.value(0).trim().to_string();
                    env.import = None;
                    let into = if env.editable {
                        env.profile()
                    } else {
                        Profile::new(TargetKind::Azure)
                    };
                    if path.is_empty() {
                        Vec::new()
                    } else {
                        vec![Work::ImportPostman {
                            path: expand_home(&path),
                            into: Box::new(into),
                        }]
                    }
                }
                FormKey::Leave => {
                    env.import = None;
                    Vec::new()
                }
                FormKey::Used => Vec::new(),
            });
        }
        if env.form.editing {
            if let FormKey::Submit | FormKey::Leave = env.form.key(key) {
                env.form.editing = false;
            } else {
                env.dirty = true;
            }
            return Some(Vec::new());
        }
        match key.code {
            KeyCode::Char('i') | KeyCode::Enter if env.editable => {
                env.form.editing = true;
                Some(Vec::new())
            }
            KeyCode::Char('i') | KeyCode::Enter => {
                env.message = Some(Err(
                    "the embedded practice service fills these in; press I to import your Postman environment into the azure profile, or t to switch target".into(),
                ));
                Some(Vec::new())
            }
            KeyCode::Char('I') => {
                let mut f = Form::new(vec![Field::new(
                    "Postman file",
                    "dicom-service.postman_environment.json",
                    false,
                )]);
                f.editing = true;
                env.import = Some(f);
                Some(Vec::new())
            }
            KeyCode::Char('w') if env.editable => {
                let problems = env.problems();
                if !problems.is_empty() {
                    env.message = Some(Err(format!("not saved: {}", problems.join("; "))));
                    return Some(Vec::new());
                }
                Some(vec![Work::SaveProfile {
                    name: env.name.clone(),
                    profile: Box::new(env.profile()),
                }])
            }
            _ => None,
        }
    }

    fn store_key(&mut self, key: KeyEvent) -> Option<Vec<Work>> {
        let st = &mut self.store;
        if let Some(form) = &mut st.picking {
            return Some(match form.key(key) {
                FormKey::Submit => {
                    let path = form.value(0).trim().to_string();
                    st.picking = None;
                    st.loading = true;
                    let folder = (!path.is_empty()).then(|| expand_home(&path));
                    vec![Work::ListFiles(folder)]
                }
                FormKey::Leave => {
                    st.picking = None;
                    Vec::new()
                }
                FormKey::Used => Vec::new(),
            });
        }
        match key.code {
            KeyCode::Char('m') => {
                st.mode = match st.mode {
                    StoreMode::Single => StoreMode::Multipart,
                    StoreMode::Multipart => StoreMode::Single,
                };
                Some(Vec::new())
            }
            KeyCode::Char('o') => {
                let current = st
                    .folder
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let mut f = Form::new(vec![Field::new("folder", &current, false)]);
                f.editing = true;
                st.picking = Some(f);
                Some(Vec::new())
            }
            KeyCode::Char(' ') => {
                if let Some(f) = st.files.get_mut(st.selected) {
                    f.chosen = !f.chosen;
                }
                Some(Vec::new())
            }
            code @ (KeyCode::Down | KeyCode::Up | KeyCode::Char('j' | 'k')) => {
                move_selection(&mut st.selected, st.files.len(), code);
                Some(Vec::new())
            }
            KeyCode::Enter if !st.running => {
                let files: Vec<PathBuf> = st
                    .files
                    .iter()
                    .filter(|f| f.chosen)
                    .map(|f| f.path.clone())
                    .collect();
                if st.loading {
                    st.error = Some("still listing the files: a moment".into());
                    return Some(Vec::new());
                }
                if files.is_empty() {
                    st.error = Some("no file chosen: Space chooses, o picks a folder".into());
                    return Some(Vec::new());
                }
                st.running = true;
                st.error = None;
                st.results.clear();
                st.statuses.clear();
                for f in &mut st.files {
                    f.sent = 0;
                    f.status = None;
                }
                Some(vec![Work::Store {
                    files,
                    mode: st.mode,
                }])
            }
            _ => None,
        }
    }

    fn search_key(&mut self, key: KeyEvent) -> Option<Vec<Work>> {
        let s = &mut self.search;
        if s.form.editing {
            return Some(match s.form.key(key) {
                FormKey::Submit => {
                    s.form.editing = false;
                    s.run()
                }
                FormKey::Leave | FormKey::Used => Vec::new(),
            });
        }
        if let Some(tree) = &mut s.detail {
            match key.code {
                KeyCode::Esc => s.detail = None,
                KeyCode::Down | KeyCode::Char('j') => tree.down(),
                KeyCode::Up | KeyCode::Char('k') => tree.up(),
                KeyCode::Char(' ') | KeyCode::Enter => tree.toggle(),
                _ => return None,
            }
            return Some(Vec::new());
        }
        Some(match key.code {
            KeyCode::Char('/') | KeyCode::Char('i') => {
                s.form.editing = true;
                Vec::new()
            }
            KeyCode::Char('l') => {
                s.level = match s.level {
                    Level::Studies => Level::Series,
                    Level::Series => Level::Instances,
                    Level::Instances => Level::Studies,
                };
                Vec::new()
            }
            KeyCode::Char('z') => {
                s.fuzzy = !s.fuzzy;
                Vec::new()
            }
            KeyCode::Char('a') => s.run(),
            KeyCode::Enter if s.results.is_empty() => s.run(),
            KeyCode::Enter => {
                if let Some(v) = s.results.get(s.selected) {
                    s.detail = Some(TagTree::of_dataset(v));
                }
                Vec::new()
            }
            code @ (KeyCode::Down | KeyCode::Up | KeyCode::Char('j' | 'k')) => {
                move_selection(&mut s.selected, s.results.len(), code);
                Vec::new()
            }
            _ => return None,
        })
    }

    fn retrieve_key(&mut self, key: KeyEvent) -> Option<Vec<Work>> {
        let r = &mut self.retrieve;
        if r.form.editing {
            return Some(match r.form.key(key) {
                FormKey::Submit => {
                    r.form.editing = false;
                    r.fetch()
                }
                FormKey::Leave | FormKey::Used => Vec::new(),
            });
        }
        if key.code == KeyCode::Char('/') {
            r.form.editing = true;
            return Some(Vec::new());
        }
        let pick = |w: What| Some(w);
        let chosen = match key.code {
            KeyCode::Char(c @ '1'..='6') => pick(What::ALL[(c as u8 - b'1') as usize]),
            KeyCode::Char('w') => {
                let i = What::ALL.iter().position(|w| *w == r.what).unwrap_or(0);
                r.what = What::ALL[(i + 1) % What::ALL.len()];
                return Some(Vec::new());
            }
            _ => None,
        };
        if let Some(w) = chosen {
            r.what = w;
            return Some(Vec::new());
        }
        Some(match key.code {
            KeyCode::Enter if !r.running => r.fetch(),
            KeyCode::Down | KeyCode::Char('j') if r.tree.is_some() => {
                if let Some(t) = &mut r.tree {
                    t.down();
                }
                Vec::new()
            }
            KeyCode::Up | KeyCode::Char('k') if r.tree.is_some() => {
                if let Some(t) = &mut r.tree {
                    t.up();
                }
                Vec::new()
            }
            KeyCode::Char(' ') => {
                if let Some(t) = &mut r.tree {
                    t.toggle();
                }
                Vec::new()
            }
            _ => return None,
        })
    }

    fn feed_key(&mut self, key: KeyEvent, v2: bool) -> Option<Vec<Work>> {
        let f = &mut self.feed;
        f.v2 = v2;
        let max = if v2 { 200 } else { 100 };
        let load = |f: &mut FeedScreen| {
            f.running = true;
            vec![Work::Feed {
                offset: f.offset,
                limit: f.limit,
                append: false,
            }]
        };
        Some(match key.code {
            KeyCode::Enter | KeyCode::Char('a') => load(f),
            KeyCode::Char(']') => {
                f.back.push(f.offset);
                f.offset = f.next_offset(v2);
                load(f)
            }
            KeyCode::Char('[') => {
                f.offset = f.back.pop().unwrap_or(0);
                load(f)
            }
            KeyCode::Char('+') => {
                f.limit = (f.limit * 2).min(max);
                Vec::new()
            }
            KeyCode::Char('-') => {
                f.limit = (f.limit / 2).max(1);
                Vec::new()
            }
            KeyCode::Char('L') => {
                f.running = true;
                vec![Work::FeedLatest]
            }
            KeyCode::Char('f') => {
                f.following = !f.following;
                Vec::new()
            }
            code @ (KeyCode::Down | KeyCode::Up | KeyCode::Char('j' | 'k')) => {
                move_selection(&mut f.selected, f.rows.len(), code);
                Vec::new()
            }
            _ => return None,
        })
    }

    /// The live tail's tick: fetch what came after the last row.
    pub fn feed_tick(&mut self, v2: bool) -> Vec<Work> {
        let f = &mut self.feed;
        f.v2 = v2;
        if !f.following || f.running {
            return Vec::new();
        }
        f.running = true;
        let offset = if v2 {
            f.offset + f.rows.len() as u64
        } else {
            f.next_offset(false)
        };
        vec![Work::Feed {
            offset,
            limit: f.limit,
            append: true,
        }]
    }

    fn tags_key(&mut self, key: KeyEvent) -> Option<Vec<Work>> {
        let t = &mut self.tags;
        if let Some(form) = &mut t.form {
            return Some(match form.key(key) {
                FormKey::Submit => {
                    let (path, vr, level) = (form.value(0), form.value(1), form.value(2));
                    t.form = None;
                    if path.trim().is_empty() {
                        t.message = Some(Err("a tag needs a path (keyword or 8-hex tag)".into()));
                        return Some(Vec::new());
                    }
                    t.running = true;
                    vec![Work::TagAdd {
                        path: path.trim().to_string(),
                        vr: vr.trim().to_string(),
                        level: level.trim().to_string(),
                    }]
                }
                FormKey::Leave => {
                    t.form = None;
                    Vec::new()
                }
                FormKey::Used => Vec::new(),
            });
        }
        let selected = t
            .rows
            .get(t.selected)
            .and_then(|v| get_ci(v, "Path"))
            .and_then(Value::as_str)
            .map(str::to_string);
        Some(match key.code {
            KeyCode::Char('a') => {
                t.running = true;
                vec![Work::TagsList]
            }
            KeyCode::Char('+') => {
                let mut f = Form::new(vec![
                    Field::new("path", "PatientSex", false),
                    Field::new("VR", "", false),
                    Field::new("level", "Study", false),
                ]);
                f.editing = true;
                t.form = Some(f);
                Vec::new()
            }
            KeyCode::Enter => match selected {
                Some(p) => {
                    t.running = true;
                    vec![Work::TagGet(p)]
                }
                None => {
                    t.running = true;
                    vec![Work::TagsList]
                }
            },
            KeyCode::Char('u') => match (selected, t.rows.get(t.selected)) {
                (Some(path), Some(row)) => {
                    let now = get_ci(row, "QueryStatus")
                        .and_then(Value::as_str)
                        .unwrap_or("Enabled");
                    let query_status = if now.eq_ignore_ascii_case("enabled") {
                        "Disabled"
                    } else {
                        "Enabled"
                    };
                    t.running = true;
                    vec![Work::TagUpdate {
                        path,
                        query_status: query_status.into(),
                    }]
                }
                _ => Vec::new(),
            },
            code @ (KeyCode::Down | KeyCode::Up | KeyCode::Char('j' | 'k')) => {
                move_selection(&mut t.selected, t.rows.len(), code);
                Vec::new()
            }
            KeyCode::Esc if t.detail.is_some() => {
                t.detail = None;
                Vec::new()
            }
            _ => return None,
        })
    }

    /// The selected tag's path (for the delete confirmation).
    pub fn selected_tag(&self) -> Option<String> {
        self.tags
            .rows
            .get(self.tags.selected)
            .and_then(|v| get_ci(v, "Path"))
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// A result came back.
    pub fn done(&mut self, d: Done) {
        match d {
            Done::Files(r) => {
                let st = &mut self.store;
                st.loading = false;
                match r {
                    Ok((folder, files)) => {
                        st.folder = folder;
                        st.files = files
                            .into_iter()
                            .map(|(path, size)| StoreFile {
                                path,
                                size,
                                chosen: true,
                                sent: 0,
                                status: None,
                            })
                            .collect();
                        st.selected = 0;
                        st.error = if st.files.is_empty() {
                            Some("no .dcm file in that folder".into())
                        } else {
                            None
                        };
                    }
                    Err(e) => st.error = Some(e),
                }
            }
            Done::StoreProgress(p) => {
                // Progress is per chosen file, in order.
                if let Some(f) = self.store.files.iter_mut().filter(|f| f.chosen).nth(p.file) {
                    f.sent = p.sent.min(f.size.max(p.total));
                }
            }
            Done::Stored(r) => {
                let st = &mut self.store;
                st.running = false;
                match r {
                    Ok((statuses, results)) => {
                        let single = st.mode == StoreMode::Single;
                        for (f, s) in st.files.iter_mut().filter(|f| f.chosen).zip(
                            statuses
                                .iter()
                                .copied()
                                .chain(std::iter::repeat(statuses.first().copied().unwrap_or(0))),
                        ) {
                            f.sent = f.size;
                            // One multipart answer covers every file: its status is shown once.
                            if single {
                                f.status = Some(s);
                            }
                        }
                        st.statuses = statuses;
                        st.results = results;
                    }
                    Err(e) => st.error = Some(e),
                }
            }
            Done::Searched(r) => {
                let s = &mut self.search;
                s.running = false;
                match r {
                    Ok((status, results)) => {
                        s.status = Some(status);
                        s.results = results;
                        s.selected = 0;
                        s.error = None;
                    }
                    Err(e) => s.error = Some(e),
                }
            }
            Done::Retrieved(r) => {
                let rt = &mut self.retrieve;
                rt.running = false;
                match r {
                    Ok((summary, metadata)) => {
                        rt.tree = metadata.map(|m| TagTree::of_datasets(&m));
                        rt.result = Some(Ok(summary));
                    }
                    Err(e) => rt.result = Some(Err(e)),
                }
            }
            Done::Feed { result, append } => {
                let f = &mut self.feed;
                f.running = false;
                match result {
                    Ok(rows) if append => {
                        f.rows.extend(rows);
                        // The tail keeps the newest 500 rows.
                        let extra = f.rows.len().saturating_sub(500);
                        if extra > 0 {
                            let dropped: Vec<FeedRow> = f.rows.drain(..extra).collect();
                            // The table now starts after the rows dropped: v2 skips them, v1's cursor
                            // moves to the last one's sequence.
                            f.offset = if f.v2 {
                                f.offset + extra as u64
                            } else {
                                dropped.last().map_or(f.offset, |r| r.sequence)
                            };
                        }
                        f.selected = f.rows.len().saturating_sub(1);
                        f.error = None;
                    }
                    Ok(rows) => {
                        f.rows = rows;
                        f.selected = 0;
                        f.error = None;
                    }
                    Err(e) => {
                        f.following = false;
                        f.error = Some(e);
                    }
                }
            }
            Done::Latest(r) => {
                let f = &mut self.feed;
                f.running = false;
                match r {
                    Ok(row) => f.latest = row,
                    Err(e) => f.error = Some(e),
                }
            }
            Done::Tags(r) => {
                let t = &mut self.tags;
                t.running = false;
                match r {
                    Ok(rows) => {
                        t.rows = rows;
                        t.selected = t.selected.min(t.rows.len().saturating_sub(1));
                    }
                    Err(e) => t.message = Some(Err(e)),
                }
            }
            Done::Tag(r) => {
                let t = &mut self.tags;
                t.running = false;
                match r {
                    Ok(v) => t.detail = Some(v),
                    Err(e) => t.message = Some(Err(e)),
                }
            }
            Done::Operation {
                id,
                status,
                percent,
            } => {
                self.tags.operation = Some((id, status, percent));
            }
            Done::TagChanged(r) => {
                let t = &mut self.tags;
                t.running = false;
                t.message = Some(r);
            }
            Done::Role(r) => {
                self.role.running = false;
                self.role.message = Some(r);
            }
            Done::Profile {
                name,
                profile,
                editable,
            } => {
                self.env.load(name, profile, editable);
            }
            Done::Imported(r) => {
                let env = &mut self.env;
                match r {
                    Ok((profile, names)) => {
                        let name = if env.editable {
                            env.name.clone()
                        } else {
                            "azure".to_string()
                        };
                        env.load(name, profile, true);
                        env.dirty = true;
                        env.message = Some(Ok(format!(
                            "imported {} into profile {}: press w to save it and switch to it",
                            names.join(", "),
                            env.name
                        )));
                    }
                    Err(e) => env.message = Some(Err(e)),
                }
            }
            Done::ProfileSaved(r) => {
                let env = &mut self.env;
                match r {
                    Ok(path) => {
                        env.dirty = false;
                        env.message = Some(Ok(format!(
                            "saved to {} (mode 0600); opening profile {}…",
                            path.display(),
                            env.name
                        )));
                    }
                    Err(e) => env.message = Some(Err(format!("not saved: {e}"))),
                }
            }
        }
    }
}

impl RetrieveScreen {
    /// The UIDs of the form, or which one is not a UID.
    pub fn uids(&self) -> Result<Uids, String> {
        let get = |i: usize, what: &str| {
            let v = self.form.value(i).trim().to_string();
            if crate::dicom::uid::is_valid_uid(&v) {
                Ok(v)
            } else {
                Err(format!(
                    "the {what} UID '{v}' is not a UID (digits and dots)"
                ))
            }
        };
        Ok(Uids {
            study: get(0, "study")?,
            series: get(1, "series")?,
            instance: get(2, "instance")?,
        })
    }

    fn fetch(&mut self) -> Vec<Work> {
        match self.uids() {
            Ok(uids) => {
                self.running = true;
                self.result = None;
                vec![Work::Retrieve {
                    what: self.what,
                    uids,
                }]
            }
            Err(e) => {
                self.result = Some(Err(e));
                Vec::new()
            }
        }
    }
}

impl SearchScreen {
    fn run(&mut self) -> Vec<Work> {
        match (self.params(), self.scope()) {
            (Ok(params), Ok(scope)) => {
                self.running = true;
                self.error = None;
                self.detail = None;
                vec![Work::Search {
                    level: self.level,
                    scope,
                    params,
                }]
            }
            (Err(p), _) => {
                self.error = Some(p.join("; "));
                Vec::new()
            }
            (_, Err(p)) => {
                self.error = Some(p);
                Vec::new()
            }
        }
    }
}

/// ↑↓ (and j k) move a selection within `len` rows; false for any other key.
fn move_selection(selected: &mut usize, len: usize, code: KeyCode) -> bool {
    match code {
        KeyCode::Down | KeyCode::Char('j') => {
            *selected = (*selected + 1).min(len.saturating_sub(1))
        }
        KeyCode::Up | KeyCode::Char('k') => *selected = selected.saturating_sub(1),
        _ => return false,
    }
    true
}

/// `~/x` → `$HOME/x`.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// A change-feed entry as a row (v1 and v2 name fields the same; case varies between versions).
pub fn feed_row(v: &Value) -> FeedRow {
    let s = |k: &str| {
        get_ci(v, k)
            .map(|x| match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    };
    FeedRow {
        sequence: get_ci(v, "Sequence").and_then(Value::as_u64).unwrap_or(0),
        action: s("Action"),
        state: s("State"),
        timestamp: s("Timestamp"),
        study: s("StudyInstanceUid"),
        series: s("SeriesInstanceUid"),
        sop: s("SopInstanceUid"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn tag_tree_folds_sequences_and_names_keywords() {
        let ds = json!({
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
            "00081115": {"vr": "SQ", "Value": [{"0020000E": {"vr": "UI", "Value": ["1.2.3"]}}]},
            "7FE00010": {"vr": "OB", "BulkDataURI": "http://x/bulk"}
        });
        let mut t = TagTree::of_dataset(&ds);
        let names: Vec<&str> = t.rows.iter().map(|r| r.keyword.as_str()).collect();
        assert_eq!(
            names,
            [
                "ReferencedSeriesSequence",
                "Item #1",
                "SeriesInstanceUID",
                "PatientName",
                "PixelData"
            ]
        );
        assert_eq!(t.rows[3].value, "Doe^Jane");
        assert_eq!(t.rows[3].tag, "(0010,0010)");
        assert_eq!(t.visible().len(), 5);
        t.toggle(); // folds the sequence (selected row 0)
        assert_eq!(t.visible(), vec![0, 3, 4]);
        t.toggle();
        assert_eq!(t.visible().len(), 5);
    }

    #[test]
    fn search_form_makes_parameters_and_names_mistakes() {
        let mut s = Screens::default();
        s.search.form.fields[0].set("PatientName=Anne* 00080060=CT");
        s.search.fuzzy = true;
        let p = s.search.params().expect("valid");
        assert!(p.contains(&("PatientName".into(), "Anne*".into())));
        assert!(p.contains(&("fuzzymatching".into(), "true".into())));
        assert!(p.contains(&("limit".into(), "100".into())));
        // Scope: series within a study; never studies within one; a series needs its study.
        s.search.level = Level::Series;
        s.search.form.fields[4].set("1.2.3");
        assert_eq!(
            s.search.scope(),
            Ok(Scope {
                study: Some("1.2.3".into()),
                series: None
            })
        );
        s.search.level = Level::Studies;
        assert!(s.search.scope().is_err());
        s.search.level = Level::Instances;
        s.search.form.fields[4].set("");
        s.search.form.fields[5].set("1.2.3.4");
        assert!(s.search.scope().is_err());
        s.search.form.fields[5].set("");
        s.search.level = Level::Studies;
        s.search.form.fields[0].set("patientname=x junk");
        let e = s.search.params().expect_err("invalid");
        assert_eq!(e.len(), 2, "{e:?}");
        // Enter with an invalid form sends nothing and says why.
        assert_eq!(
            s.key(Screen::Search, key(KeyCode::Enter), false),
            Some(vec![])
        );
        assert!(s.search.error.is_some());
    }

    #[test]
    fn retrieve_takes_the_uids_of_its_form() {
        let mut s = Screens::default();
        for (f, v) in s
            .retrieve
            .form
            .fields
            .iter_mut()
            .zip(["1.2.3", "1.2.3.4", "1.2.3.4.5"])
        {
            f.set(v);
        }
        s.key(Screen::Retrieve, key(KeyCode::Char('3')), false);
        let w = s.key(Screen::Retrieve, key(KeyCode::Enter), false);
        assert!(
            matches!(&w, Some(v) if matches!(v.as_slice(), [Work::Retrieve { what: What::Instance, uids }] if uids.instance == "1.2.3.4.5")),
            "{w:?}"
        );
        s.retrieve.running = false;
        s.key(Screen::Retrieve, key(KeyCode::Char('/')), false);
        assert!(s.editing(Screen::Retrieve));
        for c in "x".chars() {
            s.key(Screen::Retrieve, key(KeyCode::Char(c)), false);
        }
        // Enter in the form fetches, or says which UID is not one.
        assert_eq!(
            s.key(Screen::Retrieve, key(KeyCode::Enter), false),
            Some(vec![])
        );
        assert!(matches!(&s.retrieve.result, Some(Err(e)) if e.contains("study UID")));
    }

    #[test]
    fn feed_pages_by_sequence_on_v1_and_by_rows_on_v2() {
        let mut s = Screens::default();
        s.feed.offset = 10;
        s.feed.rows = (11..=15)
            .map(|n| feed_row(&json!({"Sequence": n, "Action": "Create"})))
            .collect();
        assert_eq!(s.feed.next_offset(false), 15);
        assert_eq!(s.feed.next_offset(true), 15);
        s.feed.offset = 100;
        assert_eq!(s.feed.next_offset(true), 105);
        let w = s.key(Screen::ChangeFeed, key(KeyCode::Char(']')), false);
        assert_eq!(
            w,
            Some(vec![Work::Feed {
                offset: 15,
                limit: 10,
                append: false
            }])
        );
        s.feed.running = false;
        let w = s.key(Screen::ChangeFeed, key(KeyCode::Char('[')), false);
        assert_eq!(
            w,
            Some(vec![Work::Feed {
                offset: 100,
                limit: 10,
                append: false
            }])
        );
        // The live tail keeps the newest 500 rows; v1's cursor moves past the rows it dropped.
        s.feed.rows.clear();
        s.feed.offset = 0;
        s.feed.following = true;
        s.feed.running = false;
        assert_eq!(s.feed_tick(false).len(), 1);
        s.done(Done::Feed {
            result: Ok((1..=600)
                .map(|n| feed_row(&json!({"Sequence": n, "Action": "Create"})))
                .collect()),
            append: true,
        });
        assert_eq!(s.feed.rows.len(), 500);
        assert_eq!(s.feed.offset, 100);
        assert_eq!(s.feed.rows[0].sequence, 101);
        s.feed.following = false;
        // The limit doubles up to the version's maximum.
        for _ in 0..10 {
            s.key(Screen::ChangeFeed, key(KeyCode::Char('+')), false);
        }
        assert_eq!(s.feed.limit, 100);
    }

    #[test]
    fn env_form_masks_the_secret_and_validates_live() {
        let mut s = Screens::default();
        let mut p = Profile::new(TargetKind::Azure);
        p.client_secret = crate::dicomweb::Secret::new("s3cret");
        p.base_url = "https://ws-dicom.dicom.azurehealthcareapis.com".into();
        s.env.load("azure".into(), p, true);
        assert!(s.env.form.fields[2].masked);
        let problems = s.env.problems();
        assert!(problems.iter().any(|p| p.contains("/v1")), "{problems:?}");
        // `w` refuses to save a form with problems.
        assert_eq!(
            s.key(Screen::Environment, key(KeyCode::Char('w')), false),
            Some(vec![])
        );
        assert!(matches!(&s.env.message, Some(Err(m)) if m.starts_with("not saved")));
        // Typing fixes it.
        s.key(Screen::Environment, key(KeyCode::Char('i')), false);
        for _ in 0..4 {
            s.key(Screen::Environment, key(KeyCode::Tab), false);
        }
        for c in "/v1".chars() {
            s.key(Screen::Environment, key(KeyCode::Char(c)), false);
        }
        s.key(Screen::Environment, key(KeyCode::Enter), false);
        assert!(s.env.profile().base_url.ends_with("/v1"));
        assert!(s.env.problems().iter().all(|p| !p.contains("/v1")));
    }

    #[test]
    fn store_results_land_on_the_chosen_files() {
        let mut s = Screens::default();
        s.done(Done::Files(Ok((
            None,
            vec![
                ("a.dcm".into(), 10),
                ("b.dcm".into(), 20),
                ("c.dcm".into(), 30),
            ],
        ))));
        s.key(Screen::Store, key(KeyCode::Down), false);
        s.key(Screen::Store, key(KeyCode::Char(' ')), false);
        let w = s.key(Screen::Store, key(KeyCode::Enter), false);
        assert_eq!(
            w,
            Some(vec![Work::Store {
                files: vec!["a.dcm".into(), "c.dcm".into()],
                mode: StoreMode::Single
            }])
        );
        s.done(Done::StoreProgress(StoreProgress {
            file: 1,
            sent: 15,
            total: 30,
            done: false,
        }));
        assert_eq!(s.store.files[2].sent, 15);
        s.done(Done::Stored(Ok((vec![200, 409], Vec::new()))));
        assert_eq!(s.store.files[0].status, Some(200));
        assert_eq!(s.store.files[1].status, None);
        assert_eq!(s.store.files[2].status, Some(409));
    }
}
