//! One crypto stack for software keys: the RSA, ECDSA, AEAD and AES code that transit keys
//! and software-protected managed keys share, so the same operation writes the same
//! bytes whichever of them asks. Formats and algorithm choices (which hash, which
//! padding, which wire encoding) stay with the callers.

pub mod aead;
pub mod aes;
pub mod ecdsa;
pub mod rsa;

use ::rsa::pkcs8::der::pem::{self, LineEnding};

/// `der` as PEM under `label`: 64-column base64 lines, `\n` line ends, a final newline.
pub fn pem(label: &str, der: &[u8]) -> Result<String, pem::Error> {
    pem::encode_string(label, LineEnding::LF, der)
}

/// Whether two secrets (keys, MACs, CSRF tokens) are equal, in time that depends on
/// their length only: `subtle`'s comparison, which the optimiser cannot turn into an
/// early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    #[test]
    fn constant_time_eq_compares_bytes_and_lengths() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    /// The PEM the managed-key API wrote before it shared this encoder.
    fn wrapped_by_hand(der: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(chunk));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }

    #[test]
    fn pem_lines_are_those_of_openssl() {
        for len in [1usize, 47, 48, 49, 91, 294, 550] {
            let der: Vec<u8> = (0..len).map(|i| i as u8).collect();
            assert_eq!(
                pem("PUBLIC KEY", &der).unwrap(),
                wrapped_by_hand(&der),
                "{len}"
            );
        }
    }
}
