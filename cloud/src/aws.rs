//! Not built yet: refuses every export with a message saying so.

use engine::cloud_exports::{SyncError, SyncFuture, SyncRequest};
use engine::managed_keys::Algorithm;
use serde_json::{Map, Value};

use crate::ProviderClient;

pub(crate) struct Aws;

impl Aws {
    pub(crate) fn new() -> Self {
        Aws
    }
}

impl ProviderClient for Aws {
    fn validate(
        &self,
        _metadata: &mut Map<String, Value>,
        _credentials: Option<&Map<String, Value>>,
        _algorithm: Algorithm,
        _allow_unwrapped_export: bool,
    ) -> Result<(), String> {
        Err("exports to this provider are not available yet".into())
    }

    fn sync<'a>(&'a self, _request: SyncRequest<'a>) -> SyncFuture<'a> {
        Box::pin(async {
            Err(SyncError::permanent(
                "exports to this provider are not available yet",
            ))
        })
    }
}
