//! Workday's weekly maintenance window (Friday night, US Pacific, by default): errors inside it
//! are expected, so they are logged quietly, not reported as unhealthy, and retried after it.
//!
//! US Pacific is computed with the US daylight-saving rules (second Sunday of March to the first
//! Sunday of November, at 02:00 local), so no time-zone database is needed.

use chrono::{Datelike, Duration as ChronoDuration, NaiveDate, NaiveDateTime, Weekday};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    UsPacific,
    Utc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub weekday: Weekday,
    /// Minutes after local midnight.
    pub start_minute: u32,
    pub duration: Duration,
    pub zone: Zone,
}

/// Workday's default: Friday 22:00 to Saturday 04:00, US Pacific.
pub const DEFAULT: &str = "Fri 22:00 6h US/Pacific";

fn nth_sunday(year: i32, month: u32, n: u32) -> NaiveDate {
    let first = NaiveDate::from_ymd_opt(year, month, 1).unwrap_or_default();
    let offset = (7 - first.weekday().num_days_from_sunday()) % 7;
    first + ChronoDuration::days(i64::from(offset + 7 * (n - 1)))
}

/// UTC offset of US Pacific at a UTC instant: -7h in daylight time, else -8h.
fn pacific_offset_hours(utc: NaiveDateTime) -> i64 {
    let y = utc.year();
    // DST starts 02:00 PST (10:00 UTC) and ends 02:00 PDT (09:00 UTC).
    let start = nth_sunday(y, 3, 2)
        .and_hms_opt(10, 0, 0)
        .unwrap_or_default();
    let end = nth_sunday(y, 11, 1)
        .and_hms_opt(9, 0, 0)
        .unwrap_or_default();
    if utc >= start && utc < end {
        -7
    } else {
        -8
    }
}

impl Window {
    /// Parses `"Fri 22:00 6h US/Pacific"` (zone `US/Pacific` or `UTC`).
    pub fn parse(s: &str) -> Result<Window, String> {
        let parts: Vec<&str> = s.split_whitespace().collect();
        let [day, time, dur, zone] = parts.as_slice() else {
            return Err(format!("\"{s}\" is not like \"{DEFAULT}\" (or \"off\")"));
        };
        let weekday: Weekday = day
            .parse()
            .map_err(|_| format!("\"{day}\" is not a weekday (Mon … Sun)"))?;
        let (h, m) = time
            .split_once(':')
            .and_then(|(h, m)| Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)))
            .filter(|(h, m)| *h < 24 && *m < 60)
            .ok_or_else(|| format!("\"{time}\" is not a time like 22:00"))?;
        let duration = crate::config::parse_duration(dur)?;
        if duration.is_zero() || duration > Duration::from_secs(7 * 86400) {
            return Err(format!("\"{dur}\" must be above zero and at most 7d"));
        }
        let zone = match *zone {
            "US/Pacific" | "America/Los_Angeles" => Zone::UsPacific,
            "UTC" => Zone::Utc,
            other => {
                return Err(format!(
                    "\"{other}\" is not a supported zone (US/Pacific, UTC)"
                ))
            }
        };
        Ok(Window {
            weekday,
            start_minute: h * 60 + m,
            duration,
            zone,
        })
    }

    /// When `utc_ms` falls inside the window, the window's end (epoch ms).
    pub fn end_if_inside(&self, utc_ms: i64) -> Option<i64> {
        let utc = crate::clock::ms_to_datetime(utc_ms).naive_utc();
        let offset_h = match self.zone {
            Zone::UsPacific => pacific_offset_hours(utc),
            Zone::Utc => 0,
        };
        let local = utc + ChronoDuration::hours(offset_h);
        let dur = ChronoDuration::milliseconds(self.duration.as_millis() as i64);
        // The most recent start at or before `local`, looking back up to a week.
        for back in 0..8 {
            let day = local.date() - ChronoDuration::days(back);
            if day.weekday() != self.weekday {
                continue;
            }
            let start =
                day.and_hms_opt(0, 0, 0)? + ChronoDuration::minutes(i64::from(self.start_minute));
            if start > local {
                continue;
            }
            return (local < start + dur).then(|| {
                (start + dur - ChronoDuration::hours(offset_h))
                    .and_utc()
                    .timestamp_millis()
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        crate::clock::parse_rfc3339_ms(s).expect("time")
    }

    #[test]
    fn default_window_in_winter_and_summer() {
        let w = Window::parse(DEFAULT).expect("parse");
        // 2026-12-04 is a Friday; PST is UTC-8: the window is Sat 06:00–12:00 UTC.
        assert_eq!(
            w.end_if_inside(ms("2026-12-05T07:30:00Z")),
            Some(ms("2026-12-05T12:00:00Z"))
        );
        assert_eq!(w.end_if_inside(ms("2026-12-05T05:59:00Z")), None);
        assert_eq!(w.end_if_inside(ms("2026-12-05T12:00:00Z")), None);
        // 2026-07-03 is a Friday; PDT is UTC-7: Sat 05:00–11:00 UTC.
        assert_eq!(
            w.end_if_inside(ms("2026-07-04T05:30:00Z")),
            Some(ms("2026-07-04T11:00:00Z"))
        );
        assert_eq!(w.end_if_inside(ms("2026-07-04T04:59:00Z")), None);
        assert_eq!(w.end_if_inside(ms("2026-07-01T05:30:00Z")), None);
    }

    #[test]
    fn dst_boundaries_and_parsing() {
        assert_eq!(
            nth_sunday(2026, 3, 2),
            NaiveDate::from_ymd_opt(2026, 3, 8).expect("date")
        );
        assert_eq!(
            nth_sunday(2026, 11, 1),
            NaiveDate::from_ymd_opt(2026, 11, 1).expect("date")
        );
        let utc = Window::parse("Sun 23:00 2h UTC").expect("parse");
        assert_eq!(
            utc.end_if_inside(ms("2026-12-07T00:30:00Z")),
            Some(ms("2026-12-07T01:00:00Z"))
        );
        assert!(Window::parse("Funday 22:00 6h UTC").is_err());
        assert!(Window::parse("Fri 25:00 6h UTC").is_err());
        assert!(Window::parse("Fri 22:00 6h Mars/Olympus").is_err());
    }
}
