//! DICOM JSON as a tree, like `dicom-dump`: tag, keyword, VR, value; sequences, items and instances fold.
//! The search screen opens a result in one, the retrieve screen shows metadata in one.

use std::collections::BTreeSet;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;
use serde_json::Value;

use crate::theme::{Theme, bold, reversed};

/// One row of a tag tree.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeRow {
    /// Nesting: items and their elements sit deeper than their sequence.
    pub depth: u16,
    /// `(gggg,eeee)`; empty for an item or an instance.
    pub tag: String,
    /// The attribute's keyword (`PatientName`), an item's or an instance's name.
    pub keyword: String,
    /// The value representation (`PN`, `UI`, `SQ`…).
    pub vr: String,
    /// The value as one line (a sequence: how many items).
    pub value: String,
    /// A sequence, an item or an instance: it folds.
    pub container: bool,
}

/// The rows, which are folded, and the selection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TagTree {
    /// Every row, in order, folded or not.
    pub rows: Vec<TreeRow>,
    /// Indexes into `rows` of the folded containers.
    pub folded: BTreeSet<usize>,
    /// Index into `visible()`.
    pub selected: usize,
}

impl TagTree {
    /// One dataset.
    pub fn of_dataset(v: &Value) -> TagTree {
        let mut t = TagTree::default();
        t.push_dataset(v, 0);
        t
    }

    /// Several datasets (WADO metadata): one folding node per instance, the first one open.
    pub fn of_datasets(all: &[Value]) -> TagTree {
        let mut t = TagTree::default();
        for (i, ds) in all.iter().enumerate() {
            t.rows.push(TreeRow {
                depth: 0,
                tag: String::new(),
                keyword: format!("Instance {}", i + 1),
                vr: String::new(),
                value: value_of(ds, "00080018"),
                container: true,
            });
            if i > 0 {
                t.folded.insert(t.rows.len() - 1);
            }
            t.push_dataset(ds, 1);
        }
        t
    }

    fn push_dataset(&mut self, v: &Value, depth: u16) {
        let Some(map) = v.as_object() else { return };
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for key in keys {
            let el = &map[key];
            let vr = el
                .get("vr")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let keyword = dicomlab_dicom::json::parse_tag_key(key)
                .and_then(dicomlab_dicom::tags::keyword)
                .unwrap_or("")
                .to_string();
            let tag = match (key.get(..4), key.get(4..)) {
                (Some(group), Some(element)) if key.len() == 8 => format!("({group},{element})"),
                _ => dicomlab_dicom::text::visible(key).into_owned(),
            };
            if vr == "SQ" {
                let items = el
                    .get("Value")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                self.rows.push(TreeRow {
                    depth,
                    tag,
                    keyword,
                    vr,
                    value: format!("{} item(s)", items.len()),
                    container: true,
                });
                for (n, item) in items.iter().enumerate() {
                    self.rows.push(TreeRow {
                        depth: depth + 1,
                        tag: String::new(),
                        keyword: format!("Item #{}", n + 1),
                        vr: String::new(),
                        value: String::new(),
                        container: true,
                    });
                    self.push_dataset(item, depth + 2);
                }
            } else {
                self.rows.push(TreeRow {
                    depth,
                    tag,
                    keyword,
                    vr,
                    value: element_text(el),
                    container: false,
                });
            }
        }
    }

    /// The rows shown: the children of a folded row are hidden.
    pub fn visible(&self) -> Vec<usize> {
        let mut out = Vec::new();
        let mut hide_below: Option<u16> = None;
        for (i, r) in self.rows.iter().enumerate() {
            if let Some(d) = hide_below {
                if r.depth > d {
                    continue;
                }
                hide_below = None;
            }
            out.push(i);
            if r.container && self.folded.contains(&i) {
                hide_below = Some(r.depth);
            }
        }
        out
    }

    /// Folds or unfolds the selected row, when it is a container.
    pub fn toggle(&mut self) {
        if let Some(&i) = self.visible().get(self.selected)
            && self.rows.get(i).is_some_and(|r| r.container)
            && !self.folded.remove(&i)
        {
            self.folded.insert(i);
        }
    }

    pub fn down(&mut self) {
        let n = self.visible().len();
        self.selected = (self.selected + 1).min(n.saturating_sub(1));
    }

    pub fn up(&mut self) {
        self.selected = self.selected.saturating_sub(1);
    }

    /// Draws the visible rows under a line that counts them and names the keys; the selection is
    /// highlighted while the screen has the focus.
    pub fn draw(&self, theme: Theme, focused: bool, f: &mut Frame, area: Rect, keys: &str) {
        let visible = self.visible();
        let height = area.height.saturating_sub(1) as usize;
        let first = self.selected.saturating_sub(height.saturating_sub(1));
        let mut lines = vec![Line::styled(
            format!("{} of {} rows · {keys}", visible.len(), self.rows.len()),
            bold(),
        )];
        for (n, &i) in visible.iter().enumerate().skip(first).take(height) {
            let r = &self.rows[i];
            let fold = if r.container {
                if self.folded.contains(&i) {
                    theme.glyph("▸ ", "+ ")
                } else {
                    theme.glyph("▾ ", "- ")
                }
            } else {
                "  "
            };
            let indent = "  ".repeat(r.depth as usize);
            let text = format!(
                "{indent}{fold}{:<11} {:<28} {:<2} {}",
                r.tag, r.keyword, r.vr, r.value
            );
            let style = if n == self.selected && focused {
                reversed()
            } else {
                Style::default()
            };
            lines.push(Line::styled(text, style));
        }
        f.render_widget(Paragraph::new(lines), area);
    }
}

/// An element's value as one line: PN by its alphabetic group, binary by its size.
pub fn element_text(el: &Value) -> String {
    if let Some(values) = el.get("Value").and_then(Value::as_array) {
        let parts: Vec<String> = values
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Object(o) => o
                    .get("Alphabetic")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
            .collect();
        return parts.join("\\");
    }
    if let Some(b) = el.get("InlineBinary").and_then(Value::as_str) {
        return format!("<{} bytes inline>", b.len() / 4 * 3);
    }
    if let Some(u) = el.get("BulkDataURI").and_then(Value::as_str) {
        return format!("<bulk data: {u}>");
    }
    String::new()
}

/// The value of `tag` (8 hex) in a DICOM JSON dataset, as one line.
pub fn value_of(ds: &Value, tag: &str) -> String {
    ds.get(tag).map(element_text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tag_tree_folds_sequences_and_names_keywords() {
        let ds = json!({
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
            "00081115": {"vr": "SQ", "Value": [{"0020000E": {"vr": "UI", "Value": ["1.2.3"]}}]},
            "7FE00010": {"vr": "OB", "BulkDataURI": "http://x/bulk"}
        });
        let mut t = TagTree::of_dataset(&ds);
        let names: Vec<&str> = t.rows.iter().map(|r| r.keyword.as_str()).collect();
        assert_eq!(
            names,
            [
                "ReferencedSeriesSequence",
                "Item #1",
                "SeriesInstanceUID",
                "PatientName",
                "PixelData"
            ]
        );
        assert_eq!(t.rows[3].value, "Doe^Jane");
        assert_eq!(t.rows[3].tag, "(0010,0010)");
        assert_eq!(t.visible().len(), 5);
        t.toggle(); // folds the sequence (selected row 0)
        assert_eq!(t.visible(), vec![0, 3, 4]);
        t.toggle();
        assert_eq!(t.visible().len(), 5);
    }
}
