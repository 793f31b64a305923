//! Checks shared by every provider's `validate`: the fields an object holds, and the
//! locations the appliance may reach.

use serde_json::{Map, Value};

/// `object` (named `what` in messages: `providerMetadata`, `credentials`) holds every
/// `required` field as a non-empty string, optional ones only as strings, and nothing
/// else.
pub(crate) fn check_fields(
    what: &str,
    object: &Map<String, Value>,
    required: &[&str],
    optional: &[&str],
) -> Result<(), String> {
    if let Some(unknown) = object
        .keys()
        .find(|k| !required.contains(&k.as_str()) && !optional.contains(&k.as_str()))
    {
        return Err(format!(
            "{what}.{unknown} is not a field this provider takes (it takes {})",
            required
                .iter()
                .chain(optional)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for name in required {
        match object.get(*name) {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(format!("{what}.{name} is required"))
            }
            Some(_) => return Err(format!("{what}.{name} must be a string")),
        }
    }
    for name in optional {
        match object.get(*name) {
            None | Some(Value::String(_)) => {}
            Some(_) => return Err(format!("{what}.{name} must be a string")),
        }
    }
    Ok(())
}

/// `url` (the field `what`) is an `https://` location, or `http://` to a loopback address
/// (a local emulator or a TLS-terminating proxy on the appliance itself).
pub(crate) fn check_location(what: &str, url: &str) -> Result<(), String> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(format!("{what} must be an https:// URL"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!("{what} must not carry credentials"));
    }
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Err(format!("{what} has no host"));
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !https && !loopback {
        return Err(format!(
            "{what} must be https:// (plain http:// is allowed only to a loopback address)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_location;

    #[test]
    fn locations_are_https_or_loopback_http() {
        for ok in [
            "https://kms.eu-west-1.amazonaws.com",
            "https://10.0.0.1:8443/path",
            "http://127.0.0.1:4566",
            "http://localhost:4566/",
            "http://[::1]:4566",
        ] {
            assert_eq!(check_location("endpoint", ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://kms.eu-west-1.amazonaws.com",
            "http://10.0.0.1:4566",
            "http://127.0.0.1.example.com",
            "ftp://127.0.0.1",
            "kms.eu-west-1.amazonaws.com",
            "https://",
            "https://user:pw@kms.example.com",
        ] {
            assert!(check_location("endpoint", bad).is_err(), "{bad}");
        }
    }
}
