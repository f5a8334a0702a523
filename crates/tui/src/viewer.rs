//! The viewer step: the lab's instance rendered by the service (`/rendered`, a PNG), drawn in the
//! terminal — kitty, sixel or iTerm2 graphics where the terminal has them, Unicode half-blocks elsewhere
//! (over SSH and in tmux too) — with its key attributes from its metadata beside it. It draws in the
//! step pane: the viewer has no screen of its own.

use std::cell::RefCell;
use std::sync::Arc;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui_image::picker::Picker;
use ratatui_image::protocol::StatefulProtocol;
use serde_json::Value;

use super::theme::bold;
use super::widgets::value_of;
use dicomlab_lab::engine::Session;
use dicomlab_lab::model::{Lab, ScreenKind};

/// The viewer's state.
pub struct Viewer {
    /// The image, ready to draw: the protocol resizes it once per size and keeps the result (drawing the
    /// same size again costs nothing; a RefCell because drawing only reads the app).
    pub image: Option<RefCell<StatefulProtocol>>,
    /// How images reach this terminal: its graphics protocol and cell size, found when it opened.
    pub picker: Picker,
    /// The instance's key attributes (keyword, value), shown beside the image.
    pub attributes: Vec<(String, String)>,
    /// The viewer step's action is done: show the image once its check is back (the service renders one
    /// image at a time; the TUI decodes it after).
    pub after_check: bool,
}

impl Default for Viewer {
    fn default() -> Viewer {
        Viewer {
            image: None,
            picker: Picker::halfblocks(),
            attributes: Vec::new(),
            after_check: false,
        }
    }
}

impl Viewer {
    /// A decoded image to show.
    pub fn show(&mut self, image: Arc<image::DynamicImage>) {
        let image = Arc::try_unwrap(image).unwrap_or_else(|a| (*a).clone());
        self.image = Some(RefCell::new(self.picker.new_resize_protocol(image)));
    }

    /// Draws the image (and the attributes when there is room for them); false with no image yet.
    pub fn draw(&self, f: &mut Frame, area: Rect) -> bool {
        let Some(image) = &self.image else {
            return false;
        };
        if self.attributes.is_empty() || area.width < 70 {
            draw_image(f, area, image);
            return true;
        }
        let [picture, attributes] =
            Layout::horizontal([Constraint::Min(30), Constraint::Length(40)]).areas(area);
        draw_image(f, picture, image);
        let lines: Vec<Line> = self
            .attributes
            .iter()
            .map(|(k, v)| {
                Line::from(vec![
                    Span::styled(format!("{k:<26}"), bold()),
                    Span::raw(v.clone()),
                ])
            })
            .collect();
        f.render_widget(
            Paragraph::new(lines).block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(" Key attributes "),
            ),
            attributes,
        );
        true
    }
}

fn draw_image(f: &mut Frame, area: Rect, image: &RefCell<StatefulProtocol>) {
    let block = Block::default().borders(Borders::ALL).title(" rendered ");
    let inner = block.inner(area);
    f.render_widget(block, area);
    // The protocol is only borrowed here, never elsewhere: a failed borrow would mean a nested draw.
    if let Ok(mut protocol) = image.try_borrow_mut() {
        f.render_stateful_widget(
            ratatui_image::StatefulImage::default(),
            inner,
            &mut *protocol,
        );
    }
}

/// The attributes the viewer shows beside an image, those the dataset has.
pub fn key_attributes(ds: &Value) -> Vec<(String, String)> {
    [
        ("PatientName", "00100010"),
        ("PatientID", "00100020"),
        ("StudyDate", "00080020"),
        ("Modality", "00080060"),
        ("SeriesDescription", "0008103E"),
        ("InstanceNumber", "00200013"),
        ("Rows", "00280010"),
        ("Columns", "00280011"),
        ("PhotometricInterpretation", "00280004"),
        ("BitsAllocated", "00280100"),
    ]
    .iter()
    .filter(|(_, tag)| ds.get(*tag).is_some())
    .map(|(k, tag)| (k.to_string(), value_of(ds, tag)))
    .collect()
}

/// A decoded image, or why there is none.
pub type Loaded = Result<Arc<image::DynamicImage>, String>;

/// The largest side, in pixels, of an image worth keeping for this terminal: half-blocks show two
/// pixels a cell (512 is past any terminal's width), graphics protocols show pixels as they are.
/// The image is kept for as long as the viewer can draw it; a classroom keeps one per learner.
pub fn largest_side(picker: &Picker) -> u32 {
    match picker.protocol_type() {
        ratatui_image::picker::ProtocolType::Halfblocks => 512,
        _ => 2048,
    }
}

/// The image scaled down (its proportions kept) so that no side is over `largest_side`.
fn fit(image: image::DynamicImage, largest_side: u32) -> image::DynamicImage {
    if image.width().max(image.height()) > largest_side {
        // Each output pixel the average of the source pixels under it, into the output buffer only:
        // a filtered resize first makes a 32-bit float RGBA copy of the image at the new height
        // (8 MB for the lab's 979×985, the TUI's peak memory).
        image.thumbnail(largest_side, largest_side)
    } else {
        image
    }
}

/// Fetches and decodes the viewer step's instance (given to `image`, no side over `largest_side`),
/// then reads its key attributes (given to `attributes`, when the metadata answers).
pub async fn load(
    session: &Session,
    lab: &Lab,
    largest_side: u32,
    image: impl FnOnce(Loaded),
    attributes: impl FnOnce(Vec<(String, String)>),
) {
    let Some(inst) = lab
        .steps()
        .find(|s| s.screen() == Some(ScreenKind::Viewer))
        .and_then(|s| s.instance.as_deref())
        .and_then(|n| lab.dataset.instance(n))
        .map(|i| i.reference())
    else {
        image(Err("the lab names no instance to view".into()));
        return;
    };
    let body: Result<Vec<u8>, String> = match session.client.rendered(&inst).await {
        Ok(a) if a.ok() => Ok(a.body.to_vec()),
        Ok(a) => Err(format!("the service answered {}", a.status)),
        Err(e) => Err(e.to_string()),
    };
    let result = match body {
        Ok(body) => tokio::task::spawn_blocking(move || {
            let decoded = image::load_from_memory(&body).map_err(|e| e.to_string())?;
            drop(body);
            Ok(Arc::new(fit(decoded, largest_side)))
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string())),
        Err(e) => Err(e),
    };
    image(result);
    if let Ok(a) = session.client.metadata(&inst).await
        && let Some(ds) = a.results().first()
    {
        attributes(key_attributes(ds));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lab's 979×985 image kept for half-blocks is at most 512 pixels a side, its proportions
    /// kept; graphics protocols keep it whole, and a small image is never scaled up.
    #[test]
    fn an_image_is_kept_no_larger_than_the_terminal_can_show() {
        let lab = image::DynamicImage::new_rgb8(979, 985);
        assert_eq!(largest_side(&Picker::halfblocks()), 512);
        let kept = fit(lab.clone(), 512);
        assert_eq!((kept.width(), kept.height()), (509, 512));
        let whole = fit(lab, 2048);
        assert_eq!((whole.width(), whole.height()), (979, 985));
        let small = fit(image::DynamicImage::new_rgb8(64, 32), 512);
        assert_eq!((small.width(), small.height()), (64, 32));
    }
}
