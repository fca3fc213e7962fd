//! Limits on what one request and one device may ask of the service.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The service's limits. [`Default`] is what `handover office serve` uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Largest batch body, bytes (a 10,000-event batch is about 6 MB).
    pub batch_bytes: usize,
    /// Largest body of any other request, bytes.
    pub small_bytes: usize,
    /// Requests a device may make per second, sustained.
    pub per_device_per_second: f64,
    /// Requests a device may make at once above the sustained rate.
    pub per_device_burst: f64,
    /// Longest a request may take, reading its body included.
    pub request_timeout: Duration,
    /// Longest a client may take to send a request's headers, and longest
    /// a kept-alive connection may sit idle between requests.
    pub header_timeout: Duration,
    /// Longest a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// Connections held at once, in all (`handover office serve` keeps it
    /// below the process's open-file limit).
    pub max_connections: usize,
    /// Connections held at once from one client address.
    pub max_connections_per_address: usize,
    /// Enrolment requests (unauthenticated) per second from one client
    /// address, sustained.
    pub enrol_per_address_per_second: f64,
    /// Enrolment requests from one address at once above that rate.
    pub enrol_per_address_burst: f64,
    /// How often the service sends the SMS outbox in the background
    /// (`None`: never; `handover office sms send` does it).
    pub sms_send_every: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            batch_bytes: 16 * 1024 * 1024,
            small_bytes: 64 * 1024,
            per_device_per_second: 20.0,
            per_device_burst: 40.0,
            request_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_address: 256,
            enrol_per_address_per_second: 20.0,
            enrol_per_address_burst: 200.0,
            sms_send_every: Some(Duration::from_secs(5)),
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A token bucket per key (a device, or a client address).
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// A limiter allowing `rate` requests per second and bursts of `burst`.
    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            rate: rate.max(0.001),
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one request for `device` (or any key); `Err(seconds)` to wait
    /// when none is left.
    pub fn check(&self, device: &str, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            // Forget devices idle long enough to have a full bucket again.
            let full = Duration::from_secs_f64(self.burst / self.rate);
            buckets.retain(|_, b| now.duration_since(b.at) < full);
        }
        let b = buckets.entry(device.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills() {
        let l = RateLimiter::new(2.0, 3.0);
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.check("d", t).is_ok());
        }
        assert_eq!(l.check("d", t), Err(1));
        assert!(
            l.check("other", t).is_ok(),
            "devices have their own buckets"
        );
        assert!(l.check("d", t + Duration::from_millis(600)).is_ok());
    }
}
