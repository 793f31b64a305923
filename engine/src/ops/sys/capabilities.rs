//! `sys/capabilities-self`, `sys/capabilities`, `sys/capabilities-accessor`: what a
//! token may do on some paths.

use crate::error::Result;
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;
use crate::token::Caller;

/// Whose capabilities.
pub enum Subject {
    /// The caller's own token.
    Caller,
    Token(Decoded<String>),
    Accessor(Decoded<String>),
}

pub struct Capabilities {
    pub subject: Subject,
    pub paths: Decoded<Vec<String>>,
}

/// One path's capabilities, sorted; `deny` when there are none.
pub struct PathCapabilities {
    pub path: String,
    pub capabilities: Vec<String>,
}

impl Op for Capabilities {
    type Output = Vec<PathCapabilities>;

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<Vec<PathCapabilities>> {
        let core = cx.core;
        let acl = match self.subject {
            Subject::Caller => core.acl(cx.caller()?)?,
            Subject::Token(token) => {
                let (key, entry) = core.tokens.lookup(&token?)?;
                core.acl(&Caller::new(key, entry))?
            }
            Subject::Accessor(accessor) => {
                let (key, entry) = core.tokens.lookup_accessor(&accessor?)?;
                core.acl(&Caller::new(key, entry))?
            }
        };
        Ok(self
            .paths?
            .into_iter()
            .map(|p| {
                let path = p.trim_start_matches('/').to_string();
                let mut capabilities: Vec<String> = acl
                    .capabilities(&path)
                    .names()
                    .into_iter()
                    .map(String::from)
                    .collect();
                if capabilities.is_empty() {
                    capabilities.push("deny".into());
                }
                capabilities.sort();
                PathCapabilities { path, capabilities }
            })
            .collect())
    }
}
