//! Vault's ACL policy language: `path "<pattern>" { capabilities = [...] }` blocks, parsed
//! from HCL (or Vault's JSON form), and the `Acl` a set of policies grants.

mod acl;
mod capabilities;
mod default;
mod parse;

pub use acl::Acl;
pub use capabilities::{Capabilities, Operation};
pub use default::DEFAULT_POLICY;
pub use parse::{validate_name, Policy, PolicyError};
