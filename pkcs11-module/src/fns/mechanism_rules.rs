//! What the library can tell of a mechanism without the daemon, at `*Init` where PKCS#11
//! reports it: the rules are the wire crate's (`pkcs11_wire::rules`), the ones the daemon
//! applies again when the call reaches it.

use pkcs11_wire::ck::*;
use pkcs11_wire::rules::{self, param_problem};
use pkcs11_wire::Mechanism;

use super::CkResult;

/// `CKR_KEY_TYPE_INCONSISTENT` when the key is known to be of another type than the
/// mechanism takes.
pub fn check_key_type(mechanism: &Mechanism, key: Option<CK_KEY_TYPE>) -> CkResult<()> {
    match (rules::key_type(mechanism.kind), key) {
        (Some(wanted), Some(key)) if wanted != key => Err(CKR_KEY_TYPE_INCONSISTENT),
        _ => Ok(()),
    }
}

/// `CKR_MECHANISM_PARAM_INVALID` for a parameter the appliance refuses.
pub fn check_params(mechanism: &Mechanism) -> CkResult<()> {
    match param_problem(mechanism) {
        None => Ok(()),
        Some(_) => Err(CKR_MECHANISM_PARAM_INVALID),
    }
}

#[cfg(test)]
mod tests {
    use pkcs11_wire::Params;

    use super::*;

    fn mech(kind: CK_MECHANISM_TYPE, params: Params) -> Mechanism {
        Mechanism { kind, params }
    }

    fn gcm(iv_len: usize, tag_bits: CK_ULONG) -> Mechanism {
        mech(
            CKM_AES_GCM,
            Params::Gcm {
                iv: vec![0; iv_len],
                aad: Vec::new(),
                tag_bits,
            },
        )
    }

    #[test]
    fn mechanisms_take_their_key_types() {
        let ecdsa = mech(CKM_ECDSA, Params::None);
        assert_eq!(check_key_type(&ecdsa, Some(CKK_EC)), Ok(()));
        assert_eq!(
            check_key_type(&ecdsa, Some(CKK_AES)),
            Err(CKR_KEY_TYPE_INCONSISTENT)
        );
        assert_eq!(
            check_key_type(&ecdsa, None),
            Ok(()),
            "unknown: the daemon decides"
        );
        let pairs = [
            (CKM_SHA256_RSA_PKCS, CKK_RSA),
            (CKM_RSA_PKCS_OAEP, CKK_RSA),
            (CKM_ECDSA_SHA384, CKK_EC),
            (CKM_AES_CBC_PAD, CKK_AES),
            (CKM_ML_DSA, CKK_ML_DSA),
            (CKM_ML_KEM, CKK_ML_KEM),
        ];
        for (kind, key) in pairs {
            let m = mech(kind, Params::None);
            assert_eq!(check_key_type(&m, Some(key)), Ok(()), "{kind:#x}");
            for (_, other) in pairs.iter().filter(|(_, k)| *k != key) {
                assert_eq!(
                    check_key_type(&m, Some(*other)),
                    Err(CKR_KEY_TYPE_INCONSISTENT),
                    "{kind:#x} with key type {other:#x}"
                );
            }
        }
        assert_eq!(
            check_key_type(&mech(CKM_SHA256, Params::None), Some(CKK_AES)),
            Ok(())
        );
    }

    #[test]
    fn gcm_takes_an_iv_and_a_whole_byte_tag_of_96_to_128_bits() {
        for tag in [96, 104, 112, 120, 128] {
            assert_eq!(check_params(&gcm(12, tag)), Ok(()), "{tag} bits");
        }
        for tag in [0, 7, 64, 88, 100, 136] {
            assert_eq!(
                check_params(&gcm(12, tag)),
                Err(CKR_MECHANISM_PARAM_INVALID),
                "{tag} bits"
            );
        }
        assert_eq!(check_params(&gcm(0, 128)), Err(CKR_MECHANISM_PARAM_INVALID));
        assert_eq!(check_params(&gcm(1, 128)), Ok(()));
    }

    #[test]
    fn cbc_pad_takes_a_16_byte_iv() {
        let cbc = |len| mech(CKM_AES_CBC_PAD, Params::Iv(vec![0; len]));
        assert_eq!(check_params(&cbc(16)), Ok(()));
        for len in [0, 8, 15, 17, 32] {
            assert_eq!(
                check_params(&cbc(len)),
                Err(CKR_MECHANISM_PARAM_INVALID),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn pss_and_oaep_name_a_hash_and_an_mgf_that_exist() {
        let pss = |kind, hash, mgf| {
            mech(
                kind,
                Params::Pss {
                    hash,
                    mgf,
                    salt_len: 32,
                },
            )
        };
        assert_eq!(
            check_params(&pss(CKM_RSA_PKCS_PSS, CKM_SHA384, CKG_MGF1_SHA256)),
            Ok(())
        );
        assert_eq!(
            check_params(&pss(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256)),
            Ok(())
        );
        for (kind, hash, mgf) in [
            (CKM_RSA_PKCS_PSS, CKM_MD5, CKG_MGF1_SHA256),
            (CKM_RSA_PKCS_PSS, CKM_SHA256, 0x77),
            (CKM_SHA256_RSA_PKCS_PSS, CKM_SHA384, CKG_MGF1_SHA256),
        ] {
            assert_eq!(
                check_params(&pss(kind, hash, mgf)),
                Err(CKR_MECHANISM_PARAM_INVALID),
                "{kind:#x} {hash:#x} {mgf:#x}"
            );
        }
        let oaep = |hash, mgf| {
            mech(
                CKM_RSA_PKCS_OAEP,
                Params::Oaep {
                    hash,
                    mgf,
                    label: Vec::new(),
                },
            )
        };
        assert_eq!(check_params(&oaep(CKM_SHA_1, CKG_MGF1_SHA1)), Ok(()));
        assert_eq!(check_params(&oaep(CKM_SHA256, CKG_MGF1_SHA256)), Ok(()));
        assert_eq!(
            check_params(&oaep(CKM_MD5, CKG_MGF1_SHA1)),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
        assert_eq!(
            check_params(&oaep(CKM_SHA256, 0)),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
    }

    #[test]
    fn ml_dsa_context_is_at_most_255_bytes() {
        let ctx = |len, hedge| {
            mech(
                CKM_ML_DSA,
                Params::SignContext {
                    hedge,
                    context: vec![1; len],
                },
            )
        };
        assert_eq!(check_params(&mech(CKM_ML_DSA, Params::None)), Ok(()));
        assert_eq!(check_params(&ctx(255, CKH_HEDGE_PREFERRED)), Ok(()));
        assert_eq!(check_params(&ctx(0, CKH_DETERMINISTIC_REQUIRED)), Ok(()));
        assert_eq!(
            check_params(&ctx(256, CKH_HEDGE_REQUIRED)),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
        assert_eq!(
            check_params(&ctx(3, 0x99)),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
    }

    #[test]
    fn a_parameter_of_the_wrong_kind_is_invalid() {
        assert_eq!(
            check_params(&mech(CKM_AES_GCM, Params::Iv(vec![0; 12]))),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
        assert_eq!(
            check_params(&mech(CKM_RSA_PKCS_OAEP, Params::None)),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
        assert_eq!(check_params(&mech(CKM_ECDSA, Params::None)), Ok(()));
    }
}
