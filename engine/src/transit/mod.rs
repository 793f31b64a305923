//! The transit secrets engine: encryption as a service with named, versioned keys.

use std::sync::Arc;

use crate::barrier::Barrier;

pub struct TransitEngine {
    #[allow(dead_code)]
    barrier: Arc<Barrier>,
    #[allow(dead_code)]
    prefix: String,
}

impl TransitEngine {
    pub fn new(barrier: Arc<Barrier>, storage_prefix: String) -> Self {
        TransitEngine {
            barrier,
            prefix: storage_prefix,
        }
    }
}
