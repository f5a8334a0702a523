//! The class code, checked the same way for SSH logins and `dicomlab join`: compared in constant time,
//! and each wrong code from a client waits longer than the one before (1 s, 2 s, 4 s… up to 30 s), so
//! guessing the code from one machine is slow while a learner's typo costs a second. A learner's
//! personal code (their SSH password after their first login) and a self-reporting learner's token are
//! checked through the same gate, counted per client *and learner*: guesses at Ada's code grow their
//! wait however often the guesser logs in as themselves, and a classmate's typo behind the same NAT
//! address delays nobody else's own code. A right code is always let in (a classmate's wrong guesses
//! cannot lock a learner out); over HTTP, where no answer sleeps, a wrong class code makes the client
//! wait before its next one is looked at. A client is an address (an IPv4 address mapped into IPv6 is
//! the IPv4 one). The table is bounded: past its size the oldest entries go. Personal codes and tokens are made here: from the system's CSPRNG, without
//! bias.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest wait after a wrong code.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(30);
/// Clients (and learners' doors) remembered at most.
const MAX_ADDRESSES: usize = 4096;
/// A failure older than this is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// The client an address stands for, for every per-client limit (the gate, the request rate, the
/// SSH logins).
pub(crate) use dicomlab_practice::server::client;

/// What a code opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door<'a> {
    /// The room: the class code.
    Room,
    /// One learner: their personal code, or their self-report token.
    Learner(&'a str),
}

type Key = (IpAddr, Option<String>);

fn key(peer: IpAddr, door: Door<'_>) -> Key {
    (
        client(peer),
        match door {
            Door::Room => None,
            Door::Learner(n) => Some(n.to_string()),
        },
    )
}

/// The class code and who got which code wrong lately.
pub struct Gate {
    code: String,
    failures: Mutex<HashMap<Key, (u32, Instant)>>,
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

    /// Checks the class code `given` from `peer`: `Ok` when right (the client's failures at it are
    /// forgotten), else how long to wait before saying no.
    pub fn check(&self, peer: IpAddr, given: &str) -> Result<(), Duration> {
        self.verdict(peer, Door::Room, self.matches(given))
    }

    /// Records an attempt from `peer` at `door` that was right (`ok`) or wrong: `Ok` when right (the
    /// failures at that door are forgotten), else how long to wait before saying no.
    pub fn verdict(&self, peer: IpAddr, door: Door<'_>, ok: bool) -> Result<(), Duration> {
        let Ok(mut f) = self.failures.lock() else {
            return if ok { Ok(()) } else { Err(MAX_DELAY) };
        };
        self.record(&mut f, key(peer, door), ok, Instant::now())
    }

    fn record(
        &self,
        f: &mut HashMap<Key, (u32, Instant)>,
        k: Key,
        ok: bool,
        now: Instant,
    ) -> Result<(), Duration> {
        if ok {
            f.remove(&k);
            return Ok(());
        }
        if f.len() >= MAX_ADDRESSES {
            f.retain(|_, (_, at)| now.duration_since(*at) < FORGET_AFTER);
            if f.len() >= MAX_ADDRESSES
                && let Some(oldest) = f
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
            {
                f.remove(&oldest);
            }
        }
        let entry = f.entry(k).or_insert((0, now));
        if now.duration_since(entry.1) >= FORGET_AFTER {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        Err(self.delay(entry.0))
    }

    /// The wait after the `n`th wrong code in a row (n ≥ 1).
    fn delay(&self, n: u32) -> Duration {
        self.first_delay
            .saturating_mul(1u32 << n.saturating_sub(1).min(16))
            .min(MAX_DELAY)
    }

    /// Checks the class code `given` from `peer` without making anyone wait (for HTTP, where an
    /// answer that sleeps would hold a connection): see `Gate::check_door_now`.
    pub fn check_now(&self, peer: IpAddr, given: &str) -> Result<(), Refused> {
        self.check_door_now(peer, Door::Room, || self.matches(given))
    }

    /// Checks an attempt at `door` in one step: while the client's wait after its last wrong code at
    /// that door runs, nothing is checked (`Refused::Wait`, how long is left — so parallel guesses
    /// gain nothing); else `right()` decides, and a wrong one says how long the client now waits.
    fn check_door_now(
        &self,
        peer: IpAddr,
        door: Door<'_>,
        right: impl FnOnce() -> bool,
    ) -> Result<(), Refused> {
        let Ok(mut f) = self.failures.lock() else {
            return Err(Refused::Wait(MAX_DELAY));
        };
        let now = Instant::now();
        let k = key(peer, door);
        if let Some(left) = self.left(&f, &k, now) {
            return Err(Refused::Wait(left));
        }
        self.record(&mut f, k, right(), now).map_err(Refused::Wrong)
    }

    /// How long `peer` still waits at `door` after its last wrong code there (None: no wait).
    pub fn waiting(&self, peer: IpAddr, door: Door<'_>) -> Option<Duration> {
        let f = self.failures.lock().ok()?;
        self.left(&f, &key(peer, door), Instant::now())
    }

    fn left(&self, f: &HashMap<Key, (u32, Instant)>, k: &Key, now: Instant) -> Option<Duration> {
        let (n, at) = f.get(k)?;
        let until = *at + self.delay(*n);
        (now < until).then(|| until - now)
    }
}

/// Why a code was not checked, or was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The address is still waiting after its last wrong code: nothing was checked.
    Wait(Duration),
    /// Wrong: the address now waits this long.
    Wrong(Duration),
}

/// Letters and digits without look-alikes (no i, l, o, 0, 1).
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Fills `buf` from the system's CSPRNG (aws-lc's); should it fail (no entropy source), from v4 UUIDs
/// (the operating system's generator too).
pub(crate) fn random_bytes(buf: &mut [u8]) {
    if aws_lc_rs::rand::fill(buf).is_err() {
        for chunk in buf.chunks_mut(8) {
            // The last 8 bytes of a v4 UUID: 62 random bits (the variant takes two).
            let u = uuid::Uuid::new_v4().into_bytes();
            let n = chunk.len();
            chunk.copy_from_slice(&u[8..8 + n]);
        }
    }
}

/// `n` characters of [`ALPHABET`], each equally likely (bytes past the largest multiple of its size
/// are drawn again).
fn random_chars(n: usize) -> String {
    let len = ALPHABET.len();
    let limit = 256 - 256 % len;
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 32];
    while out.len() < n {
        random_bytes(&mut buf);
        for b in buf {
            if usize::from(b) < limit && out.len() < n {
                out.push(char::from(ALPHABET[usize::from(b) % len]));
            }
        }
    }
    out
}

fn grouped(chars: &str) -> String {
    chars
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// A new class code: three groups of four letters and digits without look-alikes (`kx7p-2mqa-h4rt`).
pub(crate) fn new_code() -> String {
    grouped(&random_chars(12))
}

/// A learner's new personal code: two groups of four (`h4rt-2mqa`, about 40 bits).
pub(crate) fn new_personal_code() -> String {
    grouped(&random_chars(8))
}

/// A personal code as typed: case, dashes and spaces do not matter (`H4RT 2MQA` is `h4rt-2mqa`).
fn normalized(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Whether `given` is the personal code `expected`, compared in constant time (length aside).
pub(crate) fn same_personal_code(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    if given.len() > 64 {
        return false;
    }
    let (g, e) = (normalized(given), normalized(expected));
    !e.is_empty() && g.len() == e.len() && bool::from(g.as_bytes().ct_eq(e.as_bytes()))
}

/// A self-reporting learner's new token (256 random bits, base64url).
pub(crate) fn new_token() -> String {
    use base64::Engine;
    let mut b = [0u8; 32];
    random_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// What the classroom keeps of a token: its SHA-256, hex.
pub(crate) fn token_hash(token: &str) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `token` hashes to `hash`, in constant time.
pub(crate) fn token_matches(token: &str, hash: &str) -> bool {
    use subtle::ConstantTimeEq;
    if token.len() > 256 {
        return false;
    }
    let h = token_hash(token);
    h.len() == hash.len() && bool::from(h.as_bytes().ct_eq(hash.as_bytes()))
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
    fn guesses_at_a_learners_code_grow_their_wait_whatever_else_succeeds() {
        let g = Gate::new("abcd-efgh".into());
        let ip: IpAddr = [10, 0, 0, 7].into();
        let ada = Door::Learner("ada");
        assert_eq!(g.verdict(ip, ada, false), Err(Duration::from_secs(1)));
        // The guesser logs in as themselves, and with the class code: ada's count stays.
        assert_eq!(g.verdict(ip, Door::Learner("mallory"), true), Ok(()));
        assert_eq!(g.check(ip, "abcd-efgh"), Ok(()));
        assert_eq!(g.verdict(ip, ada, false), Err(Duration::from_secs(2)));
        // A classmate behind the same address: their own door is not delayed.
        assert_eq!(
            g.verdict(ip, Door::Learner("bob"), false),
            Err(Duration::from_secs(1)),
            "bob's own count starts at one"
        );
        // Her right code is let in all the same: wrong guesses cannot lock her out.
        assert_eq!(g.verdict(ip, ada, true), Ok(()));
    }

    #[test]
    fn a_client_is_its_address_a_mapped_one_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        assert_ne!(
            client(a),
            client(b),
            "laptops of one network are clients of their own"
        );
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(client(mapped), IpAddr::from([192, 0, 2, 7]));
        let g = Gate::new("abcd-efgh".into());
        assert!(g.check(mapped, "x").is_err());
        assert_eq!(
            g.check(IpAddr::from([192, 0, 2, 7]), "x"),
            Err(Duration::from_secs(2)),
            "one client, one count"
        );
    }

    #[test]
    fn over_http_a_waiting_address_is_told_to_wait_and_nothing_is_checked() {
        let g = Gate::new("abcd-efgh".into()).with_first_delay(Duration::from_millis(300));
        let ip: IpAddr = [10, 0, 0, 9].into();
        assert_eq!(
            g.check_now(ip, "nope"),
            Err(Refused::Wrong(Duration::from_millis(300)))
        );
        // During the wait, even the right code is not looked at (a guess costs nothing but time).
        match g.check_now(ip, "abcd-efgh") {
            Err(Refused::Wait(left)) => assert!(left <= Duration::from_millis(300), "{left:?}"),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(g.check_now(ip, "x"), Err(Refused::Wait(_))),
            "not counted"
        );
        std::thread::sleep(Duration::from_millis(320));
        assert_eq!(
            g.check_now(ip, "x"),
            Err(Refused::Wrong(Duration::from_millis(600))),
            "the second wrong code, not the fourth"
        );
        std::thread::sleep(Duration::from_millis(620));
        assert_eq!(g.check_now(ip, "abcd-efgh"), Ok(()));
        assert_eq!(g.check_now(ip, "abcd-efgh"), Ok(()));
    }

    #[test]
    fn codes_are_readable_and_differ() {
        let a = new_code();
        assert_eq!(a.len(), 14);
        assert_eq!(a.matches('-').count(), 2);
        assert_ne!(a, new_code());
        let p = new_personal_code();
        assert_eq!(p.len(), 9);
        assert_eq!(p.find('-'), Some(4));
        assert!(p.bytes().all(|b| b == b'-' || ALPHABET.contains(&b)), "{p}");
        assert_ne!(p, new_personal_code());
        // Every letter of the alphabet shows up, none other.
        let many: String = (0..200).map(|_| new_personal_code()).collect();
        for c in ALPHABET {
            assert!(many.as_bytes().contains(c), "{}", char::from(*c));
        }
    }

    #[test]
    fn personal_codes_compare_as_typed_and_tokens_by_hash() {
        assert!(same_personal_code("h4rt-2mqa", "h4rt-2mqa"));
        assert!(same_personal_code(" H4RT 2MQA", "h4rt-2mqa"));
        assert!(same_personal_code("h4rt2mqa", "h4rt-2mqa"));
        assert!(!same_personal_code("h4rt-2mqb", "h4rt-2mqa"));
        assert!(!same_personal_code("", "h4rt-2mqa"));
        assert!(!same_personal_code("", ""), "no code is never a match");
        assert!(!same_personal_code(&"a".repeat(100), "h4rt-2mqa"));
        let t = new_token();
        assert!(t.len() >= 43);
        let h = token_hash(&t);
        assert_eq!(h.len(), 64);
        assert!(token_matches(&t, &h));
        assert!(!token_matches(&new_token(), &h));
        assert!(!token_matches("", &h));
    }
}
