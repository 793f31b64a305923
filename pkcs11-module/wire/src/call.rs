//! The conversation: a [`Hello`] and its [`Welcome`], then [`Call`]s and [`Reply`]s.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::ck;
use crate::types::{Attribute, Mechanism, Object, ObjectRef, TokenInfo};

/// The library's first frame on a connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub version: u16,
    /// Random per `C_Initialize`: the owner of this instance's session objects, shared by
    /// all its connections and never by a forked child's.
    pub instance: [u8; 16],
    /// The library's own version, for the daemon's log.
    pub library: String,
}

/// What the daemon tells a library it accepts, in [`Reply::Welcome`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Welcome {
    pub version: u16,
    pub token: TokenInfo,
}

/// One PKCS#11 function that needs the daemon.
#[derive(Debug, Serialize, Deserialize)]
pub struct Call {
    /// The function the application called, named in the audit log.
    pub function: Function,
    /// The PIN of the login this call runs under (an appliance token), if any.
    pub pin: Option<Zeroizing<String>>,
    pub op: Op,
}

macro_rules! functions {
    ($($name:ident),* $(,)?) => {
        /// The PKCS#11 functions a call can come from.
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum Function { $($name),* }

        impl Function {
            pub fn name(self) -> &'static str {
                match self { $(Function::$name => stringify!($name)),* }
            }
        }
    };
}

functions!(
    C_Initialize,
    C_GetSlotInfo,
    C_GetTokenInfo,
    C_OpenSession,
    C_CloseSession,
    C_CloseAllSessions,
    C_Finalize,
    C_Login,
    C_CreateObject,
    C_CopyObject,
    C_DestroyObject,
    C_GetAttributeValue,
    C_SetAttributeValue,
    C_FindObjectsInit,
    C_EncryptInit,
    C_Encrypt,
    C_EncryptFinal,
    C_DecryptInit,
    C_Decrypt,
    C_DecryptFinal,
    C_Digest,
    C_DigestFinal,
    C_SignInit,
    C_Sign,
    C_SignFinal,
    C_VerifyInit,
    C_Verify,
    C_VerifyFinal,
    C_GenerateKey,
    C_GenerateKeyPair,
    C_WrapKey,
    C_UnwrapKey,
    C_EncapsulateKey,
    C_DecapsulateKey,
    C_GenerateRandom,
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserType {
    User,
    SecurityOfficer,
}

/// What the daemon is asked to do.
#[derive(Debug, Serialize, Deserialize)]
pub enum Op {
    /// Fresh token facts (presence changes when the appliance seals or unseals).
    TokenInfo,
    /// Checks `Call::pin` for this user type: `Ok`, or `CKR_PIN_INCORRECT`.
    Login {
        user: UserType,
    },
    /// Objects visible to the caller that match every attribute of `template`.
    FindObjects {
        template: Vec<Attribute>,
    },
    /// One object's current attributes.
    GetObject {
        object: ObjectRef,
    },
    CreateObject {
        template: Vec<Attribute>,
    },
    CopyObject {
        object: ObjectRef,
        template: Vec<Attribute>,
    },
    DestroyObject {
        object: ObjectRef,
    },
    SetAttributes {
        object: ObjectRef,
        template: Vec<Attribute>,
    },
    GenerateKey {
        mechanism: Mechanism,
        template: Vec<Attribute>,
    },
    GenerateKeyPair {
        mechanism: Mechanism,
        public: Vec<Attribute>,
        private: Vec<Attribute>,
    },
    /// Single-part, or the data a multi-part operation gathered.
    Sign {
        key: ObjectRef,
        mechanism: Mechanism,
        data: Vec<u8>,
    },
    /// `Ok`, or `CKR_SIGNATURE_INVALID` / `CKR_SIGNATURE_LEN_RANGE`.
    Verify {
        key: ObjectRef,
        mechanism: Mechanism,
        data: Vec<u8>,
        signature: Vec<u8>,
    },
    Encrypt {
        key: ObjectRef,
        mechanism: Mechanism,
        data: Zeroizing<Vec<u8>>,
    },
    Decrypt {
        key: ObjectRef,
        mechanism: Mechanism,
        data: Vec<u8>,
    },
    Digest {
        mechanism: Mechanism,
        data: Vec<u8>,
    },
    WrapKey {
        mechanism: Mechanism,
        wrapping: ObjectRef,
        key: ObjectRef,
    },
    UnwrapKey {
        mechanism: Mechanism,
        unwrapping: ObjectRef,
        wrapped: Vec<u8>,
        template: Vec<Attribute>,
    },
    /// Encapsulates a new shared secret to a public key; the secret becomes a key object.
    Encapsulate {
        mechanism: Mechanism,
        key: ObjectRef,
        template: Vec<Attribute>,
    },
    Decapsulate {
        mechanism: Mechanism,
        key: ObjectRef,
        ciphertext: Vec<u8>,
        template: Vec<Attribute>,
    },
    /// At most 64 KiB per call.
    Random {
        len: u32,
    },
    /// Session objects this instance no longer needs (their session closed).
    ReleaseSessionObjects {
        objects: Vec<u64>,
    },
}

/// The answer to a [`Hello`] (`Welcome` or `Error`) and to every [`Call`]: one tagged type,
/// so a refusal can never be read as an acceptance.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Ok,
    /// A `CK_RV` other than `CKR_OK`, and what went wrong in words that reveal no secret
    /// (the library logs it when asked to, never shows it to the application).
    Error {
        rv: ck::CK_RV,
        message: String,
    },
    Token(TokenInfo),
    Objects(Vec<Object>),
    Object(Object),
    KeyPair {
        public: Object,
        private: Object,
    },
    Bytes(Vec<u8>),
    /// Plaintext or other secret output, zeroized once written to the application.
    Secret(Zeroizing<Vec<u8>>),
    Encapsulated {
        ciphertext: Vec<u8>,
        key: Object,
    },
    Welcome(Welcome),
}
