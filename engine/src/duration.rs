//! Vault's duration strings: "30", "30s", "5m", "1h30m", "768h", "2d".

use crate::error::EngineError;

/// Parses a duration into seconds. A bare number is seconds, as in Vault.
pub fn parse_duration(s: &str) -> Result<u64, EngineError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(secs);
    }
    let bad = || {
        EngineError::bad(format!(
            "invalid duration {s:?}: use a number of seconds or units s, m, h, d"
        ))
    };
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit: f64 = match c {
            's' => 1.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0.001
            }
            'm' => 60.0,
            'h' => 3600.0,
            'd' => 86400.0,
            _ => return Err(bad()),
        };
        let n: f64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total = total.saturating_add((n * unit) as u64);
    }
    if !number.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// Accepts a JSON number of seconds or a duration string, as Vault's field parser does.
pub fn duration_from_json(v: &serde_json::Value) -> Result<u64, EngineError> {
    match v {
        serde_json::Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .ok_or_else(|| EngineError::bad("a duration cannot be negative")),
        serde_json::Value::String(s) => parse_duration(s),
        serde_json::Value::Null => Ok(0),
        _ => Err(EngineError::bad(
            "a duration is a number of seconds or a string like \"1h\"",
        )),
    }
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
        assert_eq!(format_duration(3600), "1h0m0s");
        assert_eq!(format_duration(0), "0s");
    }
}
