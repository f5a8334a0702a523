//! The role screen (exercise "Give the client app access"): what 401 and 403 mean, and on the practice
//! service `+` grants and `-` revokes the lab client's DICOM Data Owner role; the step's check runs after
//! each, so the learner watches 403 turn into 200. Elsewhere it says where to click in the portal.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use dicomlab_lab::targets::TargetKind;
use dicomlab_lab::model::Lab;
use crate::component::{Command, Component, Ctx, Io, Out, Request};
use crate::theme::bold;
use crate::widgets::{paragraph, request_line};

/// The role screen's state.
#[derive(Debug, Default)]
pub struct Role {
    /// The last grant or revoke: what the target said, or why it failed.
    pub change: Request<String>,
}

/// What the role screen asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// Grant the lab client DICOM Data Owner.
    Grant,
    /// Take it away again.
    Revoke,
}

/// What comes back.
#[derive(Debug, Clone)]
pub enum Done {
    /// The grant or revoke: what the target said, or why not.
    Changed(Result<String, String>),
}

impl Role {
    fn set(&mut self, key: KeyEvent, _: &Ctx) -> Vec<Out<Work>> {
        if self.change.is_running() {
            return Vec::new();
        }
        self.change.start();
        vec![Out::Work(if key.code == KeyCode::Char('+') {
            Work::Grant
        } else {
            Work::Revoke
        })]
    }
}

impl Component for Role {
    type Work = Work;
    type Done = Done;
    const TITLE: &'static str = "Role";

    fn new(_: &Lab) -> Role {
        Role::default()
    }

    fn commands(&self, _: &Ctx) -> Vec<Command<Role>> {
        vec![
            Command::bar(&[KeyCode::Char('+')], "+", "grant", Role::set),
            Command::bar(&[KeyCode::Char('-')], "-", "revoke", Role::set),
        ]
    }

    fn busy(&self) -> bool {
        self.change.is_running()
    }

    fn cancel(&mut self) {
        self.change.cancel();
    }

    fn done(&mut self, done: Done, _: &Ctx) -> Vec<Out<Work>> {
        let Done::Changed(r) = done;
        self.change.finish(r);
        vec![Out::Check]
    }

    fn height(&self, _: &Ctx) -> u16 {
        let message = request_line(Default::default(), &self.change).is_some();
        3 + u16::from(self.change.is_running()) + 2 * u16::from(message)
    }

    fn draw(&self, ctx: &Ctx, f: &mut Frame, area: Rect) {
        let mut lines = vec![Line::raw(
            "401 = no valid token (who are you?) · 403 = a valid token without a role (you may not).",
        )];
        if ctx.target == TargetKind::Practice {
            lines.push(Line::from(vec![
                Span::styled("+", bold()),
                Span::raw(" grant DICOM Data Owner to the lab client   "),
                Span::styled("-", bold()),
                Span::raw(" revoke it   — the check runs after each: watch 403 turn into 200"),
            ]));
        } else {
            lines.push(Line::raw(
                "Assign it in the portal: DICOM service → Access control (IAM) → Add role assignment → DICOM Data Owner → your app. Then c.",
            ));
        }
        if self.change.is_running() {
            lines.push(Line::raw("…"));
        }
        lines.extend(request_line(ctx.theme, &self.change));
        paragraph(f, area, lines);
    }

    async fn run(work: Work, io: Io<Done>) {
        let r = dicomlab_lab::actions::set_role(&io.session, work == Work::Grant)
            .await
            .map_err(|e| e.to_string());
        io.send(Done::Changed(r));
    }
}
