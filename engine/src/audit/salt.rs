//! Vault's audit HMAC: secret values are written as `hmac-sha256:<hex>` under a salt
//! kept behind the barrier, so an operator holding the salt (through `sys/audit-hash`)
//! can tell whether a log line carried a given value, and nobody else learns it.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use zeroize::Zeroizing;

pub struct Salt(Zeroizing<Vec<u8>>);

impl Salt {
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        Salt(bytes)
    }

    pub fn hash(&self, value: &str) -> String {
        // HMAC accepts keys of any length; a failure here would be a bug in the crate.
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => return "hmac-sha256:".to_string(),
        };
        mac.update(value.as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Replaces every leaf inside `value` by its HMAC: strings, numbers (their JSON text,
    /// as Vault hashes the `json.Number` its decoder produces) and booleans (`"true"`,
    /// `"false"`; Vault leaves those readable, but a boolean in a secret is a secret).
    /// `null` and the shape (keys, nesting) stay readable. So `sys/audit-hash` with the
    /// text `42` or `true` matches what the log holds for that value.
    pub fn hash_leaves(&self, value: &mut Value) {
        match value {
            Value::String(s) => *s = self.hash(s),
            Value::Number(n) => *value = Value::String(self.hash(&n.to_string())),
            Value::Bool(b) => *value = Value::String(self.hash(if *b { "true" } else { "false" })),
            Value::Array(items) => items.iter_mut().for_each(|v| self.hash_leaves(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.hash_leaves(v)),
            Value::Null => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_leaf_is_hashed_and_the_shape_kept() {
        let salt = Salt::new(Zeroizing::new(vec![1; 32]));
        let mut v = json!({"a": "secret", "n": 3, "f": 1.5, "l": ["x", true], "z": null});
        salt.hash_leaves(&mut v);
        let a = v["a"].as_str().unwrap();
        assert!(a.starts_with("hmac-sha256:") && a.len() == 12 + 64);
        assert_eq!(a, salt.hash("secret"));
        assert_eq!(v["n"], salt.hash("3"));
        assert_eq!(v["f"], salt.hash("1.5"));
        assert_eq!(v["l"][1], salt.hash("true"));
        assert_eq!(v["z"], Value::Null);
        assert_ne!(Salt::new(Zeroizing::new(vec![2; 32])).hash("secret"), a);
    }
}
