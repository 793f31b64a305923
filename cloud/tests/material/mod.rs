//! A key version's material as a software seal holds it, for driving the providers
//! without an engine: the BYOK formats from `hsm_bridge::byok`, the AES bytes for
//! Scaleway, and a boundary that can be told to lack some formats.

// Each test binary that includes this module uses part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use engine::cloud_exports::ExportMaterial;
use hsm_bridge::WrapMechanism;
use zeroize::Zeroizing;

pub struct SoftwareMaterial {
    /// PKCS#8 DER of an asymmetric key, or an AES key's bytes.
    target: Zeroizing<Vec<u8>>,
    /// Set for an AES-256 key created with allowUnwrappedExport.
    unwrapped_allowed: bool,
    missing: Vec<WrapMechanism>,
    wraps: AtomicUsize,
}

impl SoftwareMaterial {
    pub fn asymmetric(pkcs8_der: &[u8]) -> Self {
        Self::new(pkcs8_der, false)
    }

    pub fn aes(key: &[u8], allow_unwrapped_export: bool) -> Self {
        Self::new(key, allow_unwrapped_export)
    }

    fn new(target: &[u8], unwrapped_allowed: bool) -> Self {
        SoftwareMaterial {
            target: Zeroizing::new(target.to_vec()),
            unwrapped_allowed,
            missing: Vec::new(),
            wraps: AtomicUsize::new(0),
        }
    }

    /// A boundary whose self-test found `mechanisms` missing.
    pub fn without(mut self, mechanisms: &[WrapMechanism]) -> Self {
        self.missing.extend_from_slice(mechanisms);
        self
    }

    /// How many times the key was wrapped (one per import).
    pub fn wraps(&self) -> usize {
        self.wraps.load(Ordering::SeqCst)
    }
}

impl ExportMaterial for SoftwareMaterial {
    fn supports(&self, mechanism: WrapMechanism) -> Result<(), String> {
        if self.missing.contains(&mechanism) {
            return Err(format!(
                "this test boundary lacks {}",
                mechanism.pkcs11_name()
            ));
        }
        Ok(())
    }

    fn wrap(
        &self,
        wrapping_public_der: &[u8],
        mechanism: WrapMechanism,
    ) -> Result<Vec<u8>, String> {
        self.supports(mechanism)?;
        self.wraps.fetch_add(1, Ordering::SeqCst);
        hsm_bridge::byok::wrap_software(&self.target, wrapping_public_der, mechanism)
            .map_err(|e| e.to_string())
    }

    fn unwrapped(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        if !self.unwrapped_allowed {
            return Err("the key was not created with allowUnwrappedExport".into());
        }
        Ok(self.target.clone())
    }
}
