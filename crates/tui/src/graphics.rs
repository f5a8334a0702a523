//! Which graphics a terminal draws (kitty, sixel) and its cell size in pixels, asked of the terminal
//! itself: the question ([`question`]) goes out through the terminal's output like every other byte,
//! and its answer is read by an [`Answer`] from the terminal's input before that becomes events. Any
//! terminal-like channel can ask: the local terminal does (`terminal.rs`), a remote one can.
//! Without an answer the viewer draws with Unicode half-blocks, which work everywhere.

use ratatui_image::FontSize;
use ratatui_image::picker::cap_parser::{Parser, QueryStdioOptions, Response};
use ratatui_image::picker::{Picker, ProtocolType};

/// The bytes that ask the terminal for its graphics and cell size, ending with a status request every
/// terminal answers (so the answer has an end). Inside tmux they are wrapped for passthrough. `kitty`
/// false leaves out the kitty and sixel probes (terminals whose implementations draw badly).
pub(crate) fn question(is_tmux: bool, kitty: bool) -> String {
    let mut options = QueryStdioOptions::default();
    if !kitty {
        options.blacklist_protocols = vec![ProtocolType::Kitty, ProtocolType::Sixel];
    }
    Parser::query(is_tmux, options)
}

/// The terminal's answer, read byte by byte.
pub(crate) struct Answer {
    parser: Parser,
    /// The best protocol announced: kitty over sixel.
    protocol: Option<ProtocolType>,
    /// Pixels per cell (width, height), when the terminal said.
    cell: Option<(u16, u16)>,
    /// The status report came: nothing more will.
    complete: bool,
}

impl Default for Answer {
    fn default() -> Answer {
        Answer {
            parser: Parser::new(),
            protocol: None,
            cell: None,
            complete: false,
        }
    }
}

impl Answer {
    /// Reads answer bytes; true once the answer is complete (its status report read).
    pub(crate) fn push(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            if self.complete {
                break;
            }
            for response in self.parser.push(char::from(b)) {
                match response {
                    Response::Kitty => self.protocol = Some(ProtocolType::Kitty),
                    Response::Sixel if self.protocol.is_none() => {
                        self.protocol = Some(ProtocolType::Sixel)
                    }
                    Response::CellSize(Some(cell)) => self.cell = Some(cell),
                    Response::Status => self.complete = true,
                    _ => {}
                }
            }
        }
        self.complete
    }

    /// How images reach the terminal: its protocol at its cell size (`fallback_cell` when it did not say
    /// its cell size), or half-blocks when the cell size is unknown (a protocol cannot be sized then).
    pub(crate) fn picker(&self, fallback_cell: Option<(u16, u16)>) -> Picker {
        let Some((width, height)) = self.cell.or(fallback_cell) else {
            return Picker::halfblocks();
        };
        // The one public constructor that takes a measured cell size (the query ratatui-image offers
        // instead writes to stdout itself); it also reads tmux and iTerm2 hints from the environment.
        #[allow(deprecated)]
        let mut picker = Picker::from_fontsize(FontSize::new(width, height));
        if let Some(protocol) = self.protocol {
            picker.set_protocol_type(protocol);
        }
        picker
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kitty_terminal_answers_with_its_cell_size() {
        let mut a = Answer::default();
        assert!(!a.push(b"\x1b_Gi=31;OK\x1b\\\x1b[?64;4c"));
        assert!(a.push(b"\x1b[6;20;10t\x1b[0n"));
        assert_eq!(a.protocol, Some(ProtocolType::Kitty));
        assert_eq!(a.cell, Some((10, 20)));
        assert_eq!(a.picker(None).protocol_type(), ProtocolType::Kitty);
    }

    #[test]
    fn without_a_cell_size_the_viewer_uses_half_blocks() {
        let mut a = Answer::default();
        assert!(a.push(b"\x1b[?62;4c\x1b[0n"));
        assert_eq!(a.protocol, Some(ProtocolType::Sixel));
        assert_eq!(a.picker(None).protocol_type(), ProtocolType::Halfblocks);
        assert_eq!(a.picker(Some((8, 16))).protocol_type(), ProtocolType::Sixel);
    }

    #[test]
    fn the_question_ends_with_a_status_request() {
        assert!(question(false, true).ends_with("\x1b[5n"));
        assert!(!question(false, false).contains("_Gi=31"));
    }
}
