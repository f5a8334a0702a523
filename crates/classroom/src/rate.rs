//! The public port's per-address request rate: a token bucket per client address (`rate` requests a
//! second, bursts of `burst`), so that one machine's flood cannot take the classroom from the others.
//! Past it a request is answered `429 Too Many Requests` with `Retry-After`. The table of addresses is
//! bounded: past its size, addresses whose bucket is full again are forgotten first, then the oldest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses remembered at most.
pub(crate) const MAX_ADDRESSES: usize = 4096;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets per client address.
pub struct RateLimit {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimit {
    /// `rate` requests a second on average, `burst` at once (both at least 1).
    pub fn new(rate: f64, burst: f64) -> RateLimit {
        let rate = if rate.is_finite() {
            rate.max(0.1)
        } else {
            50.0
        };
        let burst = if burst.is_finite() {
            burst.max(1.0)
        } else {
            200.0
        };
        RateLimit {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for a request from `ip` at `now`: `Err(wait)` when there is none.
    pub fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let ip = crate::gate::client(ip);
        let Ok(mut b) = self.buckets.lock() else {
            return Ok(());
        };
        if !b.contains_key(&ip) && b.len() >= MAX_ADDRESSES {
            let (rate, burst) = (self.rate, self.burst);
            b.retain(|_, x| {
                x.tokens + now.saturating_duration_since(x.at).as_secs_f64() * rate < burst
            });
            if b.len() >= MAX_ADDRESSES
                && let Some(oldest) = b.iter().min_by_key(|(_, x)| x.at).map(|(k, _)| *k)
            {
                b.remove(&oldest);
            }
        }
        let bucket = b.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.buckets.lock().map_or(0, |b| b.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_per_address_and_a_bounded_table() {
        let r = RateLimit::new(10.0, 20.0);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let t = Instant::now();
        for _ in 0..20 {
            assert!(r.take(a, t).is_ok());
        }
        let wait = r.take(a, t).expect_err("the burst is spent");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert!(r.take(b, t).is_ok(), "another address has its own");
        // A tenth of a second later, one more.
        let later = t + Duration::from_millis(100);
        assert!(r.take(a, later).is_ok());
        assert!(r.take(a, later).is_err());
        for i in 0..(MAX_ADDRESSES as u32 + 100) {
            let _ = r.take(IpAddr::from(i.to_be_bytes()), later);
        }
        assert!(r.len() <= MAX_ADDRESSES);
    }
}
