//! A learner's values on one screen — what Postman, curl or Python on their laptop need to reach their
//! own service — with the secret masked until asked, each value copyable (OSC 52: works over SSH and in
//! tmux) and the whole set as a Postman environment. An SSH session shows it when the learner leaves
//! the lab (`q`): Enter goes back, `q` leaves. A small Elm-style app: a pure `update`, a `view` that
//! only reads. [`LearnerEnv`]: the values themselves, as the classroom makes them at a login.

use std::io::Write;

use base64::Engine;
use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use futures_util::StreamExt;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::{Frame, Terminal as RatatuiTerminal, TerminalOptions, Viewport};

use crate::names::LearnerName;
use dicomlab_dicomweb::Secret;
use dicomlab_lab::config::Profile;
use dicomlab_lab::targets::TargetKind;

/// A learner's values: what their lab client uses, and what they give Postman or curl.
#[derive(Debug, Clone)]
pub struct LearnerEnv {
    pub name: LearnerName,
    /// Inside this process: `http://127.0.0.1:PORT/l/{name}/v1`.
    pub base_url: String,
    /// From the learners' machines: `http://classroom:8080/l/{name}/v1`.
    pub public_base_url: String,
    /// The token endpoint's authority inside this process (`…/l/{name}`).
    pub authority: String,
    pub public_authority: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub resource: String,
    pub workspace_id: String,
}

impl LearnerEnv {
    /// The learner's profile inside this process: their TUI and the classroom's checks use it.
    pub fn profile(&self) -> Profile {
        let mut p = Profile::new(TargetKind::Practice);
        p.base_url = self.base_url.clone();
        p.tenant_id = self.tenant_id.clone();
        p.client_id = self.client_id.clone();
        p.client_secret = self.client_secret.clone();
        p.resource = self.resource.clone();
        p.authority = self.authority.clone();
        p.log_workspace = self.workspace_id.clone();
        p.log_delay_secs = Some(0);
        p
    }
}

/// A learner's values as their laptop uses them (the public URLs).
#[derive(Debug, Clone)]
pub(crate) struct Values {
    pub name: String,
    pub base_url: String,
    /// Before `/{tenant}/oauth2/token`: the learner's service root on the public port.
    pub authority: String,
    pub token_url: String,
    pub token_url_v2: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub resource: String,
    pub log_query_url: String,
    /// Their personal code, the SSH password (masked like the secret; never in the Postman file).
    pub personal_code: Option<Secret>,
}

impl Values {
    pub(crate) fn of(env: &LearnerEnv) -> Values {
        let authority = &env.public_authority;
        Values {
            name: env.name.to_string(),
            base_url: env.public_base_url.clone(),
            authority: authority.clone(),
            token_url: format!("{authority}/{}/oauth2/token", env.tenant_id),
            token_url_v2: format!("{authority}/{}/oauth2/v2.0/token", env.tenant_id),
            tenant_id: env.tenant_id.clone(),
            client_id: env.client_id.clone(),
            client_secret: env.client_secret.clone(),
            resource: env.resource.clone(),
            log_query_url: format!(
                "{authority}/loganalytics/v1/workspaces/{}/query",
                env.workspace_id
            ),
            personal_code: None,
        }
    }

    /// With the learner's personal code.
    pub(crate) fn with_code(mut self, code: Option<Secret>) -> Values {
        self.personal_code = code;
        self
    }

    /// `(label, value, secret)` in the order shown.
    fn rows(&self) -> Vec<(&'static str, &str, bool)> {
        let mut rows: Vec<(&'static str, &str, bool)> = vec![
            ("baseUrl", &self.base_url, false),
            ("token URL (v1)", &self.token_url, false),
            ("token URL (v2)", &self.token_url_v2, false),
            ("tenantId", &self.tenant_id, false),
            ("clientId", &self.client_id, false),
            ("clientSecret", self.client_secret.expose(), true),
            ("resource", &self.resource, false),
            ("audit log (workspace)", &self.log_query_url, false),
        ];
        if let Some(code) = &self.personal_code {
            rows.push(("personal code (ssh)", code.expose(), true));
        }
        rows
    }

    /// The workshop's Postman environment, filled with these values (as `dicomlab postman export`
    /// writes it: `clientSecret` typed secret).
    pub(crate) fn postman_environment(&self) -> String {
        dicomlab_lab::postman::environment(&dicomlab_lab::postman::Variables {
            label: self.name.clone(),
            base_url: self.base_url.clone(),
            tenant_id: self.tenant_id.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            resource: self.resource.clone(),
            authority: self.authority.clone(),
        })
        .to_string()
    }
}

/// The screen's state.
pub(crate) struct ValuesScreen {
    pub values: Values,
    pub selected: usize,
    pub reveal: bool,
    pub status: String,
}

/// What happens.
pub(crate) enum Msg {
    Key(KeyEvent),
}

/// What to do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Put this text on the learner's clipboard (OSC 52).
    Copy(String),
    /// Back to the lab.
    Lab,
    Quit,
}

pub(crate) fn update(s: &mut ValuesScreen, msg: Msg) -> Vec<Effect> {
    let Msg::Key(k) = msg;
    if k.kind != KeyEventKind::Press {
        return Vec::new();
    }
    let rows = s.values.rows().len();
    match k.code {
        KeyCode::Char('q') | KeyCode::Esc => return vec![Effect::Quit],
        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
            return vec![Effect::Quit];
        }
        KeyCode::Up | KeyCode::Char('k') => s.selected = s.selected.saturating_sub(1),
        KeyCode::Down | KeyCode::Char('j') => s.selected = (s.selected + 1).min(rows - 1),
        KeyCode::Char('s') => s.reveal = !s.reveal,
        KeyCode::Enter | KeyCode::Tab => return vec![Effect::Lab],
        KeyCode::Char('y') => {
            if let Some((label, value, _)) = s.values.rows().get(s.selected) {
                s.status = format!("copied {label} to your clipboard");
                return vec![Effect::Copy(value.to_string())];
            }
        }
        KeyCode::Char('P') => {
            s.status =
                "copied a Postman environment (JSON) to your clipboard: paste it into a file and import it".into();
            return vec![Effect::Copy(s.values.postman_environment())];
        }
        _ => {}
    }
    Vec::new()
}

pub(crate) fn view(s: &ValuesScreen, f: &mut Frame) {
    let [head, body, foot] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(3),
        Constraint::Length(2),
    ])
    .areas(f.area());
    f.render_widget(
        Paragraph::new(vec![
            Line::from(Span::styled(
                format!("dicomlab classroom · {}'s DICOM service", s.values.name),
                Style::default().add_modifier(Modifier::BOLD),
            )),
            Line::from(
                "Postman, curl or Python on your laptop reach your own service with these values.",
            ),
        ]),
        head,
    );
    let lines: Vec<Line> = s
        .values
        .rows()
        .into_iter()
        .enumerate()
        .map(|(i, (label, value, secret))| {
            let shown = if secret && !s.reveal {
                // A short secret (the personal code) shows no part of itself.
                let masked = if value.chars().count() <= 16 {
                    "••••••••".to_string()
                } else {
                    Secret::new(value).masked()
                };
                format!("{masked} (s shows it)")
            } else {
                value.to_string()
            };
            let mark = if i == s.selected { "» " } else { "  " };
            let style = if i == s.selected {
                Style::default().add_modifier(Modifier::REVERSED)
            } else {
                Style::default()
            };
            Line::from(vec![
                Span::raw(mark),
                Span::styled(format!("{label:<22}"), style),
                Span::raw(" "),
                Span::raw(shown),
            ])
        })
        .collect();
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" Your values "),
        ),
        body,
    );
    f.render_widget(
        Paragraph::new(vec![
            Line::from(s.status.clone()),
            Line::from(
                "↑ ↓ choose  y copy  P copy a Postman environment  s show/hide the secrets  q quit",
            ),
        ]),
        foot,
    );
}

/// The OSC 52 sequence that puts `text` on the terminal's clipboard.
pub(crate) fn osc52(text: &str) -> String {
    format!(
        "\x1b]52;c;{}\x07",
        base64::engine::general_purpose::STANDARD.encode(text)
    )
}

/// The screen a learner sees once, at the login that gave them their personal code.
pub(crate) fn code_view(name: &str, code: &Secret, f: &mut Frame) {
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let lines = vec![
        Line::from(Span::styled(
            format!("dicomlab classroom · welcome, {name}"),
            bold,
        )),
        Line::from(""),
        Line::from(vec![
            Span::raw("Your personal code is "),
            Span::styled(
                code.expose().to_string(),
                bold.add_modifier(Modifier::REVERSED),
            ),
            Span::raw(" — from now on log in with it instead of the class code."),
        ]),
        Line::from(""),
        Line::from(
            "Write it down: the class code no longer logs in as you, so nobody else can take your session, your service or your secret.",
        ),
        Line::from(
            "Your values screen (q in the lab) shows it again; if you lose it, the instructor can read it to you.",
        ),
        Line::from(""),
        Line::from("Enter opens the lab."),
    ];
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" Your personal code "),
        ),
        f.area(),
    );
}

/// A learner's terminal as a ratatui screen of its own size, on the alternate screen, cleared. Never
/// `Terminal::clear`: it asks this process's own terminal where its cursor is.
fn remote_screen<W: Write>(
    out: W,
    size: (u16, u16),
) -> std::io::Result<RatatuiTerminal<CrosstermBackend<W>>> {
    let mut term = RatatuiTerminal::with_options(
        CrosstermBackend::new(out),
        TerminalOptions {
            viewport: Viewport::Fixed(Rect::new(0, 0, size.0, size.1)),
        },
    )?;
    crossterm::execute!(
        term.backend_mut(),
        crossterm::terminal::EnterAlternateScreen,
        crossterm::terminal::Clear(crossterm::terminal::ClearType::All),
        crossterm::cursor::Hide
    )?;
    Ok(term)
}

/// Gives a learner's terminal back from [`remote_screen`]: the cursor shown, the alternate screen left.
fn leave_remote_screen<W: Write>(term: &mut RatatuiTerminal<CrosstermBackend<W>>) {
    let _ = crossterm::execute!(
        term.backend_mut(),
        crossterm::cursor::Show,
        crossterm::terminal::LeaveAlternateScreen
    );
}

/// Shows [`code_view`] until the learner presses Enter (the lab) or leaves.
pub(crate) async fn show_code<E, W>(
    name: &str,
    code: &Secret,
    events: &mut E,
    out: &mut W,
    size: (u16, u16),
) -> std::io::Result<Choice>
where
    E: futures_util::Stream<Item = std::io::Result<Event>> + Unpin,
    W: Write,
{
    let mut term = remote_screen(out, size)?;
    let result = async {
        term.draw(|f| code_view(name, code, f))?;
        while let Some(ev) = events.next().await {
            match ev? {
                Event::Key(k) if k.kind == KeyEventKind::Press => match k.code {
                    KeyCode::Enter => return Ok(Choice::Lab),
                    KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                        return Ok(Choice::Leave);
                    }
                    _ => continue,
                },
                Event::Resize(w, h) => term.resize(Rect::new(0, 0, w, h))?,
                _ => continue,
            }
            term.draw(|f| code_view(name, code, f))?;
        }
        Ok(Choice::Leave)
    }
    .await;
    leave_remote_screen(&mut term);
    result
}

/// What the learner chose on the values screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Choice {
    /// Back to the lab.
    Lab,
    /// Leave (or the connection ended).
    Leave,
}

/// Shows the values screen on a terminal until the learner goes back to the lab or leaves; `size`
/// follows resizes.
pub(crate) async fn show<E, W>(
    values: Values,
    events: &mut E,
    out: &mut W,
    size: (u16, u16),
) -> std::io::Result<Choice>
where
    E: futures_util::Stream<Item = std::io::Result<Event>> + Unpin,
    W: Write,
{
    let mut screen = ValuesScreen {
        values,
        selected: 0,
        reveal: false,
        status: "Enter goes back to the lab.".into(),
    };
    let mut term = remote_screen(out, size)?;
    let result = async {
        term.draw(|f| view(&screen, f))?;
        while let Some(ev) = events.next().await {
            match ev? {
                Event::Key(k) => {
                    for e in update(&mut screen, Msg::Key(k)) {
                        match e {
                            Effect::Quit => return Ok(Choice::Leave),
                            Effect::Lab => return Ok(Choice::Lab),
                            Effect::Copy(t) => {
                                let w = term.backend_mut();
                                w.write_all(osc52(&t).as_bytes())?;
                                w.flush()?;
                            }
                        }
                    }
                }
                Event::Resize(w, h) => term.resize(Rect::new(0, 0, w, h))?,
                _ => continue,
            }
            term.draw(|f| view(&screen, f))?;
        }
        Ok(Choice::Leave)
    }
    .await;
    leave_remote_screen(&mut term);
    result
}
