//! CIDR bindings: of tokens (`token_bound_cidrs`), of AppRole secret ids and roles
//! (`secret_id_bound_cidrs`).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{EngineError, Result};

/// Parses blocks as Vault takes them (an address alone is a /32 or /128), normalised.
pub fn parse_cidrs(items: &[String]) -> Result<Vec<String>> {
    items
        .iter()
        .map(|item| {
            let item = item.trim();
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map(|net| net.to_string())
                .map_err(|_| EngineError::bad(format!("invalid CIDR block {item:?}")))
        })
        .collect()
}

/// Whether `remote` is inside one of `cidrs` (no blocks: anywhere). An unknown source is
/// outside every block.
pub fn remote_allowed(cidrs: &[String], remote: Option<IpAddr>) -> bool {
    if cidrs.is_empty() {
        return true;
    }
    let Some(remote) = remote.map(|r| r.to_canonical()) else {
        return false;
    };
    cidrs
        .iter()
        .filter_map(|c| c.parse::<IpNet>().ok())
        .any(|net| net.contains(&remote))
}

/// [`remote_allowed`], refused with Vault's words for what the blocks bind (`what`: "the
/// secret ID", "the role").
pub fn check_cidrs(cidrs: &[String], remote: Option<IpAddr>, what: &str) -> Result<()> {
    if remote_allowed(cidrs, remote) {
        return Ok(());
    }
    let addr = remote.map(|r| r.to_string()).unwrap_or_default();
    Err(EngineError::bad(format!(
        "source address {addr:?} unauthorized by CIDR restrictions on {what}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_inside_and_outside() {
        let cidrs = parse_cidrs(&["127.0.0.1".into(), "10.0.0.0/8".into()]).unwrap();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(remote_allowed(&cidrs, ip("127.0.0.1")));
        assert!(remote_allowed(&cidrs, ip("10.200.0.1")));
        assert!(remote_allowed(&cidrs, ip("::ffff:127.0.0.1")));
        assert!(!remote_allowed(&cidrs, ip("127.0.0.2")));
        assert!(!remote_allowed(&cidrs, None));
        assert!(remote_allowed(&[], None));
        assert!(parse_cidrs(&["10.0.0.0/33".into()]).is_err());
    }
}
