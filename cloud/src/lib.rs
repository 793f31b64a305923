//! BYOK wrap formats and cloud KMS provider clients (AWS KMS, Azure Key Vault, GCP Cloud
//! KMS, Scaleway Key Manager) for managed-key exports and auto-sync.
//!
//! Empty until the cloud-export work lands: the engine will define the trait a provider
//! implements, and this crate will hold one module per provider plus the wrap formats
//! (RSA-OAEP, RSA-AES-KEY-WRAP / RFC 5649) they accept.

#![forbid(unsafe_code)]
