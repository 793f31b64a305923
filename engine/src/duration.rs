//! Vault's duration strings: "30", "30s", "5m", "1h30m", "768h", "2d".

use crate::error::EngineError;

/// The longest duration accepted, in seconds: Go's `time.Duration` limit (2^63 - 1
/// nanoseconds, about 292 years), past which Vault refuses a duration too. Anything
/// below it can be added to any time of this millennium without overflow.
pub const MAX_DURATION_SECS: u64 = (i64::MAX as u64) / 1_000_000_000;

fn too_long(s: &str) -> EngineError {
    EngineError::bad(format!(
        "invalid duration {s:?}: longer than the limit of {}h ({MAX_DURATION_SECS} seconds)",
        MAX_DURATION_SECS / 3600
    ))
}

fn capped(secs: u64, s: &str) -> Result<u64, EngineError> {
    if secs > MAX_DURATION_SECS {
        return Err(too_long(s));
    }
    Ok(secs)
}

/// Parses a duration into whole seconds (a fraction is dropped). A bare number is
/// seconds, as in Vault. Refuses durations longer than [`MAX_DURATION_SECS`].
pub fn parse_duration(s: &str) -> Result<u64, EngineError> {
    parse_duration_precise(s).map(|d| d.as_secs())
}

/// [`parse_duration`] to the millisecond, for settings under a second such as the
/// listener's `http_read_header_timeout = "250ms"`.
pub fn parse_duration_precise(s: &str) -> Result<std::time::Duration, EngineError> {
    use std::time::Duration;
    let s = s.trim();
    if s.is_empty() {
        return Ok(Duration::ZERO);
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<u64>() {
            Ok(secs) => capped(secs, s).map(Duration::from_secs),
            Err(_) => Err(too_long(s)),
        };
    }
    let bad = || {
        EngineError::bad(format!(
            "invalid duration {s:?}: use a number of seconds or units s, m, h, d"
        ))
    };
    // In milliseconds, so "250ms" is exact.
    let mut total: f64 = 0.0;
    let mut number = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit: f64 = match c {
            's' => 1e3,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1.0
            }
            'm' => 60e3,
            'h' => 3600e3,
            'd' => 86400e3,
            _ => return Err(bad()),
        };
        let n: f64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total += n * unit;
        // Also stops an overlong run of digits (which parses to infinity) here.
        if !total.is_finite() || total > MAX_DURATION_SECS as f64 * 1e3 {
            return Err(too_long(s));
        }
    }
    if !number.is_empty() {
        return Err(bad());
    }
    // In range, checked above: the cast neither wraps nor saturates.
    Ok(Duration::from_millis(total as u64))
}

/// Accepts a JSON number of seconds or a duration string, as Vault's field parser does.
pub fn duration_from_json(v: &serde_json::Value) -> Result<u64, EngineError> {
    match v {
        serde_json::Value::Number(n) => {
            if let Some(secs) = n.as_u64() {
                return capped(secs, &n.to_string());
            }
            match n.as_f64() {
                Some(f) if f < 0.0 => Err(EngineError::bad("a duration cannot be negative")),
                Some(f) if f.is_finite() && f <= MAX_DURATION_SECS as f64 => Ok(f as u64),
                _ => Err(too_long(&n.to_string())),
            }
        }
        serde_json::Value::String(s) => parse_duration(s),
        serde_json::Value::Null => Ok(0),
        _ => Err(EngineError::bad(
            "a duration is a number of seconds or a string like \"1h\"",
        )),
    }
}

/// `now` plus `secs`, or None when the sum is past what a time can hold (durations from
/// requests are capped well below that; stored values from older releases may not be).
pub fn checked_after(now: time::OffsetDateTime, secs: u64) -> Option<time::OffsetDateTime> {
    let secs = i64::try_from(secs).ok()?;
    now.checked_add(time::Duration::seconds(secs))
}

/// Formats seconds the way Vault prints `delete_version_after`: "0s", "1h0m0s".
pub fn format_duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vault_durations() {
        assert_eq!(parse_duration("30").unwrap(), 30);
        assert_eq!(parse_duration("30s").unwrap(), 30);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration("768h").unwrap(), 768 * 3600);
        assert_eq!(parse_duration("2d").unwrap(), 172800);
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("10x").is_err());
        assert_eq!(parse_duration("1500ms").unwrap(), 1);
        assert_eq!(
            parse_duration_precise("250ms").unwrap(),
            std::time::Duration::from_millis(250)
        );
        assert_eq!(
            parse_duration_precise("1m30s").unwrap(),
            std::time::Duration::from_secs(90)
        );
        assert_eq!(
            parse_duration_precise("1.5s").unwrap(),
            std::time::Duration::from_millis(1500)
        );
        assert_eq!(
            parse_duration_precise("7").unwrap(),
            std::time::Duration::from_secs(7)
        );
        assert_eq!(format_duration(3600), "1h0m0s");
        assert_eq!(format_duration(0), "0s");
    }

    #[test]
    fn huge_durations_are_refused_not_wrapped() {
        for s in [
            "999999999999h",
            "18446744073709551615",
            "18446744073709551616",
            "9223372037s",
            "106752d",
            "99999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999s",
        ] {
            let e = parse_duration(s).unwrap_err();
            assert!(matches!(e, EngineError::BadRequest(ref m) if m.contains("limit")), "{s}: {e}");
        }
        assert_eq!(parse_duration("2562047h").unwrap(), 2562047 * 3600);
        assert_eq!(parse_duration("9223372036").unwrap(), MAX_DURATION_SECS);
        let json = |v: serde_json::Value| duration_from_json(&v);
        assert!(json(serde_json::json!(u64::MAX)).is_err());
        assert!(json(serde_json::json!(1e300)).is_err());
        assert!(json(serde_json::json!(-1)).is_err());
        assert!(json(serde_json::json!(-1.5)).is_err());
        assert_eq!(json(serde_json::json!(90.0)).unwrap(), 90);
        assert_eq!(json(serde_json::json!("1h")).unwrap(), 3600);
    }

    #[test]
    fn checked_after_never_panics() {
        let now = time::OffsetDateTime::now_utc();
        assert!(checked_after(now, MAX_DURATION_SECS).is_some());
        assert!(checked_after(now, u64::MAX).is_none());
        assert!(checked_after(now, i64::MAX as u64).is_none());
    }
}
