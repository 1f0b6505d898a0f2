//! The simulated tenant's activity log: deterministic from a seed, compact in memory (each
//! event is a time, a visibility time and a content seed; JSON is rendered on demand), and
//! shaped like the real thing: accounts, tasks, sessions, IPs, user agents, optional fields
//! missing, an unknown field now and then, byte-identical twins, events visible only minutes
//! after their `requestTime`, and a busy hour above Workday's 10,000-entry cap.

use crate::clock::rfc3339_ms;
use serde::Serialize;

/// What to generate.
#[derive(Debug, Clone)]
pub struct DatasetSpec {
    pub seed: u64,
    /// Events are spread over `[start_ms, end_ms)`.
    pub start_ms: i64,
    pub end_ms: i64,
    pub events: u64,
    /// An extra hour holding this many events, starting at the given time.
    pub busy_hour: Option<(i64, u64)>,
    /// Per mille of events that get a byte-identical twin.
    pub twins_per_mille: u64,
    /// Per mille of events that become visible late (1 to 12 minutes after `requestTime`);
    /// the rest appear within 20 seconds.
    pub late_per_mille: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimEvent {
    pub time_ms: i64,
    pub visible_ms: i64,
    /// Seeds the entry's fields; twins share it (and the time).
    pub content: u64,
}

pub struct Dataset {
    pub tenant: String,
    pub seed: u64,
    /// Sorted by `time_ms`.
    pub events: Vec<SimEvent>,
    /// Each event's entry, rendered once when generated: a real tenant's API costs the
    /// collector's machine nothing, and the benchmark runs the simulator on the same cores.
    rendered: Vec<Box<str>>,
}

/// splitmix64: a fast, well-mixed, deterministic hash of a counter.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Dataset {
    pub fn generate(tenant: &str, spec: &DatasetSpec) -> Dataset {
        let span = (spec.end_ms - spec.start_ms).max(1) as u64;
        let busy = spec.busy_hour.map(|(_, n)| n).unwrap_or(0);
        let mut events = Vec::with_capacity((spec.events + busy) as usize * 102 / 100);
        let mut push = |i: u64, time_ms: i64| {
            let h = mix(spec.seed ^ mix(i));
            let late = h % 1000 < spec.late_per_mille;
            let delay = if late {
                60_000 + (mix(h) % 660_000) as i64
            } else {
                (mix(h) % 20_000) as i64
            };
            let content = mix(h ^ 0xC0FFEE);
            events.push(SimEvent {
                time_ms,
                visible_ms: time_ms + delay,
                content,
            });
            if mix(h ^ 0x7717) % 1000 < spec.twins_per_mille {
                // A distinct event that looks exactly the same; it may surface at another time.
                let twin_delay = if mix(h ^ 0x1A7E) % 3 == 0 {
                    delay + 240_000
                } else {
                    delay
                };
                events.push(SimEvent {
                    time_ms,
                    visible_ms: time_ms + twin_delay,
                    content,
                });
            }
        };
        for i in 0..spec.events {
            let t = spec.start_ms + (mix(spec.seed.wrapping_add(i) ^ 0x5EED) % span) as i64;
            push(i, t);
        }
        if let Some((busy_start, n)) = spec.busy_hour {
            for j in 0..n {
                let i = spec.events + j;
                let t = busy_start + (mix(spec.seed.wrapping_add(i) ^ 0xB05) % 3_600_000) as i64;
                push(i, t);
            }
        }
        events.sort_by_key(|e| (e.time_ms, e.content, e.visible_ms));
        let rendered = events
            .iter()
            .map(|e| render_entry(tenant, e).into_boxed_str())
            .collect();
        Dataset {
            tenant: tenant.to_string(),
            seed: spec.seed,
            events,
            rendered,
        }
    }

    /// Indices of the events with `from_ms <= time < to_ms` (or `<=` when `to_inclusive`),
    /// visible at `now_ms`.
    pub fn matching(&self, from_ms: i64, to_ms: i64, to_inclusive: bool, now_ms: i64) -> Vec<u32> {
        let lo = self.events.partition_point(|e| e.time_ms < from_ms);
        let hi = if to_inclusive {
            self.events.partition_point(|e| e.time_ms <= to_ms)
        } else {
            self.events.partition_point(|e| e.time_ms < to_ms)
        };
        (lo..hi.max(lo))
            .filter(|&i| self.events[i].visible_ms <= now_ms)
            .map(|i| i as u32)
            .collect()
    }

    /// The entry's JSON, exactly as the simulator serves it.
    pub fn render(&self, e: &SimEvent) -> String {
        render_entry(&self.tenant, e)
    }

    /// Event `i`'s entry, as [`Dataset::render`] renders it.
    pub fn rendered(&self, i: u32) -> &str {
        &self.rendered[i as usize]
    }
}

const ACCOUNTS: &[(&str, &str)] = &[
    ("lmcneil", "Logan McNeil"),
    ("mchen", "Maria Chen"),
    ("jrivera", "Jose Rivera"),
    ("asingh", "Anika Singh"),
    ("tnguyen", "Thanh Nguyen"),
    ("bwalker", "Beth Walker"),
    ("okoroma", "Obi Okoroma"),
    ("sfischer", "Sven Fischer"),
    ("kyamamoto", "Kenji Yamamoto"),
    ("dlopez", "Diana Lopez"),
    ("rpatel", "Ravi Patel"),
    ("emartin", "Elise Martin"),
    ("gokafor", "Grace Okafor"),
    ("hmuller", "Hanna Muller"),
    ("pdubois", "Pierre Dubois"),
    ("cjohnson", "Chris Johnson"),
    ("ISU_SIEM_Integration", "ISU SIEM Integration"),
    ("wd-environments", "Workday Environments"),
];

const TASKS: &[(&str, &str, &str)] = &[
    (
        "dc1bea8c446c11de98360015c5e6daf6",
        "Get OMS Session Data (Web Service)",
        "READ",
    ),
    (
        "dc3e4ee2446c11de98360015c5e6daf6",
        "Workday System Status",
        "READ",
    ),
    ("2997$3471", "View Worker", "READ"),
    ("2997$4122", "Edit Worker Personal Information", "WRITE"),
    ("2997$5110", "View Compensation", "READ"),
    ("2997$5223", "Request Compensation Change", "WRITE"),
    ("2997$6001", "Change Job", "WRITE"),
    ("2997$6114", "Hire Employee", "WRITE"),
    ("2997$7002", "Terminate Employee", "WRITE"),
    ("2997$7310", "View Payslips", "READ"),
    ("2997$7455", "Change Benefit Elections", "WRITE"),
    ("2997$8020", "Find Workers by Organization", "READ"),
    ("2997$8101", "Export Worker Data (Report)", "READ"),
    ("2997$8233", "Maintain Security Groups", "WRITE"),
    ("2997$8340", "View Audit Trail", "READ"),
    ("2997$9011", "Sign In", "OTHER"),
    ("2997$9012", "Sign Out", "OTHER"),
    ("2997$9120", "Change Password", "WRITE"),
    ("2997$9301", "Run Report", "OTHER"),
    ("2997$9455", "Edit Tenant Setup - Security", "WRITE"),
];

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Workday/2024.45",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "python-requests/2.32.3",
    "Workday Studio/2024.3 \"integration\" \\ runner",
];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry<'a> {
    request_time: String,
    system_account: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_type: Option<&'a str>,
    task_id: &'a str,
    task_display_name: &'a str,
    activity_action: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<Target>,
    /// A field this collector has never heard of: it must be kept, not choked on.
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_sandbox_marker: Option<bool>,
}

#[derive(Serialize)]
struct Target {
    descriptor: String,
    id: String,
    href: String,
}

/// Content for entries the simulator logs about the collector's own polling.
pub const OWN_POLLING_CONTENT: u64 = u64::MAX;

fn render_entry(tenant: &str, e: &SimEvent) -> String {
    let c = e.content;
    let r = |salt: u64| mix(c ^ salt);
    if c == OWN_POLLING_CONTENT {
        let entry = Entry {
            request_time: rfc3339_ms(e.time_ms),
            system_account: "ISU_SIEM_Integration",
            session_id: Some(format!(
                "{:06x}",
                mix(e.time_ms as u64 / 3_600_000) & 0xFF_FFFF
            )),
            ip_address: Some("192.0.2.10".into()),
            user_agent: Some(concat!("workday-collector/", env!("CARGO_PKG_VERSION"))),
            device_type: None,
            task_id: "2997$1001",
            task_display_name: crate::workday::OWN_POLLING_TASK,
            activity_action: "READ",
            target: None,
            tenant_sandbox_marker: None,
        };
        return serde_json::to_string(&entry).unwrap_or_default();
    }
    let account_idx = r(1) % ACCOUNTS.len() as u64;
    let (account, _) = ACCOUNTS[account_idx as usize];
    let (task_id, task_name, action) = TASKS[(r(2) % TASKS.len() as u64) as usize];
    let day = e.time_ms.div_euclid(86_400_000) as u64;
    // Per account: the same IP and, per day, one of three sessions.
    let account_hash = mix(account_idx + 1);
    let session = format!("{:06x}", mix(account_hash ^ day ^ (r(3) % 3)) & 0xFF_FFFF);
    let ip = if r(4) % 20 == 0 {
        format!("2001:db8::{:x}", account_hash % 4096)
    } else {
        format!("203.0.113.{}", account_hash % 250 + 1)
    };
    let ua_idx = (r(5) % USER_AGENTS.len() as u64) as usize;
    let device = match ua_idx {
        2 | 3 => "Phone",
        4 => "Tablet",
        _ => "Desktop",
    };
    let (tacc, tname) = ACCOUNTS[(r(6) % ACCOUNTS.len() as u64) as usize];
    let target_id = format!("{:016x}{:016x}", r(7), r(8));
    let target = Target {
        descriptor: format!("{tacc} / {tname}"),
        href: format!(
            "https://wd2-impl-services1.workday.com/ccx/api/v1/{tenant}/workers/{target_id}"
        ),
        id: target_id,
    };
    let entry = Entry {
        request_time: rfc3339_ms(e.time_ms),
        system_account: account,
        session_id: (r(9) % 50 != 0).then_some(session),
        ip_address: (r(10) % 10 != 0).then_some(ip),
        user_agent: (r(11) % 7 != 0).then_some(USER_AGENTS[ua_idx]),
        device_type: (r(12) % 5 != 0).then_some(device),
        task_id,
        task_display_name: task_name,
        activity_action: action,
        target: (r(13) % 5 < 3).then_some(target),
        tenant_sandbox_marker: (r(14) % 200 == 0).then_some(true),
    };
    serde_json::to_string(&entry).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DatasetSpec {
        DatasetSpec {
            seed: 7,
            start_ms: 1_700_000_000_000,
            end_ms: 1_700_000_000_000 + 86_400_000,
            events: 5000,
            busy_hour: Some((1_700_000_000_000 + 3_600_000, 2000)),
            twins_per_mille: 20,
            late_per_mille: 30,
        }
    }

    #[test]
    fn deterministic_sorted_and_shaped() {
        let a = Dataset::generate("acme", &spec());
        let b = Dataset::generate("acme", &spec());
        assert_eq!(a.events, b.events);
        assert!(a.events.len() > 7000);
        assert!(a.events.windows(2).all(|w| w[0].time_ms <= w[1].time_ms));
        let rendered: Vec<String> = a.events.iter().map(|e| a.render(e)).collect();
        for (i, r) in rendered.iter().enumerate() {
            assert_eq!(a.rendered(i as u32), r);
        }
        // Byte-identical twins exist, entries lack optional fields, some are late.
        let mut sorted = rendered.clone();
        sorted.sort();
        assert!(sorted.windows(2).any(|w| w[0] == w[1]));
        assert!(rendered.iter().any(|r| !r.contains("\"target\"")));
        assert!(rendered.iter().any(|r| !r.contains("\"ipAddress\"")));
        assert!(rendered.iter().any(|r| r.contains("\"target\"")));
        assert!(a.events.iter().any(|e| e.visible_ms - e.time_ms > 60_000));
        for r in rendered.iter().take(50) {
            let v: serde_json::Value = serde_json::from_str(r).expect("valid json");
            assert!(v["requestTime"].as_str().is_some());
        }
    }

    #[test]
    fn matching_respects_bounds_and_visibility() {
        let d = Dataset::generate("acme", &spec());
        let from = d.events[10].time_ms;
        let to = d.events[20].time_ms;
        let all = d.matching(from, to, true, i64::MAX);
        let excl = d.matching(from, to, false, i64::MAX);
        assert!(all.len() > excl.len());
        assert!(d.matching(from, to, true, i64::MIN).is_empty());
    }
}
