//! The room a service may use for stored instances (`max_stored_bytes`): what each store is promised
//! while its body is received, so that stores received at once cannot together pass the limit, and the
//! `507` (or failure reason 272's comment) that says the service holds what it may.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::http::StatusCode;

use crate::error::ApiError;

/// The room promised to one store while its body is received (counted against the service's
/// `max_stored_bytes` beside what is stored and what other stores were promised); given back when
/// dropped, once what was received is stored or refused.
#[derive(Debug)]
pub(crate) struct StoragePromise {
    reserved: Arc<AtomicU64>,
    quota: u64,
    held: u64,
    bytes: std::sync::atomic::AtomicU64,
}

impl StoragePromise {
    pub(crate) fn new(reserved: &Arc<AtomicU64>, quota: u64, held: u64) -> StoragePromise {
        StoragePromise {
            reserved: reserved.clone(),
            quota,
            held,
            bytes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Promises `n` more bytes: a declared body's size before it is read, or a chunk of a body of
    /// unknown size as it arrives (0: whether any room is left). `507` when they do not fit. A body
    /// counts whole — a multipart body's boundaries too, a fraction of a percent.
    pub(crate) fn grow(&self, n: u64) -> Result<(), ApiError> {
        use std::sync::atomic::Ordering;
        let mut promised = self.reserved.load(Ordering::Acquire);
        loop {
            let after = self.held.saturating_add(promised);
            if after.saturating_add(n) > self.quota || after >= self.quota {
                return Err(full(self.quota, self.held.saturating_add(promised)));
            }
            match self.reserved.compare_exchange(
                promised,
                promised.saturating_add(n),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.bytes.fetch_add(n, Ordering::AcqRel);
                    return Ok(());
                }
                Err(now) => promised = now,
            }
        }
    }
}

impl StoragePromise {
    /// Keeps `n` bytes of the promise (what was received), gives back the rest.
    pub(crate) fn settle(&self, n: u64) {
        let now = self.bytes.load(std::sync::atomic::Ordering::Acquire);
        self.release(now.saturating_sub(n));
    }

    /// Gives back `n` bytes of the promise (at most what it holds).
    pub(crate) fn release(&self, n: u64) {
        use std::sync::atomic::Ordering;
        let Ok(before) = self
            .bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some(b.saturating_sub(n))
            })
        else {
            return;
        };
        let given = before.min(n);
        let _ = self
            .reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_sub(given))
            });
    }
}

impl Drop for StoragePromise {
    fn drop(&mut self) {
        let bytes = *self.bytes.get_mut();
        self.release(bytes);
    }
}

/// The service holds what it may: `507` with what it holds and how to make room.
fn full(quota: u64, held: u64) -> ApiError {
    ApiError::new(StatusCode::INSUFFICIENT_STORAGE, full_reason(quota, held))
}

/// Why a store does not fit: what the service may hold and what it holds, in MiB.
pub(crate) fn full_reason(quota: u64, held: u64) -> String {
    let mib = |b: u64| b.div_ceil(1024 * 1024);
    format!(
        "This service may hold {} MiB of instances and holds {} MiB: delete a study to store more.",
        mib(quota),
        mib(held)
    )
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn promises_share_the_room_and_are_given_back_part_by_part() {
        let reserved = Arc::new(AtomicU64::new(0));
        let a = StoragePromise::new(&reserved, 100, 0);
        let b = StoragePromise::new(&reserved, 100, 0);
        a.grow(60).expect("a fits");
        assert!(b.grow(50).is_err(), "60 + 50 > 100");
        // A received 40 bytes of parts (the rest was framing): it keeps 40.
        a.settle(40);
        assert_eq!(reserved.load(Ordering::Acquire), 40);
        b.grow(50).expect("40 + 50 fits");
        // A's first part is stored (counted as stored from now on): its share goes back.
        a.release(25);
        assert_eq!(reserved.load(Ordering::Acquire), 65);
        a.release(1000);
        assert_eq!(
            reserved.load(Ordering::Acquire),
            50,
            "never more than it held"
        );
        drop(a);
        assert_eq!(reserved.load(Ordering::Acquire), 50);
        drop(b);
        assert_eq!(reserved.load(Ordering::Acquire), 0);
        // Nothing left of the room: even a body of unknown size is refused at once.
        let full = StoragePromise::new(&reserved, 100, 100);
        assert!(full.grow(0).is_err());
    }
}
