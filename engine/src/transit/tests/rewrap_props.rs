//! Rewrap's promise as a property: through any rotations, rewrapping to the latest or to
//! any older version, a ciphertext keeps decrypting to the plaintext it was made from.

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Step {
    Rotate,
    /// Rewrap to this version, taken modulo the versions there are (0: the latest).
    Rewrap(u32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![Just(Step::Rotate), any::<u32>().prop_map(Step::Rewrap)]
}

fn kind() -> impl Strategy<Value = KeyType> {
    prop_oneof![
        Just(KeyType::Aes128Gcm96),
        Just(KeyType::Aes256Gcm96),
        Just(KeyType::ChaCha20Poly1305),
        Just(KeyType::XChaCha20Poly1305),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn rewrap_never_changes_the_plaintext(
        kind in kind(),
        plaintext in proptest::collection::vec(any::<u8>(), 0..300),
        context in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..16)),
        steps in proptest::collection::vec(step(), 1..10),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let e = rt.block_on(engine());
        rt.block_on(e.create(
            "k",
            CreateKey {
                kind,
                derived: context.is_some(),
                ..Default::default()
            },
        ))
        .unwrap();
        let context = context.map(|c| b64(&c));
        let item = |plaintext: Option<String>, ciphertext: Option<String>, key_version| CipherItem {
            plaintext,
            ciphertext,
            context: context.clone(),
            key_version,
            ..Default::default()
        };
        let (mut encrypted, _) = rt
            .block_on(e.encrypt("k", &[item(Some(b64(&plaintext)), None, 0)], None, false))
            .unwrap();
        let mut ciphertext = encrypted.remove(0).unwrap().ciphertext;
        let mut versions = 1u32;
        for step in &steps {
            match step {
                Step::Rotate => {
                    rt.block_on(e.rotate("k")).unwrap();
                    versions += 1;
                }
                Step::Rewrap(to) => {
                    let to = to % (versions + 1);
                    let mut r = rt
                        .block_on(e.rewrap("k", &[item(None, Some(ciphertext.clone()), i64::from(to))]))
                        .unwrap();
                    let rewrapped = r.remove(0).unwrap();
                    let expected = if to == 0 { versions } else { to };
                    prop_assert_eq!(rewrapped.key_version, expected);
                    ciphertext = rewrapped.ciphertext;
                }
            }
            let mut r = rt
                .block_on(e.decrypt("k", &[item(None, Some(ciphertext.clone()), 0)]))
                .unwrap();
            prop_assert_eq!(unb64(&r.remove(0).unwrap()), plaintext.clone());
        }
    }
}
