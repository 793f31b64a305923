//! `sys/init`: whether the appliance is initialised, and initialising it.

use crate::error::{EngineError, Result};
use crate::ops::{Access, Context, Op};
use crate::seal::{InitRequest, InitResult};

pub struct InitStatus;

impl Op for InitStatus {
    type Output = bool;

    fn access(&self) -> Access {
        Access::Public
    }

    async fn run(self, cx: Context<'_>) -> Result<bool> {
        cx.core.is_initialized()
    }
}

/// The share counts a `sys/init` request gives (None: left out).
#[derive(Default)]
pub struct InitParams {
    pub secret_shares: Option<u64>,
    pub secret_threshold: Option<u64>,
    pub recovery_shares: Option<u64>,
    pub recovery_threshold: Option<u64>,
    /// Vault's deprecated `stored_shares`.
    pub stored_shares: Option<u64>,
}

pub struct Init {
    pub params: crate::ops::Decoded<InitParams>,
}

fn share_count(name: &str, n: Option<u64>, default: u64) -> Result<u8> {
    u8::try_from(n.unwrap_or(default))
        .map_err(|_| EngineError::bad(format!("{name} must be at most 255")))
}

impl Op for Init {
    type Output = InitResult;

    fn access(&self) -> Access {
        Access::Public
    }

    async fn run(self, cx: Context<'_>) -> Result<InitResult> {
        let p = self.params?;
        let seal = cx.core.configured_seal();
        let hardware = seal.is_hardware();
        // As OpenBao: the parameters of the seal that is not in use are refused, not
        // ignored. Vault's CLI sends every field, zero for the ones that do not apply.
        let other_seal = if hardware {
            [
                ("secret_shares", p.secret_shares),
                ("secret_threshold", p.secret_threshold),
            ]
        } else {
            [
                ("recovery_shares", p.recovery_shares),
                ("recovery_threshold", p.recovery_threshold),
            ]
        };
        let foreign: Vec<&str> = other_seal
            .iter()
            .filter(|(_, n)| n.is_some_and(|n| n != 0))
            .map(|(name, _)| *name)
            .collect();
        if !foreign.is_empty() {
            return Err(EngineError::bad(format!(
                "parameters {} not applicable to seal type {seal}",
                foreign.join(","),
            )));
        }
        // A hardware seal holds its one key in the device (1, or 0 for "unset"); Shamir
        // stores no keys at all.
        match (hardware, p.stored_shares.unwrap_or(0)) {
            (_, 0) | (true, 1) => {}
            (true, _) => {
                return Err(EngineError::bad(
                    "stored_shares must be 1 (or left out) with a hardware seal: the device holds the one root key",
                ))
            }
            (false, _) => {
                return Err(EngineError::bad(
                    "stored keys are not supported by the shamir seal: leave stored_shares out",
                ))
            }
        }
        let request = InitRequest {
            secret_shares: share_count("secret_shares", p.secret_shares, 5)?,
            secret_threshold: share_count("secret_threshold", p.secret_threshold, 3)?,
            recovery_shares: share_count("recovery_shares", p.recovery_shares, 5)?,
            recovery_threshold: share_count("recovery_threshold", p.recovery_threshold, 3)?,
        };
        let result = cx.core.init_with(request).await?;
        if result.recovery_keys.is_empty() {
            tracing::info!(
                shares = request.secret_shares,
                threshold = request.secret_threshold,
                "vault initialized"
            );
        } else {
            tracing::info!(
                seal = %seal,
                recovery_shares = result.recovery_keys.len(),
                recovery_threshold = result.recovery_threshold,
                "vault initialized with recovery keys"
            );
        }
        Ok(result)
    }
}
