//! The TUI: the app without a terminal (update and view), its screens as insta snapshots at 80×24
//! and 120×40, the runtime, the work a screen starts, and end to end in tmux. One test binary for
//! these (cargo links each binary once); the helpers are `dicomlab-testkit`.

mod tui_app;
mod tui_e2e;
mod tui_runtime;
mod tui_screens;
mod tui_snapshots;
mod tui_work;
