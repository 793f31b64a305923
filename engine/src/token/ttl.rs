//! Token lifetimes, bounded as Vault bounds them: the system `default_lease_ttl` /
//! `max_lease_ttl` (server config, 768h each by default), overridden by the tune of the
//! `auth/token/` mount, and a token's own `explicit_max_ttl`. The maximum counts from the
//! token's creation, so renewals cannot push a token past it (OpenBao's
//! `framework.CalculateTTL`).

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// Vault's system default and maximum lease TTL: 32 days.
pub const SYSTEM_TTL: u64 = 768 * 3600;

/// The system-wide lease TTLs, from the server configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTtls {
    pub default_lease_ttl: u64,
    pub max_lease_ttl: u64,
}

impl Default for LeaseTtls {
    fn default() -> Self {
        LeaseTtls {
            default_lease_ttl: SYSTEM_TTL,
            max_lease_ttl: SYSTEM_TTL,
        }
    }
}

impl LeaseTtls {
    /// Vault refuses a server config whose default is above its maximum.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.max_lease_ttl == 0 {
            return Err("max_lease_ttl must be greater than zero".into());
        }
        if self.default_lease_ttl > self.max_lease_ttl {
            return Err(format!(
                "default_lease_ttl ({}s) cannot be larger than max_lease_ttl ({}s)",
                self.default_lease_ttl, self.max_lease_ttl
            ));
        }
        Ok(())
    }
}

/// The tune of the `auth/token/` mount; 0 means "use the system value", as in Vault.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountTtls {
    pub default_lease_ttl: u64,
    pub max_lease_ttl: u64,
}

impl MountTtls {
    /// Vault's tune check: with both set, the maximum may not be below the default.
    pub fn validate(&self) -> Result<()> {
        if self.default_lease_ttl != 0
            && self.max_lease_ttl != 0
            && self.max_lease_ttl < self.default_lease_ttl
        {
            return Err(EngineError::bad(format!(
                "backend max lease TTL of {} would be less than backend default lease TTL of {}",
                self.max_lease_ttl, self.default_lease_ttl
            )));
        }
        Ok(())
    }

    /// The TTLs in force: the mount's where set, else the system's.
    pub fn effective(&self, system: LeaseTtls) -> LeaseTtls {
        LeaseTtls {
            default_lease_ttl: if self.default_lease_ttl > 0 {
                self.default_lease_ttl
            } else {
                system.default_lease_ttl
            },
            max_lease_ttl: if self.max_lease_ttl > 0 {
                self.max_lease_ttl
            } else {
                system.max_lease_ttl
            },
        }
    }
}

/// What a lease asks for, in seconds (0: not given).
#[derive(Debug, Clone, Copy, Default)]
pub struct TtlRequest {
    pub increment: u64,
    /// The token's own TTL (asked at creation, or its last one on renewal).
    pub ttl: u64,
    pub period: u64,
    pub explicit_max_ttl: u64,
    /// The issuing role's maximum (`token_max_ttl`), below the mount's (0: none).
    pub max_ttl: u64,
    /// When the token was created; the maximum counts from here.
    pub start: i64,
}

/// The TTL to grant now, capped so the token ends no later than `start` plus the
/// effective maximum (a periodic token: only its explicit maximum bounds it).
pub fn calculate(ttls: LeaseTtls, req: TtlRequest, now: i64) -> Result<u64> {
    let mut max = ttls.max_lease_ttl;
    if req.max_ttl > 0 && req.max_ttl < max {
        max = req.max_ttl;
    }
    if req.explicit_max_ttl > 0 && req.explicit_max_ttl < max {
        max = req.explicit_max_ttl;
    }
    if max == 0 {
        return Err(EngineError::bad("max TTL must be greater than zero"));
    }
    let (ttl, max_valid) = if req.period > 0 {
        let end = (req.explicit_max_ttl > 0).then(|| add(req.start, req.explicit_max_ttl));
        (req.period.min(max), end)
    } else {
        let ttl = [req.increment, req.ttl, ttls.default_lease_ttl]
            .into_iter()
            .find(|t| *t > 0)
            .unwrap_or(0);
        (ttl, Some(add(req.start, max)))
    };
    match max_valid {
        Some(end) if end <= now => Err(EngineError::bad("past the max TTL, cannot renew")),
        Some(end) => Ok(ttl.min((end - now) as u64)),
        None => Ok(ttl),
    }
}

fn add(start: i64, secs: u64) -> i64 {
    start.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    #[test]
    fn ten_years_is_capped_at_the_system_maximum() {
        let req = TtlRequest {
            ttl: 10 * 365 * 86400,
            start: NOW,
            ..Default::default()
        };
        assert_eq!(
            calculate(LeaseTtls::default(), req, NOW).unwrap(),
            SYSTEM_TTL
        );
    }

    #[test]
    fn renewals_cannot_pass_creation_plus_max() {
        let ttls = LeaseTtls {
            default_lease_ttl: 3600,
            max_lease_ttl: 7200,
        };
        let req = TtlRequest {
            increment: 7200,
            ttl: 3600,
            start: NOW,
            ..Default::default()
        };
        // An hour after creation only an hour is left.
        assert_eq!(calculate(ttls, req, NOW + 3600).unwrap(), 3600);
        assert!(calculate(ttls, req, NOW + 7200).is_err());
        // A smaller explicit max wins over the mount's.
        let explicit = TtlRequest {
            explicit_max_ttl: 600,
            ..req
        };
        assert_eq!(calculate(ttls, explicit, NOW).unwrap(), 600);
    }

    #[test]
    fn periods_are_capped_but_renew_forever_without_an_explicit_max() {
        let ttls = LeaseTtls {
            default_lease_ttl: 3600,
            max_lease_ttl: 7200,
        };
        let req = TtlRequest {
            period: 86400,
            start: NOW,
            ..Default::default()
        };
        assert_eq!(calculate(ttls, req, NOW + 10 * 86400).unwrap(), 7200);
    }

    #[test]
    fn mount_tune_overrides_the_system() {
        let tune = MountTtls {
            default_lease_ttl: 0,
            max_lease_ttl: 3600,
        };
        let e = tune.effective(LeaseTtls::default());
        assert_eq!((e.default_lease_ttl, e.max_lease_ttl), (SYSTEM_TTL, 3600));
        assert!(MountTtls {
            default_lease_ttl: 7200,
            max_lease_ttl: 3600
        }
        .validate()
        .is_err());
    }
}
