//! The extended-query-tags screen (exercise "Extended query tags"; Azure and the practice service): the
//! list, `+` adds one (path, VR, level) and shows its re-index operation's progress, `Enter` gets one,
//! `u` switches its QueryStatus between Enabled and Disabled, `D` deletes it (after asking). Each change
//! refreshes the list and checks the step.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Row};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use dicomlab_dicomweb::{Answer, ClientError, get_ci};
use dicomlab_lab::actions::TagAdd;
use dicomlab_lab::targets::TargetKind;
use dicomlab_lab::model::{Lab, Step};
use crate::component::{Command, Component, Ctx, Io, MOVE_KEYS, Out, Request, failed};
use crate::theme::bold;
use crate::widgets::{json_text, 
    FieldKey, Form, FormKey, gauge, move_selection, outcome_line, request_line,
    short_uid, table, top_lines,
};

/// The most tags the list asks for (the service's maximum page; a lab adds one or two).
const LIST_LIMIT: u32 = 200;

/// How long an added tag's re-index may run before the screen stops following it.
const REINDEX_LIMIT: Duration = Duration::from_secs(300);

/// The tags screen's state.
pub struct Tags {
    /// The service's extended query tags (kept on screen while the list is read again).
    pub list: Request<Vec<Value>>,
    /// The highlighted tag: `Enter`, `u` and `D` act on it.
    pub selected: usize,
    /// The add form (`+`).
    pub form: Option<Form<NewTag>>,
    /// One tag as the service describes it (`Enter`); `Esc` goes back to the list.
    pub detail: Request<Value>,
    /// The re-index operation of the tag being added.
    pub operation: Option<Operation>,
    /// The last add, update or delete: what the service said, or why not.
    pub change: Request<String>,
}

/// A re-index operation's progress, as the service reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// The operation's id (`/operations/{id}` is polled).
    pub id: String,
    /// notStarted, running, completed, failed…
    pub status: String,
    /// How far the re-index is, when the service says.
    pub percent: Option<u64>,
}

/// A field of the add form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewTag {
    /// A keyword or an 8-hex tag.
    Path,
    /// Empty for a standard tag (the service knows it).
    Vr,
    /// Study, Series or Instance.
    Level,
}

impl FieldKey for NewTag {
    fn label(self) -> &'static str {
        match self {
            NewTag::Path => "path",
            NewTag::Vr => "VR",
            NewTag::Level => "level",
        }
    }
}

/// What the tags screen asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    List,
    Get(String),
    Add {
        path: String,
        vr: String,
        level: String,
    },
    Update {
        path: String,
        query_status: String,
    },
    Delete(String),
}

/// What comes back.
#[derive(Debug, Clone)]
pub enum Done {
    Listed(Result<Vec<Value>, String>),
    Got(Result<Value, String>),
    /// The added tag's re-index operation, polled.
    Progress(Operation),
    /// An add, update or delete: what the service said, or why not.
    Changed(Result<String, String>),
}

impl Tags {
    fn rows(&self) -> &[Value] {
        self.list.last().map_or(&[], Vec::as_slice)
    }

    /// The highlighted tag's path.
    pub fn selected_tag(&self) -> Option<String> {
        self.rows()
            .get(self.selected)
            .and_then(|v| get_ci(v, "Path"))
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    fn refresh(&mut self) -> Vec<Out<Work>> {
        self.list.start();
        vec![Out::Work(Work::List)]
    }

    fn ask_list(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        self.refresh()
    }

    fn open_form(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        self.form = Some(Form::editing([
            (NewTag::Path, "PatientSex"),
            (NewTag::Vr, ""),
            (NewTag::Level, "Study"),
        ]));
        Vec::new()
    }

    fn get(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        match self.selected_tag() {
            Some(path) => {
                self.detail.start();
                vec![Out::Work(Work::Get(path))]
            }
            None => self.refresh(),
        }
    }

    /// `u`: Enabled becomes Disabled and back.
    fn toggle_query_status(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        let (Some(path), Some(row)) = (self.selected_tag(), self.rows().get(self.selected)) else {
            return Vec::new();
        };
        let now = get_ci(row, "QueryStatus")
            .and_then(Value::as_str)
            .unwrap_or("Enabled");
        let query_status = if now.eq_ignore_ascii_case("enabled") {
            "Disabled"
        } else {
            "Enabled"
        };
        self.change.start();
        vec![Out::Work(Work::Update {
            path,
            query_status: query_status.into(),
        })]
    }

    /// `D`: asks first.
    fn delete(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        match self.selected_tag() {
            Some(tag) => vec![Out::Confirm {
                ask: format!(
                    "Delete the extended query tag {tag}? Searching on it stops and its index is dropped. (y/n)"
                ),
                yes: Work::Delete(tag),
            }],
            None => vec![Out::Status("no tag selected: a lists the tags".into())],
        }
    }

    fn go(&mut self, key: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        let len = self.rows().len();
        move_selection(&mut self.selected, len, key.code);
        Vec::new()
    }

    fn close(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        self.detail = Request::Idle;
        Vec::new()
    }
}

impl Component for Tags {
    type Work = Work;
    type Done = Done;
    const TITLE: &'static str = "Extended query tags";

    fn new(_: &Lab) -> Tags {
        Tags {
            list: Request::Idle,
            selected: 0,
            form: None,
            detail: Request::Idle,
            operation: None,
            change: Request::Idle,
        }
    }

    fn unsupported(ctx: &Ctx) -> Option<&'static str> {
        (ctx.target == TargetKind::Generic).then_some(
            "this server has no extended query tags: they are an Azure DICOM service feature (try them on the practice service)",
        )
    }

    fn commands(&self, _: &Ctx) -> Vec<Command<Tags>> {
        let mut commands = vec![
            Command::bar(&[KeyCode::Char('a')], "a", "list", Tags::ask_list),
            Command::bar(&[KeyCode::Char('+')], "+", "add", Tags::open_form),
            Command::bar(&[KeyCode::Enter], "Enter", "get", Tags::get),
            Command::bar(
                &[KeyCode::Char('u')],
                "u",
                "query status",
                Tags::toggle_query_status,
            ),
            Command::bar(&[KeyCode::Char('D')], "D", "delete", Tags::delete),
            Command::help(MOVE_KEYS, "↑↓ j k", "move", Tags::go),
        ];
        if self.detail.last().is_some() {
            commands.push(Command::bar(&[KeyCode::Esc], "Esc", "back", Tags::close));
        }
        commands
    }

    fn editing(&self) -> bool {
        self.form.is_some()
    }

    fn edit(&mut self, key: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        let Some(form) = &mut self.form else {
            return Vec::new();
        };
        match form.key(key) {
            FormKey::Submit => {
                let path = form.value(NewTag::Path).trim().to_string();
                let vr = form.value(NewTag::Vr).trim().to_string();
                let level = form.value(NewTag::Level).trim().to_string();
                self.form = None;
                if path.is_empty() {
                    self.change =
                        Request::Failed("a tag needs a path (keyword or 8-hex tag)".into());
                    return Vec::new();
                }
                self.change.start();
                vec![Out::Work(Work::Add { path, vr, level })]
            }
            FormKey::Leave => {
                self.form = None;
                Vec::new()
            }
            FormKey::Used => Vec::new(),
        }
    }

    fn busy(&self) -> bool {
        self.list.is_running() || self.detail.is_running() || self.change.is_running()
    }

    fn cancel(&mut self) {
        self.list.cancel();
        self.detail.cancel();
        self.change.cancel();
        self.operation = None;
    }

    fn entered(&mut self, _: &Step, _: &Ctx) -> Vec<Out<Work>> {
        if self.rows().is_empty() && !self.busy() {
            return self.refresh();
        }
        Vec::new()
    }

    fn switched(&mut self, _: &Ctx) -> Vec<Out<Work>> {
        self.list = Request::Idle;
        self.detail = Request::Idle;
        Vec::new()
    }

    fn confirmed(&mut self, yes: Work) -> Vec<Out<Work>> {
        self.change.start();
        vec![Out::Work(yes)]
    }

    fn done(&mut self, done: Done, _: &Ctx) -> Vec<Out<Work>> {
        match done {
            Done::Listed(r) => {
                self.list.finish(r);
                self.selected = self.selected.min(self.rows().len().saturating_sub(1));
            }
            Done::Got(r) => self.detail.finish(r),
            Done::Progress(op) => self.operation = Some(op),
            Done::Changed(r) => {
                self.change.finish(r);
                let mut outs = self.refresh();
                outs.push(Out::Check);
                return outs;
            }
        }
        Vec::new()
    }

    fn draw(&self, ctx: &Ctx, f: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let mut head = vec![Line::raw(
            "a list · + add · Enter get · u Enabled/Disabled · D delete (asks)",
        )];
        if let Some(form) = &self.form {
            head.extend(form.lines(theme, area.width));
            head.push(Line::raw(
                "  Enter adds · VR may stay empty for a standard tag · level Study, Series or Instance",
            ));
        }
        if let Some(op) = &self.operation {
            let p = op.percent.unwrap_or(0);
            head.push(Line::raw(format!(
                "re-index {} {} {} {p}%",
                short_uid(&op.id, 10),
                op.status,
                gauge(theme, p, 100, 20)
            )));
        }
        if self.busy() {
            head.push(Line::raw("…  (x cancels)"));
        }
        head.extend(request_line(theme, &self.change));
        for e in [self.list.error(), self.detail.error()].into_iter().flatten() {
            head.push(outcome_line(theme, false, e));
        }
        let rest = top_lines(f, area, head);
        if let Some(detail) = self.detail.last() {
            let mut lines = vec![Line::styled("GET extendedquerytags/… · Esc back", bold())];
            if let Some(o) = detail.as_object() {
                for (k, v) in o {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    lines.push(Line::raw(format!("{k:<16} {v}")));
                }
            }
            f.render_widget(Paragraph::new(lines), rest);
            return;
        }
        let rows = self.rows();
        if rows.is_empty() {
            if !self.busy() {
                f.render_widget(
                    Paragraph::new("no extended query tag yet (+ adds one)"),
                    rest,
                );
            }
            return;
        }
        let header = Row::new(["Path", "VR", "Level", "Status", "QueryStatus", "Errors"]);
        let rows = rows.iter().map(|v| {
            let path = json_text(v, "Path");
            let keyword = dicomlab_dicom::tags::resolve(&path)
                .and_then(|a| a.keyword)
                .filter(|k| *k != path)
                .map(|k| format!(" {k}"))
                .unwrap_or_default();
            Row::new(vec![
                format!("{path}{keyword}"),
                json_text(v, "VR"),
                json_text(v, "Level"),
                json_text(v, "Status"),
                json_text(v, "QueryStatus"),
                json_text(v, "ErrorCount"),
            ])
        });
        let widths = [
            Constraint::Min(12),
            Constraint::Length(3),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(11),
            Constraint::Length(6),
        ];
        table(f, rest, header, rows, widths, self.selected);
    }

    async fn run(work: Work, io: Io<Done>) {
        let c = &io.session.client;
        match work {
            Work::List => {
                let r = c
                    .tags(LIST_LIMIT, 0)
                    .await
                    .map_err(failed)
                    .and_then(|a| {
                        if a.ok() {
                            Ok(a.results())
                        } else {
                            Err(io.refused(&a))
                        }
                    });
                io.send(Done::Listed(r));
            }
            Work::Get(path) => {
                let r = c
                    .tag(&path)
                    .await
                    .map_err(failed)
                    .and_then(|a| match a.json() {
                        Some(v) if a.ok() => Ok(v),
                        _ => Err(io.refused(&a)),
                    });
                io.send(Done::Got(r));
            }
            Work::Add { path, vr, level } => {
                let mut tag = json!({"Path": path, "Level": level});
                if !vr.is_empty() {
                    tag["VR"] = json!(vr);
                }
                io.send(Done::Changed(add(&io, tag, &path).await));
            }
            Work::Update { path, query_status } => {
                let r = c.update_tag(&path, &query_status).await;
                let r = said(&io, r, |status| {
                    format!("{status}: {path} QueryStatus is {query_status}")
                });
                io.send(Done::Changed(r));
            }
            Work::Delete(path) => {
                let r = c.delete_tag(&path).await;
                let r = said(&io, r, |status| format!("{status}: {path} deleted"));
                io.send(Done::Changed(r));
            }
        }
    }
}

/// What an update or a delete answered: `ok` of its status, or the refusal read for the learner.
fn said(
    io: &Io<Done>,
    answer: Result<Answer, ClientError>,
    ok: impl FnOnce(u16) -> String,
) -> Result<String, String> {
    let a = answer.map_err(failed)?;
    if a.ok() {
        Ok(ok(a.status))
    } else {
        Err(io.refused(&a))
    }
}

/// Adds a tag and follows its re-index operation, each poll sent as the screen's progress.
async fn add(io: &Io<Done>, tag: Value, path: &str) -> Result<String, String> {
    let (ptx, mut prx) = mpsc::unbounded_channel::<Value>();
    let forward = {
        let io = io.clone();
        tokio::spawn(async move {
            while let Some(v) = prx.recv().await {
                let id = get_ci(&v, "operationId")
                    .or_else(|| get_ci(&v, "id"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let status = get_ci(&v, "status")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string();
                let percent = get_ci(&v, "percentComplete").and_then(Value::as_u64);
                io.send(Done::Progress(Operation {
                    id,
                    status,
                    percent,
                }));
            }
        })
    };
    let added = dicomlab_lab::actions::add_tag(&io.session, tag, REINDEX_LIMIT, Some(&ptx)).await;
    drop(ptx);
    let _ = forward.await;
    match added.map_err(|e| e.to_string())? {
        TagAdd::Refused(a) => Err(io.refused(&a)),
        TagAdd::Ended { status } => match status.to_ascii_lowercase().as_str() {
            "completed" | "succeeded" => {
                Ok(format!("added {path}; its re-index operation {status}"))
            }
            "running" | "notstarted" => {
                Err(format!("the re-index of {path} still runs after 5 minutes"))
            }
            _ => Err(format!("the re-index operation of {path} ended {status}")),
        },
    }
}
