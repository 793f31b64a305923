//! What the web console's session layer asks of the engine besides the requests it
//! forwards: whether the token a session is bound to still stands. Asked before every
//! forwarded request, so it is not audited (the request it precedes is) and spends none
//! of the token's uses.

use std::sync::atomic::Ordering;

use crate::error::{ErrorKind, Result};
use crate::ops::{Access, Context, Op};

/// The standing of the request's token.
pub struct SessionTokenCheck;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStanding {
    /// Valid; `expire_time` in Unix seconds (None: it does not expire).
    Live { expire_time: Option<i64> },
    /// Expired, revoked, or never valid.
    Ended,
    /// The appliance is sealed: no token stands.
    Sealed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTokenState {
    pub standing: TokenStanding,
    /// How many times the appliance has sealed since it started: a session made before
    /// the last seal ends even if its token is valid again after the unseal.
    pub seals: u64,
}

impl Op for SessionTokenCheck {
    type Output = SessionTokenState;

    fn access(&self) -> Access {
        Access::Public
    }

    async fn run(self, cx: Context<'_>) -> Result<SessionTokenState> {
        let seals = cx.core.times_sealed.load(Ordering::Relaxed);
        let standing = if cx.core.is_sealed() {
            TokenStanding::Sealed
        } else {
            match cx.core.tokens.identify(cx.request.token) {
                Ok((entry, _)) => TokenStanding::Live {
                    expire_time: entry.expire_time,
                },
                Err(e) if e.kind() == ErrorKind::Unauthenticated => TokenStanding::Ended,
                Err(e) => return Err(e),
            }
        };
        Ok(SessionTokenState { standing, seals })
    }
}
