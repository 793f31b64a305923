//! One sync: find the version's KMS key by its tags or create it, import the material
//! unless it is there, check what AWS (or an emulator) holds, and move the alias.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    AlgorithmSpec, ExpirationModelType, KeyMetadata, KeySpec, KeyState, KeyUsageType, OriginType,
    Tag, WrappingKeySpec,
};
use aws_sdk_kms::Client;
use engine::cloud_exports::{ExportMaterial, ExportedKey, ProviderRef, SyncError, SyncRequest};
use hsm_bridge::WrapMechanism;
use sha2::{Digest, Sha256};

use super::errors::sync_error;
use super::{alias_name, client, key_shape, wrap_formats, Aws};

const KEY_ID_TAG: &str = "ironseal-key-id";
const KEY_VERSION_TAG: &str = "ironseal-key-version";
const EXPORT_ID_TAG: &str = "ironseal-export-id";

/// The largest wrapping key AWS offers: the strongest wrap of the material in transit.
const WRAPPING_KEY_SPEC: WrappingKeySpec = WrappingKeySpec::Rsa4096;

/// How many import tokens [`UsedTokens`] remembers.
const REMEMBERED_TOKENS: usize = 4096;

pub(super) async fn sync(aws: &Aws, request: SyncRequest<'_>) -> Result<ProviderRef, SyncError> {
    let key = request.key;
    let (spec, usage) = key_shape(key.algorithm, key.usage).map_err(SyncError::permanent)?;
    // Before anything exists at AWS: a boundary that cannot export leaves no key there.
    let wrap_format = blocking(|| choose_format(key, request.material))?;
    let client = client::kms_client(&aws.http, request.metadata, request.credentials)?;
    let tags = VersionTags {
        key_id: key.key_id.to_string(),
        version: key.version.to_string(),
        export_id: request.export_id.to_string(),
    };

    let arn = match find_tagged(&client, &tags).await? {
        Some(found) => {
            let arn = check_shape(&found, &spec, &usage)?;
            if found.key_state() == Some(&KeyState::PendingImport) {
                import(aws, &client, &arn, key, request.material, wrap_format).await?;
            }
            arn
        }
        None => {
            let arn = create_key(&client, key, &tags, spec, usage).await?;
            import(aws, &client, &arn, key, request.material, wrap_format).await?;
            arn
        }
    };
    check_public_key(&client, &arn, key).await?;
    point_alias(
        &client,
        &alias_name(request.metadata, &key.name),
        &arn,
        &tags,
    )
    .await?;
    Ok(ProviderRef {
        key_id: arn,
        key_version: Some(key.version.to_string()),
    })
}

/// The tags that name one version of one export at AWS.
struct VersionTags {
    key_id: String,
    version: String,
    export_id: String,
}

impl VersionTags {
    fn matches(&self, tags: &HashMap<String, String>) -> bool {
        tags.get(KEY_ID_TAG) == Some(&self.key_id)
            && tags.get(KEY_VERSION_TAG) == Some(&self.version)
            && tags.get(EXPORT_ID_TAG) == Some(&self.export_id)
    }

    fn to_aws(&self) -> Result<Vec<Tag>, SyncError> {
        [
            (KEY_ID_TAG, &self.key_id),
            (KEY_VERSION_TAG, &self.version),
            (EXPORT_ID_TAG, &self.export_id),
        ]
        .into_iter()
        .map(|(name, value)| {
            Tag::builder()
                .tag_key(name)
                .tag_value(value)
                .build()
                .map_err(|e| SyncError::permanent(format!("tag {name}: {e}")))
        })
        .collect()
    }
}

/// The KMS key an earlier run of this sync made: one whose material is in (`Enabled`), or
/// else one still waiting for it (`PendingImport`). Keys scheduled for deletion do not
/// count: someone gave them up.
async fn find_tagged(
    client: &Client,
    tags: &VersionTags,
) -> Result<Option<KeyMetadata>, SyncError> {
    let mut pending = None;
    let mut marker = None;
    loop {
        let page = client
            .list_keys()
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| sync_error("ListKeys", e))?;
        for entry in page.keys() {
            let Some(id) = entry.key_id() else { continue };
            if !tags.matches(&resource_tags(client, id).await?) {
                continue;
            }
            let Some(found) = describe(client, id).await? else {
                continue;
            };
            match found.key_state() {
                Some(KeyState::Enabled) => return Ok(Some(found)),
                Some(KeyState::PendingImport) => {
                    pending.get_or_insert(found);
                }
                Some(KeyState::PendingDeletion | KeyState::PendingReplicaDeletion) => {}
                state => {
                    let state = state.map(KeyState::as_str).unwrap_or("unknown");
                    return Err(SyncError::permanent(format!(
                        "KMS key {} holds version {} of this export but is {state}: enable it, \
                         or schedule its deletion so that the next sync makes a new one",
                        found.arn().unwrap_or(id),
                        tags.version
                    )));
                }
            }
        }
        marker = page.next_marker().map(str::to_owned);
        if !page.truncated() || marker.is_none() {
            return Ok(pending);
        }
    }
}

/// A key's tags; none for a key deleted meanwhile.
async fn resource_tags(
    client: &Client,
    key_id: &str,
) -> Result<HashMap<String, String>, SyncError> {
    let mut tags = HashMap::new();
    let mut marker = None;
    loop {
        let page = match client
            .list_resource_tags()
            .key_id(key_id)
            .set_marker(marker.take())
            .send()
            .await
        {
            Ok(page) => page,
            Err(e) if is_not_found(&e) => return Ok(HashMap::new()),
            Err(e) => return Err(sync_error("ListResourceTags", e)),
        };
        for tag in page.tags() {
            tags.insert(tag.tag_key().to_owned(), tag.tag_value().to_owned());
        }
        marker = page.next_marker().map(str::to_owned);
        if !page.truncated() || marker.is_none() {
            return Ok(tags);
        }
    }
}

/// `DescribeKey`; `None` for a key (or alias) that does not exist.
async fn describe(client: &Client, key_id: &str) -> Result<Option<KeyMetadata>, SyncError> {
    match client.describe_key().key_id(key_id).send().await {
        Ok(out) => Ok(out.key_metadata),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(sync_error("DescribeKey", e)),
    }
}

fn is_not_found<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    err.as_service_error().and_then(|e| e.code()) == Some("NotFoundException")
}

/// The key's ARN, if AWS made it as asked: an emulator may take any spec.
fn check_shape(
    found: &KeyMetadata,
    spec: &KeySpec,
    usage: &KeyUsageType,
) -> Result<String, SyncError> {
    let arn = found
        .arn()
        .ok_or_else(|| SyncError::permanent("AWS KMS described a key without its ARN"))?;
    let shape = |what: Option<&str>| what.unwrap_or("none").to_owned();
    let (got_spec, got_usage, got_origin) = (
        shape(found.key_spec().map(KeySpec::as_str)),
        shape(found.key_usage().map(KeyUsageType::as_str)),
        shape(found.origin().map(OriginType::as_str)),
    );
    if got_spec != spec.as_str()
        || got_usage != usage.as_str()
        || got_origin != OriginType::External.as_str()
    {
        return Err(SyncError::permanent(format!(
            "KMS key {arn} is {got_spec} for {got_usage} with origin {got_origin}, where this \
             export needs {} for {} with origin EXTERNAL",
            spec.as_str(),
            usage.as_str()
        )));
    }
    Ok(arn.to_owned())
}

async fn create_key(
    client: &Client,
    key: &ExportedKey,
    tags: &VersionTags,
    spec: KeySpec,
    usage: KeyUsageType,
) -> Result<String, SyncError> {
    let created = client
        .create_key()
        .origin(OriginType::External)
        .key_spec(spec.clone())
        .key_usage(usage.clone())
        .description(format!(
            "Ironseal key {} ({}) version {}, export {}",
            key.name, key.key_id, key.version, tags.export_id
        ))
        .set_tags(Some(tags.to_aws()?))
        .send()
        .await
        .map_err(|e| sync_error("CreateKey", e))?;
    let made = created
        .key_metadata()
        .ok_or_else(|| SyncError::permanent("CreateKey answered without KeyMetadata"))?;
    match check_shape(made, &spec, &usage) {
        Ok(arn) => Ok(arn),
        Err(wrong) => {
            // A key made wrong would be found again by its tags and refused each time:
            // give it up, so that the next sync starts over.
            let _ = client
                .schedule_key_deletion()
                .key_id(made.key_id())
                .pending_window_in_days(7)
                .send()
                .await;
            Err(wrong)
        }
    }
}

/// `GetParametersForImport` with a fresh token, the wrap inside the key's boundary, and
/// `ImportKeyMaterial`.
async fn import(
    aws: &Aws,
    client: &Client,
    arn: &str,
    key: &ExportedKey,
    material: &dyn ExportMaterial,
    (mechanism, algorithm): (WrapMechanism, AlgorithmSpec),
) -> Result<(), SyncError> {
    let parameters = client
        .get_parameters_for_import()
        .key_id(arn)
        .wrapping_algorithm(algorithm)
        .wrapping_key_spec(WRAPPING_KEY_SPEC)
        .send()
        .await
        .map_err(|e| sync_error("GetParametersForImport", e))?;
    let (Some(token), Some(public_key)) = (parameters.import_token(), parameters.public_key())
    else {
        return Err(SyncError::permanent(
            "GetParametersForImport answered without an import token or a public key",
        ));
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if let Some(valid_to) = parameters.parameters_valid_to() {
        if valid_to.secs() <= i64::try_from(now).unwrap_or(i64::MAX) {
            return Err(SyncError::retryable(
                "GetParametersForImport handed out parameters that have already expired",
            ));
        }
    }
    aws.tokens.claim(token.as_ref())?;
    let wrapped = blocking(|| material.wrap(public_key.as_ref(), mechanism)).map_err(|e| {
        SyncError::permanent(format!(
            "version {} could not be wrapped for AWS KMS: {e}",
            key.version
        ))
    })?;
    client
        .import_key_material()
        .key_id(arn)
        .import_token(token.clone())
        .encrypted_key_material(Blob::new(wrapped))
        .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
        .send()
        .await
        .map_err(|e| sync_error("ImportKeyMaterial", e))?;
    Ok(())
}

/// The best format AWS takes for the key that its boundary produces correctly.
fn choose_format(
    key: &ExportedKey,
    material: &dyn ExportMaterial,
) -> Result<(WrapMechanism, AlgorithmSpec), SyncError> {
    let mut refusals = Vec::new();
    for (mechanism, algorithm) in wrap_formats(key.algorithm) {
        match material.supports(mechanism) {
            Ok(()) => return Ok((mechanism, algorithm)),
            Err(reason) => refusals.push(format!("{}: {reason}", algorithm.as_str())),
        }
    }
    Err(SyncError::boundary(format!(
        "the boundary holding version {} cannot produce a format AWS KMS imports ({})",
        key.version,
        refusals.join("; ")
    )))
}

/// Runs a blocking call of the boundary (it may reach a device) without stalling the
/// reactor's other tasks. `block_in_place` rather than `spawn_blocking`: the material is
/// borrowed for the call, not owned.
fn blocking<R>(call: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(call)
        }
        _ => call(),
    }
}

/// What an emulator does not check, the appliance does: the imported private key is the
/// one whose public key the appliance holds.
async fn check_public_key(client: &Client, arn: &str, key: &ExportedKey) -> Result<(), SyncError> {
    let Some(expected) = key.public_key_der.as_deref() else {
        return Ok(());
    };
    let out = client
        .get_public_key()
        .key_id(arn)
        .send()
        .await
        .map_err(|e| sync_error("GetPublicKey", e))?;
    if out.public_key().map(|k| k.as_ref()) != Some(expected) {
        return Err(SyncError::permanent(format!(
            "KMS key {arn} does not hold version {}'s key pair: its public key differs",
            key.version
        )));
    }
    Ok(())
}

/// Points `alias` at `arn`, unless it already points at a newer version of this key.
/// An alias on someone else's key is left alone and reported.
async fn point_alias(
    client: &Client,
    alias: &str,
    arn: &str,
    tags: &VersionTags,
) -> Result<(), SyncError> {
    // The bare key id rather than the ARN as the alias target: AWS takes either, but
    // LocalStack keeps an ARN given to UpdateAlias verbatim and then cannot resolve it.
    let target = arn.rsplit_once(":key/").map_or(arn, |(_, id)| id);
    let Some(current) = describe(client, alias).await? else {
        return match client
            .create_alias()
            .alias_name(alias)
            .target_key_id(target)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error().and_then(|e| e.code())
                    == Some("AlreadyExistsException") =>
            {
                update_alias(client, alias, target).await
            }
            Err(e) => Err(sync_error("CreateAlias", e)),
        };
    };
    if current.arn() == Some(arn) {
        return Ok(());
    }
    let holder = resource_tags(client, current.key_id()).await?;
    if holder.get(KEY_ID_TAG) != Some(&tags.key_id) {
        return Err(SyncError::permanent(format!(
            "{alias} already names KMS key {}, which is not an export of this key: give \
             the export another providerMetadata.alias",
            current.arn().unwrap_or(current.key_id())
        )));
    }
    let version = |v: Option<&String>| v.and_then(|v| v.parse::<u32>().ok());
    if version(holder.get(KEY_VERSION_TAG)) > version(Some(&tags.version)) {
        return Ok(());
    }
    update_alias(client, alias, target).await
}

async fn update_alias(client: &Client, alias: &str, key_id: &str) -> Result<(), SyncError> {
    client
        .update_alias()
        .alias_name(alias)
        .target_key_id(key_id)
        .send()
        .await
        .map_err(|e| sync_error("UpdateAlias", e))?;
    Ok(())
}

/// Digests of the import tokens this process has used: a token AWS hands out again is
/// refused, so that every import runs on parameters fetched for it.
#[derive(Default)]
pub(super) struct UsedTokens(Mutex<VecDeque<[u8; 32]>>);

impl UsedTokens {
    pub(super) fn claim(&self, token: &[u8]) -> Result<(), SyncError> {
        let digest: [u8; 32] = Sha256::digest(token).into();
        let mut used = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if used.contains(&digest) {
            return Err(SyncError::retryable(
                "GetParametersForImport handed out an import token that was used before",
            ));
        }
        if used.len() == REMEMBERED_TOKENS {
            used.pop_front();
        }
        used.push_back(digest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_token_is_used_once() {
        let tokens = UsedTokens::default();
        assert_eq!(tokens.claim(b"token-1"), Ok(()));
        assert_eq!(tokens.claim(b"token-2"), Ok(()));
        let again = tokens.claim(b"token-1").expect_err("a token is used once");
        assert!(again.retryable, "{again}");
    }
}
