//! Vault's ACL policy language: `path "<pattern>" { capabilities = [...] }` blocks, parsed
//! from HCL (or Vault's JSON form), and the `Acl` a set of policies grants.

mod acl;
mod capabilities;
mod default;
mod error;
mod parse;
mod permissions;
mod rule;
pub mod store;
#[cfg(test)]
mod tests;

pub use acl::Acl;
pub use capabilities::{Capabilities, Operation};
pub use default::{DEFAULT_POLICY, RESPONSE_WRAPPING_POLICY, RESPONSE_WRAPPING_POLICY_NAME};
pub use error::PolicyError;
pub use parse::{validate_name, Policy};
pub use rule::PathRule;
