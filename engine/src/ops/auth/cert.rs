//! `auth/<cert mount>/...`: the trusted certificates (`certs/<name>`), `config`, and the
//! login with the chain the client presented on its TLS connection.

use std::future::Future;

use pki_types::UnixTime;
use serde_json::{Map, Value};

use super::roles::RoleMethod;
use super::{issue_keeping, source_key, throttled};
use crate::auth::cert::{role_name, Cert, PeerChain, LOGIN_CERT};
use crate::auth::{remote_allowed, AuthMountRef, LoginGrant};
use crate::error::{EngineError, Result};
use crate::ops::{Access, Context, Decoded, Op};
use crate::token::IssuedToken;

impl RoleMethod for Cert {
    fn of(mount: &AuthMountRef) -> Result<&Self> {
        mount.cert()
    }

    fn role_name(name: &str) -> Result<String> {
        role_name(name)
    }

    fn config_json(&self) -> Result<Option<Value>> {
        Ok(Some(self.config()?.to_json()))
    }

    fn write_config(&self, fields: &Map<String, Value>) -> impl Future<Output = Result<()>> + Send {
        Cert::write_config(self, fields)
    }

    fn role_json(&self, name: &str) -> Result<Option<Value>> {
        Ok(self.role(name)?.map(|r| r.to_json()))
    }

    fn role_names(&self) -> Result<Vec<String>> {
        self.roles()
    }

    fn write_role(
        &self,
        name: &str,
        fields: &Map<String, Value>,
    ) -> impl Future<Output = Result<()>> + Send {
        Cert::write_role(self, name, fields)
    }

    fn delete_role(&self, name: &str) -> impl Future<Output = Result<()>> + Send {
        Cert::delete_role(self, name)
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
