//! Reading the TUI's screen (tmux's, or a vt100 emulator's over SSH) the same way in the end-to-end
//! test and in the benches: when a step's check is back after `d`.

/// The header's `N done` (0 when it shows none).
pub fn done_count(screen: &str) -> usize {
    screen
        .lines()
        .next()
        .and_then(|h| h.split(" done").next())
        .and_then(|h| h.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The header's `step N/M`: the step the TUI shows, from 1 (0 when it shows none).
pub fn shown_step(screen: &str) -> usize {
    screen
        .lines()
        .next()
        .and_then(|h| h.split("step ").nth(1))
        .and_then(|h| h.split('/').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Whether a step's check is back after `d` (the header counted `done_before` steps done then): the
/// check line has a verdict (`✓`, `✗` or `–`), and what `d` did shows ("Did …") — or, on a step
/// panel too short for that line (the viewer's, when the check's detail wraps over long UIDs), the
/// header counts the step done.
pub fn step_checked(screen: &str, done_before: usize) -> bool {
    (screen.contains("Did ") || done_count(screen) > done_before)
        && ["Check    ✓", "Check    ✗", "Check    –"]
            .iter()
            .any(|c| screen.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "dicomlab   target: embedded   step 16/19 · 15 done   watching live";

    #[test]
    fn the_header_counts_the_steps_done() {
        assert_eq!(shown_step(HEADER), 16);
        assert_eq!(shown_step(""), 0);
        assert_eq!(done_count(HEADER), 15);
        assert_eq!(done_count("dicomlab   target: embedded   step 1/19"), 0);
        assert_eq!(done_count(""), 0);
    }

    #[test]
    fn a_check_is_back_once_its_verdict_and_what_d_did_show() {
        let did = format!("{HEADER}\nCheck    ✓ pass: done\nDid  GET studies → 200");
        assert!(step_checked(&did, 15));
        // The viewer's short panel: no "Did" line, but one more step counted done.
        let counted = format!(
            "{}\nCheck    ✓ pass: done",
            HEADER.replace("15 done", "16 done")
        );
        assert!(step_checked(&counted, 15));
        // Neither: the verdict on screen is an earlier one.
        let stale = format!("{HEADER}\nCheck    ✓ pass: done");
        assert!(!step_checked(&stale, 15));
        // What `d` did, but no verdict yet.
        let running = format!("{HEADER}\nCheck    … checking\nDid  GET studies → 200");
        assert!(!step_checked(&running, 15));
        let failed = format!("{HEADER}\nCheck    ✗ fail: 403\nDid  GET studies → 403");
        assert!(step_checked(&failed, 15));
    }
}
