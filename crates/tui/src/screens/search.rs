//! The search screen (exercise "Search", QIDO-RS): the level (`l`), filters as `Keyword=value`, fuzzy
//! matching (`z`), includefield, limit and offset, within a study or a series of it; the results as a
//! table of keywords; `Enter` opens one as a tag tree, `>` hands its UIDs to the retrieve screen. The
//! tag step's search starts with the learner's extended query tag filled in.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row};
use serde_json::Value;

use dicomlab_dicomweb::{InstanceRef, Level};
use dicomlab_lab::model::{Check, Lab, Step};
use crate::component::{Command, Component, Ctx, Io, MOVE_KEYS, Out, Request, failed};
use crate::theme::bold;
use crate::widgets::{
    FieldKey, Form, TagTree, move_selection, outcome_line, short_uid, table,
    value_of, top_lines,
};

/// The search screen's state.
pub struct Search {
    /// Studies, series or instances.
    pub level: Level,
    /// Fuzzy matching of person names.
    pub fuzzy: bool,
    /// What to search for (`/` edits it).
    pub form: Form<Param>,
    /// The last search: its status and the datasets found (kept on screen while the next runs).
    pub found: Request<Found>,
    /// The result `Enter` opens and `>` hands on.
    pub selected: usize,
    /// A result opened as a tag tree; Esc goes back to the table.
    pub detail: Option<TagTree>,
}

/// A search's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// 200 with results, 204 when nothing matched.
    pub status: u16,
    /// The datasets found (DICOM JSON), as the table shows them.
    pub results: Vec<Value>,
}

/// A field of the search form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// `Keyword=value …`
    Filters,
    IncludeField,
    Limit,
    Offset,
    /// The study the search is within.
    InStudy,
    /// The series of that study the search is within.
    InSeries,
}

impl FieldKey for Param {
    fn label(self) -> &'static str {
        match self {
            Param::Filters => "filters",
            Param::IncludeField => "includefield",
            Param::Limit => "limit",
            Param::Offset => "offset",
            Param::InStudy => "in study",
            Param::InSeries => "in series",
        }
    }
}

/// Where a search looks: everywhere, within a study, or within a series of a study.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// `/studies/{study}/…`: searching within a study.
    pub study: Option<String>,
    /// `/studies/{study}/series/{series}/instances`: within a series of it.
    pub series: Option<String>,
}

/// What the search screen asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    Search {
        level: Level,
        /// `/studies/{study}/series/{series}/instances` and the like.
        scope: Scope,
        params: Vec<(String, String)>,
    },
}

/// What comes back.
#[derive(Debug, Clone)]
pub enum Done {
    Searched(Result<Found, String>),
}

/// The columns of the results table per level: keywords, never only hex tags.
pub fn columns(level: Level) -> &'static [(&'static str, &'static str)] {
    match level {
        Level::Study => &[
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
        Level::Instance => &[
            ("InstanceNumber", "00200013"),
            ("Rows", "00280010"),
            ("Columns", "00280011"),
            ("SOPInstanceUID", "00080018"),
        ],
    }
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Study => "studies",
        Level::Series => "series",
        Level::Instance => "instances",
    }
}

impl Search {
    /// Where the form searches, or what is wrong with it (QIDO's routes: studies at the root only;
    /// series within a study; instances within a study or a series of it).
    pub fn scope(&self) -> Result<Scope, String> {
        let uid = |field: Param, what: &str| {
            let v = self.form.value(field).trim().to_string();
            match v.as_str() {
                "" => Ok(None),
                u if dicomlab_dicom::uid::is_valid_uid(u) => Ok(Some(v)),
                _ => Err(format!(
                    "the {what} UID '{v}' is not a UID (digits and dots)"
                )),
            }
        };
        let scope = Scope {
            study: uid(Param::InStudy, "study")?,
            series: uid(Param::InSeries, "series")?,
        };
        match (self.level, &scope.study, &scope.series) {
            (Level::Study, Some(_), _) | (Level::Study, _, Some(_)) => {
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
        for token in self.form.value(Param::Filters).split_whitespace() {
            match token.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    if dicomlab_dicom::tags::resolve(k).is_none() {
                        problems.push(format!(
                            "{k} is neither a DICOM keyword (exact case) nor an 8-hex tag"
                        ));
                    }
                    out.push((k.to_string(), v.to_string()));
                }
                _ => problems.push(format!("'{token}' is not Keyword=value")),
            }
        }
        let include = self.form.value(Param::IncludeField);
        for f in include.split([',', ' ']).filter(|s| !s.is_empty()) {
            if f != "all" && dicomlab_dicom::tags::resolve(f).is_none() {
                problems.push(format!("includefield {f} is not a keyword or tag"));
            }
        }
        if !include.trim().is_empty() {
            out.push(("includefield".into(), include.trim().replace(' ', ",")));
        }
        for (field, name, max) in [
            (Param::Limit, "limit", 200u64),
            (Param::Offset, "offset", u64::MAX),
        ] {
            let v = self.form.value(field);
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

    /// The results on screen (also while the next search runs).
    pub fn results(&self) -> &[Value] {
        self.found.last().map_or(&[], |f| f.results.as_slice())
    }

    /// Sends the search the form makes, or says what is wrong with it.
    fn search(&mut self) -> Vec<Out<Work>> {
        match (self.params(), self.scope()) {
            (Ok(params), Ok(scope)) => {
                self.found.start();
                self.detail = None;
                vec![Out::Work(Work::Search {
                    level: self.level,
                    scope,
                    params,
                })]
            }
            (Err(p), _) => {
                self.found = Request::Failed(p.join("; "));
                Vec::new()
            }
            (_, Err(p)) => {
                self.found = Request::Failed(p);
                Vec::new()
            }
        }
    }

    fn again(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        self.search()
    }

    fn start_editing(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        self.form.editing = true;
        Vec::new()
    }

    fn next_level(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        self.level = match self.level {
            Level::Study => Level::Series,
            Level::Series => Level::Instance,
            Level::Instance => Level::Study,
        };
        Vec::new()
    }

    fn toggle_fuzzy(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        self.fuzzy = !self.fuzzy;
        Vec::new()
    }

    /// Enter: search when there is nothing to open, else open the selected result.
    fn search_or_open(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        match self.results().get(self.selected) {
            Some(v) => {
                self.detail = Some(TagTree::of_dataset(v));
                Vec::new()
            }
            None if self.results().is_empty() => self.search(),
            None => Vec::new(),
        }
    }

    fn go(&mut self, key: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        let len = self.results().len();
        move_selection(&mut self.selected, len, key.code);
        Vec::new()
    }

    /// `>`: the selected result's UIDs go to the retrieve screen.
    fn hand_to_retrieve(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        match self.results().get(self.selected) {
            Some(result) => vec![Out::Retrieve(InstanceRef {
                study: value_of(result, "0020000D"),
                series: value_of(result, "0020000E"),
                sop: value_of(result, "00080018"),
            })],
            None => vec![Out::Status("no result selected: search first".into())],
        }
    }

    fn tree_key(&mut self, key: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        if let Some(tree) = &mut self.detail {
            match key.code {
                KeyCode::Down | KeyCode::Char('j') => tree.down(),
                KeyCode::Up | KeyCode::Char('k') => tree.up(),
                _ => tree.toggle(),
            }
        }
        Vec::new()
    }

    fn close(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        self.detail = None;
        Vec::new()
    }
}

impl Component for Search {
    type Work = Work;
    type Done = Done;
    const TITLE: &'static str = "Search";

    fn new(_: &Lab) -> Search {
        Search {
            level: Level::Study,
            fuzzy: false,
            form: Form::new([
                (Param::Filters, ""),
                (Param::IncludeField, ""),
                (Param::Limit, "100"),
                (Param::Offset, "0"),
                (Param::InStudy, ""),
                (Param::InSeries, ""),
            ]),
            found: Request::Idle,
            selected: 0,
            detail: None,
        }
    }

    fn commands(&self, _: &Ctx) -> Vec<Command<Search>> {
        let to_retrieve = Command::bar(
            &[KeyCode::Char('>')],
            ">",
            "to retrieve",
            Search::hand_to_retrieve,
        );
        if self.detail.is_some() {
            return vec![
                Command::bar(&[KeyCode::Char(' ')], "Space", "fold", Search::tree_key),
                to_retrieve,
                Command::bar(&[KeyCode::Esc], "Esc", "results", Search::close),
                Command::help(MOVE_KEYS, "↑↓ j k", "move", Search::tree_key),
                Command::help(&[KeyCode::Enter], "Enter", "fold", Search::tree_key),
            ];
        }
        vec![
            Command::bar(
                &[KeyCode::Char('/'), KeyCode::Char('i')],
                "/ i",
                "edit",
                Search::start_editing,
            ),
            Command::bar(
                &[KeyCode::Enter],
                "Enter",
                "search/open",
                Search::search_or_open,
            ),
            to_retrieve,
            Command::bar(&[KeyCode::Char('a')], "a", "again", Search::again),
            Command::bar(&[KeyCode::Char('l')], "l", "level", Search::next_level),
            Command::bar(&[KeyCode::Char('z')], "z", "fuzzy", Search::toggle_fuzzy),
            Command::help(MOVE_KEYS, "↑↓ j k", "move", Search::go),
        ]
    }

    fn editing(&self) -> bool {
        self.form.editing
    }

    fn edit(&mut self, key: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        if self.form.submitted(key) {
            self.search()
        } else {
            Vec::new()
        }
    }

    fn busy(&self) -> bool {
        self.found.is_running()
    }

    fn cancel(&mut self) {
        self.found.cancel();
    }

    /// The tag step's search starts with the learner's tag filled in.
    fn entered(&mut self, step: &Step, ctx: &Ctx) -> Vec<Out<Work>> {
        if let Check::TagUsed { value } = &step.check
            && let Some(tag) = &ctx.learner_tag
            && !self.form.value(Param::Filters).contains(tag.as_str())
        {
            let value = value.as_deref().unwrap_or_default();
            self.form.set(Param::Filters, &format!("{tag}={value}"));
            self.level = Level::Study;
            self.found = Request::Idle;
            self.detail = None;
        }
        Vec::new()
    }

    fn switched(&mut self, _: &Ctx) -> Vec<Out<Work>> {
        self.found = Request::Idle;
        self.detail = None;
        Vec::new()
    }

    fn done(&mut self, done: Done, _: &Ctx) -> Vec<Out<Work>> {
        let Done::Searched(r) = done;
        if r.is_ok() {
            self.selected = 0;
        }
        self.found.finish(r);
        vec![Out::Check]
    }

    fn draw(&self, ctx: &Ctx, f: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let mut head = vec![
            Line::from(vec![
                Span::styled("level ", bold()),
                Span::raw(format!("{} (l)", level_name(self.level))),
                Span::styled("   fuzzy ", bold()),
                Span::raw(format!("{} (z)", if self.fuzzy { "on" } else { "off" })),
                Span::raw("   / edits · Enter searches, then opens a result"),
            ]),
            self.form.line(theme, Param::Filters, area.width),
        ];
        head.extend(self.param_lines(theme, area.width));
        match &self.found {
            Request::Failed(e) => head.push(outcome_line(theme, false, e)),
            Request::Running(_) => head.push(Line::raw("searching…")),
            Request::Done(found) => head.push(Line::raw(format!(
                "{} · {} result(s){}",
                found.status,
                found.results.len(),
                if found.status == 204 {
                    " (204 No Content: nothing matched)"
                } else {
                    ""
                }
            ))),
            Request::Idle => {}
        }
        let rest = top_lines(f, area, head);
        if let Some(tree) = &self.detail {
            tree.draw(theme, ctx.focused, f, rest, "Esc back · Space folds");
            return;
        }
        let results = self.results();
        if results.is_empty() {
            return;
        }
        let cols = columns(self.level);
        let header = Row::new(cols.iter().map(|(k, _)| Cell::from(*k)));
        let rows = results.iter().map(|v| {
            Row::new(
                cols.iter()
                    .map(|(k, tag)| {
                        let text = value_of(v, tag);
                        Cell::from(if k.ends_with("UID") {
                            short_uid(&text, 24)
                        } else {
                            text
                        })
                    })
                    .collect::<Vec<_>>(),
            )
        });
        let widths: Vec<Constraint> = cols
            .iter()
            .map(|(k, _)| {
                if k.ends_with("UID") {
                    Constraint::Min(12)
                } else {
                    Constraint::Max(k.len().max(10) as u16)
                }
            })
            .collect();
        table(f, rest, header, rows, widths, self.selected);
    }

    async fn run(work: Work, io: Io<Done>) {
        let Work::Search {
            level,
            scope,
            params,
        } = work;
        let p: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = io
            .session
            .client
            .search(level, scope.study.as_deref(), scope.series.as_deref(), &p)
            .await
            .map_err(failed)
            .and_then(|a| {
                if a.ok() {
                    Ok(Found {
                        status: a.status,
                        results: a.results(),
                    })
                } else {
                    Err(io.refused(&a))
                }
            });
        io.send(Done::Searched(r));
    }
}

impl Search {
    /// The less used fields: one line (and the scope, when there is one) unless they are edited.
    fn param_lines(&self, theme: crate::theme::Theme, width: u16) -> Vec<Line<'static>> {
        let mut lines = Vec::new();
        // The less used fields on one line unless edited.
        if self.form.editing {
            for field in [
                Param::IncludeField,
                Param::Limit,
                Param::Offset,
                Param::InStudy,
                Param::InSeries,
            ] {
                lines.push(self.form.line(theme, field, width));
            }
        } else {
            lines.push(Line::from(vec![
                Span::styled(" includefield ", bold()),
                Span::raw(format!("{:<12}", self.form.value(Param::IncludeField))),
                Span::styled(" limit ", bold()),
                Span::raw(self.form.value(Param::Limit)),
                Span::styled("  offset ", bold()),
                Span::raw(self.form.value(Param::Offset)),
            ]));
            // The scope only when there is one.
            let (study, series) = (
                self.form.value(Param::InStudy),
                self.form.value(Param::InSeries),
            );
            if !study.trim().is_empty() || !series.trim().is_empty() {
                lines.push(Line::from(vec![
                    Span::styled(" within       ", bold()),
                    Span::raw(format!(
                        "study {}{}",
                        short_uid(study.trim(), 24),
                        if series.trim().is_empty() {
                            String::new()
                        } else {
                            format!(" · series {}", short_uid(series.trim(), 24))
                        }
                    )),
                ]));
            }
        }
        lines
    }
}
