//! [`ExportMaterial`] over the boundary that holds a version: an HSM wraps inside the
//! device (`RootOfTrust::export_support` / `export_wrap`); a software version (Shamir and
//! TPM seals, post-import keys) is wrapped by `hsm_bridge::byok` in zeroized memory.

use std::sync::Arc;

use hsm_bridge::{byok, RootOfTrust, WrapMechanism};
use zeroize::Zeroizing;

use super::provider::ExportMaterial;
use crate::managed_keys::material::Loaded;
use crate::managed_keys::Algorithm;

pub(crate) struct BoundaryMaterial {
    root: Arc<dyn RootOfTrust>,
    algorithm: Algorithm,
    loaded: Arc<Loaded>,
    allow_unwrapped_export: bool,
}

impl BoundaryMaterial {
    pub(crate) fn new(
        root: Arc<dyn RootOfTrust>,
        algorithm: Algorithm,
        loaded: Arc<Loaded>,
        allow_unwrapped_export: bool,
    ) -> Self {
        BoundaryMaterial {
            root,
            algorithm,
            loaded,
            allow_unwrapped_export,
        }
    }

    /// What a software format wraps: PKCS#8 `PrivateKeyInfo` DER of an RSA or EC key,
    /// the 32 bytes of an AES key.
    fn software_target(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        match self.loaded.as_ref() {
            Loaded::Rsa(k) => k.to_pkcs8_der().map_err(|e| e.to_string()),
            Loaded::Ec(k) => k.private_pkcs8_der().map_err(|e| e.to_string()),
            Loaded::Aes(k) => Ok(k.clone()),
            Loaded::Hsm(_) | Loaded::MlDsa(_) | Loaded::MlKem(_) => Err(format!(
                "{} keys cannot be exported",
                self.algorithm.as_str()
            )),
        }
    }
}

impl ExportMaterial for BoundaryMaterial {
    fn supports(&self, mechanism: WrapMechanism) -> Result<(), String> {
        if let Loaded::Hsm(w) = self.loaded.as_ref() {
            return self.root.export_support(w.spec, mechanism);
        }
        match self.loaded.as_ref() {
            Loaded::MlDsa(_) | Loaded::MlKem(_) => Err(format!(
                "{} keys cannot be exported",
                self.algorithm.as_str()
            )),
            Loaded::Aes(_) => Ok(()),
            _ if mechanism.is_rsa_aes() => Ok(()),
            _ => Err(format!(
                "{} carries the key itself under RSA-OAEP, which holds an AES key only, not a {} key",
                mechanism.pkcs11_name(),
                self.algorithm.as_str()
            )),
        }
    }

    fn wrap(
        &self,
        wrapping_public_der: &[u8],
        mechanism: WrapMechanism,
    ) -> Result<Vec<u8>, String> {
        self.supports(mechanism)?;
        if let Loaded::Hsm(w) = self.loaded.as_ref() {
            return self
                .root
                .export_wrap(w, wrapping_public_der, mechanism)
                .map_err(|e| e.public_message());
        }
        let target = self.software_target()?;
        byok::wrap_software(&target, wrapping_public_der, mechanism).map_err(|e| e.to_string())
    }

    fn unwrapped(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        if !self.allow_unwrapped_export {
            return Err(
                "the key was not created with \"allowUnwrappedExport\": true, so its material \
                 never leaves the appliance unwrapped"
                    .into(),
            );
        }
        match self.loaded.as_ref() {
            Loaded::Aes(k) => Ok(k.clone()),
            Loaded::Hsm(_) => Err(
                "the HSM does not reveal key material: this key lives inside it and leaves \
                 it only wrapped"
                    .into(),
            ),
            _ => Err(format!(
                "only AES-256 keys are sent unwrapped, not {}",
                self.algorithm.as_str()
            )),
        }
    }
}
