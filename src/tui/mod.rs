//! The terminal UI: one [`app::App`] state, [`app::Msg`] messages, a pure [`app::update`] that returns
//! [`app::Effect`]s, a runtime that runs effects on tokio and sends results back as messages, and a
//! [`view::view`] that only reads. It redraws after messages, never at a fixed rate.

pub mod app;
pub mod panels;
pub mod screens;
pub mod view;
pub mod work;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures_util::StreamExt;
use tokio::sync::{Mutex, mpsc};

use self::app::{App, Effect, Msg, update};
use self::screens::{Done, Work};
use crate::config::{Config, Profile};
use crate::dicomweb::StoreMode;
use crate::lab::engine::{Session, SessionError};
use crate::lab::model::Lab;
use crate::lab::progress::ProgressStore;

/// Why the TUI stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("terminal: {0}")]
    Io(#[from] std::io::Error),
}

/// What the TUI needs to start.
pub struct Options {
    pub lab: Lab,
    pub profile_name: String,
    pub profile: Profile,
    /// Every profile, for the target switcher (`t`).
    pub profiles: std::collections::BTreeMap<String, Profile>,
    pub progress_path: PathBuf,
    pub practice_data: PathBuf,
    /// The official sample files, when the learner has them.
    pub samples: Option<PathBuf>,
    pub log_path: PathBuf,
    /// Where the environment screen saves (None: it cannot save).
    pub config_path: Option<PathBuf>,
    /// Ask the learner's name for the report (the config has none yet).
    pub ask_name: bool,
}

/// Runs the TUI until the learner quits.
pub async fn run(opts: Options) -> Result<(), TuiError> {
    let (ex_tx, mut ex_rx) = mpsc::unbounded_channel();
    let mut session = Arc::new(
        Session::open(
            &opts.profile,
            Some(opts.practice_data.clone()),
            Some(ex_tx.clone()),
        )
        .await?,
    );
    let store = Arc::new(Mutex::new(ProgressStore::load(&opts.progress_path)));
    let mut app = App::new(
        opts.lab.clone(),
        opts.profile_name.clone(),
        session.kind,
        session.client.base().to_string(),
    );
    app.ascii = std::env::var("DICOMLAB_ASCII").is_ok_and(|v| v == "1")
        || std::env::var("TERM").is_ok_and(|t| t == "linux" || t == "vt100");
    app.no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    app.profiles = opts.profiles.keys().cloned().collect();
    app.vars = session.placeholders(&opts.lab);
    app.reads_recorded = session.log.is_some();
    if opts.ask_name {
        app.confirm = Some(app::Confirm::Name(String::new()));
    }
    {
        let s = store.lock().await;
        if let Some(w) = &s.warning {
            app.status = Some(w.clone());
        }
        let saved = s.steps(&app.lab.id, &session.target_key);
        update(&mut app, Msg::Progress(saved));
    }
    app.resume();
    update(
        &mut app,
        Msg::Done(form_profile(&opts.profile_name, &opts.profile, &session)),
    );
    let mut profiles = opts.profiles.clone();
    // Requests in flight, for `x` (cancel).
    let mut inflight: Vec<tokio::task::AbortHandle> = Vec::new();

    // The panic hook restores the terminal first, then says where the log is.
    let log_path = opts.log_path.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        ratatui::restore();
        previous(info);
        eprintln!(
            "dicomlab stopped on an internal error; the log is at {}",
            log_path.display()
        );
    }));
    let mut terminal = ratatui::init();
    if let Ok(size) = terminal.size() {
        update(&mut app, Msg::Resize(size.width, size.height));
    }
    // Ask the terminal which graphics it has (kitty, sixel, iTerm2) only when its environment says it
    // has some: the query's reader outlives its timeout on a terminal that never answers and would eat
    // the learner's first key. Half-blocks otherwise — they work everywhere, over SSH and in tmux too.
    if graphics_terminal() {
        let options = ratatui_image::picker::cap_parser::QueryStdioOptions {
            timeout: Duration::from_millis(500),
            ..Default::default()
        };
        if let Ok(p) = ratatui_image::picker::Picker::from_query_stdio_with_options(options) {
            app.picker = p;
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(e) = ex_rx.recv().await {
                if tx.send(Msg::Exchange(e)).is_err() {
                    break;
                }
            }
        });
    }
    let (switch_tx, mut switch_rx) = mpsc::unbounded_channel::<Opened>();
    let mut events = EventStream::new();
    // The token countdown moves in minutes: a slow tick is enough.
    let mut tick = tokio::time::interval(Duration::from_secs(20));
    // The change feed's live tail polls every 2 s, only while it is followed.
    let mut tail = tokio::time::interval(Duration::from_secs(2));
    // Steps waiting for a late audit record are checked again every 30 s, only while some wait.
    let mut recheck = tokio::time::interval(Duration::from_secs(30));
    recheck.reset();
    let lab = Arc::new(opts.lab);
    let mut pending = app::entered(&mut app);
    terminal.draw(|f| view::view(&app, f))?;
    loop {
        let mut effects = std::mem::take(&mut pending);
        let first = tokio::select! {
            biased;
            Some(m) = rx.recv() => m,
            ev = events.next() => match ev {
                Some(Ok(Event::Key(k))) if k.kind == KeyEventKind::Press => Msg::Key(k),
                Some(Ok(Event::Resize(w, h))) => Msg::Resize(w, h),
                Some(Ok(Event::Mouse(m))) if app.mouse => Msg::Mouse(m),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => break,
            },
            Some((name, saved_profile, opened)) = switch_rx.recv() => match opened {
                Ok(new) => {
                    session = Arc::new(new);
                    // A profile saved from the environment screen is the one `t` opens from now on.
                    if let Some(p) = saved_profile {
                        profiles.insert(name.clone(), p);
                    }
                    let saved = store.lock().await.steps(&lab.id, &session.target_key);
                    if let Some(p) = profiles.get(&name) {
                        let _ = tx.send(Msg::Done(form_profile(&name, p, &session)));
                    }
                    Msg::Switched {
                        profile: name,
                        target: session.kind,
                        base_url: session.client.base().to_string(),
                        vars: session.placeholders(&lab),
                        saved,
                        reads_recorded: session.log.is_some(),
                    }
                }
                Err(e) => Msg::SwitchFailed(e),
            },
            _ = tick.tick() => Msg::TokenLeft(session.client.cached_token().map(|t| t.remaining())),
            _ = tail.tick(), if app.ticking() => Msg::Tail,
            _ = recheck.tick(), if !app.waiting().is_empty() => Msg::Recheck,
        };
        if let Msg::Key(k) = &first {
            // Never the characters: a form may be taking a secret.
            let code = match k.code {
                crossterm::event::KeyCode::Char(_) => "a character".to_string(),
                c => format!("{c:?}"),
            };
            tracing::debug!(code, modifiers = ?k.modifiers, focus = ?app.focus, "key");
        }
        effects.extend(update(&mut app, first));
        if !effects.is_empty() {
            tracing::debug!(?effects, "effects");
        }
        // A burst of results costs one frame.
        while let Ok(m) = rx.try_recv() {
            effects.extend(update(&mut app, m));
        }
        inflight.retain(|h| !h.is_finished());
        for effect in effects {
            match effect {
                Effect::SwitchTarget(name) => {
                    let profile = profiles.get(&name).cloned();
                    let (data, switch_tx, ex_tx) =
                        (opts.practice_data.clone(), switch_tx.clone(), ex_tx.clone());
                    tokio::spawn(async move {
                        let opened = open_profile(&name, profile, data, ex_tx).await;
                        let _ = switch_tx.send((name, None, opened));
                    });
                }
                Effect::Work(Work::SaveProfile { name, profile }) => {
                    // Saved off the loop (a slow disk never blocks a key), then opened like `t` does.
                    app.switching = true;
                    let (path, data) = (opts.config_path.clone(), opts.practice_data.clone());
                    let (tx, switch_tx, ex_tx) = (tx.clone(), switch_tx.clone(), ex_tx.clone());
                    tokio::spawn(async move {
                        let profile = *profile;
                        let saved = save_profile(path, &name, &profile).await;
                        let ok = saved.is_ok();
                        let _ = tx.send(Msg::Done(Done::ProfileSaved(saved)));
                        if ok {
                            let opened =
                                open_profile(&name, Some(profile.clone()), data, ex_tx).await;
                            let _ = switch_tx.send((name, Some(profile), opened));
                        }
                    });
                }
                Effect::Cancel => {
                    for h in inflight.drain(..) {
                        h.abort();
                    }
                    let _ = tx.send(Msg::Cancelled);
                }
                Effect::SaveName(name) => {
                    if let Some(path) = opts.config_path.clone() {
                        let tx = tx.clone();
                        tokio::task::spawn_blocking(move || {
                            let saved = Config::load(&path).and_then(|mut c| {
                                c.learner = Some(name);
                                c.save(&path)
                            });
                            if let Err(e) = saved {
                                let _ = tx.send(Msg::Saved(Err(e.to_string())));
                            }
                        });
                    }
                }
                Effect::Mouse(on) => {
                    use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
                    let _ = if on {
                        crossterm::execute!(std::io::stdout(), EnableMouseCapture)
                    } else {
                        crossterm::execute!(std::io::stdout(), DisableMouseCapture)
                    };
                }
                other => {
                    if let Some(h) =
                        spawn_effect(other, &session, &store, &lab, &tx, opts.samples.clone())
                    {
                        inflight.push(h);
                    }
                }
            }
        }
        if app.quit {
            break;
        }
        terminal.draw(|f| view::view(&app, f))?;
    }
    if app.mouse {
        let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture);
    }
    ratatui::restore();
    let _ = store.lock().await.save();
    Ok(())
}

/// A profile's session opened in the background: its name, the profile when it was just saved (the
/// runtime keeps it for `t`), and the session or why not.
type Opened = (String, Option<Profile>, Result<Session, String>);

/// Opens a profile's session.
async fn open_profile(
    name: &str,
    profile: Option<Profile>,
    data: PathBuf,
    ex_tx: mpsc::UnboundedSender<crate::dicomweb::Exchange>,
) -> Result<Session, String> {
    match profile {
        Some(p)
            if p.kind != crate::lab::checks::TargetKind::Practice
                && p.base_url.trim().is_empty() =>
        {
            Err(format!(
                "profile {name} has no base URL yet: fill in the Environment screen or the config file"
            ))
        }
        Some(p) => Session::open(&p, Some(data), Some(ex_tx))
            .await
            .map_err(|e| e.to_string()),
        None => Err(format!("no profile {name}")),
    }
}

/// The profile as the environment form shows it: the embedded service's values (read-only) or the
/// profile's own.
fn form_profile(name: &str, profile: &Profile, session: &Session) -> Done {
    let embedded = session.practice.is_some();
    let mut shown = profile.clone();
    if embedded
        && let crate::dicomweb::AuthConfig::Azure {
            tenant_id,
            client_id,
            client_secret,
            resource,
            ..
        } = session.client.auth()
    {
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

/// Writes a profile into the config file (mode 0600, atomically) and makes it the active one.
async fn save_profile(
    path: Option<PathBuf>,
    name: &str,
    profile: &Profile,
) -> Result<PathBuf, String> {
    let path = path.ok_or("no config file: start dicomlab with --config FILE")?;
    let (name, profile) = (name.to_string(), profile.clone());
    tokio::task::spawn_blocking(move || {
        let mut config = Config::load(&path).map_err(|e| e.to_string())?;
        let stored = config
            .profiles
            .get(&name)
            .cloned()
            .unwrap_or_else(|| Profile::new(profile.kind));
        let profile = crate::config::without_env(&profile, &stored, |k| std::env::var(k).ok());
        config.profiles.insert(name.clone(), profile);
        config.profile = name;
        config.save(&path).map_err(|e| e.to_string())?;
        Ok(path)
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Runs an effect; returns the handle of a request that `x` may cancel.
fn spawn_effect(
    effect: Effect,
    session: &Arc<Session>,
    store: &Arc<Mutex<ProgressStore>>,
    lab: &Arc<Lab>,
    tx: &mpsc::UnboundedSender<Msg>,
    samples: Option<PathBuf>,
) -> Option<tokio::task::AbortHandle> {
    let (session, store, lab, tx) = (session.clone(), store.clone(), lab.clone(), tx.clone());
    let handle = match effect {
        Effect::Work(w) => tokio::spawn(async move {
            work::run(w, &session, &lab, samples, &tx).await;
        }),
        Effect::Check(id) => tokio::spawn(async move {
            // Progress is locked only to read it and to record: never while requests run.
            let before = session.before(&lab, &*store.lock().await);
            if let Some(outcome) = session.run_check(&lab, &before, &id).await {
                let mut s = store.lock().await;
                session.record(&lab, &mut s, &id, &outcome);
                let _ = tx.send(Msg::Saved(s.save().map_err(|e| e.to_string())));
                drop(s);
                let _ = tx.send(Msg::Checked { step: id, outcome });
            }
            send_token(&session, &tx);
        }),
        Effect::CheckAll => tokio::spawn(async move {
            let before = session.before(&lab, &*store.lock().await);
            let out = session.run_all(&lab, &before, None).await;
            let mut s = store.lock().await;
            for (step, outcome) in out {
                session.record(&lab, &mut s, &step, &outcome);
                let _ = tx.send(Msg::Checked { step, outcome });
            }
            let _ = tx.send(Msg::Saved(s.save().map_err(|e| e.to_string())));
            send_token(&session, &tx);
        }),
        Effect::Do(id) => tokio::spawn(async move {
            let Some(step) = lab.step(&id) else { return };
            let subject = lab.step_of_kind("tag_added").and_then(|t| {
                store
                    .try_lock()
                    .ok()?
                    .steps(&lab.id, &session.target_key)
                    .get(&t.id)?
                    .subject
                    .clone()
            });
            let result = crate::lab::actions::perform(
                &session,
                &lab,
                step,
                samples.as_deref(),
                StoreMode::Single,
                subject.as_deref(),
            )
            .await
            .map_err(|e| crate::text::visible(&e.to_string()).into_owned());
            let _ = tx.send(Msg::Did { step: id, result });
        }),
        Effect::Credit { step, summary } => {
            tokio::spawn(async move {
                let evidence = crate::lab::evidence::Evidence::new(
                    crate::lab::evidence::Source::Dicomlab,
                    summary,
                    Some(time::OffsetDateTime::now_utc()),
                );
                let mut s = store.lock().await;
                s.credit(&lab.id, &session.target_key, &step, evidence.clone());
                let _ = tx.send(Msg::Saved(s.save().map_err(|e| e.to_string())));
                drop(s);
                let outcome = crate::lab::Outcome::Pass {
                    detail: "imported in dicomlab".into(),
                    evidence,
                };
                let _ = tx.send(Msg::Checked { step, outcome });
            });
            return None;
        }
        Effect::Keep(exchange) => {
            tokio::spawn(async move {
                let mut s = store.lock().await;
                session.keep_exchange(&lab, &mut s, &exchange);
            });
            return None;
        }
        Effect::Answer { step, value } => tokio::spawn(async move {
            let before = session.before(&lab, &*store.lock().await);
            let outcome = session.answer(&lab, &before, &step, &value).await;
            let mut s = store.lock().await;
            if let Some(e) = outcome.evidence() {
                s.credit(&lab.id, &session.target_key, &step, e.clone());
            } else {
                session.record(&lab, &mut s, &step, &outcome);
            }
            let _ = tx.send(Msg::Saved(s.save().map_err(|e| e.to_string())));
            drop(s);
            let _ = tx.send(Msg::Checked { step, outcome });
        }),
        Effect::Skip(id) => {
            tokio::spawn(async move {
                let mut s = store.lock().await;
                s.skip(&lab.id, &session.target_key, &id);
                let _ = tx.send(Msg::Saved(s.save().map_err(|e| e.to_string())));
            });
            return None;
        }
        Effect::Reset(id) => {
            tokio::spawn(async move {
                let mut s = store.lock().await;
                s.reset(&lab.id, &session.target_key, id.as_deref());
                let _ = tx.send(Msg::Saved(s.save().map_err(|e| e.to_string())));
            });
            return None;
        }
        Effect::Copy(text) => {
            // OSC 52: the terminal (even over SSH, in tmux with set-clipboard on) puts it on the clipboard.
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD.encode(text);
            let mut out = std::io::stdout();
            let _ = write!(out, "\x1b]52;c;{b64}\x07");
            let _ = out.flush();
            return None;
        }
        Effect::LoadImage(_) => tokio::spawn(async move {
            // The instance the viewer step names (the lab's dataset).
            let Some(inst) = lab
                .steps()
                .find(|s| s.screen() == Some(crate::lab::model::ScreenKind::Viewer))
                .and_then(|s| s.instance.as_deref())
                .and_then(|n| lab.dataset.instance(n))
                .map(|i| i.path())
            else {
                let _ = tx.send(Msg::Image(Err("the lab names no instance to view".into())));
                return;
            };
            let path = format!("{inst}/rendered");
            let body: Result<Vec<u8>, String> = match session.client.get(&path, "image/png").await {
                Ok(a) if a.ok() => Ok(a.body.to_vec()),
                Ok(a) => Err(format!("the service answered {}", a.status)),
                Err(e) => Err(e.to_string()),
            };
            let result = match body {
                Ok(body) => tokio::task::spawn_blocking(move || {
                    image::load_from_memory(&body)
                        .map(Arc::new)
                        .map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string())),
                Err(e) => Err(e),
            };
            let _ = tx.send(Msg::Image(result));
            // The key attributes beside the picture, from the instance's metadata.
            if let Ok(a) = session
                .client
                .get(&format!("{inst}/metadata"), "application/dicom+json")
                .await
                && let Some(ds) = a.results().first()
            {
                let _ = tx.send(Msg::ImageAttributes(screens::key_attributes(ds)));
            }
        }),
        Effect::SwitchTarget(_)
        | Effect::Quit
        | Effect::Cancel
        | Effect::Mouse(_)
        | Effect::SaveName(_) => return None,
    };
    Some(handle.abort_handle())
}

/// Whether the terminal announces a graphics protocol (or `DICOMLAB_GRAPHICS=query` asks to probe).
fn graphics_terminal() -> bool {
    let var = |k: &str| std::env::var(k).unwrap_or_default().to_ascii_lowercase();
    match var("DICOMLAB_GRAPHICS").as_str() {
        "query" => return true,
        "halfblocks" => return false,
        _ => {}
    }
    let term = var("TERM");
    let program = var("TERM_PROGRAM");
    std::env::var_os("KITTY_WINDOW_ID").is_some()
        || std::env::var_os("WEZTERM_EXECUTABLE").is_some()
        || ["kitty", "foot", "mlterm", "ghostty", "wezterm", "sixel"]
            .iter()
            .any(|t| term.contains(t))
        || ["iterm.app", "wezterm", "ghostty"]
            .iter()
            .any(|p| program == *p)
}

/// The token's time left and claims, for the status bar and the token step.
fn send_token(session: &Session, tx: &mpsc::UnboundedSender<Msg>) {
    let token = session.client.cached_token();
    let _ = tx.send(Msg::TokenLeft(token.as_ref().map(|t| t.remaining())));
    let _ = tx.send(Msg::Claims(token.and_then(|t| t.claims)));
}
