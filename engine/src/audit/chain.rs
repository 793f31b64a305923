//! The hash chain that makes an audit file tamper-evident. Every line is a JSON object
//! whose last member is `"hash"`: the SHA-256 of the line as it would read without that
//! member. The object also carries `seq` (1, 2, 3, ... within the file) and `prev_hash`
//! (the previous line's `hash`; 64 zeros on the first line). Editing a line breaks its own
//! hash; editing it and fixing the hash breaks the next line's `prev_hash`; dropping or
//! swapping lines breaks `seq` and `prev_hash`. Nothing here is secret, so anyone holding
//! the file can check it offline with `ironseal audit verify FILE`.
//!
//! Hashing the exact bytes written (rather than a re-serialisation) keeps the check
//! independent of JSON formatting.

use std::io::BufRead;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const SUFFIX_HEAD: &str = ",\"hash\":\"";
const SUFFIX_LEN: usize = SUFFIX_HEAD.len() + 64 + 2;

/// Where a chain stands: what the next line must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub seq: u64,
    pub hash: String,
}

impl Link {
    pub fn genesis() -> Self {
        Link {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }
}

/// Renders `entry` as the line that follows `prev`, and the link it becomes.
pub fn seal_line(mut entry: Map<String, Value>, prev: &Link) -> (String, Link) {
    let seq = prev.seq + 1;
    entry.insert("seq".into(), seq.into());
    entry.insert("prev_hash".into(), prev.hash.clone().into());
    entry.remove("hash");
    let body = Value::Object(entry).to_string();
    let hash = hex::encode(Sha256::digest(body.as_bytes()));
    let mut line = body;
    line.pop(); // the closing brace, put back after the hash member
    line.push_str(SUFFIX_HEAD);
    line.push_str(&hash);
    line.push_str("\"}");
    (line, Link { seq, hash })
}

/// Checks one line against the link before it; returns the line's own link.
pub fn check_line(line: &str, prev: &Link) -> Result<Link, String> {
    if line.len() < SUFFIX_LEN + 2 || !line.is_char_boundary(line.len() - SUFFIX_LEN) {
        return Err("not an audit line (no trailing hash)".into());
    }
    let (head, suffix) = line.split_at(line.len() - SUFFIX_LEN);
    let hash = suffix
        .strip_prefix(SUFFIX_HEAD)
        .and_then(|s| s.strip_suffix("\"}"))
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or("not an audit line (no trailing hash)")?;
    let body = format!("{head}}}");
    if hex::encode(Sha256::digest(body.as_bytes())) != hash {
        return Err("the line was altered: its hash does not match its content".into());
    }
    let parsed: Map<String, Value> =
        serde_json::from_str(&body).map_err(|e| format!("not JSON: {e}"))?;
    let seq = parsed.get("seq").and_then(Value::as_u64).ok_or("no seq")?;
    let prev_hash = parsed
        .get("prev_hash")
        .and_then(Value::as_str)
        .ok_or("no prev_hash")?;
    if seq != prev.seq + 1 {
        return Err(format!(
            "expected seq {}, found {seq}: a line was dropped, inserted or moved",
            prev.seq + 1
        ));
    }
    if prev_hash != prev.hash {
        return Err(
            "prev_hash does not match the line before: a line was altered, dropped or moved".into(),
        );
    }
    Ok(Link {
        seq,
        hash: hash.to_string(),
    })
}

/// Outcome of checking a whole file.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Intact { lines: u64 },
    Broken { line: u64, reason: String },
}

pub fn verify(reader: impl BufRead) -> std::io::Result<Verdict> {
    let mut link = Link::genesis();
    let mut n = 0u64;
    for line in reader.lines() {
        let line = line?;
        n += 1;
        match check_line(&line, &link) {
            Ok(next) => link = next,
            Err(reason) => return Ok(Verdict::Broken { line: n, reason }),
        }
    }
    Ok(Verdict::Intact { lines: n })
}

/// The link the file's last line leaves, so a reopened file continues its chain. A file
/// whose tail is not a valid audit line is refused rather than silently restarted.
pub fn last_link(contents: &str) -> Result<Link, String> {
    let Some(last) = contents.lines().rev().find(|l| !l.is_empty()) else {
        return Ok(Link::genesis());
    };
    let body_end = last.len().saturating_sub(SUFFIX_LEN);
    let parsed: Map<String, Value> = last
        .get(..body_end)
        .and_then(|head| serde_json::from_str(&format!("{head}}}")).ok())
        .ok_or("its last line is not an audit line")?;
    let seq = parsed
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or("its last line has no seq")?;
    let prev = Link {
        seq: seq - 1,
        hash: parsed
            .get("prev_hash")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    };
    check_line(last, &prev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn file(n: usize) -> Vec<String> {
        let mut link = Link::genesis();
        (0..n)
            .map(|i| {
                let Value::Object(m) = json!({"type": "request", "path": format!("p{i}")}) else {
                    unreachable!()
                };
                let (line, next) = seal_line(m, &link);
                link = next;
                line
            })
            .collect()
    }

    fn check(lines: &[String]) -> Verdict {
        verify(lines.join("\n").as_bytes()).unwrap()
    }

    #[test]
    fn an_untouched_file_verifies() {
        assert_eq!(check(&file(5)), Verdict::Intact { lines: 5 });
        assert_eq!(last_link(&file(5).join("\n")).unwrap().seq, 5);
    }

    #[test]
    fn edits_drops_and_swaps_are_found_at_their_line() {
        let mut edited = file(5);
        edited[2] = edited[2].replace("p2", "p9");
        assert!(matches!(check(&edited), Verdict::Broken { line: 3, .. }));

        let mut dropped = file(5);
        dropped.remove(1);
        assert!(matches!(check(&dropped), Verdict::Broken { line: 2, .. }));

        let mut swapped = file(5);
        swapped.swap(1, 3);
        assert!(matches!(check(&swapped), Verdict::Broken { line: 2, .. }));
    }

    #[test]
    fn an_edit_with_a_recomputed_hash_breaks_the_next_line() {
        let mut lines = file(4);
        let Value::Object(mut m) = serde_json::from_str::<Value>(&lines[1]).unwrap() else {
            unreachable!()
        };
        m.insert("path".into(), "forged".into());
        let prev = Link {
            seq: 1,
            hash: serde_json::from_str::<Value>(&lines[0]).unwrap()["hash"]
                .as_str()
                .unwrap()
                .to_string(),
        };
        lines[1] = seal_line(m, &prev).0;
        assert!(matches!(check(&lines), Verdict::Broken { line: 3, .. }));
    }
}
