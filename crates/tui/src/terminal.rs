//! The local terminal as a [`Channel`]: crossterm's event stream in, stdout out, raw mode on while the
//! TUI runs, and a panic hook that gives the terminal back before the panic is printed. Its graphics
//! are asked of it (`graphics.rs`) only when its environment says it has some: a terminal that never
//! answers would keep the reader waiting and eat the learner's first key.

use std::io::Read;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use crossterm::cursor::Show;
use crossterm::event::{DisableMouseCapture, EventStream};
use crossterm::terminal::{LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};
use ratatui_image::picker::Picker;

use super::runtime::{self, Channel};
use super::theme::Theme;
use super::{Options, TuiError, graphics};

/// How long the terminal has to answer the graphics question.
const ANSWER_TIME: Duration = Duration::from_millis(500);

/// Runs the TUI in this process's terminal until the learner quits.
pub(crate) async fn run(opts: Options) -> Result<(), TuiError> {
    enable_raw_mode()?;
    let log_path = opts.log_path.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        give_back();
        previous(info);
        eprintln!(
            "dicomlab stopped on an internal error; the log is at {}",
            log_path.display()
        );
    }));
    let env = |k: &str| std::env::var(k).ok();
    let mut out = std::io::stdout();
    let picker = if graphics_terminal(env) {
        ask_graphics(&mut out, env)
    } else {
        Picker::halfblocks()
    };
    let result = match crossterm::terminal::size() {
        Ok(size) => {
            let channel = Channel {
                events: EventStream::new(),
                out,
                size,
                theme: Theme::from_env(env),
                picker,
            };
            runtime::run(opts, channel).await
        }
        Err(e) => Err(e.into()),
    };
    let _ = disable_raw_mode();
    result
}

/// The terminal as it was before the TUI (for a panic: the runtime does this itself otherwise).
fn give_back() {
    let _ = disable_raw_mode();
    let _ = crossterm::execute!(
        std::io::stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        Show
    );
}

/// Whether the terminal announces a graphics protocol (or `DICOMLAB_GRAPHICS=query` asks to probe).
fn graphics_terminal(env: impl Fn(&str) -> Option<String>) -> bool {
    let var = |k: &str| env(k).unwrap_or_default().to_ascii_lowercase();
    match var("DICOMLAB_GRAPHICS").as_str() {
        "query" => return true,
        "halfblocks" => return false,
        _ => {}
    }
    let term = var("TERM");
    let program = var("TERM_PROGRAM");
    env("KITTY_WINDOW_ID").is_some()
        || env("WEZTERM_EXECUTABLE").is_some()
        || ["kitty", "foot", "mlterm", "ghostty", "wezterm", "sixel"]
            .iter()
            .any(|t| term.contains(t))
        || ["iterm.app", "wezterm", "ghostty"]
            .iter()
            .any(|p| program == *p)
}

/// Asks the terminal for its graphics through `out`, reads the answer from stdin (before the event
/// stream starts reading it), and falls back to the cell size the tty reports.
fn ask_graphics(out: &mut impl std::io::Write, env: impl Fn(&str) -> Option<String>) -> Picker {
    // WezTerm and Konsole announce kitty or sixel graphics they draw badly: not asked for.
    let kitty = env("WEZTERM_EXECUTABLE").is_none_or(|v| v.is_empty())
        && env("KONSOLE_VERSION").is_none_or(|v| v.is_empty());
    // Inside tmux the question passes through only once tmux allows it (this turns it on).
    let is_tmux = Picker::halfblocks().tmux_detected();
    let asked = out
        .write_all(graphics::question(is_tmux, kitty).as_bytes())
        .and_then(|()| out.flush());
    let fallback = crossterm::terminal::window_size().ok().and_then(|w| {
        (w.columns > 0 && w.rows > 0 && w.width > 0 && w.height > 0)
            .then(|| (w.width / w.columns, w.height / w.rows))
    });
    if asked.is_err() {
        return graphics::Answer::default().picker(fallback);
    }
    let (tx, rx) = std_mpsc::channel();
    // The reader stops by itself once the answer is complete; a terminal that never answers keeps it
    // waiting (hence asking only terminals that announce graphics).
    std::thread::spawn(move || {
        let mut answer = graphics::Answer::default();
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 64];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) if answer.push(&buf[..n]) => break,
                Ok(_) => {}
            }
        }
        let _ = tx.send(answer);
    });
    match rx.recv_timeout(ANSWER_TIME) {
        Ok(answer) => answer.picker(fallback),
        Err(_) => graphics::Answer::default().picker(fallback),
    }
}

#[cfg(test)]
mod tests {
    use super::graphics_terminal;
    use crate::theme::tests::env;

    #[test]
    fn only_terminals_that_announce_graphics_are_asked() {
        assert!(!graphics_terminal(env(&[("TERM", "xterm-256color")])));
        assert!(graphics_terminal(env(&[("TERM", "xterm-kitty")])));
        assert!(graphics_terminal(env(&[("TERM_PROGRAM", "WezTerm")])));
        assert!(graphics_terminal(env(&[("DICOMLAB_GRAPHICS", "query")])));
        assert!(!graphics_terminal(env(&[
            ("TERM", "xterm-kitty"),
            ("DICOMLAB_GRAPHICS", "halfblocks")
        ])));
    }
}
