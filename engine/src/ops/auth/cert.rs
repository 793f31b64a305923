//! `auth/<cert mount>/...`: the trusted certificates (`certs/<name>`), `config`, and the
//! login with the chain the client presented on its TLS connection.

use pki_types::UnixTime;
use serde_json::{Map, Value};

use super::{issue_keeping, source_key, throttled};
use crate::auth::cert::{role_name, CertConfig, CertRole, PeerChain, LOGIN_CERT};
use crate::auth::{remote_allowed, AuthMountRef, LoginGrant};
use crate::error::{EngineError, Result};
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;
use crate::token::IssuedToken;

pub enum CertAction {
    ConfigWrite(Decoded<Map<String, Value>>),
    ConfigRead,
    RoleWrite {
        name: String,
        fields: Decoded<Map<String, Value>>,
    },
    RoleRead {
        name: String,
    },
    RoleDelete {
        name: String,
    },
    RoleList,
}

pub enum CertOutput {
    Done,
    Config(CertConfig),
    Role(Option<Box<CertRole>>),
    Names(Vec<String>),
}

/// A cert mount's management request, checked against the ACL on its own path.
pub struct CertOp {
    pub mount: AuthMountRef,
    pub verb: Operation,
    pub action: CertAction,
}

impl Op for CertOp {
    type Output = CertOutput;

    fn access(&self) -> Access {
        Access::Acl(self.verb)
    }

    async fn run(self, _cx: Context<'_>) -> Result<CertOutput> {
        use CertAction as A;
        use CertOutput as O;
        let m = self.mount.cert()?;
        Ok(match self.action {
            A::ConfigWrite(fields) => {
                m.write_config(&fields?).await?;
                O::Done
            }
            A::ConfigRead => O::Config(m.config()?),
            A::RoleWrite { name, fields } => {
                m.write_role(&role_name(&name)?, &fields?).await?;
                O::Done
            }
            A::RoleRead { name } => O::Role(m.role(&role_name(&name)?)?.map(Box::new)),
            A::RoleDelete { name } => {
                m.delete_role(&role_name(&name)?).await?;
                O::Done
            }
            A::RoleList => O::Names(m.roles()?),
        })
    }
}

/// `login`: the client's certificate chain for a token, matched against the trusted
/// certificates (only `name` when given).
pub struct CertLoginOp {
    pub mount: AuthMountRef,
    pub name: Decoded<Option<String>>,
    /// What the listener's TLS handshake received; None without a certificate.
    pub chain: Option<PeerChain>,
}

impl Op for CertLoginOp {
    type Output = IssuedToken;

    fn access(&self) -> Access {
        Access::Unauthenticated
    }

    async fn run(self, cx: Context<'_>) -> Result<IssuedToken> {
        let m = self.mount.cert()?;
        let name = self.name?.filter(|n| !n.trim().is_empty());
        // The chain was proved in the handshake, so guessing needs a key the CA
        // certified; failures still slow the source down, as every method's do.
        let keys = [source_key(&cx)];
        let login = throttled(&self.mount, &keys, async {
            m.login(name.as_deref(), self.chain.as_ref(), UnixTime::now())
        })
        .await?;
        if !remote_allowed(&login.role.token.token_bound_cidrs, cx.request.remote) {
            return Err(EngineError::Forbidden);
        }
        let internal = self
            .chain
            .iter()
            .map(|c| (LOGIN_CERT.to_string(), c.leaf_sha256()))
            .collect();
        let grant = LoginGrant {
            display_name: login.role.display_name.clone(),
            metadata: login.metadata,
            params: login.role.token,
            path: format!("auth/{}login", self.mount.path()),
        };
        issue_keeping(&cx, &self.mount, grant, internal).await
    }
}
