//! Bringing a configured daemon to service: `operator init` (unseal keys, or recovery
//! keys with a hardware seal), unsealing, waiting until a seal that unseals itself has
//! done so, and `operator generate-root`.

use std::time::Duration;

use serde_json::Value;

use crate::bao::Output;
use crate::daemon::Daemon;
use crate::poll_until;
use crate::vault_client::Body;

/// How long a hardware seal may take to unseal itself, or to report a seal error.
pub const UNSEAL_DEADLINE: Duration = Duration::from_secs(60);

/// What `bao operator init -format=json` answered.
#[derive(Debug, Clone)]
pub struct Init {
    pub keys_b64: Vec<String>,
    pub keys_hex: Vec<String>,
    pub root_token: String,
    pub shares: usize,
    pub threshold: usize,
}

/// What `bao operator init` answered with a hardware seal.
#[derive(Debug, Clone)]
pub struct RecoveryInit {
    /// The recovery keys, base64.
    pub keys_b64: Vec<String>,
    /// The whole answer, for the fields a test checks beyond the keys.
    pub json: Value,
    /// The CLI run, to show with a failed check.
    pub out: Output,
}

/// What `bao operator generate-root -init` answered: the OTP to decode the new token with
/// and the nonce that ties the key submissions together.
#[derive(Debug, Clone)]
pub struct RootGeneration {
    pub otp: String,
    pub nonce: String,
    pub json: Value,
}

impl Daemon {
    /// `bao operator init -format=json` with the given shares and threshold; remembers the
    /// keys and makes the root token the default token.
    pub fn init(&mut self, shares: usize, threshold: usize) -> Init {
        let out = self.operator_init("key", shares, threshold);
        let v = out.json();
        let strings = |field: &str| -> Vec<String> {
            v[field]
                .as_array()
                .unwrap_or_else(|| panic!("no {field} in {out}"))
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        let init = Init {
            keys_b64: strings("unseal_keys_b64"),
            keys_hex: strings("unseal_keys_hex"),
            root_token: v["root_token"].as_str().expect("root_token").to_string(),
            shares,
            threshold,
        };
        assert_eq!(init.keys_b64.len(), shares, "{out}");
        crate::leaks::register_secret("the root token", init.root_token.as_bytes());
        for (i, k) in init.keys_b64.iter().enumerate() {
            crate::leaks::register_secret(&format!("unseal key {}", i + 1), &decode_key(k));
        }
        self.token = Some(init.root_token.clone());
        self.init = Some(init.clone());
        init
    }

    /// Unseals with the first `threshold` keys from [`Daemon::init`]; asserts it worked.
    pub fn unseal(&self) {
        let init = self.init.as_ref().expect("init first");
        for key in &init.keys_b64[..init.threshold] {
            self.bao_as(None, &["operator", "unseal", "-format=json", key])
                .ok();
        }
        let status = self.seal_status();
        assert_eq!(status["sealed"], false, "still sealed: {status}");
    }

    /// `bao operator init -format=json` against a hardware seal, with `shares` recovery
    /// keys and `threshold`; makes the root token the default token.
    pub fn init_recovery(&mut self, shares: usize, threshold: usize) -> RecoveryInit {
        let out = self.operator_init("recovery", shares, threshold);
        let json = out.json();
        let keys_b64: Vec<String> = json["recovery_keys_b64"]
            .as_array()
            .unwrap_or_else(|| panic!("no recovery_keys_b64: {out}"))
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        assert_eq!(keys_b64.len(), shares, "{out}");
        self.token = Some(json["root_token"].as_str().expect("root_token").to_string());
        RecoveryInit {
            keys_b64,
            json,
            out,
        }
    }

    /// `bao operator init -format=json -KIND-shares=N -KIND-threshold=T`, which must
    /// succeed; KIND is `key` (Shamir seal) or `recovery` (hardware seals).
    fn operator_init(&self, kind: &str, shares: usize, threshold: usize) -> Output {
        self.bao_as(
            None,
            &[
                "operator",
                "init",
                "-format=json",
                &format!("-{kind}-shares={shares}"),
                &format!("-{kind}-threshold={threshold}"),
            ],
        )
        .ok()
    }

    /// Waits until the daemon reports itself unsealed (a hardware seal unseals itself);
    /// the seal-status that said so.
    pub fn wait_unsealed(&self) -> Value {
        poll_until(UNSEAL_DEADLINE, "the daemon to unseal itself", || {
            let s = self.seal_status();
            (s["sealed"] == false).then_some(s)
        })
    }

    /// Waits until seal-status, still sealed, has a `seal_error` that `matches`; the
    /// seal-status that had it.
    pub fn wait_seal_error(&self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        poll_until(UNSEAL_DEADLINE, what, || {
            let s = self.seal_status();
            assert_eq!(s["sealed"], true, "unexpectedly unsealed: {s}");
            matches(&s["seal_error"]).then_some(s)
        })
    }

    /// `GET /v1/sys/seal-status` with `token`, as JSON.
    pub fn seal_status_as(&self, token: &str) -> Value {
        let r = self.http("GET", "/v1/sys/seal-status", Some(token), Body::None);
        assert_eq!(r.status, 200, "{r}");
        r.json()
    }

    /// `bao operator generate-root -init`.
    pub fn generate_root_init(&self) -> RootGeneration {
        let json = self
            .bao_as(
                None,
                &["operator", "generate-root", "-init", "-format=json"],
            )
            .ok()
            .json();
        RootGeneration {
            otp: json["otp"].as_str().expect("otp").to_string(),
            nonce: json["nonce"].as_str().expect("nonce").to_string(),
            json,
        }
    }

    /// Submits one unseal (or recovery) key to the root generation `nonce`.
    pub fn generate_root_submit(&self, nonce: &str, key: &str) -> Output {
        self.bao_as(
            None,
            &[
                "operator",
                "generate-root",
                "-format=json",
                &format!("-nonce={nonce}"),
                key,
            ],
        )
    }

    /// Starts a root generation and submits `keys`; the last status, or the stderr of the
    /// first refused key as a JSON string, and the OTP.
    pub fn generate_root(&self, keys: &[String]) -> (Value, String) {
        let started = self.generate_root_init();
        let mut last = Value::Null;
        for key in keys {
            let out = self.generate_root_submit(&started.nonce, key);
            if !out.success() {
                return (Value::String(out.stderr), started.otp);
            }
            last = out.json();
        }
        (last, started.otp)
    }

    /// Decodes the `encoded_token` of a completed root generation with its OTP.
    pub fn generate_root_decode(&self, encoded: &str, otp: &str) -> String {
        let decoded = self
            .bao_as(
                None,
                &[
                    "operator",
                    "generate-root",
                    "-format=json",
                    &format!("-decode={encoded}"),
                    &format!("-otp={otp}"),
                ],
            )
            .ok()
            .json();
        decoded["token"].as_str().expect("token").to_string()
    }

    /// `GET /v1/sys/seal-status` as JSON.
    pub fn seal_status(&self) -> Value {
        let r = self.http("GET", "/v1/sys/seal-status", None, Body::None);
        assert_eq!(r.status, 200, "{r}");
        r.json()
    }
}

/// Decodes an unseal key as the daemon prints it (base64url, base64 or hex).
pub fn decode_key(s: &str) -> Vec<u8> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine;
    let s = s.trim();
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .or_else(|_| STANDARD.decode(s))
        .or_else(|_| hex::decode(s))
        .unwrap_or_else(|e| panic!("unseal key {s:?} is neither base64 nor hex: {e}"))
}
