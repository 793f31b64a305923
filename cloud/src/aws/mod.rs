//! AWS KMS: a key with `Origin=EXTERNAL` per appliance key version, its material imported
//! the way AWS documents BYOK (`GetParametersForImport`, a wrap under AWS's RSA key inside
//! the boundary that holds the key, `ImportKeyMaterial`), an alias kept on the newest
//! version, SigV4 with the export's static credentials.
//!
//! AWS has no key versions for imported material, so each appliance version is its own
//! KMS key, tagged `ironseal-key-id`, `ironseal-key-version` and `ironseal-export-id`: a
//! sync finds its key by those tags before creating one, so a job run twice leaves one
//! key.
//!
//! What the credentials must be allowed: `kms:ListKeys`, `kms:ListResourceTags`,
//! `kms:DescribeKey`, `kms:CreateKey` with `kms:TagResource`, `kms:GetParametersForImport`,
//! `kms:ImportKeyMaterial`, `kms:GetPublicKey` (the appliance checks the imported key
//! pair), `kms:CreateAlias` and `kms:UpdateAlias`; `kms:ScheduleKeyDeletion` to give up a
//! key AWS made with another spec than asked.

mod client;
mod errors;
mod import;

use aws_sdk_kms::config::SharedHttpClient;
use aws_sdk_kms::types::{AlgorithmSpec, KeySpec, KeyUsageType};
use engine::cloud_exports::{SyncFuture, SyncRequest};
use engine::managed_keys::{Algorithm, Usage};
use hsm_bridge::WrapMechanism;
use serde_json::{Map, Value};

use crate::fields::check_fields;
use crate::ProviderClient;

const METADATA_REQUIRED: &[&str] = &["region"];
const METADATA_OPTIONAL: &[&str] = &["alias", "endpoint", "caCertPem"];
const CREDENTIALS_REQUIRED: &[&str] = &["accessKeyId", "secretAccessKey"];
const CREDENTIALS_OPTIONAL: &[&str] = &["sessionToken"];

/// The longest alias name AWS accepts.
const MAX_ALIAS_LEN: usize = 256;

pub(crate) struct Aws {
    /// Shared by exports without `caCertPem`, so their connections are pooled.
    http: SharedHttpClient,
    tokens: import::UsedTokens,
}

impl Aws {
    pub(crate) fn new() -> Self {
        Aws {
            http: client::default_https_client(),
            tokens: import::UsedTokens::default(),
        }
    }
}

impl ProviderClient for Aws {
    fn validate(
        &self,
        metadata: &mut Map<String, Value>,
        credentials: Option<&Map<String, Value>>,
        algorithm: Algorithm,
        _allow_unwrapped_export: bool,
    ) -> Result<(), String> {
        check_fields(
            "providerMetadata",
            metadata,
            METADATA_REQUIRED,
            METADATA_OPTIONAL,
        )?;
        if let Some(credentials) = credentials {
            check_fields(
                "credentials",
                credentials,
                CREDENTIALS_REQUIRED,
                CREDENTIALS_OPTIONAL,
            )?;
        }
        // The algorithm decides whether AWS holds the key; either usage fits every RSA size.
        key_shape(algorithm, Usage::SignVerify)?;
        let text = |name: &str| metadata.get(name).and_then(Value::as_str);
        let region = text("region").unwrap_or_default();
        if !region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            || !region.contains('-')
        {
            return Err(format!(
                "providerMetadata.region {region:?} is not an AWS region name (such as eu-west-1)"
            ));
        }
        if let Some(alias) = text("alias") {
            check_alias(alias)?;
        }
        if let Some(pem) = text("caCertPem") {
            client::check_ca_cert_pem(pem)?;
        }
        match text("endpoint") {
            Some(endpoint) => {
                crate::http::parse_location("providerMetadata.endpoint", endpoint)?;
            }
            None => {
                let endpoint = client::default_endpoint(region);
                metadata.insert("endpoint".into(), Value::String(endpoint));
            }
        }
        Ok(())
    }

    fn sync<'a>(&'a self, request: SyncRequest<'a>) -> SyncFuture<'a> {
        Box::pin(import::sync(self, request))
    }
}

/// The KMS key spec and usage an appliance key becomes, or why AWS cannot hold it.
fn key_shape(algorithm: Algorithm, usage: Usage) -> Result<(KeySpec, KeyUsageType), String> {
    let rsa_usage = match usage {
        Usage::SignVerify => KeyUsageType::SignVerify,
        Usage::EncryptDecrypt => KeyUsageType::EncryptDecrypt,
    };
    Ok(match algorithm {
        Algorithm::Rsa2048 => (KeySpec::Rsa2048, rsa_usage),
        Algorithm::Rsa3072 => (KeySpec::Rsa3072, rsa_usage),
        Algorithm::Rsa4096 => (KeySpec::Rsa4096, rsa_usage),
        Algorithm::EcP256 => (KeySpec::EccNistP256, KeyUsageType::SignVerify),
        Algorithm::EcP384 => (KeySpec::EccNistP384, KeyUsageType::SignVerify),
        Algorithm::Aes256 => (KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt),
        Algorithm::MlDsa65 | Algorithm::MlKem768 => {
            return Err(format!(
                "AWS KMS does not import {} keys: it takes RSA_2048, RSA_3072, RSA_4096, \
                 EC_P256, EC_P384 and AES_256",
                algorithm.as_str()
            ))
        }
    })
}

/// The wrap formats AWS takes for `algorithm`, best first, with AWS's name for each.
fn wrap_formats(algorithm: Algorithm) -> [(WrapMechanism, AlgorithmSpec); 2] {
    if algorithm.is_asymmetric() {
        [
            (
                WrapMechanism::RsaAesKeyWrapSha256,
                AlgorithmSpec::RsaAesKeyWrapSha256,
            ),
            (
                WrapMechanism::RsaAesKeyWrapSha1,
                AlgorithmSpec::RsaAesKeyWrapSha1,
            ),
        ]
    } else {
        [
            (WrapMechanism::RsaOaepSha256, AlgorithmSpec::RsaesOaepSha256),
            (WrapMechanism::RsaOaepSha1, AlgorithmSpec::RsaesOaepSha1),
        ]
    }
}

/// An alias name AWS would accept for a customer key.
fn check_alias(alias: &str) -> Result<(), String> {
    let Some(name) = alias.strip_prefix("alias/") else {
        return Err("providerMetadata.alias must start with alias/".into());
    };
    if name.is_empty() || alias.len() > MAX_ALIAS_LEN {
        return Err(format!(
            "providerMetadata.alias must name something after alias/ and be at most \
             {MAX_ALIAS_LEN} characters"
        ));
    }
    if name.starts_with("aws/") {
        return Err("providerMetadata.alias: alias/aws/ is reserved for AWS managed keys".into());
    }
    if !name.chars().all(alias_char) {
        return Err(
            "providerMetadata.alias may hold only letters, digits, '/', '_' and '-'".into(),
        );
    }
    Ok(())
}

fn alias_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-')
}

/// The export's alias: `alias` from the metadata, else `alias/<key name>` with what AWS
/// does not take in an alias replaced by `-`.
fn alias_name(metadata: &Map<String, Value>, key_name: &str) -> String {
    if let Some(alias) = metadata.get("alias").and_then(Value::as_str) {
        return alias.to_owned();
    }
    let mut name: String = key_name
        .chars()
        .map(|c| if alias_char(c) { c } else { '-' })
        .collect();
    if name.starts_with("aws/") || name.is_empty() {
        name.insert_str(0, "ironseal-");
    }
    let mut alias = format!("alias/{name}");
    alias.truncate(MAX_ALIAS_LEN);
    alias
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn validate(
        metadata: Value,
        credentials: Value,
        algorithm: Algorithm,
    ) -> Result<Value, String> {
        let Value::Object(mut metadata) = metadata else {
            panic!("metadata is an object")
        };
        let Value::Object(credentials) = credentials else {
            panic!("credentials is an object")
        };
        Aws::new().validate(&mut metadata, Some(&credentials), algorithm, false)?;
        Ok(Value::Object(metadata))
    }

    fn credentials() -> Value {
        json!({"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "secret"})
    }

    #[test]
    fn the_default_endpoint_is_the_regions() {
        let metadata = validate(
            json!({"region": "eu-west-1"}),
            credentials(),
            Algorithm::EcP256,
        );
        assert_eq!(
            metadata,
            Ok(json!({"region": "eu-west-1", "endpoint": "https://kms.eu-west-1.amazonaws.com"}))
        );
        let metadata = validate(
            json!({"region": "cn-north-1"}),
            credentials(),
            Algorithm::Aes256,
        );
        assert_eq!(
            metadata.ok().and_then(|m| m.get("endpoint").cloned()),
            Some(json!("https://kms.cn-north-1.amazonaws.com.cn"))
        );
    }

    #[test]
    fn fields_are_checked() {
        let ok = json!({"region": "us-east-1", "alias": "alias/payments", "endpoint": "http://127.0.0.1:4566"});
        assert!(validate(ok, credentials(), Algorithm::Rsa2048).is_ok());
        let with_token = json!({"accessKeyId": "a", "secretAccessKey": "s", "sessionToken": "t"});
        assert!(validate(
            json!({"region": "us-east-1"}),
            with_token,
            Algorithm::Rsa4096
        )
        .is_ok());

        let refusals = [
            (
                json!({}),
                credentials(),
                "providerMetadata.region is required",
            ),
            (
                json!({"region": "us-east-1", "vaultName": "x"}),
                credentials(),
                "providerMetadata.vaultName",
            ),
            (
                json!({"region": "us-east-1"}),
                json!({"accessKeyId": "a"}),
                "credentials.secretAccessKey is required",
            ),
            (
                json!({"region": "Europe"}),
                credentials(),
                "not an AWS region",
            ),
            (
                json!({"region": "us-east-1", "endpoint": "http://kms.example.com"}),
                credentials(),
                "loopback",
            ),
            (
                json!({"region": "us-east-1", "alias": "payments"}),
                credentials(),
                "must start with alias/",
            ),
            (
                json!({"region": "us-east-1", "alias": "alias/aws/s3"}),
                credentials(),
                "reserved",
            ),
            (
                json!({"region": "us-east-1", "alias": "alias/a b"}),
                credentials(),
                "only letters",
            ),
            (
                json!({"region": "us-east-1", "caCertPem": "not a pem"}),
                credentials(),
                "caCertPem",
            ),
        ];
        for (metadata, credentials, expected) in refusals {
            let err = validate(metadata.clone(), credentials, Algorithm::EcP384)
                .expect_err(&format!("{metadata} is refused"));
            assert!(err.contains(expected), "{metadata}: {err}");
        }
    }

    #[test]
    fn post_quantum_keys_are_refused() {
        for algorithm in [Algorithm::MlDsa65, Algorithm::MlKem768] {
            let err = validate(json!({"region": "us-east-1"}), credentials(), algorithm)
                .expect_err("refused");
            assert!(err.contains(algorithm.as_str()), "{err}");
        }
    }

    #[test]
    fn the_default_alias_is_the_key_name_as_aws_spells_it() {
        let none = Map::new();
        assert_eq!(alias_name(&none, "payments-2026"), "alias/payments-2026");
        assert_eq!(
            alias_name(&none, "team a: signing"),
            "alias/team-a--signing"
        );
        assert_eq!(alias_name(&none, "aws/x"), "alias/ironseal-aws/x");
        let mut given = Map::new();
        given.insert("alias".into(), json!("alias/mine"));
        assert_eq!(alias_name(&given, "payments"), "alias/mine");
    }
}
