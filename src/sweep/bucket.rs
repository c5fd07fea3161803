//! The token bucket that paces a model's rpm and tpm ([`Bucket`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket (rpm or tpm): `rate` per second, bursts up to `capacity`, at most
/// `per_minute` in any one request. Also paces the replay's calls (`crate::replay`).
///
/// Every request is charged its whole amount. One larger than the burst waits until the bucket
/// is full, then leaves it in debt: the requests after it wait until the debt is refilled, so
/// over any minute no more than `per_minute` (plus one burst) is taken, however long the
/// requests are. One larger than `per_minute` can never fit and is refused.
pub(crate) struct Bucket {
    pub(super) state: Mutex<(f64, Instant)>,
    pub(super) rate: f64,
    capacity: f64,
    pub(super) per_minute: f64,
}

/// A request bigger than a bucket's whole minute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NeverFits {
    pub(crate) amount: f64,
    pub(crate) per_minute: f64,
}

impl Bucket {
    pub(crate) fn per_minute(n: f64) -> Bucket {
        // Validation refuses 0 and NaN; a library caller's bad value still must not divide by 0.
        let n = if n.is_finite() && n > 0.0 { n } else { 1.0 };
        let rate = n / 60.0;
        // A small burst keeps the rate smooth, so a server counting per minute never sees more.
        let capacity = rate.clamp(1.0, n.max(1.0));
        Bucket {
            state: Mutex::new((capacity, Instant::now())),
            rate,
            capacity,
            per_minute: n,
        }
    }
    pub(crate) async fn take(&self, amount: f64) -> std::result::Result<(), NeverFits> {
        if amount > self.per_minute {
            return Err(NeverFits {
                amount,
                per_minute: self.per_minute,
            });
        }
        // A request larger than the burst waits for a full bucket, then goes into debt.
        let need = amount.min(self.capacity);
        loop {
            let wait = {
                let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * self.rate).min(self.capacity);
                s.1 = now;
                if s.0 >= need {
                    s.0 -= amount;
                    return Ok(());
                }
                Duration::try_from_secs_f64((need - s.0) / self.rate)
                    .unwrap_or(Duration::from_secs(60))
                    .min(Duration::from_secs(60))
            };
            tokio::time::sleep(wait).await;
        }
    }
    /// Gives back `amount` (an estimate that was too high, a request the server refused), or
    /// charges more when negative (an estimate that was too low).
    pub(super) fn adjust(&self, amount: f64) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.0 = (s.0 + amount).min(self.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn a_bucket_charges_whole_requests_and_refuses_one_that_can_never_fit() {
        runtime().block_on(async {
            // 600,000 a minute: 10,000 a second, bursts of 10,000.
            let b = Bucket::per_minute(600_000.0);
            let t0 = Instant::now();
            b.take(14_000.0).await.unwrap();
            // The bucket is 4,000 in debt: 5,000 more need 0.9 s of refill.
            b.take(5_000.0).await.unwrap();
            let waited = t0.elapsed().as_secs_f64();
            assert!((0.85..1.5).contains(&waited), "{waited}");
            assert_eq!(
                b.take(600_001.0).await,
                Err(NeverFits {
                    amount: 600_001.0,
                    per_minute: 600_000.0
                })
            );
            // A refund is usable at once.
            b.adjust(5_000.0);
            let t1 = Instant::now();
            b.take(5_000.0).await.unwrap();
            assert!(t1.elapsed() < Duration::from_millis(10));
        });
    }

    #[test]
    fn a_zero_or_nan_rate_never_panics() {
        runtime().block_on(async {
            for n in [0.0, f64::NAN, -5.0, f64::INFINITY] {
                let b = Bucket::per_minute(n);
                let _ = b.take(1.0).await;
            }
        });
    }
}
