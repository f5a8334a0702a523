//! The change-feed screen (exercise "Change feed"; Azure and the practice service — a generic DICOMweb
//! server has none): a table of entries (sequence, action, state, timestamp, UIDs), `[` `]` pages, `+`
//! `-` the limit, `L` the latest entry, `f` a live tail that polls every 2 s only while it is on. The
//! v1 (sequence cursor) / v2 (rows to skip) difference is on screen.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row};
use serde_json::Value;

use dicomlab_dicomweb::get_ci;
use dicomlab_lab::targets::TargetKind;
use dicomlab_lab::model::Lab;
use crate::component::{Command, Component, Ctx, Io, MOVE_KEYS, Out, Request, failed};
use crate::theme::bold;
use crate::widgets::{json_text, move_selection, outcome_line, short_uid, table, top_lines};

/// The live tail keeps this many of the newest rows.
const TAIL_ROWS: usize = 500;

/// The change-feed screen's state.
pub struct ChangeFeed {
    /// Where the page starts: a sequence (v1) or rows to skip (v2).
    pub offset: u64,
    /// Rows a page asks for.
    pub limit: u32,
    /// The table: a page replaces it, the live tail appends to it (kept on screen while a request runs).
    pub page: Request<Vec<FeedRow>>,
    /// The highlighted row.
    pub selected: usize,
    /// Offsets of earlier pages, for `[`.
    pub back: Vec<u64>,
    /// The live tail is on: every tick asks for what came after the last row.
    pub following: bool,
    /// The last `L`: the newest entry (None: the feed is empty).
    pub latest: Request<Option<FeedRow>>,
}

/// A change-feed entry.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedRow {
    /// The entry's sequence number (v1 pages by it).
    pub sequence: u64,
    /// Create or Delete.
    pub action: String,
    /// Current, Replaced or Deleted.
    pub state: String,
    /// When the service recorded it.
    pub timestamp: String,
    /// The study of the instance the entry is about.
    pub study: String,
    /// Its series.
    pub series: String,
    /// The SOP instance itself.
    pub sop: String,
}

/// What the change-feed screen asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    Page {
        offset: u64,
        limit: u32,
        /// Appends to the table (live tail) instead of replacing it.
        append: bool,
    },
    Latest,
}

/// What comes back.
#[derive(Debug, Clone)]
pub enum Done {
    Page {
        result: Result<Vec<FeedRow>, String>,
        append: bool,
    },
    Latest(Result<Option<FeedRow>, String>),
}

/// A change-feed entry as a row (v1 and v2 name fields the same; case varies between versions).
pub fn feed_row(v: &Value) -> FeedRow {
    let s = |k: &str| json_text(v, k);
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

impl ChangeFeed {
    fn rows(&self) -> &[FeedRow] {
        self.page.last().map_or(&[], Vec::as_slice)
    }

    /// Where the next page starts: v1 pages by sequence (after the last one seen), v2 by rows skipped.
    pub fn next_offset(&self, v2: bool) -> u64 {
        let rows = self.rows();
        if v2 {
            self.offset + rows.len() as u64
        } else {
            rows.iter().map(|r| r.sequence).max().unwrap_or(self.offset)
        }
    }

    fn load(&mut self) -> Vec<Out<Work>> {
        self.page.start();
        vec![Out::Work(Work::Page {
            offset: self.offset,
            limit: self.limit,
            append: false,
        })]
    }

    fn reload(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        self.load()
    }

    /// `]` the next page, `[` back to the one before.
    fn turn(&mut self, key: KeyEvent, ctx: &Ctx) -> Vec<Out<Work>> {
        if key.code == KeyCode::Char(']') {
            self.back.push(self.offset);
            self.offset = self.next_offset(ctx.v2);
        } else {
            self.offset = self.back.pop().unwrap_or(0);
        }
        self.load()
    }

    /// `+` doubles the limit (up to the version's maximum), `-` halves it.
    fn resize(&mut self, key: KeyEvent, ctx: &Ctx) -> Vec<Out<Work>> {
        let max = if ctx.v2 { 200 } else { 100 };
        self.limit = if key.code == KeyCode::Char('+') {
            (self.limit * 2).min(max)
        } else {
            (self.limit / 2).max(1)
        };
        Vec::new()
    }

    fn ask_latest(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        self.latest.start();
        vec![Out::Work(Work::Latest)]
    }

    fn follow(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        self.following = !self.following;
        Vec::new()
    }

    fn go(&mut self, key: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        let len = self.rows().len();
        move_selection(&mut self.selected, len, key.code);
        Vec::new()
    }

    /// The live tail's rows: added after the table's, the newest [`TAIL_ROWS`] kept; the offset moves
    /// past the rows dropped (v2 skips them, v1's cursor is the last one's sequence).
    fn append(&mut self, rows: Vec<FeedRow>, v2: bool) {
        let mut all = self.page.take_last().unwrap_or_default();
        all.extend(rows);
        let extra = all.len().saturating_sub(TAIL_ROWS);
        if extra > 0 {
            let dropped: Vec<FeedRow> = all.drain(..extra).collect();
            self.offset = if v2 {
                self.offset + extra as u64
            } else {
                dropped.last().map_or(self.offset, |r| r.sequence)
            };
        }
        self.selected = all.len().saturating_sub(1);
        self.page = Request::Done(all);
    }
}

impl Component for ChangeFeed {
    type Work = Work;
    type Done = Done;
    const TITLE: &'static str = "Change feed";

    fn new(_: &Lab) -> ChangeFeed {
        ChangeFeed {
            offset: 0,
            limit: 10,
            page: Request::Idle,
            selected: 0,
            back: Vec::new(),
            following: false,
            latest: Request::Idle,
        }
    }

    fn unsupported(ctx: &Ctx) -> Option<&'static str> {
        (ctx.target == TargetKind::Generic).then_some(
            "this server has no change feed: it is an Azure DICOM service feature (try it on the practice service)",
        )
    }

    fn commands(&self, _: &Ctx) -> Vec<Command<ChangeFeed>> {
        vec![
            Command::bar(&[KeyCode::Enter], "Enter", "load", ChangeFeed::reload),
            Command::bar(
                &[KeyCode::Char('['), KeyCode::Char(']')],
                "[ ]",
                "page",
                ChangeFeed::turn,
            ),
            Command::bar(
                &[KeyCode::Char('+'), KeyCode::Char('-')],
                "+ -",
                "limit",
                ChangeFeed::resize,
            ),
            Command::bar(&[KeyCode::Char('L')], "L", "latest", ChangeFeed::ask_latest),
            Command::bar(&[KeyCode::Char('f')], "f", "tail", ChangeFeed::follow),
            Command::help(&[KeyCode::Char('a')], "a", "load", ChangeFeed::reload),
            Command::help(MOVE_KEYS, "↑↓ j k", "move", ChangeFeed::go),
        ]
    }

    fn busy(&self) -> bool {
        self.page.is_running() || self.latest.is_running()
    }

    fn cancel(&mut self) {
        self.page.cancel();
        self.latest.cancel();
        self.following = false;
    }

    fn switched(&mut self, _: &Ctx) -> Vec<Out<Work>> {
        self.page = Request::Idle;
        self.latest = Request::Idle;
        Vec::new()
    }

    fn animating(&self) -> bool {
        self.following
    }

    /// The live tail: fetch what came after the last row.
    fn tick(&mut self, ctx: &Ctx) -> Vec<Out<Work>> {
        if !self.following || self.page.is_running() {
            return Vec::new();
        }
        let offset = self.next_offset(ctx.v2);
        self.page.start();
        vec![Out::Work(Work::Page {
            offset,
            limit: self.limit,
            append: true,
        })]
    }

    fn done(&mut self, done: Done, ctx: &Ctx) -> Vec<Out<Work>> {
        match done {
            Done::Page {
                result: Ok(rows),
                append: true,
            } => self.append(rows, ctx.v2),
            Done::Page {
                result: Ok(rows),
                append: false,
            } => {
                self.page = Request::Done(rows);
                self.selected = 0;
                return vec![Out::Check];
            }
            Done::Page {
                result: Err(e),
                append,
            } => {
                self.following = false;
                self.page = Request::Failed(e);
                if !append {
                    return vec![Out::Check];
                }
            }
            Done::Latest(r) => self.latest.finish(r),
        }
        Vec::new()
    }

    fn draw(&self, ctx: &Ctx, f: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let mut head = vec![
            Line::from(vec![
                Span::styled("offset ", bold()),
                Span::raw(self.offset.to_string()),
                Span::styled("  limit ", bold()),
                Span::raw(format!("{} (+ -)", self.limit)),
                Span::raw("  Enter load · ] next · [ back · L latest · f "),
                Span::raw(if self.following {
                    "stop the live tail"
                } else {
                    "live tail"
                }),
            ]),
            Line::raw(if ctx.v2 {
                "v2: offset = rows to skip in time order (limit ≤ 200); the next page starts at offset + rows."
            } else {
                "v1: offset = a sequence cursor (limit ≤ 100): the next page starts after the last sequence. v2 counts rows."
            }),
        ];
        if self.following {
            head.push(Line::styled(
                "● following: new entries appear every 2 s",
                theme.fg(Color::Yellow),
            ));
        }
        if let Some(Some(l)) = self.latest.last() {
            head.push(Line::raw(format!(
                "latest: sequence {} · {} · {} · {}",
                l.sequence,
                l.action,
                l.state,
                short_uid(&l.sop, 24)
            )));
        }
        if let Some(e) = self.page.error().or(self.latest.error()) {
            head.push(outcome_line(theme, false, e));
        } else if self.busy() && !self.following {
            head.push(Line::raw("loading…"));
        }
        let rest = top_lines(f, area, head);
        let rows = self.rows();
        if rows.is_empty() {
            return;
        }
        let header = Row::new([
            "Seq",
            "Action",
            "State",
            "Timestamp",
            "Study",
            "Series",
            "SOP",
        ]);
        let rows = rows.iter().map(|r| {
            Row::new(vec![
                Cell::from(r.sequence.to_string()),
                Cell::from(r.action.clone()),
                Cell::from(r.state.clone()),
                Cell::from(r.timestamp.chars().take(19).collect::<String>()),
                Cell::from(short_uid(&r.study, 14)),
                Cell::from(short_uid(&r.series, 14)),
                Cell::from(short_uid(&r.sop, 14)),
            ])
        });
        let widths = [
            Constraint::Length(5),
            Constraint::Length(7),
            Constraint::Length(8),
            Constraint::Length(19),
            Constraint::Min(8),
            Constraint::Min(8),
            Constraint::Min(8),
        ];
        table(f, rest, header, rows, widths, self.selected);
    }

    async fn run(work: Work, io: Io<Done>) {
        let c = &io.session.client;
        match work {
            Work::Page {
                offset,
                limit,
                append,
            } => {
                let result = c
                    .change_feed(offset, limit, false)
                    .await
                    .map_err(failed)
                    .and_then(|a| {
                        if a.ok() {
                            Ok(a.results().iter().map(feed_row).collect())
                        } else {
                            Err(io.refused(&a))
                        }
                    });
                io.send(Done::Page { result, append });
            }
            Work::Latest => {
                let r = c.change_feed_latest().await.map_err(failed).and_then(|a| {
                    if a.ok() {
                        Ok(a.json().filter(|v| v.is_object()).map(|v| feed_row(&v)))
                    } else {
                        Err(io.refused(&a))
                    }
                });
                io.send(Done::Latest(r));
            }
        }
    }
}
