//! One-line input fields in a small form, named by a key type of the screen's own (never by position):
//! `form.value(SearchField::Limit)`. The form has the keys while `editing`: Tab and ↑↓ move between
//! fields, Enter submits, Esc leaves, Ctrl-U clears the field.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui_textarea::TextArea;

use crate::theme::{Theme, bold};

/// The names of a form's fields.
pub trait FieldKey: Copy + Eq {
    /// How the field is labelled on screen.
    fn label(self) -> &'static str;
    /// A secret: shown masked, never in clear.
    fn masked(self) -> bool {
        false
    }
}

/// A labelled single-line input.
pub struct Field<K> {
    /// Which field it is (the form is read by these names).
    pub key: K,
    /// What is typed, with its cursor.
    pub input: TextArea<'static>,
}

impl<K: FieldKey> Field<K> {
    pub fn new(key: K, value: &str) -> Field<K> {
        let mut input = TextArea::new(vec![value.to_string()]);
        input.move_cursor(ratatui_textarea::CursorMove::End);
        if key.masked() {
            input.set_mask_char('•');
        }
        Field { key, input }
    }

    pub fn value(&self) -> String {
        self.input.lines().concat()
    }
}

/// What a key did to a form.
#[derive(Debug, PartialEq, Eq)]
pub enum FormKey {
    /// Enter: the form is done.
    Submit,
    /// Esc: editing stopped.
    Leave,
    Used,
}

/// A few fields, one focused; `editing` while it has the keys.
pub struct Form<K> {
    /// In the order Tab visits them.
    pub fields: Vec<Field<K>>,
    /// The field Tab is on.
    pub focus: usize,
    /// The form has the keys.
    pub editing: bool,
    /// Secrets are shown in clear (the learner asked: `s`).
    pub reveal: bool,
}

impl<K: FieldKey> Form<K> {
    /// Fields with their starting values, not being edited.
    pub fn new(fields: impl IntoIterator<Item = (K, impl AsRef<str>)>) -> Form<K> {
        Form {
            fields: fields
                .into_iter()
                .map(|(k, v)| Field::new(k, v.as_ref()))
                .collect(),
            focus: 0,
            editing: false,
            reveal: false,
        }
    }

    /// The same, with the keys (a form that opens to be typed in).
    pub fn editing(fields: impl IntoIterator<Item = (K, impl AsRef<str>)>) -> Form<K> {
        Form {
            editing: true,
            ..Form::new(fields)
        }
    }

    /// A field's text ("" for a field the form does not have).
    pub fn value(&self, key: K) -> String {
        self.fields
            .iter()
            .find(|f| f.key == key)
            .map(Field::value)
            .unwrap_or_default()
    }

    /// Replaces a field's text.
    pub fn set(&mut self, key: K, value: &str) {
        if let Some(f) = self.fields.iter_mut().find(|f| f.key == key) {
            *f = Field::new(key, value);
        }
    }

    pub fn key(&mut self, key: KeyEvent) -> FormKey {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let n = self.fields.len().max(1);
        match key.code {
            KeyCode::Enter => return FormKey::Submit,
            KeyCode::Esc => {
                self.editing = false;
                return FormKey::Leave;
            }
            KeyCode::Tab | KeyCode::Down => self.focus = (self.focus + 1) % n,
            KeyCode::BackTab | KeyCode::Up => self.focus = (self.focus + n - 1) % n,
            // Newlines have no place in a one-line field.
            KeyCode::Char('m') if ctrl => {}
            // Ctrl-U clears the field, as in a shell.
            KeyCode::Char('u') if ctrl => {
                if let Some(f) = self.fields.get_mut(self.focus) {
                    f.input.move_cursor(ratatui_textarea::CursorMove::End);
                    f.input.delete_line_by_head();
                }
            }
            _ => {
                if let Some(f) = self.fields.get_mut(self.focus) {
                    f.input.input(key);
                }
            }
        }
        FormKey::Used
    }

    /// A key for a form that is sent when it is done: true on Enter (the form then stops editing).
    pub fn submitted(&mut self, key: KeyEvent) -> bool {
        let done = self.key(key) == FormKey::Submit;
        if done {
            self.editing = false;
        }
        done
    }

    /// One field as a line: its label, then its text (masked for secrets unless revealed, its end kept
    /// when long), underlined with a cursor while it is being typed in.
    pub fn line(&self, theme: Theme, key: K, width: u16) -> Line<'static> {
        self.line_picking(theme, key, width, false)
    }

    /// The same; with `picking`, the focused field is marked while the form is not typed in (a list
    /// to pick a value from: to copy it).
    fn line_picking(&self, theme: Theme, key: K, width: u16, picking: bool) -> Line<'static> {
        let Some((i, field)) = self.fields.iter().enumerate().find(|(_, f)| f.key == key) else {
            return Line::raw("");
        };
        let value = field.value();
        let shown = if key.masked() && !value.is_empty() && !self.reveal {
            dicomlab_dicomweb::Secret::new(value).masked()
        } else {
            value
        };
        let focus = self.editing && self.focus == i;
        let picked = picking && !self.editing && self.focus == i;
        let mark = if focus {
            theme.glyph("›", ">")
        } else if picked {
            theme.glyph("»", ">")
        } else {
            " "
        };
        let room = (width as usize).saturating_sub(14);
        let shown: String = if shown.chars().count() > room {
            let n = shown.chars().count();
            format!("…{}", shown.chars().skip(n - room + 1).collect::<String>())
        } else {
            shown
        };
        let style = if focus {
            Style::default().add_modifier(Modifier::UNDERLINED)
        } else {
            Style::default()
        };
        Line::from(vec![
            Span::raw(mark.to_string()),
            Span::styled(
                format!("{:<12} ", key.label()),
                if picked {
                    bold().add_modifier(Modifier::REVERSED)
                } else {
                    bold()
                },
            ),
            Span::styled(shown, style),
            Span::raw(if focus { "▏" } else { "" }),
        ])
    }

    /// Every field as a line, in order.
    pub fn lines(&self, theme: Theme, width: u16) -> Vec<Line<'static>> {
        self.lines_picking(theme, width, false)
    }

    /// Every field as a line, the focused one marked when `picking` (see `Form::line_picking`).
    pub fn lines_picking(&self, theme: Theme, width: u16, picking: bool) -> Vec<Line<'static>> {
        self.fields
            .iter()
            .map(|f| self.line_picking(theme, f.key, width, picking))
            .collect()
    }

    /// The focused field: its label and text (what a copy takes).
    pub fn focused(&self) -> Option<(K, String)> {
        self.fields.get(self.focus).map(|f| (f.key, f.value()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Login {
        User,
        Password,
    }

    impl FieldKey for Login {
        fn label(self) -> &'static str {
            match self {
                Login::User => "user",
                Login::Password => "password",
            }
        }
        fn masked(self) -> bool {
            self == Login::Password
        }
    }

    fn press(form: &mut Form<Login>, code: KeyCode) -> FormKey {
        form.key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    #[test]
    fn fields_are_read_by_name_and_secrets_never_shown() {
        let mut form = Form::editing([(Login::User, "ada"), (Login::Password, "")]);
        press(&mut form, KeyCode::Tab);
        for c in "s3cret".chars() {
            press(&mut form, KeyCode::Char(c));
        }
        assert_eq!(form.value(Login::User), "ada");
        assert_eq!(form.value(Login::Password), "s3cret");
        let line = form.line(Theme::default(), Login::Password, 80).to_string();
        assert!(!line.contains("s3cret"), "{line}");
        form.set(Login::User, "grace");
        assert_eq!(form.value(Login::User), "grace");
        assert_eq!(press(&mut form, KeyCode::Enter), FormKey::Submit);
        assert_eq!(press(&mut form, KeyCode::Esc), FormKey::Leave);
        assert!(!form.editing);
    }
}
