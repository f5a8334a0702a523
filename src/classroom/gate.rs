//! The class code, checked the same way for SSH logins and `dicomlab join`: compared in constant time,
//! and each wrong code from an address waits longer than the one before (1 s, 2 s, 4 s… up to 30 s), so
//! guessing the code from one machine is slow while a learner's typo costs a second. The table of
//! addresses is bounded: past its size the oldest entries go.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest wait after a wrong code.
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// Addresses remembered at most.
const MAX_ADDRESSES: usize = 4096;
/// A failure older than this is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// The class code and who got it wrong lately.
pub struct Gate {
    code: String,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    first_delay: Duration,
}

impl Gate {
    pub fn new(code: String) -> Self {
        Gate {
            code,
            failures: Mutex::new(HashMap::new()),
            first_delay: Duration::from_secs(1),
        }
    }

    /// The first wait (tests make it short).
    pub fn with_first_delay(mut self, d: Duration) -> Self {
        self.first_delay = d;
        self
    }

    /// The code (shown to the instructor only).
    pub fn code(&self) -> &str {
        &self.code
    }

    /// Whether `given` is the code, in constant time (length aside).
    pub fn matches(&self, given: &str) -> bool {
        use subtle::ConstantTimeEq;
        given.len() == self.code.len() && bool::from(given.as_bytes().ct_eq(self.code.as_bytes()))
    }

    /// Checks `given` from `peer`: `Ok` when right (the address's failures are forgotten), else how long
    /// to wait before saying no.
    pub fn check(&self, peer: IpAddr, given: &str) -> Result<(), Duration> {
        let ok = self.matches(given);
        let Ok(mut f) = self.failures.lock() else {
            return if ok { Ok(()) } else { Err(MAX_DELAY) };
        };
        if ok {
            f.remove(&peer);
            return Ok(());
        }
        let now = Instant::now();
        if f.len() >= MAX_ADDRESSES {
            f.retain(|_, (_, at)| now.duration_since(*at) < FORGET_AFTER);
            if f.len() >= MAX_ADDRESSES
                && let Some(oldest) = f.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k)
            {
                f.remove(&oldest);
            }
        }
        let entry = f.entry(peer).or_insert((0, now));
        if now.duration_since(entry.1) >= FORGET_AFTER {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        let doubled = self
            .first_delay
            .saturating_mul(1u32 << (entry.0 - 1).min(16));
        Err(doubled.min(MAX_DELAY))
    }
}

/// A new class code: three groups of four letters and digits without look-alikes (`kx7p-2mqa-h4rt`).
pub fn new_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let more = uuid::Uuid::new_v4().into_bytes();
    let chars: Vec<char> = bytes
        .iter()
        .chain(more.iter())
        .take(12)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_codes_wait_longer_each_time_and_a_right_one_forgets() {
        let g = Gate::new("abcd-efgh".into());
        let ip: IpAddr = [10, 0, 0, 7].into();
        let other: IpAddr = [10, 0, 0, 8].into();
        assert_eq!(g.check(ip, "nope"), Err(Duration::from_secs(1)));
        assert_eq!(g.check(ip, "abcd-efgX"), Err(Duration::from_secs(2)));
        assert_eq!(g.check(ip, ""), Err(Duration::from_secs(4)));
        assert_eq!(
            g.check(other, "x"),
            Err(Duration::from_secs(1)),
            "per address"
        );
        for _ in 0..10 {
            let _ = g.check(ip, "x");
        }
        assert_eq!(g.check(ip, "x"), Err(MAX_DELAY));
        assert_eq!(g.check(ip, "abcd-efgh"), Ok(()));
        assert_eq!(g.check(ip, "x"), Err(Duration::from_secs(1)), "forgotten");
    }

    #[test]
    fn codes_are_readable_and_differ() {
        let a = new_code();
        assert_eq!(a.len(), 14);
        assert_eq!(a.matches('-').count(), 2);
        assert_ne!(a, new_code());
    }
}
