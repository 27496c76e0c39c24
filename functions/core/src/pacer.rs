//! Spacing delivery starts to a fixed rate (the seed's "legacy backend that takes 100 TPS").

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Hands out start times at most `rate` per second, evenly spaced, shared by concurrent tasks.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// A pacer for `rate` starts per second (`rate` ≥ 1).
    pub fn per_second(rate: u32) -> Self {
        Self {
            interval: Duration::from_secs(1) / rate.max(1),
            next: Mutex::new(None),
        }
    }

    /// Reserves the next free start time. The caller waits until then (or gives the slot up).
    pub fn reserve(&self) -> Instant {
        let now = Instant::now();
        let mut next = self
            .next
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let slot = next.map_or(now, |n| n.max(now));
        *next = Some(slot + self.interval);
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_are_evenly_spaced_and_never_in_the_past() {
        let pacer = Pacer::per_second(100);
        let t0 = Instant::now();
        let slots: Vec<Duration> = (0..5).map(|_| pacer.reserve() - t0).collect();
        assert_eq!(
            slots,
            (0..5)
                .map(|i| Duration::from_millis(10 * i))
                .collect::<Vec<_>>()
        );

        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            pacer.reserve() - t0,
            Duration::from_secs(1),
            "idle time is not banked as a burst"
        );
    }
}
