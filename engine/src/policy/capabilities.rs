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

const NAMES: [(Capabilities, &str); 9] = [
    (Capabilities::CREATE, "create"),
    (Capabilities::READ, "read"),
    (Capabilities::UPDATE, "update"),
    (Capabilities::PATCH, "patch"),
    (Capabilities::DELETE, "delete"),
    (Capabilities::LIST, "list"),
    (Capabilities::SUDO, "sudo"),
    (Capabilities::DENY, "deny"),
    (Capabilities::ROOT, "root"),
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

    pub fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// What a rule grants once `deny` is taken into account.
    pub fn effective(self) -> Capabilities {
        if self.contains(Capabilities::DENY) {
            Capabilities::DENY
        } else {
            self
        }
    }

    /// Vault's names, in Vault's order; `["root"]` for the root policy.
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

    pub fn from_names(names: &[String]) -> Result<Self, PolicyError> {
        names.iter().try_fold(Capabilities::NONE, |acc, n| {
            let n = n.trim().to_lowercase();
            NAMES
                .iter()
                .find(|(c, name)| *name == n && *c != Capabilities::ROOT)
                .map(|(c, _)| acc.union(*c))
                .ok_or(PolicyError::UnknownCapability(n))
        })
    }

    pub fn for_operation(op: Operation) -> Capabilities {
        match op {
            Operation::Create => Capabilities::CREATE,
            Operation::Read => Capabilities::READ,
            Operation::Update => Capabilities::UPDATE,
            Operation::Patch => Capabilities::PATCH,
            Operation::Delete => Capabilities::DELETE,
            Operation::List => Capabilities::LIST,
        }
    }

    pub fn allows(self, op: Operation) -> bool {
        if self.contains(Capabilities::ROOT) {
            return true;
        }
        !self.contains(Capabilities::DENY) && self.contains(Self::for_operation(op))
    }
}
