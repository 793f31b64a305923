//! Cache invalidation raised by the backend: when another writer (another node sharing
//! the keyspace) changes keys, the backend raises their common prefix and every cache
//! above storage drops what it holds below it. Writes made through this process update
//! the caches themselves and are not raised.

use std::sync::{Arc, Weak};

use parking_lot::RwLock;

/// Returns false once its cache is gone, so the list forgets it.
type Listener = Arc<dyn Fn(&str) -> bool + Send + Sync>;

#[derive(Default)]
pub struct Invalidations {
    listeners: RwLock<Vec<Listener>>,
}

impl Invalidations {
    /// Calls `drop_below(cache, prefix)` for every prefix raised while `cache` lives.
    pub fn subscribe<T, F>(&self, cache: &Arc<T>, drop_below: F)
    where
        T: Send + Sync + 'static,
        F: Fn(&T, &str) + Send + Sync + 'static,
    {
        let weak: Weak<T> = Arc::downgrade(cache);
        self.listeners
            .write()
            .push(Arc::new(move |prefix| match weak.upgrade() {
                Some(cache) => {
                    drop_below(&cache, prefix);
                    true
                }
                None => false,
            }));
    }

    /// Tells every cache that keys starting with `prefix` may have changed.
    /// The listeners run outside the list's lock: one that takes a change up may build
    /// a cache that subscribes (a mount another node added).
    pub fn raise(&self, prefix: &str) {
        let listeners: Vec<Listener> = self.listeners.read().clone();
        let gone: Vec<Listener> = listeners
            .into_iter()
            .filter(|listener| !listener(prefix))
            .collect();
        if !gone.is_empty() {
            self.listeners
                .write()
                .retain(|l| !gone.iter().any(|g| Arc::ptr_eq(g, l)));
        }
    }
}

/// What an invalidation of `prefix` means for the keys below `dir`: `Some(rest)` when
/// those whose remainder after `dir` starts with `rest` may have changed (`""`: all of
/// them), `None` when none did.
pub fn within<'p>(prefix: &'p str, dir: &str) -> Option<&'p str> {
    match prefix.strip_prefix(dir) {
        Some(rest) => Some(rest),
        None => dir.starts_with(prefix).then_some(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn listeners_hear_prefixes_until_their_cache_is_gone() {
        let hub = Invalidations::default();
        let cache = Arc::new(AtomicUsize::new(0));
        hub.subscribe(&cache, |c, p| {
            if within(p, "a/").is_some() {
                c.fetch_add(1, Ordering::SeqCst);
            }
        });
        hub.raise("a/b");
        hub.raise("");
        hub.raise("b/");
        assert_eq!(cache.load(Ordering::SeqCst), 2);
        drop(cache);
        hub.raise("a/");
        assert!(hub.listeners.read().is_empty());
    }

    #[test]
    fn within_a_directory() {
        assert_eq!(within("a/b", "a/"), Some("b"));
        assert_eq!(within("a", "a/"), Some(""));
        assert_eq!(within("", "a/"), Some(""));
        assert_eq!(within("b/", "a/"), None);
        assert_eq!(within("ab", "a/"), None);
    }
}
