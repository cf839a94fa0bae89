//! Latency percentiles, rates and failure counts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Latencies of one run, in microseconds.
#[derive(Debug, Default)]
pub(crate) struct Latencies {
    micros: Vec<u32>,
}

impl Latencies {
    pub(crate) fn push(&mut self, latency: Duration) {
        self.micros
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
    }

    pub(crate) fn extend(&mut self, other: Self) {
        self.micros.extend(other.micros);
    }

    pub(crate) fn len(&self) -> usize {
        self.micros.len()
    }

    /// The `q` quantile (0.0–1.0) in milliseconds, nearest rank; 0 when
    /// empty.
    pub(crate) fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.micros.is_empty() {
            return 0.0;
        }
        self.micros.sort_unstable();
        let last = self.micros.len() - 1;
        // Nearest rank: ceil(q * n) - 1, clamped.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((q * self.micros.len() as f64).ceil() as usize).saturating_sub(1);
        f64::from(self.micros[rank.min(last)]) / 1000.0
    }
}

/// Events per second.
pub(crate) fn rate(count: usize, elapsed: Duration) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let count = count as f64;
    if elapsed.is_zero() {
        0.0
    } else {
        count / elapsed.as_secs_f64()
    }
}

/// Failures counted, with the first one kept to tell why.
#[derive(Default)]
pub(crate) struct Failures {
    count: AtomicUsize,
    first: std::sync::Mutex<Option<String>>,
}

impl Failures {
    pub(crate) fn record(&self, error: &sigil_client::Error) {
        self.record_text(&error.to_string());
    }

    pub(crate) fn record_text(&self, why: &str) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first.lock() {
            first.get_or_insert_with(|| why.to_owned());
        }
    }

    pub(crate) fn report(&self) -> (usize, String) {
        let first = self
            .first
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .unwrap_or_default();
        (self.count.load(Ordering::Relaxed), first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut l = Latencies::default();
        assert!((l.quantile_ms(0.5) - 0.0).abs() < f64::EPSILON);
        for ms in 1..=100u64 {
            l.push(Duration::from_millis(ms));
        }
        assert!((l.quantile_ms(0.5) - 50.0).abs() < 1e-9);
        assert!((l.quantile_ms(0.99) - 99.0).abs() < 1e-9);
        assert!((l.quantile_ms(1.0) - 100.0).abs() < 1e-9);
        assert!((rate(500, Duration::from_millis(250)) - 2000.0).abs() < 1e-9);
    }
}
