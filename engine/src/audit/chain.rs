//! The hash chain that makes an audit file tamper-evident. Every line is a JSON object
//! whose last member is its tag: the MAC of the line as it would read without that
//! member. The object also carries `seq` (1, 2, 3, ... within the file) and `prev_hash`
//! (the previous line's tag; 64 zeros on the first line). Editing a line breaks its own
//! tag; editing it and fixing the tag breaks the next line's `prev_hash`; dropping or
//! swapping lines breaks `seq` and `prev_hash`.
//!
//! Two tags exist. `"hmac"` (every line written now) is HMAC-SHA256 under the chain key,
//! a secret kept behind the barrier, so only the appliance can write a line that verifies:
//! rewriting the file needs the unsealed appliance. `"hash"` (files written before the
//! chain was keyed) is a plain SHA-256 that anyone can recompute. A file may start with
//! `hash` lines and continue with `hmac` lines (the member name marks the switch), never
//! the other way round: an unkeyed line after a keyed one is a forgery.
//!
//! Without the key (offline), only the structure, `seq` continuity, the `prev_hash` links
//! and the unkeyed tags can be checked; the verdict says so.
//!
//! A cut: when the daemon opens a file whose tail is not a chain line (a write torn by a
//! crash, or bytes someone appended), it keeps those bytes, ends them with a newline and
//! writes an `audit-file-cut` event naming their offset and length, chained to the last
//! good line. Verification reports the cut instead of failing on it.
//!
//! Hashing the exact bytes written (rather than a re-serialisation) keeps the check
//! independent of JSON formatting.

use std::io::BufRead;

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const HASH_HEAD: &str = ",\"hash\":\"";
const HMAC_HEAD: &str = ",\"hmac\":\"";
/// Both heads are 9 bytes, so a tag always takes the last `SUFFIX_LEN` bytes of a line.
const SUFFIX_LEN: usize = HASH_HEAD.len() + 64 + 2;

/// The event a cut line records, and the reasons it gives.
pub const CUT_EVENT: &str = "audit-file-cut";
pub const CUT_TORN: &str = "torn";
pub const CUT_INVALID: &str = "invalid";
/// The event recorded when the file at open ends before the head kept in storage.
pub const BEHIND_EVENT: &str = "audit-file-behind-stored-head";

/// The secret that keys the chain's MACs.
pub struct ChainKey(Zeroizing<Vec<u8>>);

impl ChainKey {
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        ChainKey(bytes)
    }

    fn mac(&self, body: &[u8]) -> String {
        // HMAC accepts keys of any length, so this cannot fail; an empty tag would only
        // make every line fail verification, never pass it.
        match <Hmac<Sha256> as Mac>::new_from_slice(&self.0) {
            Ok(mut m) => {
                m.update(body);
                hex::encode(m.finalize().into_bytes())
            }
            Err(_) => String::new(),
        }
    }
}

/// Where a chain stands: what the next line must carry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// Renders `entry` as the keyed line that follows `prev`, and the link it becomes.
pub fn seal_line(mut entry: Map<String, Value>, prev: &Link, key: &ChainKey) -> (String, Link) {
    let seq = prev.seq + 1;
    entry.insert("seq".into(), seq.into());
    entry.insert("prev_hash".into(), prev.hash.clone().into());
    entry.remove("hash");
    entry.remove("hmac");
    let body = Value::Object(entry).to_string();
    let hash = key.mac(body.as_bytes());
    let mut line = body;
    line.pop(); // the closing brace, put back after the tag member
    line.push_str(HMAC_HEAD);
    line.push_str(&hash);
    line.push_str("\"}");
    (line, Link { seq, hash })
}

/// One line taken apart.
pub struct Parsed {
    pub link: Link,
    pub prev_hash: String,
    pub keyed: bool,
    /// Set when the line is an `audit-file-cut` event: (offset, length, reason).
    pub cut: Option<(u64, u64, String)>,
    /// Set when the line is an `audit-file-behind-stored-head` event.
    pub behind: Option<String>,
}

/// Parses a line and checks its own tag: always for `hash` lines, for `hmac` lines when
/// `key` is given. `seq` and `prev_hash` are only read here, not checked.
pub fn parse_line(line: &[u8], key: Option<&ChainKey>) -> Result<Parsed, String> {
    let line = std::str::from_utf8(line).map_err(|_| "not an audit line (not UTF-8)")?;
    if line.len() < SUFFIX_LEN + 2 || !line.is_char_boundary(line.len() - SUFFIX_LEN) {
        return Err("not an audit line (no trailing hash)".into());
    }
    let (head, suffix) = line.split_at(line.len() - SUFFIX_LEN);
    let (tag, keyed) = if let Some(t) = suffix.strip_prefix(HMAC_HEAD) {
        (t, true)
    } else if let Some(t) = suffix.strip_prefix(HASH_HEAD) {
        (t, false)
    } else {
        return Err("not an audit line (no trailing hash)".into());
    };
    let tag = tag
        .strip_suffix("\"}")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or("not an audit line (no trailing hash)")?;
    let body = format!("{head}}}");
    let expected = match (keyed, key) {
        (false, _) => Some(hex::encode(Sha256::digest(body.as_bytes()))),
        (true, Some(k)) => Some(k.mac(body.as_bytes())),
        (true, None) => None,
    };
    if expected.is_some_and(|e| !crate::crypto::constant_time_eq(e.as_bytes(), tag.as_bytes())) {
        return Err("the line was altered: its hash does not match its content".into());
    }
    let parsed: Map<String, Value> =
        serde_json::from_str(&body).map_err(|e| format!("not JSON: {e}"))?;
    let seq = parsed.get("seq").and_then(Value::as_u64).ok_or("no seq")?;
    let prev_hash = parsed
        .get("prev_hash")
        .and_then(Value::as_str)
        .ok_or("no prev_hash")?
        .to_string();
    let event = parsed.get("event").and_then(Value::as_str);
    let data = parsed.get("data");
    let cut = (event == Some(CUT_EVENT))
        .then(|| {
            let d = data?;
            Some((
                d.get("offset")?.as_u64()?,
                d.get("length")?.as_u64()?,
                d.get("reason")?.as_str()?.to_string(),
            ))
        })
        .flatten();
    let behind =
        (event == Some(BEHIND_EVENT)).then(|| data.map(Value::to_string).unwrap_or_default());
    Ok(Parsed {
        link: Link {
            seq,
            hash: tag.to_string(),
        },
        prev_hash,
        keyed,
        cut,
        behind,
    })
}

/// Checks one line against the link before it; returns the line taken apart.
pub fn check_line(
    line: &[u8],
    prev: &Link,
    key: Option<&ChainKey>,
    seen_keyed: bool,
) -> Result<Parsed, String> {
    let parsed = parse_line(line, key)?;
    if seen_keyed && !parsed.keyed {
        return Err(
            "an unkeyed line after keyed ones: written by someone without the chain key".into(),
        );
    }
    if parsed.link.seq != prev.seq + 1 {
        return Err(format!(
            "expected seq {}, found {}: a line was dropped, inserted or moved",
            prev.seq + 1,
            parsed.link.seq
        ));
    }
    if parsed.prev_hash != prev.hash {
        return Err(
            "prev_hash does not match the line before: a line was altered, dropped or moved".into(),
        );
    }
    Ok(parsed)
}

/// A cut the daemon recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cut {
    /// The first line that is not part of the chain.
    pub line: u64,
    pub offset: u64,
    pub length: u64,
    pub reason: String,
    /// The line that records it.
    pub recorded_at: u64,
}

/// Outcome of checking a whole file.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub lines: u64,
    pub keyed_lines: u64,
    pub unkeyed_lines: u64,
    /// False offline: keyed lines' MACs were not checked.
    pub macs_checked: bool,
    pub cuts: Vec<Cut>,
    /// Events where the daemon found the file behind the head kept in storage.
    pub behind: Vec<(u64, String)>,
    /// The first line that breaks the chain, its byte offset and why.
    pub broken: Option<(u64, u64, String)>,
    /// The last link of the chain.
    pub head: Option<Link>,
    /// Whether the chain passed through `expected_head` (when one was given).
    pub head_found: bool,
}

impl Report {
    /// Intact, every cut a torn write, and nothing found behind the stored head.
    pub fn is_clean(&self) -> bool {
        self.broken.is_none()
            && self.behind.is_empty()
            && self.cuts.iter().all(|c| c.reason == CUT_TORN)
    }
}

/// Checks a whole file. With `key`, keyed lines' MACs are checked too; with
/// `expected_head`, the report says whether the chain passes through it.
pub fn verify(
    mut reader: impl BufRead,
    key: Option<&ChainKey>,
    expected_head: Option<&Link>,
) -> std::io::Result<Report> {
    let mut report = Report {
        macs_checked: key.is_some(),
        head_found: expected_head.is_some_and(|h| h.seq == 0),
        ..Report::default()
    };
    let mut link = Link::genesis();
    let mut seen_keyed = false;
    let mut offset = 0u64;
    // The first line of a run that is not part of the chain: (line, offset, reason).
    let mut pending: Option<(u64, u64, String)> = None;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = reader.read_until(b'\n', &mut buf)?;
        if read == 0 {
            break;
        }
        report.lines += 1;
        let n = report.lines;
        let start = offset;
        offset += read as u64;
        let terminated = buf.last() == Some(&b'\n');
        let line = if terminated {
            &buf[..buf.len() - 1]
        } else {
            &buf[..]
        };
        let checked = if terminated {
            check_line(line, &link, key, seen_keyed)
        } else {
            Err(format!(
                "the last line ends without a line end at offset {start}: a write cut by a \
                 crash, which the daemon records when it next opens the file"
            ))
        };
        let parsed = match (checked, &pending) {
            (Err(reason), None) => {
                pending = Some((n, start, reason));
                continue;
            }
            (Err(_), Some(_)) => continue,
            (Ok(p), Some((first, at, _)))
                if p.cut
                    .as_ref()
                    .is_some_and(|(o, l, _)| *o == *at && *l == start - *at) =>
            {
                let (_, length, reason) = p.cut.clone().unwrap_or_default();
                report.cuts.push(Cut {
                    line: *first,
                    offset: *at,
                    length,
                    reason,
                    recorded_at: n,
                });
                pending = None;
                p
            }
            // A good line after bad ones that it does not record: the bad lines were
            // slipped into the chain.
            (Ok(_), Some(_)) => continue,
            (Ok(p), None) => {
                if let Some((o, l, _)) = &p.cut {
                    report.broken = Some((
                        n,
                        start,
                        format!(
                            "records a cut of {l} bytes at offset {o}, but those bytes are gone"
                        ),
                    ));
                    return Ok(report);
                }
                p
            }
        };
        if let Some(b) = parsed.behind.clone() {
            report.behind.push((n, b));
        }
        if parsed.keyed {
            seen_keyed = true;
            report.keyed_lines += 1;
        } else {
            report.unkeyed_lines += 1;
        }
        link = parsed.link;
        if expected_head.is_some_and(|h| *h == link) {
            report.head_found = true;
        }
    }
    report.broken = pending;
    if report.lines > 0 {
        report.head = Some(link);
    }
    Ok(report)
}

/// Parses a chain line's own tag only; for the daemon scanning a file backwards.
pub fn self_check(line: &[u8], key: &ChainKey) -> Option<Link> {
    parse_line(line, Some(key)).ok().map(|p| p.link)
}

/// The entry of a cut event.
pub fn cut_entry(offset: u64, length: u64, reason: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("type".into(), "event".into());
    m.insert("event".into(), CUT_EVENT.into());
    m.insert(
        "data".into(),
        serde_json::json!({"offset": offset, "length": length, "reason": reason}),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> ChainKey {
        ChainKey::new(Zeroizing::new(vec![7; 32]))
    }

    fn entry(i: usize) -> Map<String, Value> {
        let Value::Object(m) = json!({"type": "request", "path": format!("p{i}")}) else {
            unreachable!()
        };
        m
    }

    fn file(n: usize) -> Vec<String> {
        let mut link = Link::genesis();
        (0..n)
            .map(|i| {
                let (line, next) = seal_line(entry(i), &link, &key());
                link = next;
                line
            })
            .collect()
    }

    /// The old unkeyed format, as files written before the key existed hold it.
    fn unkeyed(entry: Map<String, Value>, prev: &Link) -> (String, Link) {
        let mut e = entry;
        e.insert("seq".into(), (prev.seq + 1).into());
        e.insert("prev_hash".into(), prev.hash.clone().into());
        let body = Value::Object(e).to_string();
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        let mut line = body;
        line.pop();
        line.push_str(&format!(",\"hash\":\"{hash}\"}}"));
        (
            line,
            Link {
                seq: prev.seq + 1,
                hash,
            },
        )
    }

    fn check(lines: &[String]) -> Report {
        verify((lines.join("\n") + "\n").as_bytes(), Some(&key()), None).unwrap()
    }

    fn broken_line(r: &Report) -> Option<u64> {
        r.broken.as_ref().map(|b| b.0)
    }

    #[test]
    fn an_untouched_file_verifies() {
        let r = check(&file(5));
        assert!(r.is_clean(), "{r:?}");
        assert_eq!(r.lines, 5);
        assert_eq!(r.keyed_lines, 5);
        assert_eq!(r.head.unwrap().seq, 5);
    }

    #[test]
    fn edits_drops_and_swaps_are_found_at_their_line() {
        let mut edited = file(5);
        edited[2] = edited[2].replace("p2", "p9");
        assert_eq!(broken_line(&check(&edited)), Some(3));

        let mut dropped = file(5);
        dropped.remove(1);
        assert_eq!(broken_line(&check(&dropped)), Some(2));

        let mut swapped = file(5);
        swapped.swap(1, 3);
        assert_eq!(broken_line(&check(&swapped)), Some(2));
    }

    #[test]
    fn a_writer_without_the_key_cannot_forge_a_line() {
        let mut lines = file(4);
        // Recompute the tag as a plain SHA-256, the only thing possible without the key.
        let Value::Object(mut m) = serde_json::from_str::<Value>(&lines[3]).unwrap() else {
            unreachable!()
        };
        m.insert("path".into(), "forged".into());
        let prev = Link {
            seq: 3,
            hash: serde_json::from_str::<Value>(&lines[2]).unwrap()["hmac"]
                .as_str()
                .unwrap()
                .to_string(),
        };
        lines[3] = unkeyed(m.clone(), &prev).0;
        let r = check(&lines);
        assert_eq!(broken_line(&r), Some(4), "{r:?}");
        assert!(r.broken.unwrap().2.contains("without the chain key"));
        // With another key, the MAC does not match.
        let other = ChainKey::new(Zeroizing::new(vec![8; 32]));
        lines[3] = seal_line(m, &prev, &other).0;
        assert_eq!(broken_line(&check(&lines)), Some(4));
        // Offline, the structure still holds: the report says MACs were not checked.
        let offline = verify((lines.join("\n") + "\n").as_bytes(), None, None).unwrap();
        assert!(offline.broken.is_none() && !offline.macs_checked);
    }

    #[test]
    fn an_old_unkeyed_file_continues_keyed() {
        let mut link = Link::genesis();
        let mut lines = Vec::new();
        for i in 0..3 {
            let (l, next) = unkeyed(entry(i), &link);
            lines.push(l);
            link = next;
        }
        for i in 3..5 {
            let (l, next) = seal_line(entry(i), &link, &key());
            lines.push(l);
            link = next;
        }
        let r = check(&lines);
        assert!(r.is_clean(), "{r:?}");
        assert_eq!((r.unkeyed_lines, r.keyed_lines), (3, 2));
    }

    #[test]
    fn a_recorded_cut_is_reported_at_its_offset() {
        let lines = file(3);
        let mut text = lines[..2].join("\n") + "\n";
        let offset = text.len() as u64;
        text.push_str("{\"type\":\"requ\n");
        let length = text.len() as u64 - offset;
        let prev = check(&lines[..2]).head.unwrap();
        let (marker, _) = seal_line(cut_entry(offset, length, CUT_TORN), &prev, &key());
        text.push_str(&marker);
        text.push('\n');
        let r = verify(text.as_bytes(), Some(&key()), None).unwrap();
        assert!(r.is_clean(), "{r:?}");
        assert_eq!(
            r.cuts,
            vec![Cut {
                line: 3,
                offset,
                length,
                reason: CUT_TORN.into(),
                recorded_at: 4
            }]
        );
        // Removing the cut bytes is itself found.
        let removed = lines[..2].join("\n") + "\n" + &marker + "\n";
        let r = verify(removed.as_bytes(), Some(&key()), None).unwrap();
        assert_eq!(broken_line(&r), Some(3), "{r:?}");
        // An unrecorded torn tail is reported, not passed.
        let torn = lines[..2].join("\n") + "\n{\"type\"";
        let r = verify(torn.as_bytes(), Some(&key()), None).unwrap();
        assert_eq!(broken_line(&r), Some(3), "{r:?}");
    }

    #[test]
    fn the_expected_head_is_found_or_not() {
        let lines = file(4);
        let full = check(&lines);
        let head = full.head.unwrap();
        let r = verify(
            (lines.join("\n") + "\n").as_bytes(),
            Some(&key()),
            Some(&head),
        )
        .unwrap();
        assert!(r.head_found);
        let short = lines[..3].join("\n") + "\n";
        let r = verify(short.as_bytes(), Some(&key()), Some(&head)).unwrap();
        assert!(!r.head_found && r.broken.is_none());
    }
}
