//! Signatures per second through any PKCS#11 module: SoftHSM2 directly (the ceiling) or
//! `libironseal_pkcs11.so` in front of an appliance sealed by that SoftHSM2. Args: MODULE
//! TOKEN_LABEL PIN SECONDS THREADS... (one run per thread count). Generates an RSA-2048
//! and a P-256 token key pair, signs a SHA-256 digest (`CKM_SHA256_RSA_PKCS` over 32
//! bytes, `CKM_ECDSA` over the digest) in a session per thread, and prints
//! `<alg> <threads> <ops/s>` lines. Used by bench/managed-keys.sh.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let [_, module, label, pin, secs, threads @ ..] = args.as_slice() else {
        return Err("usage: pkcs11_sign_bench MODULE TOKEN_LABEL PIN SECONDS THREADS...".into());
    };
    let secs: u64 = secs.parse()?;
    let threads = threads
        .iter()
        .map(|t| t.parse::<usize>())
        .collect::<Result<Vec<_>, _>>()?;
    let ctx = Pkcs11::new(module)?;
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
    let slot = ctx
        .get_slots_with_token()?
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .is_ok_and(|i| i.label().trim_end() == label)
        })
        .ok_or("no such token")?;
    let pin = AuthPin::from(pin.clone());
    let setup = ctx.open_rw_session(slot)?;
    setup.login(UserType::User, Some(&pin))?;
    let tag = std::process::id();
    let (_, rsa) = setup.generate_key_pair(
        &Mechanism::RsaPkcsKeyPairGen,
        &[
            Attribute::Token(true),
            Attribute::Label(format!("bench-rsa-{tag}").into_bytes()),
            Attribute::ModulusBits(2048u64.into()),
            Attribute::PublicExponent(vec![1, 0, 1]),
            Attribute::Verify(true),
        ],
        &[
            Attribute::Token(true),
            Attribute::Label(format!("bench-rsa-{tag}").into_bytes()),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Sign(true),
        ],
    )?;
    let (_, ec) = setup.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[
            Attribute::Token(true),
            Attribute::Label(format!("bench-p256-{tag}").into_bytes()),
            Attribute::EcParams(vec![
                0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
            ]),
            Attribute::Verify(true),
        ],
        &[
            Attribute::Token(true),
            Attribute::Label(format!("bench-p256-{tag}").into_bytes()),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Sign(true),
        ],
    )?;
    for (name, key, is_rsa) in [("rsa2048", rsa, true), ("p256", ec, false)] {
        for &n in &threads {
            let rate = run(&ctx, slot, key, is_rsa, secs, n)?;
            println!("{name} {n} {rate:.0}");
        }
    }
    Ok(())
}

fn run(
    ctx: &Pkcs11,
    slot: cryptoki::slot::Slot,
    key: ObjectHandle,
    is_rsa: bool,
    secs: u64,
    threads: usize,
) -> Result<f64, Error> {
    let done = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    // A failing sign stops the run: a rate of failures is not a rate of signatures.
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let session = match ctx.open_rw_session(slot) {
                    Ok(session) => session,
                    Err(e) => {
                        *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                        done.store(true, Ordering::Relaxed);
                        return;
                    }
                };
                let mech = if is_rsa {
                    Mechanism::Sha256RsaPkcs
                } else {
                    Mechanism::Ecdsa
                };
                let digest = [7u8; 32];
                while !done.load(Ordering::Relaxed) {
                    match session.sign(&mech, key, &digest) {
                        Ok(_) => {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            *failure.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some(e.to_string());
                            done.store(true, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        let deadline = started + Duration::from_secs(secs);
        while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        done.store(true, Ordering::Relaxed);
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(format!("C_Sign failed: {e}").into());
    }
    Ok(count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}
