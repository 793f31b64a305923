//! `bao operator rotate-keys`: new unseal keys (or, with `-target=recovery`, recovery
//! keys) from a quorum of the current ones, optionally verified before they take effect.

use serde_json::Value;

use crate::bao::Output;
use crate::daemon::Daemon;

/// What a completed quorum answered: the new keys and, with `-verify`, the nonce of the
/// verification that puts them in effect.
#[derive(Debug, Clone)]
pub struct NewKeys {
    pub keys_b64: Vec<String>,
    pub verification_nonce: String,
    pub json: Value,
}

impl Daemon {
    /// `bao operator rotate-keys -init -format=json ARGS`, which must succeed; the status.
    pub fn rotate_keys_init(&self, args: &[&str]) -> Value {
        let argv = [&["operator", "rotate-keys", "-init", "-format=json"], args].concat();
        self.bao(&argv).ok().json()
    }

    /// `bao operator rotate-keys -format=json FLAGS -nonce=NONCE KEY`: one current key
    /// (or, with `-verify` in `flags`, one new key) for the attempt `nonce`.
    pub fn rotate_keys_submit(&self, flags: &[&str], nonce: &str, key: &str) -> Output {
        let nonce = format!("-nonce={nonce}");
        let argv = [
            &["operator", "rotate-keys", "-format=json"],
            flags,
            &[nonce.as_str(), key],
        ]
        .concat();
        self.bao(&argv)
    }

    /// `bao operator rotate-keys -status -format=json FLAGS`, which must succeed.
    pub fn rotate_keys_status(&self, flags: &[&str]) -> Value {
        let argv = [
            &["operator", "rotate-keys", "-status", "-format=json"],
            flags,
        ]
        .concat();
        self.bao(&argv).ok().json()
    }

    /// Submits `keys` to the attempt `nonce` until one is refused or the quorum is
    /// complete: the new keys, or the refusal.
    pub fn rotate_keys_quorum(
        &self,
        flags: &[&str],
        nonce: &str,
        keys: &[String],
    ) -> Result<NewKeys, Output> {
        let mut last = None;
        for key in keys {
            let out = self.rotate_keys_submit(flags, nonce, key);
            if !out.success() {
                return Err(out);
            }
            last = Some(out);
        }
        let out = last.expect("no keys given");
        let json = out.json();
        assert_eq!(json["complete"], true, "the quorum is not complete: {out}");
        let keys_b64 = json["keys_base64"]
            .as_array()
            .unwrap_or_else(|| panic!("no keys_base64: {out}"))
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        Ok(NewKeys {
            keys_b64,
            verification_nonce: json["verification_nonce"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            json,
        })
    }

    /// Starts a rotation to `shares`/`threshold` (`extra`: more init flags, e.g.
    /// `-verify`) and completes its quorum with `keys`.
    pub fn rotate_keys(
        &self,
        target: &[&str],
        extra: &[&str],
        shares: usize,
        threshold: usize,
        keys: &[String],
    ) -> Result<NewKeys, Output> {
        let shares = format!("-key-shares={shares}");
        let threshold = format!("-key-threshold={threshold}");
        let args = [target, extra, &[shares.as_str(), threshold.as_str()]].concat();
        let status = self.rotate_keys_init(&args);
        assert_eq!(status["started"], true, "{status}");
        let nonce = status["nonce"].as_str().expect("nonce").to_string();
        self.rotate_keys_quorum(target, &nonce, keys)
    }

    /// `bao operator unseal` with each of `keys` until one is refused; the last answer
    /// (a seal status), or the refusal.
    pub fn unseal_with(&self, keys: &[String]) -> Result<Value, Output> {
        let mut last = Value::Null;
        for key in keys {
            let out = self.bao_as(None, &["operator", "unseal", "-format=json", key]);
            if !out.success() {
                return Err(out);
            }
            last = out.json();
        }
        Ok(last)
    }
}
