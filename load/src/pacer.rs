//! Token-bucket pacing for a target send rate: tokens accrue at the rate, up
//! to a small burst, and each send spends one. Sleeping per message would cap
//! the rate at the timer's ~1 ms resolution; a bucket lets one wake-up pay for
//! every token that accrued meanwhile.

use std::time::Duration;

use tokio::time::Instant;

pub struct TokenBucket {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    /// Bursts are capped at 10 ms worth of tokens (at least one), so a pacer
    /// that fell behind catches up quickly without flooding.
    pub fn new(per_sec: f64) -> Self {
        Self {
            per_sec,
            burst: (per_sec / 100.0).max(1.0),
            tokens: 1.0,
            refilled: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * self.per_sec;
        self.tokens = (self.tokens + earned).min(self.burst);
        self.refilled = now;
    }

    /// Waits until a token is available and spends it.
    pub async fn take(&mut self) {
        loop {
            self.refill();
            if self.tokens >= 1.0 {
                self.tokens -= 1.0;
                return;
            }
            let missing = (1.0 - self.tokens) / self.per_sec;
            tokio::time::sleep(Duration::from_secs_f64(missing)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_to_the_rate() {
        let mut bucket = TokenBucket::new(1000.0);
        let start = Instant::now();
        for _ in 0..2001 {
            bucket.take().await;
        }
        let elapsed = start.elapsed().as_secs_f64();
        assert!((1.9..2.1).contains(&elapsed), "{elapsed}");
    }
}
