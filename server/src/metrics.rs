//! `/metrics` in the Prometheus text format: requests by route and status,
//! request latency by route, events held by verdict, devices enrolled and
//! flagged. Labels are routes, statuses and verdicts: never a device id,
//! reference or anything personal.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use handover_office::report::StoreFigures;

/// Upper bounds of the latency histogram, seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The service's counters.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    events_received: Mutex<u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    /// Count a request to `route` answered with `status` after `took`.
    pub fn record(&self, route: &'static str, status: u16, took: Duration) {
        *lock(&self.requests).entry((route, status)).or_insert(0) += 1;
        let mut latency = lock(&self.latency);
        let h = latency.entry(route).or_default();
        let secs = took.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Count events received in batches.
    pub fn events_received(&self, n: u64) {
        *lock(&self.events_received) += n;
    }

    /// The text exposition, with the store's figures.
    pub fn render(&self, store: &StoreFigures) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP handover_requests_total Requests answered, by route and status."
        );
        let _ = writeln!(out, "# TYPE handover_requests_total counter");
        for ((route, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "handover_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP handover_request_duration_seconds Time to answer a request, by route."
        );
        let _ = writeln!(out, "# TYPE handover_request_duration_seconds histogram");
        for (route, h) in lock(&self.latency).iter() {
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "handover_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "handover_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "handover_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "handover_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        let _ = writeln!(out, "# HELP handover_batch_events_received_total Events received in batches by this process.");
        let _ = writeln!(out, "# TYPE handover_batch_events_received_total counter");
        let _ = writeln!(
            out,
            "handover_batch_events_received_total {}",
            lock(&self.events_received)
        );
        let _ = writeln!(
            out,
            "# HELP handover_events Events the office holds, by verdict."
        );
        let _ = writeln!(out, "# TYPE handover_events gauge");
        for (verdict, n) in &store.events_by_verdict {
            let _ = writeln!(out, "handover_events{{verdict=\"{verdict}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP handover_devices Devices enrolled.");
        let _ = writeln!(out, "# TYPE handover_devices gauge");
        let _ = writeln!(out, "handover_devices {}", store.devices);
        let _ = writeln!(
            out,
            "# HELP handover_devices_flagged Devices flagged (a fork)."
        );
        let _ = writeln!(out, "# TYPE handover_devices_flagged gauge");
        let _ = writeln!(out, "handover_devices_flagged {}", store.devices_flagged);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.record("/v1/batches", 200, Duration::from_millis(3));
        m.record("/v1/batches", 200, Duration::from_millis(300));
        m.record("/v1/batches", 409, Duration::from_millis(1));
        let text = m.render(&StoreFigures::default());
        assert!(text.contains("handover_requests_total{route=\"/v1/batches\",status=\"200\"} 2"));
        assert!(text.contains(
            "handover_request_duration_seconds_bucket{route=\"/v1/batches\",le=\"0.005\"} 2"
        ));
        assert!(text.contains(
            "handover_request_duration_seconds_bucket{route=\"/v1/batches\",le=\"0.5\"} 3"
        ));
        assert!(text.contains("handover_request_duration_seconds_count{route=\"/v1/batches\"} 3"));
    }
}
