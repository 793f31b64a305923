//! `sys/internal/specs/openapi` (and the key API's `openapi.json`): the published API
//! document. The document is the door's; the engine only answers who may read it.

use crate::error::{EngineError, Result};
use crate::ops::{Access, Context, Decoded, Op};

/// Served without a token, as Vault serves its own document, once unsealed.
pub struct ApiDocument {
    /// The request's parameters: it takes none.
    pub params: Decoded<()>,
}

impl Op for ApiDocument {
    type Output = ();

    fn access(&self) -> Access {
        Access::Public
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        if cx.core.is_sealed() {
            return Err(EngineError::Sealed);
        }
        self.params
    }
}
