//! How the TUI draws symbols and colors on the terminal it runs on: Unicode or ASCII symbols, colors or
//! none (`NO_COLOR`). Symbols carry the meaning on their own, so no color is ever needed to read a state.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;

/// The terminal's symbols and colors, read once from its environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Theme {
    /// ASCII symbols instead of Unicode: the Linux console and vt100 have no `✓`.
    pub ascii: bool,
    /// No colors (`NO_COLOR`): the symbols say everything.
    pub no_color: bool,
}

impl Theme {
    /// The theme a terminal's environment asks for (`DICOMLAB_ASCII=1`, `TERM=linux`/`vt100`,
    /// `NO_COLOR`); `var` reads one variable, so a remote terminal passes its own.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Theme {
        Theme {
            ascii: var("DICOMLAB_ASCII").is_some_and(|v| v == "1")
                || var("TERM").is_some_and(|t| t == "linux" || t == "vt100"),
            no_color: var("NO_COLOR").is_some_and(|v| !v.is_empty()),
        }
    }

    /// A Unicode symbol, or its ASCII fallback.
    pub fn glyph(self, unicode: &'static str, ascii: &'static str) -> &'static str {
        if self.ascii { ascii } else { unicode }
    }

    /// A foreground color, or none under `NO_COLOR`.
    pub fn fg(self, color: Color) -> Style {
        if self.no_color {
            Style::default()
        } else {
            Style::default().fg(color)
        }
    }

    /// The color of a state symbol: green done, red failed, yellow running, grey skipped or unsupported.
    pub fn symbol_style(self, sym: &str) -> Style {
        match sym {
            "✓" | "+" => self.fg(Color::Green),
            "✗" | "x" => self.fg(Color::Red),
            "…" | "." => self.fg(Color::Yellow),
            "–" | "-" | "⤼" | "~" => self.fg(Color::DarkGray),
            _ => Style::default(),
        }
    }

    /// ✓ or ✗, colored.
    pub fn ok(self, ok: bool) -> Span<'static> {
        if ok {
            Span::styled(self.glyph("✓", "+"), self.fg(Color::Green))
        } else {
            Span::styled(self.glyph("✗", "x"), self.fg(Color::Red))
        }
    }
}

/// Bold: labels, titles and the pane that has the keys.
pub fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

/// Reversed: the selected row.
pub fn reversed() -> Style {
    Style::default().add_modifier(Modifier::REVERSED)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An environment of these variables.
    pub(crate) fn env(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<String> {
        move |k: &str| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_environment_picks_symbols_and_colors() {
        assert_eq!(Theme::from_env(env(&[])), Theme::default());
        assert!(Theme::from_env(env(&[("TERM", "linux")])).ascii);
        assert!(Theme::from_env(env(&[("DICOMLAB_ASCII", "1")])).ascii);
        assert!(Theme::from_env(env(&[("NO_COLOR", "1")])).no_color);
        assert!(!Theme::from_env(env(&[("NO_COLOR", "")])).no_color);
    }
}
