//! Login, and the object functions: find, get, create, copy, set, destroy, release.

use std::cell::Cell;

use cryptoki_sys::*;

use super::{key, object, others, Instance};
use crate::error::Result;
use crate::managed_keys::{ListKeys, DEFAULT_PENDING_WINDOW};
use crate::ops::{Access, Context, Decoded, Op, Scope};
use crate::pkcs11::{code, keys as key_objects, objects as stored, refuse};
use crate::pkcs11::{Attr, Handle, KeyClass, NewObject, Object};

/// Who logs in: a user (any valid token) or the security officer (a token holding
/// `keys:write`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User {
    User,
    SecurityOfficer,
}

/// Checks that the presented PIN (a token) may log in as `user`: authorisation is the
/// whole operation.
pub struct Login {
    pub user: User,
}

impl Op for Login {
    type Output = ();

    fn access(&self) -> Access {
        match self.user {
            User::User => Access::AnyToken,
            User::SecurityOfficer => Access::Scope(Scope::Write),
        }
    }

    async fn run(self, _cx: Context<'_>) -> Result<()> {
        Ok(())
    }
}

/// The objects visible to the caller that match every attribute of `template`.
pub struct FindObjects {
    pub instance: Instance,
    pub template: Decoded<Vec<Attr>>,
}

impl Op for FindObjects {
    type Output = Vec<Object>;

    fn access(&self) -> Access {
        Access::Scope(Scope::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<Vec<Object>> {
        let template = self.template?;
        let unrestricted = others(&cx);
        let denied = Cell::new(0usize);
        let all = ListKeys {
            page_size: usize::MAX,
            ..Default::default()
        };
        let page = cx.core.keys.list(&all, |k| {
            let visible = unrestricted.is_ok()
                || cx.check_key(Some(&k.name), Some(&k.id.to_string())).is_ok();
            if !visible {
                denied.set(denied.get() + 1);
            }
            visible
        })?;
        let mut found = Vec::new();
        for k in &page.keys {
            found.extend(
                key_objects::key_objects(k)?
                    .into_iter()
                    .filter(|o| o.matches(&template)),
            );
        }
        match unrestricted {
            Ok(()) => found.extend(
                stored::list_stored(&cx.core.barrier)?
                    .into_iter()
                    .filter(|o| o.matches(&template)),
            ),
            Err(e) if page.keys.is_empty() && denied.get() > 0 => return Err(e),
            Err(_) => {}
        }
        found.extend(
            cx.core
                .pkcs11_sessions
                .list(&self.instance)
                .into_iter()
                .filter(|o| o.matches(&template)),
        );
        Ok(found)
    }
}

/// One object's current attributes.
pub struct GetObject {
    pub instance: Instance,
    pub handle: Handle,
}

impl Op for GetObject {
    type Output = Object;

    fn access(&self) -> Access {
        Access::Scope(Scope::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<Object> {
        object(&cx, &self.instance, self.handle)
    }
}

async fn keep(cx: &Context<'_>, instance: &Instance, new: NewObject) -> Result<Object> {
    if new.token {
        others(cx)?;
        stored::put_stored(&cx.core.barrier, uuid::Uuid::new_v4(), new.attributes).await
    } else {
        let id = cx.core.pkcs11_sessions.insert(instance, new.attributes)?;
        cx.core.pkcs11_sessions.get(instance, id)
    }
}

/// A certificate, data object or public key (`C_CreateObject`).
pub struct CreateObject {
    pub instance: Instance,
    pub request: Decoded<NewObject>,
}

impl Op for CreateObject {
    type Output = Object;

    fn access(&self) -> Access {
        Access::Scope(Scope::Write)
    }

    async fn run(self, cx: Context<'_>) -> Result<Object> {
        let new = self.request?;
        keep(&cx, &self.instance, new).await
    }
}

pub struct CopyObject {
    pub instance: Instance,
    pub handle: Handle,
    pub template: Decoded<Vec<Attr>>,
}

impl Op for CopyObject {
    type Output = Object;

    fn access(&self) -> Access {
        Access::Scope(Scope::Write)
    }

    async fn run(self, cx: Context<'_>) -> Result<Object> {
        let template = self.template?;
        let original = object(&cx, &self.instance, self.handle)?;
        let new = stored::copy(&original, &template)?;
        keep(&cx, &self.instance, new).await
    }
}

/// Changes the label, id or dates of an object an application created; managed keys'
/// objects are not modifiable.
pub struct SetAttributes {
    pub instance: Instance,
    pub handle: Handle,
    pub template: Decoded<Vec<Attr>>,
}

impl Op for SetAttributes {
    type Output = Object;

    fn access(&self) -> Access {
        Access::Scope(Scope::Write)
    }

    async fn run(self, cx: Context<'_>) -> Result<Object> {
        let template = self.template?;
        let current = object(&cx, &self.instance, self.handle)?;
        let attributes = stored::set(&current, &template)?;
        match self.handle {
            Handle::Stored(id) => stored::put_stored(&cx.core.barrier, id, attributes).await,
            Handle::Session(id) => cx
                .core
                .pkcs11_sessions
                .replace(&self.instance, id, attributes),
            Handle::Key { .. } => Err(refuse(
                code::ACTION_PROHIBITED,
                "managed keys' objects are not modifiable",
            )),
        }
    }
}

/// Destroys an object. A managed key's private or secret object schedules the whole
/// key's destruction after the default pending window (the key API can cancel it
/// meanwhile); its objects disappear at once. Public objects of a pair go with it.
pub struct DestroyObject {
    pub instance: Instance,
    pub handle: Handle,
}

impl Op for DestroyObject {
    type Output = ();

    fn access(&self) -> Access {
        Access::Scope(Scope::Write)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        match self.handle {
            Handle::Key {
                key: id,
                version,
                class,
            } => {
                let k = key(&cx, &id)?;
                let o = key_objects::key_object(&k, version, class)?;
                if class == KeyClass::Public || !o.get_bool(CKA_DESTROYABLE) {
                    return Err(refuse(
                        code::ACTION_PROHIBITED,
                        "a key pair's public object goes with its private object: \
                         destroy that one",
                    ));
                }
                cx.core
                    .keys
                    .schedule_destruction(&k.id, DEFAULT_PENDING_WINDOW)
                    .await?;
                Ok(())
            }
            Handle::Stored(id) => {
                others(&cx)?;
                stored::delete_stored(&cx.core.barrier, &id).await
            }
            Handle::Session(id) => {
                if cx.core.pkcs11_release(&self.instance, &[id]) == 0 {
                    return Err(crate::error::EngineError::NotFound(format!(
                        "no session object {id}"
                    )));
                }
                Ok(())
            }
        }
    }
}

/// Session objects an instance no longer needs (their session closed). Needs no token:
/// only the instance that owns them can name them, and a logged-out library still
/// releases.
pub struct ReleaseSessionObjects {
    pub instance: Instance,
    pub ids: Vec<u64>,
}

impl Op for ReleaseSessionObjects {
    type Output = ();

    fn access(&self) -> Access {
        Access::Public
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        cx.core.pkcs11_release(&self.instance, &self.ids);
        Ok(())
    }
}
