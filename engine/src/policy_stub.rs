// TEMPORARY stub until the policy module lands.
use std::sync::Arc;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities(pub u16);
impl Capabilities {
    pub fn names(self) -> Vec<&'static str> {
        vec!["root"]
    }
}
pub struct Policy {
    pub name: String,
    pub raw: String,
}
impl Policy {
    pub fn parse(name: &str, raw: &str) -> Result<Policy, String> {
        Ok(Policy {
            name: name.into(),
            raw: raw.into(),
        })
    }
}
pub struct Acl {
    root: bool,
}
impl Acl {
    pub fn new(_p: &[Arc<Policy>]) -> Acl {
        Acl { root: false }
    }
    pub fn root() -> Acl {
        Acl { root: true }
    }
    pub fn capabilities(&self, _path: &str) -> Capabilities {
        Capabilities(0)
    }
    pub fn allows(&self, _path: &str, _op: Operation) -> bool {
        self.root
    }
    pub fn has_sudo(&self, _path: &str) -> bool {
        self.root
    }
}
pub const DEFAULT_POLICY: &str = "";
pub fn validate_name(_n: &str) -> Result<(), String> {
    Ok(())
}
