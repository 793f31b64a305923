//! Reading a device's own file back, newest first, for the console's audit page
//! (`GET /api/v1/audit/entries`): the lines are what the device wrote (secrets already
//! HMAC'd), filtered by path, operation, outcome and time.

use std::collections::VecDeque;
use std::io::BufRead;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

/// Most entries one read returns.
pub const MAX_LIMIT: usize = 1000;

/// Whether a logged request went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    /// Refused by authorization (403).
    Denied,
    Error,
}

impl Outcome {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Outcome::Success),
            "denied" => Some(Outcome::Denied),
            "error" => Some(Outcome::Error),
            _ => None,
        }
    }

    /// A line's outcome: its response status, or (a request line) whether it carries an
    /// error; internal events succeeded.
    fn of(line: &Value) -> Self {
        let status = line["response"]["status"].as_u64();
        let error = line["error"].as_str().unwrap_or_default();
        match status {
            Some(403) => Outcome::Denied,
            Some(s) if s >= 400 => Outcome::Error,
            Some(_) => Outcome::Success,
            None if error.contains("permission denied") => Outcome::Denied,
            None if !error.is_empty() => Outcome::Error,
            None => Outcome::Success,
        }
    }
}

/// Which lines to return.
#[derive(Debug, Clone, Default)]
pub struct EntryQuery {
    /// A device path; the first enabled device when `None`.
    pub device: Option<String>,
    /// Lines whose request path contains this.
    pub path: Option<String>,
    pub operation: Option<String>,
    pub outcome: Option<Outcome>,
    /// `request`, `response` or `event`.
    pub kind: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub limit: usize,
}

/// One line as the API shows it: the line itself and its outcome.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub outcome: Outcome,
    pub line: Value,
}

impl EntryQuery {
    fn matches(&self, line: &Value) -> bool {
        let request = &line["request"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        if let Some(p) = &self.path {
            if !text(&request["path"]).contains(p.as_str()) {
                return false;
            }
        }
        if let Some(op) = &self.operation {
            if text(&request["operation"]) != *op {
                return false;
            }
        }
        if let Some(kind) = &self.kind {
            if text(&line["type"]) != *kind {
                return false;
            }
        }
        if self.since.is_some() || self.until.is_some() {
            let Ok(at) = OffsetDateTime::parse(
                &text(&line["time"]),
                &time::format_description::well_known::Rfc3339,
            ) else {
                return false;
            };
            if self.since.is_some_and(|s| at < s) || self.until.is_some_and(|u| at > u) {
                return false;
            }
        }
        self.outcome.is_none_or(|o| o == Outcome::of(line))
    }

    /// The last `limit` matching lines of `reader`, newest first. Lines that are not
    /// JSON (a torn write) are skipped: `verify` is what reports them.
    pub fn read(&self, reader: impl BufRead) -> std::io::Result<Vec<Entry>> {
        let limit = self.limit.clamp(1, MAX_LIMIT);
        let mut kept = VecDeque::with_capacity(limit);
        for line in reader.lines() {
            let Ok(value) = serde_json::from_str::<Value>(&line?) else {
                continue;
            };
            if !self.matches(&value) {
                continue;
            }
            if kept.len() == limit {
                kept.pop_front();
            }
            kept.push_back(value);
        }
        Ok(kept
            .into_iter()
            .rev()
            .map(|line| Entry {
                outcome: Outcome::of(&line),
                line,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = concat!(
        r#"{"type":"request","time":"2026-01-01T10:00:00Z","request":{"path":"sys/policies/acl/a","operation":"update"},"error":""}"#,
        "\n",
        r#"{"type":"response","time":"2026-01-01T10:00:01Z","request":{"path":"sys/policies/acl/a","operation":"update"},"response":{"status":204},"error":""}"#,
        "\n",
        "torn\n",
        r#"{"type":"response","time":"2026-01-01T11:00:00Z","request":{"path":"secret/data/x","operation":"read"},"response":{"status":403},"error":"permission denied"}"#,
        "\n",
        r#"{"type":"response","time":"2026-01-01T12:00:00Z","request":{"path":"api/v1/keys","operation":"update"},"response":{"status":400},"error":"bad"}"#,
        "\n",
    );

    fn paths(q: &EntryQuery) -> Vec<String> {
        q.read(LOG.as_bytes())
            .expect("read")
            .iter()
            .map(|e| e.line["request"]["path"].as_str().unwrap_or("").to_string())
            .collect()
    }

    #[test]
    fn newest_first_within_the_limit() {
        let q = EntryQuery {
            limit: 2,
            ..Default::default()
        };
        assert_eq!(paths(&q), ["api/v1/keys", "secret/data/x"]);
    }

    #[test]
    fn filters_by_path_operation_outcome_kind_and_time() {
        let base = EntryQuery {
            limit: 10,
            ..Default::default()
        };
        let q = EntryQuery {
            path: Some("policies".into()),
            kind: Some("response".into()),
            ..base.clone()
        };
        assert_eq!(paths(&q), ["sys/policies/acl/a"]);
        let q = EntryQuery {
            outcome: Some(Outcome::Denied),
            ..base.clone()
        };
        assert_eq!(paths(&q), ["secret/data/x"]);
        let q = EntryQuery {
            outcome: Some(Outcome::Error),
            ..base.clone()
        };
        assert_eq!(paths(&q), ["api/v1/keys"]);
        let q = EntryQuery {
            operation: Some("read".into()),
            ..base.clone()
        };
        assert_eq!(paths(&q), ["secret/data/x"]);
        let at =
            |s: &str| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok();
        let q = EntryQuery {
            since: at("2026-01-01T10:30:00Z"),
            until: at("2026-01-01T11:30:00Z"),
            ..base
        };
        assert_eq!(paths(&q), ["secret/data/x"]);
    }
}
