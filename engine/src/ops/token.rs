//! `auth/token/*`: create, look up, renew and revoke tokens. Vault's token store
//! registers every path for `update`, and `lookup` and `lookup-self` for `read` too; each
//! checks the ACL on its own path (the default policy grants the `-self` ones).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::auth::cert::PeerChain;
use crate::core::Core;
use crate::error::{EngineError, Result};
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;
use crate::token::{CreateRequest, IssuedToken, TokenEntry, TokenRole};

/// Which of the two create paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreatePath {
    Create,
    /// `create-orphan`: no parent, without the privilege `no_parent` needs.
    CreateOrphan,
}

/// A new token, child of the caller unless orphaned. Each field is decoded apart so
/// that its error comes in Vault's order among the privilege checks.
pub struct TokenCreate {
    pub path: CreatePath,
    /// `create/<role>`: the token role that shapes the token.
    pub role: Option<String>,
    /// `no_parent` (true on `create-orphan`).
    pub no_parent: Decoded<bool>,
    /// Whether `type` names a type this appliance issues.
    pub token_type: Decoded<()>,
    pub period: Decoded<Option<u64>>,
    /// The other fields; `no_parent` and `period` are set from the fields above.
    pub request: Decoded<CreateRequest>,
}

/// What a create came to.
pub enum Created {
    Issued(Box<IssuedToken>),
    /// The caller's token is an attenuated Biscuit: its checks cannot be carried over
    /// to a child, so it creates none.
    AttenuatedParent,
}

impl Op for TokenCreate {
    type Output = Created;

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<Created> {
        let caller = cx.caller()?;
        if caller.is_attenuated() {
            return Ok(Created::AttenuatedParent);
        }
        // As Vault: sudo on the path the request came in by.
        let privileged = caller.is_root() || cx.core.acl(caller)?.has_sudo(cx.request.path);
        let role = match &self.role {
            Some(name) => {
                let role = cx.core.tokens.role(name)?;
                Some((
                    name,
                    role.ok_or_else(|| EngineError::bad(format!("unknown role {name}")))?,
                ))
            }
            None => None,
        };
        let orphan = self.path == CreatePath::CreateOrphan;
        // With a role, the role alone decides whether the token is an orphan.
        let no_parent = (orphan || self.no_parent?) && role.is_none();
        if no_parent && !orphan && !privileged {
            return Err(EngineError::bad(
                "root or sudo privileges required to create orphan token",
            ));
        }
        self.token_type?;
        let period = self.period?;
        if period.is_some_and(|p| p > 0) && !privileged {
            return Err(EngineError::bad(
                "root or sudo privileges required to create periodic token",
            ));
        }
        let mut request = self.request?;
        request.no_parent = no_parent;
        request.period = period;
        if request.id.is_some() && !privileged {
            return Err(EngineError::bad(
                "root or sudo privileges required to specify token id",
            ));
        }
        if let Some((name, role)) = role {
            role.shape(name, &mut request, &caller.entry.policies)?;
        }
        Ok(Created::Issued(Box::new(
            cx.core.tokens.create(Some(caller), request).await?,
        )))
    }
}

/// `auth/token/roles/<name>` write: `create` or `update` as the role exists.
pub struct TokenRoleWrite {
    pub name: String,
    pub fields: Decoded<Map<String, Value>>,
}

fn role_name(name: &str) -> Result<&str> {
    if name.is_empty() || name.contains('/') {
        return Err(EngineError::bad("role name must be given"));
    }
    Ok(name)
}

impl Op for TokenRoleWrite {
    type Output = ();

    fn access(&self) -> Access {
        Access::AclCreateOrUpdate
    }

    fn exists(&self, core: &Core) -> Result<bool> {
        Ok(role_name(&self.name).is_ok() && core.tokens.role(&self.name)?.is_some())
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        let fields = self.fields?;
        cx.core
            .tokens
            .write_role(role_name(&self.name)?, &fields)
            .await
    }
}

pub struct TokenRoleRead {
    pub name: String,
}

impl Op for TokenRoleRead {
    type Output = Option<TokenRole>;

    fn access(&self) -> Access {
        Access::Acl(Operation::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<Option<TokenRole>> {
        cx.core.tokens.role(role_name(&self.name)?)
    }
}

pub struct TokenRoleDelete {
    pub name: String,
}

impl Op for TokenRoleDelete {
    type Output = ();

    fn access(&self) -> Access {
        Access::Acl(Operation::Delete)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        cx.core.tokens.delete_role(role_name(&self.name)?).await
    }
}

pub struct TokenRoleList;

impl Op for TokenRoleList {
    type Output = Vec<String>;

    fn access(&self) -> Access {
        Access::Acl(Operation::List)
    }

    async fn run(self, cx: Context<'_>) -> Result<Vec<String>> {
        cx.core.tokens.roles()
    }
}

/// `LIST auth/token/accessors`: every token's accessor, a root path (sudo) as in Vault,
/// since listing them all can be costly.
pub struct TokenAccessorList;

impl Op for TokenAccessorList {
    type Output = Vec<String>;

    fn access(&self) -> Access {
        Access::AclSudo(Operation::List)
    }

    async fn run(self, cx: Context<'_>) -> Result<Vec<String>> {
        cx.core.tokens.accessors()
    }
}

/// A token's entry and the token as the answer may show it (empty when the caller
/// named it by accessor).
pub struct Found {
    pub id: String,
    pub entry: Arc<TokenEntry>,
}

/// `lookup-self`, by `read` or `update`.
pub struct TokenLookupSelf {
    pub verb: Operation,
}

impl Op for TokenLookupSelf {
    type Output = Found;

    fn access(&self) -> Access {
        Access::Acl(self.verb)
    }

    async fn run(self, cx: Context<'_>) -> Result<Found> {
        Ok(Found {
            id: cx.request.token.to_string(),
            entry: cx.caller()?.entry.clone(),
        })
    }
}

/// `lookup`, by `read` or `update`.
pub struct TokenLookup {
    pub verb: Operation,
    pub token: Decoded<String>,
}

impl Op for TokenLookup {
    type Output = Found;

    fn access(&self) -> Access {
        Access::Acl(self.verb)
    }

    async fn run(self, cx: Context<'_>) -> Result<Found> {
        let token = self.token?;
        let (_, entry) = cx.core.tokens.lookup(&token)?;
        Ok(Found { id: token, entry })
    }
}

pub struct TokenLookupAccessor {
    pub accessor: Decoded<String>,
}

impl Op for TokenLookupAccessor {
    type Output = Found;

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<Found> {
        let (_, entry) = cx.core.tokens.lookup_accessor(&self.accessor?)?;
        Ok(Found {
            id: String::new(),
            entry,
        })
    }
}

/// The token a request names, for `renew` and `revoke-orphan`: Vault answers 400 with
/// `missing` when it names no live token (only `lookup` answers 403).
fn subject(cx: &Context<'_>, token: &str, missing: &str) -> Result<String> {
    match cx.core.tokens.lookup(token) {
        Ok((key, _)) => Ok(key),
        Err(EngineError::Unauthenticated) => Err(EngineError::bad(missing)),
        Err(e) => Err(e),
    }
}

/// The renewed token; None when the auth method that issued it declined (OpenBao answers
/// 204 and leaves the token as it is).
pub type Renewed = Option<Found>;

pub struct TokenRenewSelf {
    pub increment: Decoded<Option<u64>>,
    /// The renewing client's TLS certificate chain, for the cert method's check.
    pub chain: Option<PeerChain>,
}

impl Op for TokenRenewSelf {
    type Output = Renewed;

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<Renewed> {
        let caller = cx.caller()?;
        let entry = cx
            .core
            .tokens
            .renew(&caller.key, self.increment?, |e| {
                cx.core.renewal(e, self.chain.as_ref())
            })
            .await?;
        Ok(entry.map(|entry| Found {
            id: cx.request.token.to_string(),
            entry: Arc::new(entry),
        }))
    }
}

pub struct TokenRenew {
    pub token: Decoded<String>,
    pub increment: Decoded<Option<u64>>,
    pub chain: Option<PeerChain>,
}

impl Op for TokenRenew {
    type Output = Renewed;

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<Renewed> {
        let token = self.token?;
        let key = subject(&cx, &token, "token not found")?;
        let entry = cx
            .core
            .tokens
            .renew(&key, self.increment?, |e| {
                cx.core.renewal(e, self.chain.as_ref())
            })
            .await?;
        Ok(entry.map(|entry| Found {
            id: token,
            entry: Arc::new(entry),
        }))
    }
}

pub struct TokenRenewAccessor {
    pub accessor: Decoded<String>,
    pub increment: Decoded<Option<u64>>,
    pub chain: Option<PeerChain>,
}

impl Op for TokenRenewAccessor {
    type Output = Renewed;

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<Renewed> {
        let (key, _) = cx.core.tokens.lookup_accessor(&self.accessor?)?;
        let entry = cx
            .core
            .tokens
            .renew(&key, self.increment?, |e| {
                cx.core.renewal(e, self.chain.as_ref())
            })
            .await?;
        Ok(entry.map(|entry| Found {
            id: String::new(),
            entry: Arc::new(entry),
        }))
    }
}

/// An attenuated Biscuit revokes itself alone, never its base token.
pub struct TokenRevokeSelf;

impl Op for TokenRevokeSelf {
    type Output = ();

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        cx.core.tokens.revoke_caller(cx.caller()?).await?;
        Ok(())
    }
}

/// A string naming no live token leaves nothing to revoke (Vault answers 204);
/// everything else is revoked or the call fails: nothing succeeds and stays usable.
pub struct TokenRevoke {
    pub token: Decoded<String>,
}

impl Op for TokenRevoke {
    type Output = ();

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        cx.core.tokens.revoke_token(&self.token?).await?;
        Ok(())
    }
}

/// Revokes a token and leaves its children as orphans: a root path.
pub struct TokenRevokeOrphan {
    pub token: Decoded<String>,
}

impl Op for TokenRevokeOrphan {
    type Output = ();

    fn access(&self) -> Access {
        Access::AclSudo(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        let token = self.token?;
        let key = subject(&cx, &token, "token to revoke not found")?;
        let (_, attenuation) = cx.core.tokens.identify(&token)?;
        if attenuation.is_some() {
            // An attenuated token has no children: revoke it alone.
            cx.core.tokens.revoke_token(&token).await?;
        } else {
            cx.core.tokens.revoke_orphan(&key).await?;
        }
        Ok(())
    }
}

pub struct TokenRevokeAccessor {
    pub accessor: Decoded<String>,
}

impl Op for TokenRevokeAccessor {
    type Output = ();

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        let key = cx.core.tokens.key_for_accessor(&self.accessor?)?;
        cx.core.tokens.revoke(&key).await
    }
}
