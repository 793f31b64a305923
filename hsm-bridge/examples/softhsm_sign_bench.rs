//! The ceiling for managed-key signing: C_Sign straight on SoftHSM2 (cryptoki), no HTTP,
//! no daemon. `SOFTHSM2_CONF` names the token; args: MODULE TOKEN_LABEL PIN SECONDS
//! THREADS. Prints `rsa2048 <ops/s>` and `p256 <ops/s>`. Used by bench/managed-keys.sh.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, module, label, pin, secs, threads] = args.as_slice() else {
        return Err("usage: softhsm_sign_bench MODULE TOKEN_LABEL PIN SECONDS THREADS".into());
    };
    let secs: u64 = secs.parse()?;
    let threads: usize = threads.parse()?;
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
    let (_, rsa) = setup.generate_key_pair(
        &Mechanism::RsaPkcsKeyPairGen,
        &[
            Attribute::Token(false),
            Attribute::ModulusBits(2048u64.into()),
            Attribute::PublicExponent(vec![1, 0, 1]),
        ],
        &[
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sign(true),
        ],
    )?;
    let (_, ec) = setup.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[
            Attribute::Token(false),
            Attribute::EcParams(vec![
                0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
            ]),
        ],
        &[
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sign(true),
        ],
    )?;
    for (name, key, is_rsa) in [("rsa2048", rsa, true), ("p256", ec, false)] {
        let rate = run(&ctx, slot, key, is_rsa, secs, threads)?;
        println!("{name} {rate:.0}");
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
) -> Result<f64, Box<dyn std::error::Error>> {
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    std::thread::scope(|s| -> Result<(), Box<dyn std::error::Error>> {
        let mut handles = Vec::new();
        for _ in 0..threads {
            let (done, count) = (done.clone(), count.clone());
            handles.push(s.spawn(move || {
                let Ok(session) = ctx.open_rw_session(slot) else {
                    return;
                };
                let mech = if is_rsa {
                    Mechanism::Sha256RsaPkcs
                } else {
                    Mechanism::Ecdsa
                };
                let mech = &mech;
                let digest = [7u8; 32];
                while !done.load(Ordering::Relaxed) {
                    if session.sign(mech, key, &digest).is_ok() {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        std::thread::sleep(Duration::from_secs(secs));
        done.store(true, Ordering::Relaxed);
        Ok(())
    })?;
    Ok(count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}
