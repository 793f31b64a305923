//! Capabilities as Vault names them, and the logical operation a request performs.

use super::PolicyError;

/// What a request does to its path, as Vault's logical operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Create,
    Read,
    Update,
    Patch,
    Delete,
    List,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Read => "read",
            Operation::Update => "update",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
            Operation::List => "list",
        }
    }
}

/// A set of capabilities. `DENY` overrides every other bit; `ROOT` grants everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Capabilities(u16);

/// In the order Vault's `sys/capabilities` lists them.
const NAMES: [(Capabilities, &str); 9] = [
    (Capabilities::ROOT, "root"),
    (Capabilities::DENY, "deny"),
    (Capabilities::SUDO, "sudo"),
    (Capabilities::READ, "read"),
    (Capabilities::LIST, "list"),
    (Capabilities::UPDATE, "update"),
    (Capabilities::DELETE, "delete"),
    (Capabilities::CREATE, "create"),
    (Capabilities::PATCH, "patch"),
];

impl Capabilities {
    pub const NONE: Capabilities = Capabilities(0);
    pub const CREATE: Capabilities = Capabilities(1);
    pub const READ: Capabilities = Capabilities(1 << 1);
    pub const UPDATE: Capabilities = Capabilities(1 << 2);
    pub const PATCH: Capabilities = Capabilities(1 << 3);
    pub const DELETE: Capabilities = Capabilities(1 << 4);
    pub const LIST: Capabilities = Capabilities(1 << 5);
    pub const SUDO: Capabilities = Capabilities(1 << 6);
    pub const DENY: Capabilities = Capabilities(1 << 7);
    pub const ROOT: Capabilities = Capabilities(1 << 8);

    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// What a rule grants once `deny` is taken into account: nothing but `DENY`.
    pub const fn effective(self) -> Capabilities {
        if self.contains(Capabilities::DENY) {
            Capabilities::DENY
        } else {
            self
        }
    }

    /// Vault's names, in Vault's order: `["root"]` for root, `["deny"]` whenever deny is
    /// set, and empty for no capability at all (`sys/capabilities` reports that as deny).
    pub fn names(self) -> Vec<&'static str> {
        if self.contains(Capabilities::ROOT) {
            return vec!["root"];
        }
        if self.contains(Capabilities::DENY) {
            return vec!["deny"];
        }
        NAMES
            .iter()
            .filter(|(c, _)| self.contains(*c))
            .map(|(_, n)| *n)
            .collect()
    }

    /// Parses a `capabilities` list. `deny` anywhere in it leaves only `DENY`, as in Vault;
    /// `root` is not something a policy can grant.
    pub fn from_names(names: &[String]) -> Result<Self, PolicyError> {
        let caps = names.iter().try_fold(Capabilities::NONE, |acc, n| {
            // Vault matches exactly; folding case and blanks costs nothing and keeps
            // policies stored by earlier versions of Ironseal loadable.
            let n = n.trim().to_ascii_lowercase();
            NAMES
                .iter()
                .find(|(c, name)| *name == n && *c != Capabilities::ROOT)
                .map(|(c, _)| acc.union(*c))
                .ok_or(PolicyError::UnknownCapability {
                    path: None,
                    capability: n,
                })
        })?;
        Ok(caps.effective())
    }

    pub const fn for_operation(op: Operation) -> Capabilities {
        match op {
            Operation::Create => Capabilities::CREATE,
            Operation::Read => Capabilities::READ,
            Operation::Update => Capabilities::UPDATE,
            Operation::Patch => Capabilities::PATCH,
            Operation::Delete => Capabilities::DELETE,
            Operation::List => Capabilities::LIST,
        }
    }

    pub const fn allows(self, op: Operation) -> bool {
        if self.contains(Capabilities::ROOT) {
            return true;
        }
        !self.contains(Capabilities::DENY) && self.contains(Self::for_operation(op))
    }

    /// Whether `sudo` is granted; `deny` takes it away like everything else.
    pub const fn has_sudo(self) -> bool {
        self.contains(Capabilities::ROOT)
            || (self.contains(Capabilities::SUDO) && !self.contains(Capabilities::DENY))
    }
}
