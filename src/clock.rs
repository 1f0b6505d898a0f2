//! The collector's and the simulator's notion of "now".
//!
//! Production uses the system clock. Tests share one frozen clock between the simulator and the
//! daemon so that "what was visible at time T" is exact, and advance it to make late events
//! appear. Timers (poll intervals, backoff) deliberately stay on tokio's real clock.

use chrono::{DateTime, TimeZone, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const NOT_FROZEN: i64 = i64::MIN;

#[derive(Clone, Debug)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    frozen_ms: AtomicI64,
    offset_ms: AtomicI64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// The wall clock.
    pub fn system() -> Self {
        Clock {
            inner: Arc::new(Inner {
                frozen_ms: AtomicI64::new(NOT_FROZEN),
                offset_ms: AtomicI64::new(0),
            }),
        }
    }

    /// A clock that stands still at `at` until advanced.
    pub fn frozen(at: DateTime<Utc>) -> Self {
        let clock = Self::system();
        clock
            .inner
            .frozen_ms
            .store(at.timestamp_millis(), Ordering::SeqCst);
        clock
    }

    pub fn now_ms(&self) -> i64 {
        let frozen = self.inner.frozen_ms.load(Ordering::SeqCst);
        let base = if frozen == NOT_FROZEN {
            Utc::now().timestamp_millis()
        } else {
            frozen
        };
        base + self.inner.offset_ms.load(Ordering::SeqCst)
    }

    pub fn now(&self) -> DateTime<Utc> {
        ms_to_datetime(self.now_ms())
    }

    /// Moves this clock (and every clone of it) forward.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 4);
        self.inner.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

/// Milliseconds since the epoch to a UTC time; out-of-range values clamp to the epoch.
pub fn ms_to_datetime(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// RFC 3339 with milliseconds and `Z`, as used in every output line.
pub fn rfc3339_ms(ms: i64) -> String {
    let mut out = String::with_capacity(24);
    write_rfc3339_ms(ms, &mut out);
    out
}

/// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ` for an epoch-ms time in years 0 to 9999 (chrono's general
/// formatter otherwise). On the hot path: every event rendered goes through here.
pub fn write_rfc3339_ms(ms: i64, out: &mut String) {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        out.push_str(
            &ms_to_datetime(ms)
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string(),
        );
        return;
    }
    let mut buf = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, in_day / 3_600_000);
    put(14, 2, in_day / 60_000 % 60);
    put(17, 2, in_day / 1000 % 60);
    put(20, 3, in_day % 1000);
    out.extend(buf.iter().map(|&b| char::from(b)));
}

/// Howard Hinnant's days-to-civil: (year, month, day) of a day count from 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Whole-second RFC 3339, as sent to Workday.
pub fn rfc3339_s(ms: i64) -> String {
    ms_to_datetime(ms).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses an RFC 3339 / ISO-8601 UTC timestamp into epoch milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_timestamps_match_chrono() {
        let mut x = 0x1234_5678_u64;
        let mut cases = vec![
            0,
            -1,
            951_782_400_000,
            4_107_542_399_999,
            -62_135_596_800_000,
        ];
        for _ in 0..20_000 {
            x = crate::sim::dataset::mix(x);
            cases.push((x % 400_000_000_000_000) as i64 - 100_000_000_000_000);
        }
        for ms in cases {
            let slow = ms_to_datetime(ms)
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            assert_eq!(rfc3339_ms(ms), slow, "{ms}");
        }
    }

    #[test]
    fn frozen_clock_advances_all_clones() {
        let c = Clock::frozen(ms_to_datetime(1_000_000));
        let c2 = c.clone();
        c.advance(Duration::from_secs(5));
        assert_eq!(c2.now_ms(), 1_005_000);
    }

    #[test]
    fn formats_round_trip() {
        let ms = 1_764_000_123_456;
        assert_eq!(parse_rfc3339_ms(&rfc3339_ms(ms)), Some(ms));
        assert_eq!(parse_rfc3339_ms(&rfc3339_s(ms)), Some(ms - 456));
        assert_eq!(parse_rfc3339_ms("not a time"), None);
    }
}
