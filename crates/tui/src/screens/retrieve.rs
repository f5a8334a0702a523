//! The retrieve screen (exercise "Retrieve", WADO-RS): study, series, instance, metadata, frame 1 or the
//! rendered image (`1`–`6`) of the UIDs in its form (`/`; the lab's instance to start with, or a search
//! result's), saved to a folder; metadata as a tag tree (`Space` folds sequences and instances). `T` asks
//! for another transfer syntax (as stored, Explicit VR Little Endian, JPEG 2000 lossless): the service
//! converts one instance or a frame, and answers 406 for what it cannot.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use serde_json::Value;

use dicomlab_dicomweb::routes::{ImageFormat, Syntax};
use dicomlab_dicomweb::InstanceRef;
use dicomlab_dicomweb as dicomweb;
use dicomlab_lab::model::{Lab, ScreenKind};
use crate::component::{Command, Component, Ctx, Io, MOVE_KEYS, Out, Request, failed};
use crate::theme::{bold, reversed};
use crate::widgets::{
    FieldKey, Form, TagTree, human, outcome_line, short_uid, top_lines,
};

/// The retrieve screen's state.
pub struct Retrieve {
    /// What `Enter` fetches.
    pub what: What,
    /// The transfer syntax it asks for (`T`).
    pub syntax: Syntax,
    /// The study, series and instance UIDs (`/` edits them).
    pub form: Form<Uid>,
    /// The last fetch: what came back (the metadata as a tree), or why not.
    pub fetched: Request<Fetched>,
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
    /// In the order of their keys, `1`–`6`.
    pub const ALL: [What; 6] = [
        What::Study,
        What::Series,
        What::Instance,
        What::Metadata,
        What::Frame,
        What::Rendered,
    ];

    /// The request that fetches it of an instance (its study's metadata: all the instances').
    pub fn of(self, i: &InstanceRef) -> dicomweb::Retrieve {
        match self {
            What::Study => dicomweb::Retrieve::Study(i.study.clone()),
            What::Series => dicomweb::Retrieve::Series {
                study: i.study.clone(),
                series: i.series.clone(),
            },
            What::Instance => dicomweb::Retrieve::Instance(i.clone()),
            What::Metadata => {
                dicomweb::Retrieve::Metadata(InstanceRef::new(&i.study, "", ""))
            }
            What::Frame => dicomweb::Retrieve::Frame(i.clone(), 1),
            What::Rendered => dicomweb::Retrieve::Rendered(i.clone(), ImageFormat::Png),
        }
    }

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

/// A UID of the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uid {
    Study,
    Series,
    Instance,
}

impl FieldKey for Uid {
    fn label(self) -> &'static str {
        match self {
            Uid::Study => "study",
            Uid::Series => "series",
            Uid::Instance => "instance",
        }
    }
}

/// What a fetch showed.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    /// Status, files and bytes saved (or the metadata's instances).
    pub summary: String,
    /// The metadata, as a tree.
    pub tree: Option<TagTree>,
}

/// What the retrieve screen asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    Retrieve {
        what: What,
        of: InstanceRef,
        syntax: Syntax,
    },
}

/// What comes back.
#[derive(Debug, Clone)]
pub enum Done {
    /// The summary and, for metadata, the datasets; or why not.
    Retrieved(Result<(String, Option<Vec<Value>>), String>),
}

impl Retrieve {
    /// The instance of the form, or which of its UIDs is not one.
    pub fn instance(&self) -> Result<InstanceRef, String> {
        let get = |field: Uid| {
            let v = self.form.value(field).trim().to_string();
            if dicomlab_dicom::uid::is_valid_uid(&v) {
                Ok(v)
            } else {
                Err(format!(
                    "the {} UID '{v}' is not a UID (digits and dots)",
                    field.label()
                ))
            }
        };
        Ok(InstanceRef {
            study: get(Uid::Study)?,
            series: get(Uid::Series)?,
            sop: get(Uid::Instance)?,
        })
    }

    /// Puts UIDs in the form (those given: a search result may lack the lower levels).
    pub fn show(&mut self, of: &InstanceRef) {
        for (field, v) in [
            (Uid::Study, &of.study),
            (Uid::Series, &of.series),
            (Uid::Instance, &of.sop),
        ] {
            if !v.is_empty() {
                self.form.set(field, v);
            }
        }
    }

    /// The metadata tree on screen.
    fn tree(&mut self) -> Option<&mut TagTree> {
        self.fetched.last_mut().and_then(|f| f.tree.as_mut())
    }

    fn fetch(&mut self) -> Vec<Out<Work>> {
        match self.instance() {
            Ok(of) => {
                self.fetched.start();
                vec![Out::Work(Work::Retrieve {
                    what: self.what,
                    of,
                    syntax: self.syntax,
                })]
            }
            Err(e) => {
                self.fetched = Request::Failed(e);
                Vec::new()
            }
        }
    }

    fn start_editing(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        self.form.editing = true;
        Vec::new()
    }

    /// `1`–`6` pick what to fetch, `w` the next one.
    fn pick(&mut self, key: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        self.what = match key.code {
            KeyCode::Char(c @ '1'..='6') => What::ALL[usize::from(c as u8 - b'1')],
            _ => {
                let i = What::ALL.iter().position(|w| *w == self.what).unwrap_or(0);
                What::ALL[(i + 1) % What::ALL.len()]
            }
        };
        Vec::new()
    }

    /// `T`: the next transfer syntax.
    fn syntax(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        self.syntax = self.syntax.next();
        Vec::new()
    }

    fn enter(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        if self.fetched.is_running() {
            return Vec::new();
        }
        self.fetch()
    }

    fn fold(&mut self, _: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        if let Some(t) = self.tree() {
            t.toggle();
        }
        Vec::new()
    }

    fn go(&mut self, key: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        if let Some(t) = self.tree() {
            match key.code {
                KeyCode::Down | KeyCode::Char('j') => t.down(),
                _ => t.up(),
            }
        }
        Vec::new()
    }
}

impl Component for Retrieve {
    type Work = Work;
    type Done = Done;
    const TITLE: &'static str = "Retrieve";

    /// The form starts on the instance the lab's retrieve step names.
    fn new(lab: &Lab) -> Retrieve {
        let start = lab
            .steps()
            .find(|s| s.screen() == Some(ScreenKind::Retrieve))
            .and_then(|s| s.instance.as_deref())
            .and_then(|n| lab.dataset.instance(n))
            .map(|i| i.reference())
            .unwrap_or_default();
        Retrieve {
            what: What::Study,
            syntax: Syntax::Stored,
            form: Form::new([
                (Uid::Study, start.study),
                (Uid::Series, start.series),
                (Uid::Instance, start.sop),
            ]),
            fetched: Request::Idle,
        }
    }

    fn commands(&self, _: &Ctx) -> Vec<Command<Retrieve>> {
        let mut commands = vec![
            Command::bar(
                &[
                    KeyCode::Char('1'),
                    KeyCode::Char('2'),
                    KeyCode::Char('3'),
                    KeyCode::Char('4'),
                    KeyCode::Char('5'),
                    KeyCode::Char('6'),
                    KeyCode::Char('w'),
                ],
                "1-6 w",
                "what",
                Retrieve::pick,
            ),
            Command::bar(&[KeyCode::Char('/')], "/", "UIDs", Retrieve::start_editing),
            Command::help(
                &[KeyCode::Char('T')],
                "T",
                "transfer syntax",
                Retrieve::syntax,
            ),
            Command::bar(&[KeyCode::Enter], "Enter", "fetch", Retrieve::enter),
            Command::bar(&[KeyCode::Char(' ')], "Space", "fold", Retrieve::fold),
        ];
        // Without a tree the arrows are the app's (they scroll the step's text).
        if self.fetched.last().is_some_and(|f| f.tree.is_some()) {
            commands.push(Command::help(MOVE_KEYS, "↑↓ j k", "move", Retrieve::go));
        }
        commands
    }

    fn editing(&self) -> bool {
        self.form.editing
    }

    fn edit(&mut self, key: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        if self.form.submitted(key) {
            self.fetch()
        } else {
            Vec::new()
        }
    }

    fn busy(&self) -> bool {
        self.fetched.is_running()
    }

    fn cancel(&mut self) {
        self.fetched.cancel();
    }

    fn done(&mut self, done: Done, _: &Ctx) -> Vec<Out<Work>> {
        let Done::Retrieved(r) = done;
        self.fetched.finish(r.map(|(summary, metadata)| Fetched {
            summary,
            tree: metadata.map(|m| TagTree::of_datasets(&m)),
        }));
        vec![Out::Check]
    }

    fn draw(&self, ctx: &Ctx, f: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let mut choices = vec![Span::styled("fetch ", bold())];
        for (i, w) in What::ALL.iter().enumerate() {
            let label = format!(" {} {} ", i + 1, w.label());
            choices.push(Span::styled(
                label,
                if *w == self.what {
                    reversed()
                } else {
                    Style::default()
                },
            ));
        }
        let mut head = vec![Line::from(choices)];
        if self.form.editing {
            head.extend(self.form.lines(theme, area.width));
        } else {
            let uid = |field| short_uid(self.form.value(field).trim(), 12);
            head.push(Line::from(vec![
                Span::styled("of ", bold()),
                Span::raw(format!(
                    "study {} · series {} · instance {} (/)",
                    uid(Uid::Study),
                    uid(Uid::Series),
                    uid(Uid::Instance)
                )),
            ]));
        }
        let gets = match self.what {
            What::Metadata => " → a tag tree (Space folds)",
            What::Instance => " → one file",
            What::Frame => "",
            What::Rendered => " → the viewer's picture",
            What::Study | What::Series => " (without it: 406)",
        };
        let accept = self
            .what
            .of(&InstanceRef::default())
            .accept_as(self.syntax);
        head.push(Line::raw(format!("Accept: {accept}{gets}")));
        if self.syntax != Syntax::Stored {
            head.push(Line::raw(format!(
                "in {} (T): the service converts one instance or frame; 406 if it cannot",
                self.syntax.label()
            )));
        }
        // While the next fetch runs, the last tree stays but its summary is no longer the news.
        match &self.fetched {
            Request::Running(_) => head.push(Line::raw("retrieving…  (x cancels)")),
            Request::Done(fetched) => head.push(outcome_line(theme, true, &fetched.summary)),
            Request::Failed(e) => head.push(outcome_line(theme, false, e)),
            Request::Idle => {}
        }
        let rest = top_lines(f, area, head);
        if let Some(tree) = self.fetched.last().and_then(|f| f.tree.as_ref()) {
            tree.draw(theme, ctx.focused, f, rest, "↑↓ move · Space folds");
        }
    }

    async fn run(work: Work, io: Io<Done>) {
        let Work::Retrieve { what, of, syntax } = work;
        io.send(Done::Retrieved(retrieve(&io, what, &of, syntax).await));
    }
}

async fn retrieve(
    io: &Io<Done>,
    what: What,
    of: &InstanceRef,
    syntax: Syntax,
) -> Result<(String, Option<Vec<Value>>), String> {
    let c = &io.session.client;
    let request = what.of(of);
    if what == What::Metadata {
        let a = c
            .get(&request.path(), request.accept())
            .await
            .map_err(failed)?;
        if !a.ok() {
            return Err(io.refused(&a));
        }
        let all = a.results();
        return Ok((
            format!(
                "{}: metadata of {} instance(s), {} bytes",
                a.status,
                all.len(),
                a.body.len()
            ),
            Some(all),
        ));
    }
    let dir = io
        .session
        .scratch
        .path()
        .join("retrieved")
        .join(what.label().replace(' ', "-"));
    let (a, saved) = c
        .retrieve_as(&request, syntax, &dir)
        .await
        .map_err(failed)?;
    if !a.ok() {
        return Err(io.refused(&a));
    }
    let bytes: u64 = saved.iter().map(|p| p.size).sum();
    Ok((
        format!(
            "{}: {} file(s), {} saved in {}",
            a.status,
            saved.len(),
            human(bytes),
            dir.display()
        ),
        None,
    ))
}
