//! PKCS#11 key backend: the CA's issuing key lives in a token (an HSM, or SoftHSM2) and never
//! leaves it. The token signs digests (CKM_ECDSA, CKM_RSA_PKCS over a DigestInfo) or whole
//! messages (CKM_EDDSA); the chain still comes from PEM files.
//!
//! Sessions are pooled; the user login is the token's (shared by every session of the process)
//! and is redone when the token answers CKR_USER_NOT_LOGGED_IN (e.g. after it was reset).
//!
//! One concept: a CA key in a PKCS#11 token. The session pool, the login (again after a token
//! restart), key lookup and generation share the token's session state, and split apart they
//! would each need all of it.

use std::path::PathBuf;
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use der::asn1::{Any, BitString, ObjectIdentifier, OctetString, UintRef};
use der::{Decode, Encode, Sequence};
use sigil_core::crypto::{DigestAlgorithm, KeyAlgorithm, PublicKey};
use sigil_core::oid;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

pub use cryptoki::types::AuthPin;

use super::cert::{self, CaNames, IssuerInfo};
use super::error::CaError;
use super::signer::CaSigner;

/// Which token and key to use. The PIN is a secret string: it prints as `[REDACTED]`.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// The PKCS#11 module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token's label; or `slot`, its slot id. One of them is needed.
    pub token_label: Option<String>,
    pub slot: Option<u64>,
    pub pin: AuthPin,
    /// Where the PIN came from, for error messages (never the PIN itself).
    pub pin_source: String,
    /// The key's CKA_LABEL and/or CKA_ID; at least one.
    pub key_label: Option<String>,
    pub key_id: Option<Vec<u8>>,
    /// Most idle sessions kept open for signing.
    pub max_sessions: usize,
}

impl TokenConfig {
    fn key_description(&self) -> String {
        match (&self.key_label, &self.key_id) {
            (Some(l), Some(id)) => format!("labelled {l:?} with id {}", hex::encode(id)),
            (Some(l), None) => format!("labelled {l:?}"),
            (None, Some(id)) => format!("with id {}", hex::encode(id)),
            (None, None) => "(no label or id configured)".into(),
        }
    }

    fn key_template(&self, class: ObjectClass) -> Vec<Attribute> {
        let mut t = vec![Attribute::Class(class)];
        if let Some(l) = &self.key_label {
            t.push(Attribute::Label(l.as_bytes().to_vec()));
        }
        if let Some(id) = &self.key_id {
            t.push(Attribute::Id(id.clone()));
        }
        t
    }
}

fn ck_err(what: &str) -> impl Fn(CkError) -> CaError + '_ {
    move |e| CaError::Config(format!("PKCS#11 {what}: {e}"))
}

fn rv(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// A loaded module, the chosen token's slot and the PIN to log in with.
struct Token {
    ctx: Pkcs11,
    slot: Slot,
    label: String,
    pin: AuthPin,
    pin_source: String,
}

impl Token {
    fn open(cfg: &TokenConfig) -> Result<Self, CaError> {
        if !cfg.module.exists() {
            return Err(CaError::Config(format!(
                "PKCS#11 module {} not found: install it (SoftHSM2: Debian package softhsm2) or \
                 set ca.pkcs11_module to your HSM vendor's library",
                cfg.module.display()
            )));
        }
        let ctx = Pkcs11::new(&cfg.module).map_err(|e| {
            CaError::Config(format!(
                "cannot load PKCS#11 module {}: {e} (ca.pkcs11_module must name a PKCS#11 shared library)",
                cfg.module.display()
            ))
        })?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => {}
            // Another part of this process (e.g. `init` before `serve`) initialised it.
            Err(e) if rv(&e) == Some(RvError::CryptokiAlreadyInitialized) => {}
            Err(e) => {
                return Err(CaError::Config(format!(
                    "PKCS#11 module {} failed to initialise: {e} (for SoftHSM2, check that \
                     SOFTHSM2_CONF names a readable config whose directories.tokendir exists)",
                    cfg.module.display()
                )));
            }
        }
        let slots = ctx
            .get_slots_with_token()
            .map_err(ck_err("listing slots"))?;
        let mut seen = Vec::new();
        for slot in slots {
            let info = ctx
                .get_token_info(slot)
                .map_err(ck_err("reading token info"))?;
            let label = info.label().trim_end().to_string();
            let hit = match (&cfg.token_label, cfg.slot) {
                (Some(want), Some(id)) => *want == label && slot.id() == id,
                (Some(want), None) => *want == label,
                (None, Some(id)) => slot.id() == id,
                (None, None) => false,
            };
            if hit {
                if !info.user_pin_initialized() {
                    return Err(CaError::Config(format!(
                        "token {label:?} has no user PIN yet: initialise it (softhsm2-util \
                         --init-token, or your HSM's tool) before use"
                    )));
                }
                return Ok(Self {
                    ctx,
                    slot,
                    label,
                    pin: cfg.pin.clone(),
                    pin_source: cfg.pin_source.clone(),
                });
            }
            seen.push(format!("{label:?} (slot {})", slot.id()));
        }
        let wanted = match (&cfg.token_label, cfg.slot) {
            (Some(l), Some(s)) => format!("labelled {l:?} in slot {s}"),
            (Some(l), None) => format!("labelled {l:?}"),
            (None, Some(s)) => format!("in slot {s}"),
            (None, None) => {
                return Err(CaError::Config(
                    "set ca.pkcs11_token_label (or ca.pkcs11_slot) to choose the token".into(),
                ));
            }
        };
        Err(CaError::Config(format!(
            "no PKCS#11 token {wanted} in module {}; tokens present: {} (check \
             ca.pkcs11_token_label / ca.pkcs11_slot, or create the token, e.g. softhsm2-util \
             --init-token --free --label ...)",
            cfg.module.display(),
            if seen.is_empty() {
                "none".to_string()
            } else {
                seen.join(", ")
            }
        )))
    }

    /// Logs the user in; an already logged-in token is fine.
    fn login(&self, session: &Session) -> Result<(), CaError> {
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) => Ok(()),
            Err(e) => match rv(&e) {
                Some(RvError::UserAlreadyLoggedIn) => Ok(()),
                Some(RvError::PinIncorrect | RvError::PinLenRange) => {
                    Err(CaError::Config(format!(
                        "wrong PIN for PKCS#11 token {:?}: fix the PIN in {}",
                        self.label, self.pin_source
                    )))
                }
                Some(RvError::PinLocked) => Err(CaError::Config(format!(
                    "the user PIN of PKCS#11 token {:?} is locked (too many wrong PINs): reset \
                     it with the security officer PIN",
                    self.label
                ))),
                Some(RvError::PinExpired) => Err(CaError::Config(format!(
                    "the user PIN of PKCS#11 token {:?} has expired: set a new one",
                    self.label
                ))),
                _ => Err(CaError::Config(format!(
                    "cannot log in to PKCS#11 token {:?}: {e}",
                    self.label
                ))),
            },
        }
    }

    fn session(&self, read_write: bool) -> Result<Session, CaError> {
        let s = if read_write {
            self.ctx.open_rw_session(self.slot)
        } else {
            self.ctx.open_ro_session(self.slot)
        }
        .map_err(|e| {
            CaError::Config(format!(
                "cannot open a session on PKCS#11 token {:?}: {e}",
                self.label
            ))
        })?;
        self.login(&s)?;
        Ok(s)
    }
}

/// The single private key the configuration names.
fn find_private_key(
    session: &Session,
    cfg: &TokenConfig,
    token: &str,
) -> Result<Option<ObjectHandle>, CaError> {
    if cfg.key_label.is_none() && cfg.key_id.is_none() {
        return Err(CaError::Config(
            "set ca.pkcs11_key_label (or ca.pkcs11_key_id) to choose the CA key".into(),
        ));
    }
    let found = session
        .find_objects(&cfg.key_template(ObjectClass::PRIVATE_KEY))
        .map_err(ck_err("finding the key"))?;
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        more => Err(CaError::Config(format!(
            "{} private keys {} in PKCS#11 token {token:?}: set ca.pkcs11_key_id to pick one",
            more.len(),
            cfg.key_description()
        ))),
    }
}

fn missing_key(cfg: &TokenConfig, token: &str) -> CaError {
    CaError::Config(format!(
        "no private key {} in PKCS#11 token {token:?}: check ca.pkcs11_key_label / \
         ca.pkcs11_key_id, or move ca.intermediate_cert away and run `sigil-server init` to \
         generate the key in the token and certify it",
        cfg.key_description()
    ))
}

fn attr_bytes(attrs: &[Attribute], ty: AttributeType) -> Option<&[u8]> {
    attrs.iter().find_map(|a| match (a, ty) {
        (Attribute::EcParams(v), AttributeType::EcParams)
        | (Attribute::EcPoint(v), AttributeType::EcPoint)
        | (Attribute::Modulus(v), AttributeType::Modulus)
        | (Attribute::PublicExponent(v), AttributeType::PublicExponent) => Some(v.as_slice()),
        _ => None,
    })
}

fn key_type(session: &Session, key: ObjectHandle) -> Result<KeyType, CaError> {
    let attrs = session
        .get_attributes(key, &[AttributeType::KeyType])
        .map_err(ck_err("reading the key type"))?;
    attrs
        .iter()
        .find_map(|a| match a {
            Attribute::KeyType(t) => Some(*t),
            _ => None,
        })
        .ok_or_else(|| CaError::Config("the PKCS#11 key has no CKA_KEY_TYPE".into()))
}

const UNSUPPORTED: &str = "use an ECDSA P-256 or P-384, Ed25519 or RSA (2048-4096 bit) key";

/// The curve named by CKA_EC_PARAMS (a DER OID, or the PrintableString "edwards25519").
fn curve(params: &[u8]) -> Result<ObjectIdentifier, CaError> {
    if let Ok(o) = ObjectIdentifier::from_der(params) {
        return Ok(o);
    }
    if der::asn1::PrintableStringRef::from_der(params).is_ok_and(|s| s.as_str() == "edwards25519") {
        return Ok(oid::ED25519);
    }
    Err(CaError::Config(format!(
        "the PKCS#11 key's curve parameters are not a named curve: {UNSUPPORTED}"
    )))
}

/// CKA_EC_POINT is a DER OCTET STRING holding the point; some modules return the bare point.
fn ec_point(raw: &[u8], bare_len: usize) -> Vec<u8> {
    if raw.len() == bare_len {
        return raw.to_vec();
    }
    OctetString::from_der(raw).map_or_else(|_| raw.to_vec(), |o| o.into_bytes())
}

#[derive(Sequence)]
struct RsaPublicKeyAsn1<'a> {
    modulus: UintRef<'a>,
    exponent: UintRef<'a>,
}

fn spki(alg: ObjectIdentifier, params: Option<Any>, key: &[u8]) -> Result<Vec<u8>, CaError> {
    SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: alg,
            parameters: params,
        },
        subject_public_key: BitString::from_bytes(key).map_err(CaError::internal)?,
    }
    .to_der()
    .map_err(CaError::internal)
}

/// The public key of the pair, from the token's public key object (DER SPKI).
fn public_key_spki(
    session: &Session,
    cfg: &TokenConfig,
    private_type: KeyType,
) -> Result<Option<Vec<u8>>, CaError> {
    let found = session
        .find_objects(&cfg.key_template(ObjectClass::PUBLIC_KEY))
        .map_err(ck_err("finding the public key"))?;
    let Some(public) = found.first().copied() else {
        return Ok(None);
    };
    let bad = |what: &str| CaError::Config(format!("the PKCS#11 public key {what}"));
    if private_type == KeyType::RSA {
        let attrs = session
            .get_attributes(
                public,
                &[AttributeType::Modulus, AttributeType::PublicExponent],
            )
            .map_err(ck_err("reading the RSA public key"))?;
        let n = attr_bytes(&attrs, AttributeType::Modulus).ok_or_else(|| bad("has no modulus"))?;
        let e = attr_bytes(&attrs, AttributeType::PublicExponent)
            .ok_or_else(|| bad("has no public exponent"))?;
        let pkcs1 = RsaPublicKeyAsn1 {
            modulus: UintRef::new(n).map_err(CaError::internal)?,
            exponent: UintRef::new(e).map_err(CaError::internal)?,
        }
        .to_der()
        .map_err(CaError::internal)?;
        let null = Any::encode_from(&der::asn1::Null).map_err(CaError::internal)?;
        return spki(oid::RSA_ENCRYPTION, Some(null), &pkcs1).map(Some);
    }
    let attrs = session
        .get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])
        .map_err(ck_err("reading the EC public key"))?;
    let params = attr_bytes(&attrs, AttributeType::EcParams).ok_or_else(|| bad("has no curve"))?;
    let point = attr_bytes(&attrs, AttributeType::EcPoint).ok_or_else(|| bad("has no point"))?;
    let c = curve(params)?;
    if c == oid::ED25519 {
        return spki(oid::ED25519, None, &ec_point(point, 32)).map(Some);
    }
    let bare = if c == oid::SECP256R1 {
        65
    } else if c == oid::SECP384R1 {
        97
    } else {
        return Err(CaError::Config(format!(
            "the PKCS#11 key is on curve {c}: {UNSUPPORTED}"
        )));
    };
    let curve_any = Any::encode_from(&c).map_err(CaError::internal)?;
    spki(oid::EC_PUBLIC_KEY, Some(curve_any), &ec_point(point, bare)).map(Some)
}

#[derive(Sequence)]
struct EcdsaSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// PKCS#11 returns ECDSA signatures as r || s; X.509 wants DER ECDSA-Sig-Value.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, CaError> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return Err(CaError::Internal(format!(
            "PKCS#11 returned a {}-byte ECDSA signature",
            raw.len()
        )));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    EcdsaSigValue {
        r: UintRef::new(r).map_err(CaError::internal)?,
        s: UintRef::new(s).map_err(CaError::internal)?,
    }
    .to_der()
    .map_err(CaError::internal)
}

/// DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1): CKM_RSA_PKCS signs it + digest.
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// Runs blocking token work without stalling the async runtime: `CaSigner::sign` is synchronous,
/// so on a multi-threaded runtime the worker hands its other tasks off while the token signs.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// A CA signer whose key is in a PKCS#11 token.
pub struct Pkcs11Signer {
    token: Token,
    cfg_key: TokenConfig,
    key: Mutex<ObjectHandle>,
    idle: Mutex<Vec<Session>>,
    public: PublicKey,
}

impl std::fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("token", &self.token.label)
            .field("key", &self.cfg_key.key_description())
            .field("algorithm", &self.public.algorithm())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Pkcs11Signer {
    /// Loads the module, finds the token, logs in, finds the key and checks it signs.
    /// `fallback_spki` (the issuing certificate's key) is used when the token holds no public
    /// key object for the pair.
    pub fn open(cfg: TokenConfig, fallback_spki: Option<&[u8]>) -> Result<Self, CaError> {
        let token = Token::open(&cfg)?;
        let session = token.session(false)?;
        let key = find_private_key(&session, &cfg, &token.label)?
            .ok_or_else(|| missing_key(&cfg, &token.label))?;
        let kt = key_type(&session, key)?;
        if kt != KeyType::EC && kt != KeyType::EC_EDWARDS && kt != KeyType::RSA {
            return Err(CaError::Config(format!(
                "the PKCS#11 key {} is of type {kt}: {UNSUPPORTED}",
                cfg.key_description()
            )));
        }
        let spki = match public_key_spki(&session, &cfg, kt)? {
            Some(s) => s,
            None => fallback_spki.map(<[u8]>::to_vec).ok_or_else(|| {
                CaError::Config(format!(
                    "PKCS#11 token {:?} has no public key object {} and there is no \
                     certificate to take it from",
                    token.label,
                    cfg.key_description()
                ))
            })?,
        };
        let public = PublicKey::from_spki_der(&spki).map_err(|e| {
            CaError::Config(format!("the PKCS#11 key is not usable: {e}: {UNSUPPORTED}"))
        })?;
        if let KeyAlgorithm::Rsa { bits } = public.algorithm()
            && !(2048..=4096).contains(&bits)
        {
            return Err(CaError::Config(format!(
                "the PKCS#11 key is RSA-{bits}: {UNSUPPORTED}"
            )));
        }
        let max = cfg.max_sessions.max(1);
        let signer = Self {
            token,
            cfg_key: cfg,
            key: Mutex::new(key),
            idle: Mutex::new(Vec::with_capacity(max)),
            public,
        };
        signer.put_back(session);
        // A signature the public key verifies: the key works, the PIN allows signing, and the
        // pair is what we think it is.
        let probe = b"sigil PKCS#11 key check";
        let sig = signer.sign_blocking(probe)?;
        signer.public.verify(probe, &sig).map_err(|_| {
            CaError::Config(format!(
                "the PKCS#11 private key {} does not match its public key",
                signer.cfg_key.key_description()
            ))
        })?;
        Ok(signer)
    }

    /// The label of the token in use.
    pub fn token_label(&self) -> &str {
        &self.token.label
    }

    fn take_session(&self) -> Result<Session, CaError> {
        if let Some(s) = lock(&self.idle).pop() {
            return Ok(s);
        }
        self.token.session(false)
    }

    fn put_back(&self, s: Session) {
        let mut idle = lock(&self.idle);
        if idle.len() < self.cfg_key.max_sessions.max(1) {
            idle.push(s);
        }
    }

    fn sign_with(
        &self,
        session: &Session,
        key: ObjectHandle,
        msg: &[u8],
    ) -> Result<Vec<u8>, CkError> {
        match self.public.algorithm() {
            KeyAlgorithm::EcdsaP256 => {
                session.sign(&Mechanism::Ecdsa, key, &DigestAlgorithm::Sha256.digest(msg))
            }
            KeyAlgorithm::EcdsaP384 => {
                session.sign(&Mechanism::Ecdsa, key, &DigestAlgorithm::Sha384.digest(msg))
            }
            KeyAlgorithm::EcdsaP521 => {
                session.sign(&Mechanism::Ecdsa, key, &DigestAlgorithm::Sha512.digest(msg))
            }
            KeyAlgorithm::Ed25519 => session.sign(
                &Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                key,
                msg,
            ),
            KeyAlgorithm::Rsa { .. } => {
                let mut di = SHA256_DIGEST_INFO.to_vec();
                di.extend_from_slice(&sigil_core::crypto::sha256(msg));
                session.sign(&Mechanism::RsaPkcs, key, &di)
            }
        }
    }

    fn sign_blocking(&self, msg: &[u8]) -> Result<Vec<u8>, CaError> {
        let mut retried = false;
        loop {
            let session = self.take_session()?;
            let key = *lock(&self.key);
            let err = match self.sign_with(&session, key, msg) {
                Ok(sig) => {
                    self.put_back(session);
                    return match self.public.algorithm() {
                        KeyAlgorithm::EcdsaP256
                        | KeyAlgorithm::EcdsaP384
                        | KeyAlgorithm::EcdsaP521 => ecdsa_raw_to_der(&sig),
                        _ => Ok(sig),
                    };
                }
                Err(e) => e,
            };
            let code = rv(&err);
            if retried {
                return Err(CaError::Internal(format!(
                    "PKCS#11 signing on token {:?} failed: {err}",
                    self.token.label
                )));
            }
            retried = true;
            match code {
                // The token forgot the login (reset, or every session was closed), or the key
                // handle is stale. A logged-out token may answer either way (SoftHSM2 reports
                // the private key's handle as invalid): log in again and find the key again.
                Some(
                    RvError::UserNotLoggedIn
                    | RvError::KeyHandleInvalid
                    | RvError::ObjectHandleInvalid,
                ) => {
                    tracing::warn!(token = %self.token.label, "PKCS#11 signing failed ({err}); logging in again");
                    self.token.login(&session)?;
                    let found = find_private_key(&session, &self.cfg_key, &self.token.label)?
                        .ok_or_else(|| missing_key(&self.cfg_key, &self.token.label))?;
                    *lock(&self.key) = found;
                    self.put_back(session);
                }
                // The session is gone: drop every pooled one and open afresh.
                Some(
                    RvError::SessionHandleInvalid
                    | RvError::SessionClosed
                    | RvError::DeviceRemoved
                    | RvError::TokenNotPresent,
                ) => {
                    tracing::warn!(token = %self.token.label, "PKCS#11 session lost: {err}; reopening");
                    drop(session);
                    lock(&self.idle).clear();
                }
                _ => {
                    return Err(CaError::Internal(format!(
                        "PKCS#11 signing on token {:?} failed: {err}",
                        self.token.label
                    )));
                }
            }
        }
    }

    /// Whether the token's user is logged in (as seen from a pooled session).
    pub fn is_logged_in(&self) -> Result<bool, CaError> {
        let s = self.take_session()?;
        let state = s
            .get_session_info()
            .map(|i| i.session_state())
            .map_err(ck_err("reading the session state"));
        self.put_back(s);
        Ok(matches!(
            state?,
            SessionState::RoUser | SessionState::RwUser
        ))
    }

    /// Logs the token's user out; the next signature logs in again.
    pub fn logout(&self) -> Result<(), CaError> {
        let s = self.take_session()?;
        let r = s.logout().map_err(ck_err("logout"));
        self.put_back(s);
        r
    }
}

impl CaSigner for Pkcs11Signer {
    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, CaError> {
        blocking(|| self.sign_blocking(tbs))
    }
    fn public_key(&self) -> &PublicKey {
        &self.public
    }
}

/// The public key of the configured token key, or `None` when the token has no such key.
pub fn find_key(cfg: &TokenConfig) -> Result<Option<PublicKey>, CaError> {
    let token = Token::open(cfg)?;
    let session = token.session(false)?;
    if find_private_key(&session, cfg, &token.label)?.is_none() {
        return Ok(None);
    }
    drop(session);
    let signer = Pkcs11Signer::open(cfg.clone(), None)?;
    Ok(Some(signer.public.clone()))
}

/// Generates a key pair inside the token (private key sensitive and not extractable), labelled
/// and identified as `cfg` says (a random id when none is configured). Refuses if the token
/// already holds such a key.
pub fn generate_key(cfg: &TokenConfig, alg: KeyAlgorithm) -> Result<PublicKey, CaError> {
    let token = Token::open(cfg)?;
    let session = token.session(true)?;
    if find_private_key(&session, cfg, &token.label)?.is_some() {
        return Err(CaError::Config(format!(
            "PKCS#11 token {:?} already holds a private key {}",
            token.label,
            cfg.key_description()
        )));
    }
    let id = match &cfg.key_id {
        Some(id) => id.clone(),
        None => {
            let mut b = vec![0u8; 16];
            aws_lc_rs::rand::fill(&mut b).map_err(|_| CaError::internal("RNG failure"))?;
            b
        }
    };
    let mut public_t = vec![
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
        Attribute::Id(id.clone()),
    ];
    let mut private_t = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        // A signing key only: no decryption, unwrapping or derivation with it.
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Id(id),
    ];
    if let Some(l) = &cfg.key_label {
        public_t.push(Attribute::Label(l.as_bytes().to_vec()));
        private_t.push(Attribute::Label(l.as_bytes().to_vec()));
    }
    let der_oid = |o: ObjectIdentifier| o.to_der().map_err(CaError::internal);
    let mechanism = match alg {
        KeyAlgorithm::EcdsaP256 => {
            public_t.push(Attribute::EcParams(der_oid(oid::SECP256R1)?));
            Mechanism::EccKeyPairGen
        }
        KeyAlgorithm::EcdsaP384 => {
            public_t.push(Attribute::EcParams(der_oid(oid::SECP384R1)?));
            Mechanism::EccKeyPairGen
        }
        KeyAlgorithm::EcdsaP521 => {
            return Err(CaError::Config(
                "CA keys are ECDSA P-256/P-384, Ed25519 or RSA; P-521 is accepted for clients only"
                    .into(),
            ));
        }
        KeyAlgorithm::Ed25519 => {
            public_t.push(Attribute::EcParams(der_oid(oid::ED25519)?));
            Mechanism::EccEdwardsKeyPairGen
        }
        KeyAlgorithm::Rsa { bits } => {
            public_t.push(Attribute::ModulusBits((bits as u64).into()));
            public_t.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
            Mechanism::RsaPkcsKeyPairGen
        }
    };
    session
        .generate_key_pair(&mechanism, &public_t, &private_t)
        .map_err(|e| {
            CaError::Config(format!(
                "PKCS#11 token {:?} cannot generate a {alg} key pair: {e}",
                token.label
            ))
        })?;
    drop(session);
    find_key(cfg)?
        .ok_or_else(|| CaError::Internal("the generated PKCS#11 key cannot be found again".into()))
}

/// An intermediate certificate for `spki` (a token key) signed by the root, as `init` makes
/// for a generated intermediate: CA, path length 0, codeSigning, valid from an hour ago.
pub fn certify_intermediate(
    root: &dyn CaSigner,
    root_der: &[u8],
    spki: &[u8],
    names: &CaNames,
) -> Result<Vec<u8>, CaError> {
    let root_issuer = IssuerInfo::from_cert_der(root_der, root.algorithm())?;
    let not_before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .saturating_sub(3600);
    let tbs = cert::ca_tbs(
        cert::name(&names.intermediate_common_name, &names.organization)?,
        spki,
        &root_issuer,
        false,
        not_before,
        names.intermediate_validity_days * 86400,
    )?;
    cert::sign_tbs(&tbs, |d| root.sign(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ecdsa_signatures_become_der() {
        // High bit set in r: a leading zero byte keeps the INTEGER positive; s has leading
        // zero bytes that DER drops.
        let mut raw = vec![0x80; 32];
        raw.extend(std::iter::repeat_n(0u8, 31));
        raw.push(0x05);
        let der = ecdsa_raw_to_der(&raw).unwrap();
        assert_eq!(&der[..5], &[0x30, 0x26, 0x02, 0x21, 0x00]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x05]);
        assert!(ecdsa_raw_to_der(&[1, 2, 3]).is_err());
        assert!(ecdsa_raw_to_der(&[]).is_err());
    }
}
