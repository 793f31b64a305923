//! The `socket` and `syslog` audit devices: the same hash-chained lines as the file
//! device, sent to a receiver instead of appended to a file.
//!
//! `socket` (Vault's options): `address`, `socket_type` `tcp` (default), `udp` or
//! `unix` (a stream socket), and `write_timeout` (default 2 s). Each line ends with a
//! newline; over UDP each line is one datagram.
//!
//! `syslog` (Vault's options): `facility` (default `AUTH`) and `tag` (default `vault`),
//! at severity `info`, to the local syslog socket as Go's `log/syslog` writes
//! (`<PRI>Mmm dd hh:mm:ss TAG[PID]: LINE`). Ironseal adds `address`: another Unix
//! datagram socket path, or `udp://HOST:PORT` for a remote receiver, which gets the
//! network form (`<PRI>RFC3339 HOSTNAME TAG[PID]: LINE`).
//!
//! As with Vault, a line that cannot be delivered (after one reconnection) fails the
//! write, so the request fails closed. The chain continues across restarts from the
//! head recorded in storage; lines are numbered per device.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Map, Value};

use super::chain::{ChainKey, Link};

/// Vault's default `write_timeout`.
const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Where Go's `log/syslog` looks for the local syslog daemon, in order.
const LOCAL_SYSLOG: &[&str] = &["/dev/log", "/var/run/syslog", "/var/run/log"];
/// `info`, the severity Vault's syslog device writes at.
const SEVERITY_INFO: u8 = 6;

/// Where lines go, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Tcp(String),
    Udp(String),
    Unix(String),
    Syslog {
        /// `None`: the first local syslog socket that exists.
        address: Option<SyslogAddress>,
        facility: u8,
        tag: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SyslogAddress {
    Unix(String),
    Udp(String),
}

enum Conn {
    Tcp(TcpStream),
    Udp(UdpSocket),
    Unix(UnixStream),
    Datagram(UnixDatagram),
}

pub struct StreamDevice {
    target: Target,
    write_timeout: Duration,
    state: Mutex<State>,
}

struct State {
    conn: Option<Conn>,
    link: Link,
}

/// Syslog's facility names (RFC 5424 numbers), case-insensitive as Go's parser is.
fn facility(name: &str) -> Result<u8, String> {
    const NAMES: &[(&str, u8)] = &[
        ("kern", 0),
        ("user", 1),
        ("mail", 2),
        ("daemon", 3),
        ("auth", 4),
        ("syslog", 5),
        ("lpr", 6),
        ("news", 7),
        ("uucp", 8),
        ("cron", 9),
        ("authpriv", 10),
        ("ftp", 11),
        ("local0", 16),
        ("local1", 17),
        ("local2", 18),
        ("local3", 19),
        ("local4", 20),
        ("local5", 21),
        ("local6", 22),
        ("local7", 23),
    ];
    let lower = name.to_ascii_lowercase();
    NAMES
        .iter()
        .find(|(n, _)| *n == lower)
        .map(|(_, f)| *f)
        .ok_or_else(|| format!("invalid syslog facility {name:?}"))
}

fn write_timeout(options: &std::collections::BTreeMap<String, String>) -> Result<Duration, String> {
    match options.get("write_timeout") {
        None => Ok(DEFAULT_WRITE_TIMEOUT),
        Some(t) => {
            let d = crate::duration::parse_duration_precise(t)
                .map_err(|e| format!("write_timeout: {e}"))?;
            if d.is_zero() {
                return Err("write_timeout must be positive".into());
            }
            Ok(d)
        }
    }
}

impl StreamDevice {
    /// Reads a device's options; `kind` is `socket` or `syslog`. Does not connect.
    pub fn configure(
        kind: &str,
        options: &std::collections::BTreeMap<String, String>,
        link: Link,
    ) -> Result<Self, String> {
        let get = |k: &str| options.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let target = match kind {
            "socket" => {
                let address = get("address").ok_or("address is required")?.to_string();
                match get("socket_type").unwrap_or("tcp") {
                    "tcp" => Target::Tcp(address),
                    "udp" => Target::Udp(address),
                    "unix" => Target::Unix(address),
                    other => {
                        return Err(format!(
                            "socket_type {other:?} is not supported: use tcp, udp or unix"
                        ))
                    }
                }
            }
            "syslog" => Target::Syslog {
                address: get("address").map(|a| match a.strip_prefix("udp://") {
                    Some(hp) => SyslogAddress::Udp(hp.to_string()),
                    None => SyslogAddress::Unix(a.to_string()),
                }),
                facility: facility(get("facility").unwrap_or("AUTH"))?,
                tag: get("tag").unwrap_or("vault").to_string(),
            },
            other => return Err(format!("unknown backend type: \"{other}\"")),
        };
        Ok(StreamDevice {
            target,
            write_timeout: write_timeout(options)?,
            state: Mutex::new(State { conn: None, link }),
        })
    }

    /// What the device sends to, for messages.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Tcp(a) => format!("tcp {a}"),
            Target::Udp(a) => format!("udp {a}"),
            Target::Unix(a) => format!("unix {a}"),
            Target::Syslog { address: None, .. } => "the local syslog".into(),
            Target::Syslog {
                address: Some(SyslogAddress::Unix(a)),
                ..
            } => format!("syslog {a}"),
            Target::Syslog {
                address: Some(SyslogAddress::Udp(a)),
                ..
            } => format!("syslog udp {a}"),
        }
    }

    pub fn link(&self) -> Link {
        self.state.lock().link.clone()
    }

    fn connect(&self) -> Result<Conn, String> {
        let timeout = Some(self.write_timeout);
        let fail = |e: std::io::Error| format!("cannot reach {}: {e}", self.describe());
        let udp = |address: &str| -> std::io::Result<Conn> {
            let peer = address
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))?;
            let local: std::net::SocketAddr = if peer.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let s = UdpSocket::bind(local)?;
            s.connect(peer)?;
            s.set_write_timeout(timeout)?;
            Ok(Conn::Udp(s))
        };
        let datagram = |path: &str| -> std::io::Result<Conn> {
            let s = UnixDatagram::unbound()?;
            s.connect(path)?;
            s.set_write_timeout(timeout)?;
            Ok(Conn::Datagram(s))
        };
        match &self.target {
            Target::Tcp(address) => {
                let peer = address
                    .to_socket_addrs()
                    .map_err(fail)?
                    .next()
                    .ok_or_else(|| format!("cannot resolve {address}"))?;
                let s = TcpStream::connect_timeout(&peer, self.write_timeout).map_err(fail)?;
                s.set_write_timeout(timeout).map_err(fail)?;
                s.set_nodelay(true).map_err(fail)?;
                Ok(Conn::Tcp(s))
            }
            Target::Udp(address) => udp(address).map_err(fail),
            Target::Unix(path) => {
                let s = UnixStream::connect(path).map_err(fail)?;
                s.set_write_timeout(timeout).map_err(fail)?;
                Ok(Conn::Unix(s))
            }
            Target::Syslog { address, .. } => match address {
                Some(SyslogAddress::Unix(path)) => datagram(path).map_err(fail),
                Some(SyslogAddress::Udp(hp)) => udp(hp).map_err(fail),
                None => LOCAL_SYSLOG
                    .iter()
                    .find_map(|p| datagram(p).ok())
                    .ok_or_else(|| "cannot reach the local syslog (/dev/log)".to_string()),
            },
        }
    }

    /// Connects now, so a device that cannot deliver is never enabled.
    pub fn check(&self) -> Result<(), String> {
        let conn = self.connect()?;
        self.state.lock().conn = Some(conn);
        Ok(())
    }

    /// The bytes one line goes out as: syslog's header before it, a newline after a
    /// stream's.
    fn frame(&self, line: &str) -> Vec<u8> {
        match &self.target {
            Target::Syslog {
                address,
                facility,
                tag,
            } => {
                let pri = facility * 8 + SEVERITY_INFO;
                let pid = std::process::id();
                let now = time::OffsetDateTime::now_utc();
                match address {
                    Some(SyslogAddress::Udp(_)) => {
                        let ts = now
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default();
                        format!("<{pri}>{ts} {} {tag}[{pid}]: {line}\n", hostname())
                    }
                    _ => {
                        let fmt = time::macros::format_description!(
                            "[month repr:short] [day padding:space] [hour]:[minute]:[second]"
                        );
                        let ts = now.format(fmt).unwrap_or_default();
                        format!("<{pri}>{ts} {tag}[{pid}]: {line}\n")
                    }
                }
                .into_bytes()
            }
            _ => format!("{line}\n").into_bytes(),
        }
    }

    fn send(conn: &mut Conn, frames: &[Vec<u8>]) -> std::io::Result<()> {
        match conn {
            // A stream takes the whole group in one write.
            Conn::Tcp(s) => s.write_all(&frames.concat()),
            Conn::Unix(s) => s.write_all(&frames.concat()),
            Conn::Udp(s) => frames.iter().try_for_each(|f| s.send(f).map(|_| ())),
            Conn::Datagram(s) => frames.iter().try_for_each(|f| s.send(f).map(|_| ())),
        }
    }

    /// Sends `entries` as the next lines of the chain; on failure reconnects once and
    /// sends them again. Returns the new head; the head stays where it was on failure.
    pub fn write_group(
        &self,
        entries: Vec<Map<String, Value>>,
        key: &ChainKey,
    ) -> Result<Link, String> {
        let mut state = self.state.lock();
        let (lines, link) = super::file::render_lines(entries, &state.link, key);
        let frames: Vec<Vec<u8>> = lines.iter().map(|l| self.frame(l)).collect();
        let first = match state.conn.as_mut() {
            Some(conn) => Self::send(conn, &frames).map_err(|e| e.to_string()),
            None => Err("not connected".into()),
        };
        if let Err(first) = first {
            state.conn = None;
            let mut conn = self
                .connect()
                .map_err(|e| format!("audit lines not delivered ({first}); {e}"))?;
            Self::send(&mut conn, &frames)
                .map_err(|e| format!("cannot write to {}: {e}", self.describe()))?;
            state.conn = Some(conn);
        }
        state.link = link.clone();
        Ok(link)
    }

    /// Drops the connection; the next write connects again (SIGHUP, as files reopen).
    pub fn reconnect(&self) -> Result<(), String> {
        self.state.lock().conn = None;
        let conn = self.connect()?;
        self.state.lock().conn = Some(conn);
        Ok(())
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader};
    use zeroize::Zeroizing;

    fn key() -> ChainKey {
        ChainKey::new(Zeroizing::new(vec![5; 32]))
    }

    fn entry(i: u64) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("type".into(), "request".into());
        m.insert("n".into(), i.into());
        m
    }

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tcp_lines_arrive_chained_and_a_dead_receiver_fails_the_write() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let d = StreamDevice::configure(
            "socket",
            &options(&[("address", &address)]),
            Link::genesis(),
        )
        .unwrap();
        d.check().unwrap();
        let (peer, _) = listener.accept().unwrap();
        d.write_group(vec![entry(1), entry(2)], &key()).unwrap();
        let mut lines = BufReader::new(peer).lines();
        let first = lines.next().unwrap().unwrap();
        let second = lines.next().unwrap().unwrap();
        let text = format!("{first}\n{second}\n");
        let report =
            super::super::chain::verify(std::io::Cursor::new(text), Some(&key()), None).unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(d.link().seq, 2);

        drop(lines);
        drop(listener);
        // The receiver is gone: the write (and its one retry) fails, the head stays.
        let mut failed = false;
        for i in 0..10 {
            if d.write_group(vec![entry(3 + i)], &key()).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed, "writes to a closed receiver must fail");
    }

    #[test]
    fn syslog_frames_carry_priority_and_tag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let opts = options(&[
            ("address", path.to_str().unwrap()),
            ("facility", "local3"),
            ("tag", "kms"),
        ]);
        let d = StreamDevice::configure("syslog", &opts, Link::genesis()).unwrap();
        d.check().unwrap();
        d.write_group(vec![entry(1)], &key()).unwrap();
        let mut buf = vec![0u8; 65536];
        let n = receiver.recv(&mut buf).unwrap();
        let msg = String::from_utf8_lossy(&buf[..n]);
        // local3 (19) * 8 + info (6)
        assert!(msg.starts_with("<158>"), "{msg}");
        assert!(
            msg.contains(&format!(" kms[{}]: {{", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("\"hmac\":\""), "{msg}");
        assert!(StreamDevice::configure(
            "syslog",
            &options(&[("facility", "nope")]),
            Link::genesis()
        )
        .is_err());
        assert!(StreamDevice::configure("socket", &options(&[]), Link::genesis()).is_err());
        assert!(StreamDevice::configure(
            "socket",
            &options(&[("address", "x"), ("socket_type", "sctp")]),
            Link::genesis()
        )
        .is_err());
    }
}
