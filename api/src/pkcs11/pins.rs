//! PIN entries: names the daemon's configuration gives to tokens, so an application can
//! be configured with a name (`C_Login` with PIN "billing") while the token itself stays
//! in a file only the daemon reads. A PIN that names an entry is replaced by the entry's
//! token before anything looks at it; any other PIN is taken as a token, as before. A
//! name that is no entry and no valid token is a wrong PIN like any other, counted by
//! the login limiter.

use std::collections::HashMap;
use std::fmt;

use zeroize::Zeroizing;

#[derive(Default, Clone)]
pub struct PinNames(HashMap<String, Zeroizing<String>>);

/// Names only: the tokens never reach a log.
impl fmt::Debug for PinNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl PinNames {
    /// Adds the entry `name` for `token`; false if the name is taken.
    pub fn insert(&mut self, name: String, token: Zeroizing<String>) -> bool {
        if self.0.contains_key(&name) {
            return false;
        }
        self.0.insert(name, token);
        true
    }

    /// The token a PIN stands for: the entry's if it names one, else the PIN itself.
    pub fn resolve(&self, pin: Zeroizing<String>) -> Zeroizing<String> {
        match self.0.get(pin.as_str()) {
            Some(token) => token.clone(),
            None => pin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_stands_for_its_token_and_anything_else_for_itself() {
        let mut names = PinNames::default();
        assert!(names.insert("billing".into(), Zeroizing::new("s.billing-token".into())));
        assert!(!names.insert("billing".into(), Zeroizing::new("s.other".into())));
        let pin = |p: &str| Zeroizing::new(p.to_string());
        assert_eq!(names.resolve(pin("billing")).as_str(), "s.billing-token");
        assert_eq!(names.resolve(pin("s.a-token")).as_str(), "s.a-token");
        assert_eq!(names.resolve(pin("Billing")).as_str(), "Billing");
        assert!(!format!("{names:?}").contains("s.billing-token"));
    }
}
