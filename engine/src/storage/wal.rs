//! The write-ahead log in front of the redb file. A durable redb commit rewrites and
//! fsyncs every B-tree page the commit touched (9 ms for 32 small writes on the test
//! machine, 44% of the CPU of a kv write load); appending the same batches to a log and
//! fsyncing that is one sequential write. redb then commits without fsync, and a
//! checkpoint (one durable redb commit, then an empty log) bounds the log.
//!
//! A record is `magic | payload length | crc32(payload) | payload`, all little-endian
//! u32s; the payload is the batches' operations. Replay stops at the first record that
//! is short or fails its checksum: that is a write torn by a crash, never acknowledged,
//! because a write is acknowledged only after the fsync of its whole record. Replaying
//! records that a checkpoint already holds is harmless: they are blind puts and deletes
//! applied in their original order (a batch's conditions were checked before it was
//! logged, and only batches whose conditions held are logged).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{Batch, Op};
use crate::failpoint;

const MAGIC: u32 = 0x4c57_5349; // "ISWL"
const HEADER: usize = 12;
const PUT: u8 = 1;
const DELETE: u8 = 2;

pub struct Wal {
    file: File,
    len: u64,
    /// Set when a failed append could not be cut back: what follows the last good
    /// record is unknown, so every later append is refused.
    unusable: Option<String>,
}

impl Wal {
    /// Opens (or creates) the log and returns the batches of its intact records, in
    /// order, for the caller to replay.
    pub fn open(path: &Path) -> io::Result<(Wal, Vec<Batch>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut batches = Vec::new();
        let mut at = 0;
        while let Some((record, next)) = next_record(&bytes, at) {
            match decode(record) {
                Some(mut decoded) => batches.append(&mut decoded),
                None => break,
            }
            at = next;
        }
        let len = at as u64;
        if len != bytes.len() as u64 {
            // Drop the torn tail, so the next append is not hidden behind it.
            file.set_len(len)?;
            file.sync_data()?;
        }
        file.seek(SeekFrom::Start(len))?;
        Ok((
            Wal {
                file,
                len,
                unusable: None,
            },
            batches,
        ))
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one record holding `batches` and returns once it is on disk. On failure
    /// the log is cut back to where it was; if even that fails, this and every later
    /// append fail.
    pub fn append(&mut self, batches: &[&Batch]) -> io::Result<()> {
        if let Some(why) = &self.unusable {
            return Err(io::Error::other(why.clone()));
        }
        let payload = encode(batches)?;
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(&MAGIC.to_le_bytes());
        record.extend_from_slice(&len_u32(payload.len())?.to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        record.extend_from_slice(&payload);
        let written = failpoint::io_step("wal:append")
            .and_then(|()| self.file.write_all(&record))
            .and_then(|()| failpoint::io_step("wal:written"))
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += record.len() as u64;
                failpoint::crash_at("wal:synced");
                Ok(())
            }
            Err(e) => {
                let cut = self
                    .file
                    .set_len(self.len)
                    .and_then(|()| self.file.seek(SeekFrom::Start(self.len)).map(|_| ()));
                if let Err(cut) = cut {
                    self.unusable = Some(format!(
                        "write-ahead log unusable: {e}; cutting it back also failed: {cut}"
                    ));
                }
                Err(e)
            }
        }
    }

    /// Empties the log once everything in it is durable elsewhere.
    /// Whatever fails after the cut, the next append lands at the start: one landing
    /// at the old end would leave a hole of zeros, where replay stops short of it.
    pub fn reset(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.len = 0;
        if let Err(e) = self.file.seek(SeekFrom::Start(0)) {
            self.unusable = Some(format!(
                "write-ahead log unusable: emptied, but seeking to its start failed: {e}"
            ));
            return Err(e);
        }
        failpoint::io_step("wal:truncated")?;
        self.file.sync_data()
    }
}

fn len_u32(n: usize) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| io::Error::other("write-ahead log record over 4 GiB"))
}

fn encode(batches: &[&Batch]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    out.extend_from_slice(&len_u32(batches.len())?.to_le_bytes());
    for batch in batches {
        out.extend_from_slice(&len_u32(batch.ops.len())?.to_le_bytes());
        for op in &batch.ops {
            match op {
                Op::Put(key, value) => {
                    out.push(PUT);
                    out.extend_from_slice(&len_u32(key.len())?.to_le_bytes());
                    out.extend_from_slice(key.as_bytes());
                    out.extend_from_slice(&len_u32(value.len())?.to_le_bytes());
                    out.extend_from_slice(value);
                }
                Op::Delete(key) => {
                    out.push(DELETE);
                    out.extend_from_slice(&len_u32(key.len())?.to_le_bytes());
                    out.extend_from_slice(key.as_bytes());
                }
            }
        }
    }
    Ok(out)
}

/// The payload of the record at `at` and where the next one starts, if the header and
/// the checksum say the record is whole.
fn next_record(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(at..at.checked_add(HEADER)?)?;
    let word =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    if word(0) != MAGIC {
        return None;
    }
    let start = at + HEADER;
    let end = start.checked_add(word(4) as usize)?;
    let payload = bytes.get(start..end)?;
    (crc32fast::hash(payload) == word(8)).then_some((payload, end))
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn string(&mut self) -> Option<String> {
        let n = self.u32()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

fn decode(payload: &[u8]) -> Option<Vec<Batch>> {
    let mut r = Reader { bytes: payload };
    let batches = r.u32()?;
    let mut out = Vec::new();
    for _ in 0..batches {
        let ops = r.u32()?;
        let mut batch = Batch::new();
        for _ in 0..ops {
            match r.take(1)?[0] {
                PUT => {
                    let key = r.string()?;
                    let n = r.u32()?;
                    batch.put(key, r.take(n)?.to_vec());
                }
                DELETE => {
                    batch.delete(r.string()?);
                }
                _ => return None,
            }
        }
        out.push(batch);
    }
    r.bytes.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(key: &str, value: &[u8]) -> Batch {
        let mut b = Batch::new();
        b.put(key, value.to_vec()).delete("gone");
        b
    }

    fn keys(batches: &[Batch]) -> Vec<String> {
        batches
            .iter()
            .flat_map(|b| b.ops.iter())
            .map(|op| match op {
                Op::Put(k, v) => format!("{k}={}", String::from_utf8_lossy(v)),
                Op::Delete(k) => format!("-{k}"),
            })
            .collect()
    }

    #[test]
    fn records_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (mut wal, replay) = Wal::open(&path).unwrap();
        assert!(replay.is_empty());
        wal.append(&[&batch("a", b"1"), &batch("b", b"2")]).unwrap();
        wal.append(&[&batch("a", b"3")]).unwrap();
        drop(wal);
        let (_, replay) = Wal::open(&path).unwrap();
        assert_eq!(
            keys(&replay),
            ["a=1", "-gone", "b=2", "-gone", "a=3", "-gone"]
        );
    }

    #[test]
    fn a_torn_tail_is_dropped_and_later_appends_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (mut wal, _) = Wal::open(&path).unwrap();
        wal.append(&[&batch("a", b"1")]).unwrap();
        wal.append(&[&batch("b", b"2")]).unwrap();
        drop(wal);
        let full = std::fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(full - 3).unwrap();
        drop(f);
        let (mut wal, replay) = Wal::open(&path).unwrap();
        assert_eq!(keys(&replay), ["a=1", "-gone"]);
        wal.append(&[&batch("c", b"3")]).unwrap();
        drop(wal);
        let (_, replay) = Wal::open(&path).unwrap();
        assert_eq!(keys(&replay), ["a=1", "-gone", "c=3", "-gone"]);
    }

    #[test]
    fn a_flipped_bit_ends_the_replay_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (mut wal, _) = Wal::open(&path).unwrap();
        wal.append(&[&batch("a", b"1")]).unwrap();
        let first = wal.len() as usize;
        wal.append(&[&batch("b", b"2")]).unwrap();
        drop(wal);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[first + HEADER + 6] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (_, replay) = Wal::open(&path).unwrap();
        assert_eq!(keys(&replay), ["a=1", "-gone"]);
    }

    #[test]
    fn reset_empties_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (mut wal, _) = Wal::open(&path).unwrap();
        wal.append(&[&batch("a", b"1")]).unwrap();
        wal.reset().unwrap();
        assert!(wal.is_empty());
        drop(wal);
        assert!(Wal::open(&path).unwrap().1.is_empty());
    }
}
