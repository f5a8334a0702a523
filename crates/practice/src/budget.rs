//! Memory budgets: a semaphore of bytes (counted in KiB), so what concurrent requests hold is bounded by
//! its sum, not by how many run at once. Two budgets are kept apart so that nothing ever waits on one while
//! holding the other: parts kept in memory while a body is received only ever *try* (a part that does not
//! fit streams to disk instead), and a validation waits for its share and holds it only while it parses.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A pool of bytes.
#[derive(Debug, Clone)]
pub struct Budget {
    permits: Arc<Semaphore>,
    capacity_kib: u32,
}

/// Bytes held from a budget; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
}

/// More than the whole budget was asked for: waiting would never end.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("needs about {needed} bytes, more than the {capacity}-byte budget")]
pub struct OverBudget {
    pub needed: u64,
    pub capacity: u64,
}

fn kib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

impl Budget {
    pub fn new(bytes: u64) -> Self {
        let capacity_kib = kib(bytes).max(1);
        Self {
            permits: Arc::new(Semaphore::new(capacity_kib as usize)),
            capacity_kib,
        }
    }

    /// The whole budget, in bytes.
    pub fn capacity(&self) -> u64 {
        u64::from(self.capacity_kib) * 1024
    }

    /// What is not held right now, in bytes.
    pub fn available(&self) -> u64 {
        self.permits.available_permits() as u64 * 1024
    }

    /// Takes `bytes` now if they are free; never waits.
    pub fn try_reserve(&self, bytes: u64) -> Option<Reservation> {
        let n = kib(bytes);
        if n == 0 {
            return Some(Reservation { permit: None });
        }
        self.permits
            .clone()
            .try_acquire_many_owned(n)
            .ok()
            .map(|p| Reservation { permit: Some(p) })
    }

    /// Waits until `bytes` are free; refuses at once what could never fit.
    pub async fn reserve(&self, bytes: u64) -> Result<Reservation, OverBudget> {
        let n = kib(bytes);
        if n > self.capacity_kib {
            return Err(OverBudget {
                needed: bytes,
                capacity: self.capacity(),
            });
        }
        if n == 0 {
            return Ok(Reservation { permit: None });
        }
        // The semaphore is never closed, so acquiring only fails if it were.
        match self.permits.clone().acquire_many_owned(n).await {
            Ok(p) => Ok(Reservation { permit: Some(p) }),
            Err(_) => Err(OverBudget {
                needed: bytes,
                capacity: self.capacity(),
            }),
        }
    }
}

impl Reservation {
    /// Gives back all but `bytes` (a part that turned out smaller than its allowance).
    pub fn shrink_to(&mut self, bytes: u64) {
        let keep = kib(bytes) as usize;
        if let Some(p) = &mut self.permit
            && p.num_permits() > keep
        {
            drop(p.split(p.num_permits() - keep));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sum_is_bounded_not_the_count() {
        let b = Budget::new(10 * 1024);
        let a = b.try_reserve(6 * 1024).expect("fits");
        assert!(b.try_reserve(6 * 1024).is_none(), "6 + 6 > 10 KiB");
        let small: Vec<_> = (0..4).filter_map(|_| b.try_reserve(1024)).collect();
        assert_eq!(small.len(), 4, "many small ones fit beside it");
        assert!(b.reserve(11 * 1024).await.is_err(), "never fits");
        drop(a);
        drop(small);
        assert_eq!(b.available(), 10 * 1024);
        let mut r = b.try_reserve(8 * 1024).expect("fits");
        r.shrink_to(1024);
        assert_eq!(b.available(), 9 * 1024);
    }
}
