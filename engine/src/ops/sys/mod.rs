//! Vault's built-in `sys/` backend as operations: the seal lifecycle, mounts, policies,
//! audit devices, the keyring and the hardware seal's platform policy. The endpoints
//! Vault serves without a token (init, seal-status, unseal, health, leader,
//! generate-root) are [`Access::Public`](super::Access::Public); Vault's root paths need
//! `sudo`.

pub mod appliance;
pub mod audit;
pub mod auth;
pub mod capabilities;
pub mod generate_root;
pub mod health;
pub mod init;
pub mod keyring;
pub mod metrics;
pub mod mounts;
pub mod policies;
pub mod rotate_keys;
pub mod seal;
pub mod seal_policy;
pub mod specs;
pub mod wrapping;
