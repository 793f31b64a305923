//! The web console's assets, built into the daemon: the appliance is often air-gapped, so
//! nothing is fetched at run time and nothing needs Node to build. `build.rs` lists every
//! file under `assets/`.

#![forbid(unsafe_code)]

/// One embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    pub bytes: &'static [u8],
    pub content_type: &'static str,
}

/// `(path below assets/, bytes, content type)`, sorted by path.
static ASSETS: &[(&str, &[u8], &str)] = include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The asset at `path` below `assets/` (`index.html`, `js/api.js`).
pub fn asset(path: &str) -> Option<Asset> {
    ASSETS
        .binary_search_by(|(name, _, _)| (*name).cmp(path))
        .ok()
        .map(|i| Asset {
            bytes: ASSETS[i].1,
            content_type: ASSETS[i].2,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_serves_the_shell() {
        assert!(ASSETS.windows(2).all(|w| w[0].0 < w[1].0));
        let index = asset("index.html").expect("index.html is embedded");
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        assert!(asset("js/api.js").is_some());
        assert!(asset("../Cargo.toml").is_none());
    }

    /// The CSP forbids inline script and style: none may creep into an asset.
    #[test]
    fn no_asset_carries_inline_script_or_style() {
        for (name, bytes, _) in ASSETS {
            let text = String::from_utf8_lossy(bytes);
            assert!(!text.contains("style=\""), "{name} has a style attribute");
            assert!(!text.contains("innerHTML"), "{name} uses innerHTML");
            if name.ends_with(".html") {
                assert!(!text.contains("<style"), "{name} has an inline style");
                for (i, _) in text.match_indices("<script") {
                    let tag = &text[i..text[i..].find('>').map_or(text.len(), |e| i + e)];
                    assert!(tag.contains("src="), "{name} has an inline script");
                }
            }
        }
    }
}
