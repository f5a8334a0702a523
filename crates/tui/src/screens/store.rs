//! The store screen (exercise "Store instances", STOW-RS): the files to store — the generated samples, or
//! `o` a folder such as the official download — `Space` chooses, `m` switches single-part (a request per
//! file) and multipart/related (one request), a gauge per file while it is sent, then each instance's
//! result with its reason code explained (45070: already stored, so the instance is there).

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use serde_json::Value;
use tokio::sync::mpsc;

use dicomlab_dicomweb::{Answer, StoreMode, StoreProgress};
use dicomlab_lab::checks::reason_text;
use dicomlab_lab::model::{Lab, Step};
use crate::component::{Command, Component, Ctx, Io, MOVE_KEYS, Out, Request, failed};
use crate::theme::{bold, reversed};
use crate::widgets::{
    FieldKey, Form, FormKey, expand_home, gauge, human, move_selection, outcome_line, paragraph,
    short_uid,
};

/// The store screen's state.
pub struct Store {
    /// Single-part (a request per file) or multipart/related (one request for all).
    pub mode: StoreMode,
    /// The folder listed; None: the generated samples.
    pub folder: Option<PathBuf>,
    /// The folder's `.dcm` files, each chosen or not, with its progress and status (kept on screen
    /// while the folder is listed again).
    pub files: Request<Vec<StoreFile>>,
    /// The file `Space` chooses.
    pub selected: usize,
    /// The folder being typed (`o`).
    pub picking: Option<Form<Folder>>,
    /// The last store: each answer's status and each instance's result, or why not.
    pub stored: Request<Stored>,
}

/// A file to store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreFile {
    /// Where the file is (sent as it is).
    pub path: PathBuf,
    /// Its size in bytes: its gauge's end.
    pub size: u64,
    /// Chosen to be stored (all are, to start with).
    pub chosen: bool,
    /// Bytes sent so far, for its gauge.
    pub sent: u64,
    /// The answer's status for this file (single-part mode).
    pub status: Option<u16>,
}

/// What a store answered.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stored {
    /// One per request: a status per file single-part, one status multipart.
    pub statuses: Vec<u16>,
    /// Every instance the answers name.
    pub results: Vec<InstanceResult>,
}

/// One instance in a STOW answer.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceResult {
    /// The instance, as the answer names it.
    pub sop_uid: String,
    /// In ReferencedSOPSequence (stored) rather than FailedSOPSequence.
    pub stored: bool,
    /// FailureReason, or WarningReason when stored.
    pub code: Option<u64>,
}

/// The one field of the folder form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Folder;

impl FieldKey for Folder {
    fn label(self) -> &'static str {
        "folder"
    }
}

/// The folder listed (None: the generated samples) and its files with their sizes.
pub type Listing = (Option<PathBuf>, Vec<(PathBuf, u64)>);

/// What the store screen asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// The files to store: from a folder, or (None) the generated samples.
    List(Option<PathBuf>),
    Store { files: Vec<PathBuf>, mode: StoreMode },
}

/// What comes back.
#[derive(Debug, Clone)]
pub enum Done {
    Listed(Result<Listing, String>),
    /// Bytes sent of a chosen file, while the store runs.
    Progress(StoreProgress),
    Stored(Result<Stored, String>),
}

impl Store {
    fn toggle_mode(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        self.mode = match self.mode {
            StoreMode::Single => StoreMode::Multipart,
            StoreMode::Multipart => StoreMode::Single,
        };
        Vec::new()
    }

    fn pick_folder(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        let current = self
            .folder
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        self.picking = Some(Form::editing([(Folder, current)]));
        Vec::new()
    }

    fn choose(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        if let Some(f) = self
            .files
            .last_mut()
            .and_then(|files| files.get_mut(self.selected))
        {
            f.chosen = !f.chosen;
        }
        Vec::new()
    }

    fn go(&mut self, key: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        let len = self.files.last().map_or(0, Vec::len);
        move_selection(&mut self.selected, len, key.code);
        Vec::new()
    }

    fn store(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        if self.stored.is_running() {
            return Vec::new();
        }
        if self.files.is_running() {
            self.stored = Request::Failed("still listing the files: a moment".into());
            return Vec::new();
        }
        let files: Vec<PathBuf> = self
            .chosen()
            .map(|f| f.path.clone())
            .collect::<Vec<_>>();
        if files.is_empty() {
            self.stored = Request::Failed("no file chosen: Space chooses, o picks a folder".into());
            return Vec::new();
        }
        self.stored.restart();
        for f in self.files.last_mut().into_iter().flatten() {
            f.sent = 0;
            f.status = None;
        }
        vec![Out::Work(Work::Store {
            files,
            mode: self.mode,
        })]
    }

    fn chosen(&self) -> impl Iterator<Item = &StoreFile> {
        self.files.last().into_iter().flatten().filter(|f| f.chosen)
    }

    fn list(&mut self) -> Vec<Out<Work>> {
        self.files.start();
        vec![Out::Work(Work::List(self.folder.clone()))]
    }

    /// What went wrong last: the store, else the listing.
    fn error(&self) -> Option<&str> {
        self.stored.error().or(self.files.error())
    }
}

impl Component for Store {
    type Work = Work;
    type Done = Done;
    const TITLE: &'static str = "Store";

    fn new(_: &Lab) -> Store {
        Store {
            mode: StoreMode::Single,
            folder: None,
            files: Request::Idle,
            selected: 0,
            picking: None,
            stored: Request::Idle,
        }
    }

    fn commands(&self, _: &Ctx) -> Vec<Command<Store>> {
        vec![
            Command::bar(&[KeyCode::Enter], "Enter", "store", Store::store),
            Command::bar(&[KeyCode::Char('m')], "m", "mode", Store::toggle_mode),
            Command::bar(&[KeyCode::Char(' ')], "Space", "choose", Store::choose),
            Command::bar(&[KeyCode::Char('o')], "o", "folder", Store::pick_folder),
            Command::help(MOVE_KEYS, "↑↓ j k", "move", Store::go),
        ]
    }

    fn editing(&self) -> bool {
        self.picking.is_some()
    }

    fn edit(&mut self, key: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        let Some(form) = &mut self.picking else {
            return Vec::new();
        };
        match form.key(key) {
            FormKey::Submit => {
                let path = form.value(Folder).trim().to_string();
                self.picking = None;
                self.files.start();
                let folder = (!path.is_empty()).then(|| expand_home(&path));
                vec![Out::Work(Work::List(folder))]
            }
            FormKey::Leave => {
                self.picking = None;
                Vec::new()
            }
            FormKey::Used => Vec::new(),
        }
    }

    fn busy(&self) -> bool {
        self.stored.is_running()
    }

    fn cancel(&mut self) {
        self.stored.cancel();
        self.files.cancel();
    }

    fn entered(&mut self, _: &Step, _: &Ctx) -> Vec<Out<Work>> {
        if self.files.last().is_none_or(Vec::is_empty) && !self.files.is_running() {
            return self.list();
        }
        Vec::new()
    }

    fn switched(&mut self, _: &Ctx) -> Vec<Out<Work>> {
        self.files = Request::Idle;
        Vec::new()
    }

    fn done(&mut self, done: Done, _: &Ctx) -> Vec<Out<Work>> {
        match done {
            Done::Listed(Ok((folder, files))) => {
                self.folder = folder;
                self.selected = 0;
                if self.stored.error().is_some() {
                    self.stored = Request::Idle;
                }
                self.files = if files.is_empty() {
                    Request::Failed("no .dcm file in that folder".into())
                } else {
                    Request::Done(
                        files
                            .into_iter()
                            .map(|(path, size)| StoreFile {
                                path,
                                size,
                                chosen: true,
                                sent: 0,
                                status: None,
                            })
                            .collect(),
                    )
                };
            }
            Done::Listed(Err(e)) => self.files = Request::Failed(e),
            Done::Progress(p) => {
                // Progress is per chosen file, in order.
                if let Some(f) = self
                    .files
                    .last_mut()
                    .into_iter()
                    .flatten()
                    .filter(|f| f.chosen)
                    .nth(p.file)
                {
                    f.sent = p.sent.min(f.size.max(p.total));
                }
            }
            Done::Stored(r) => {
                if let Ok(stored) = &r {
                    let single = self.mode == StoreMode::Single;
                    let statuses = &stored.statuses;
                    let first = statuses.first().copied().unwrap_or(0);
                    let chosen = self
                        .files
                        .last_mut()
                        .into_iter()
                        .flatten()
                        .filter(|f| f.chosen);
                    for (f, s) in chosen.zip(statuses.iter().copied().chain(std::iter::repeat(first)))
                    {
                        f.sent = f.size;
                        // One multipart answer covers every file: its status is shown once.
                        if single {
                            f.status = Some(s);
                        }
                    }
                }
                self.stored.finish(r);
                return vec![Out::Check];
            }
        }
        Vec::new()
    }

    fn height(&self, _: &Ctx) -> u16 {
        let files = self.files.last().map_or(0, Vec::len) as u16;
        let stored = self.stored.last();
        let results = stored.map_or(0, |s| s.results.len()) as u16;
        let statuses = stored.is_some_and(|s| !s.statuses.is_empty());
        3 + 2 * u16::from(self.picking.is_some())
            + files
            + results
            + u16::from(self.stored.is_running() || self.files.is_running() || statuses)
            + 2 * u16::from(self.error().is_some())
    }

    fn draw(&self, ctx: &Ctx, f: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let source = match &self.folder {
            Some(p) => format!("folder {}", p.display()),
            None => "the generated samples (same UIDs as the official files)".into(),
        };
        let mode = match self.mode {
            StoreMode::Single => "single-part: one request per file",
            StoreMode::Multipart => "multipart/related: one request",
        };
        let mut lines = vec![
            Line::from(vec![Span::styled("from ", bold()), Span::raw(source)]),
            Line::from(vec![
                Span::styled("mode ", bold()),
                Span::raw(format!("{mode} (m)")),
                Span::raw("   o folder · Space choose · Enter store"),
            ]),
        ];
        if let Some(form) = &self.picking {
            lines.push(form.line(theme, Folder, area.width));
            lines.push(Line::raw(
                "  Enter lists its .dcm files · empty = the generated samples · Esc cancels",
            ));
        }
        if self.files.is_running() {
            lines.push(Line::raw("listing files…"));
        }
        lines.extend(self.file_lines(ctx, area.width));
        if self.stored.is_running() {
            lines.push(Line::raw("storing…  (x cancels)"));
        }
        if let Some(stored) = self.stored.last() {
            lines.extend(self.result_lines(theme, stored));
        }
        if let Some(e) = self.error() {
            lines.push(outcome_line(theme, false, e));
        }
        paragraph(f, area, lines);
    }

    async fn run(work: Work, io: Io<Done>) {
        match work {
            Work::List(Some(_)) if io.remote => io.send(Done::Listed(Err(
                "over SSH the store screen stores the lab's samples; store your own files from your laptop (Postman, curl, Python) with your values".into(),
            ))),
            Work::List(folder) => {
                let folder = folder.or_else(|| io.samples.clone());
                io.send(Done::Listed(list_files(&io, folder).await));
            }
            Work::Store { files, mode } => {
                let (ptx, mut prx) = mpsc::unbounded_channel();
                let forward = {
                    let io = io.clone();
                    tokio::spawn(async move {
                        while let Some(p) = prx.recv().await {
                            io.send(Done::Progress(p));
                        }
                    })
                };
                let r = io
                    .session
                    .client
                    .store(&files, mode, None, 3, Some(ptx))
                    .await;
                let _ = forward.await;
                let r = r.map_err(failed).and_then(|answers| {
                    // A refusal of the whole request (401, 403, 415…) has no per-instance results.
                    match answers.iter().find(|a| !a.ok() && a.status != 409) {
                        Some(a) => Err(io.refused(a)),
                        None => Ok(read_stow(&answers)),
                    }
                });
                io.send(Done::Stored(r));
            }
        }
    }
}

/// The files of a folder (`.dcm`, sorted) or the generated samples, with their sizes.
async fn list_files(io: &Io<Done>, folder: Option<PathBuf>) -> Result<Listing, String> {
    let files = match &folder {
        Some(dir) => {
            let mut rd = tokio::fs::read_dir(dir)
                .await
                .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
            let mut out = Vec::new();
            while let Ok(Some(entry)) = rd.next_entry().await {
                let p = entry.path();
                let is_dcm = p.extension().is_some_and(|e| e.eq_ignore_ascii_case("dcm"));
                if is_dcm && entry.file_type().await.is_ok_and(|t| t.is_file()) {
                    out.push(p);
                }
            }
            out.sort();
            out
        }
        None => dicomlab_lab::actions::sample_files(&io.session, &io.lab, None)
            .await
            .map_err(|e| e.to_string())?,
    };
    let mut sized = Vec::new();
    for f in files {
        let size = tokio::fs::metadata(&f).await.map(|m| m.len()).unwrap_or(0);
        sized.push((f, size));
    }
    Ok((folder, sized))
}

/// Statuses and per-instance results of STOW answers (ReferencedSOPSequence, FailedSOPSequence).
pub fn read_stow(answers: &[Answer]) -> Stored {
    let mut results = Vec::new();
    for a in answers {
        let Some(v) = a.json() else { continue };
        for (seq, stored, reason) in [
            ("00081199", true, "00081196"),
            ("00081198", false, "00081197"),
        ] {
            let items = v
                .get(seq)
                .and_then(|s| s.get("Value"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for item in items {
                let first = |tag: &str| item.get(tag)?.get("Value")?.get(0).cloned();
                results.push(InstanceResult {
                    sop_uid: first("00081155")
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_else(|| "?".into()),
                    stored,
                    code: first(reason).and_then(|v| v.as_u64()),
                });
            }
        }
    }
    Stored {
        statuses: answers.iter().map(|a| a.status).collect(),
        results,
    }
}

impl Store {
    /// One line per file: chosen or not, its name, size, how much was sent, and its status.
    fn file_lines(&self, ctx: &Ctx, width: u16) -> Vec<Line<'static>> {
        let theme = ctx.theme;
        let mut lines = Vec::new();
        let files = self.files.last().map_or(&[][..], Vec::as_slice);
        let name_w = files
            .iter()
            .map(|f| {
                f.path
                    .file_name()
                    .map_or(0, |n| n.to_string_lossy().chars().count())
            })
            .max()
            .unwrap_or(0)
            .min(28);
        let bar_w = (width as usize)
            .saturating_sub(name_w + 26)
            .clamp(4, 24);
        for (i, file) in files.iter().enumerate() {
            let name = file
                .path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let chosen = match (file.chosen, theme.ascii) {
                (true, false) => "☑",
                (false, false) => "☐",
                (true, true) => "[x]",
                (false, true) => "[ ]",
            };
            let status = match file.status {
                Some(s) => Span::styled(
                    format!(" {s}"),
                    theme.fg(if (200..300).contains(&s) {
                        Color::Green
                    } else {
                        Color::Red
                    }),
                ),
                None => Span::raw(""),
            };
            let selected = ctx.focused && i == self.selected && self.picking.is_none();
            lines.push(Line::from(vec![
                Span::raw(format!("{chosen} ")),
                Span::styled(
                    format!("{name:<name_w$}"),
                    if selected {
                        reversed()
                    } else {
                        Style::default()
                    },
                ),
                Span::raw(format!(" {:>7} ", human(file.size))),
                Span::raw(gauge(theme, file.sent, file.size, bar_w)),
                status,
            ]));
        }
        lines
    }

    /// What the store answered, per instance (and the multipart request's statuses).
    fn result_lines(&self, theme: crate::theme::Theme, stored: &Stored) -> Vec<Line<'static>> {
        let mut lines = Vec::new();
        if !stored.statuses.is_empty() && self.mode == StoreMode::Multipart {
            lines.push(Line::raw(format!(
                "one multipart request: {}",
                stored
                    .statuses
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        for r in &stored.results {
            let what = match (r.stored, r.code) {
                (true, None) => "stored".to_string(),
                (true, Some(c)) => format!("stored, warning {c}: {}", reason_text(c)),
                (false, Some(c)) => format!("{c}: {}", reason_text(c)),
                (false, None) => "failed".to_string(),
            };
            // 45070 (already stored) is no error: the instance is there (the ✓ is the check's, from the feed).
            let ok = r.stored || r.code == Some(45070);
            lines.push(outcome_line(
                theme,
                ok,
                &format!("{} {what}", short_uid(&r.sop_uid, 24)),
            ));
        }
        lines
    }
}
