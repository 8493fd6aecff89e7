//! A realm's private signing keys (a private JWKS, as `portcullis keygen` writes): read with
//! josekit's key handling, then parsed and checked once into aws-lc key pairs (the crypto
//! library the verifier uses), so minting a token costs the signature alone; plus their
//! public JWKs.

use std::sync::Arc;

use aws_lc_rs::signature as sig;
use josekit::jwk::Jwk;
use josekit::jwk::KeyPair as _;
use josekit::jwk::alg::ec::EcKeyPair;
use josekit::jwk::alg::ed::EdKeyPair;
use josekit::jwk::alg::rsa::RsaKeyPair;
use jsonwebtoken::Algorithm;

use super::keyset::{KeySet, VerifyKey, alg_name, parse_alg};

/// One private signing key.
pub struct SigningKey {
    /// Its `kid`; required, so verifiers can select it.
    pub kid: String,
    /// Its algorithm; required, so it is used with one algorithm only (RFC 8725 § 3.1).
    pub alg: Algorithm,
    /// The private key, parsed and checked once when the key set is loaded: minting a token
    /// is then the signature alone (an RSA key re-read per token cost three signatures).
    pub signer: Signer,
    /// The public JWK (no private member), for publishing.
    pub public: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for SigningKey {
    // NB: never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &alg_name(self.alg))
            .finish()
    }
}

/// A realm's signing keys, in file order; the first key of an algorithm is the active one.
#[derive(Debug, Default)]
pub struct SigningKeys {
    keys: Vec<Arc<SigningKey>>,
}

impl SigningKeys {
    /// Parses a private JWKS. Every key must have `kid`, an asymmetric JWS `alg` and its
    /// private part; anything else is an error naming the key.
    pub fn parse(doc: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_slice(doc).map_err(|e| format!("not JSON: {e}"))?;
        let items = value
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or("not a JWK set (no \"keys\" array)")?;
        let mut keys = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let map = item.as_object().ok_or(format!("key #{i}: not an object"))?;
            let jwk = Jwk::from_map(map.clone()).map_err(|e| format!("key #{i}: {e}"))?;
            keys.push(Arc::new(signing_key(&jwk).map_err(|e| format!("key #{i}: {e}"))?));
        }
        let mut seen = std::collections::HashSet::new();
        for k in &keys {
            if !seen.insert(k.kid.as_str()) {
                return Err(format!("kid {:?} appears twice", k.kid));
            }
        }
        Ok(Self { keys })
    }

    /// The active key for `alg`.
    pub fn active(&self, alg: Algorithm) -> Option<&Arc<SigningKey>> {
        self.keys.iter().find(|k| k.alg == alg)
    }

    /// The first key (the realm's default signing key).
    pub fn first(&self) -> Option<&Arc<SigningKey>> {
        self.keys.first()
    }

    /// Every key.
    pub fn keys(&self) -> &[Arc<SigningKey>] {
        &self.keys
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The public halves as a verification key set.
    pub fn verification_keys(&self) -> Result<Vec<Arc<VerifyKey>>, String> {
        let doc = serde_json::json!({ "keys": self.keys.iter().map(|k| &k.public).collect::<Vec<_>>() });
        let (set, skipped) = KeySet::parse(doc.to_string().as_bytes()).map_err(|e| e.to_string())?;
        if let Some(why) = skipped.first() {
            return Err(why.clone());
        }
        Ok(set.keys().to_vec())
    }
}

fn signing_key(jwk: &Jwk) -> Result<SigningKey, String> {
    let kid = jwk.key_id().ok_or("no kid")?.to_owned();
    let alg_text = jwk.algorithm().ok_or("no alg")?;
    let alg = parse_alg(alg_text).ok_or(format!("alg {alg_text:?} is not an asymmetric JWS algorithm"))?;
    if jwk.parameter("d").is_none() {
        return Err("no private part (d): this is a public key".into());
    }
    let public = match (jwk.key_type(), alg) {
        (
            "RSA",
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => {
            let kp = RsaKeyPair::from_jwk(jwk).map_err(|e| e.to_string())?;
            (kp.to_jwk_public_key(), kp.to_der_private_key())
        }
        ("EC", Algorithm::ES256 | Algorithm::ES384) => {
            let kp = EcKeyPair::from_jwk(jwk).map_err(|e| e.to_string())?;
            (kp.to_jwk_public_key(), kp.to_der_private_key())
        }
        ("OKP", Algorithm::EdDSA) => {
            let kp = EdKeyPair::from_jwk(jwk).map_err(|e| e.to_string())?;
            (kp.to_jwk_public_key(), kp.to_der_private_key())
        }
        (kty, _) => return Err(format!("kty {kty:?} does not fit alg {alg_text:?}")),
    };
    let (public, pkcs8) = public;
    let signer = Signer::from_pkcs8(alg, &pkcs8)?;
    let mut public: serde_json::Map<String, serde_json::Value> = public.into();
    public.insert("kid".into(), kid.clone().into());
    public.insert("alg".into(), alg_text.into());
    public.insert("use".into(), "sig".into());
    // An EC key's curve must match its alg (ES256 ↔ P-256): KeySet::parse checks it.
    Ok(SigningKey {
        kid,
        alg,
        signer,
        public,
    })
}

/// A parsed private key and the JWS algorithm it signs with.
pub enum Signer {
    /// RS256/384/512 (PKCS #1 v1.5) or PS256/384/512 (PSS).
    Rsa(sig::RsaKeyPair, &'static dyn sig::RsaEncoding),
    /// ES256 or ES384, the fixed-size `r || s` form JWS uses (RFC 7518 § 3.4).
    Ecdsa(sig::EcdsaKeyPair),
    /// EdDSA over Ed25519.
    Ed25519(sig::Ed25519KeyPair),
}

impl std::fmt::Debug for Signer {
    // NB: never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer")
    }
}

impl Signer {
    /// The key in PKCS #8 DER, parsed and checked for `alg`.
    fn from_pkcs8(alg: Algorithm, der: &[u8]) -> Result<Self, String> {
        let rejected = |e: aws_lc_rs::error::KeyRejected| format!("the key is refused: {e}");
        let rsa = |encoding| -> Result<Self, String> {
            Ok(Self::Rsa(sig::RsaKeyPair::from_pkcs8(der).map_err(rejected)?, encoding))
        };
        match alg {
            Algorithm::RS256 => rsa(&sig::RSA_PKCS1_SHA256),
            Algorithm::RS384 => rsa(&sig::RSA_PKCS1_SHA384),
            Algorithm::RS512 => rsa(&sig::RSA_PKCS1_SHA512),
            Algorithm::PS256 => rsa(&sig::RSA_PSS_SHA256),
            Algorithm::PS384 => rsa(&sig::RSA_PSS_SHA384),
            Algorithm::PS512 => rsa(&sig::RSA_PSS_SHA512),
            Algorithm::ES256 => Ok(Self::Ecdsa(
                sig::EcdsaKeyPair::from_private_key_der(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(rejected)?,
            )),
            Algorithm::ES384 => Ok(Self::Ecdsa(
                sig::EcdsaKeyPair::from_private_key_der(&sig::ECDSA_P384_SHA384_FIXED_SIGNING, der)
                    .map_err(rejected)?,
            )),
            Algorithm::EdDSA => Ok(Self::Ed25519(
                sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(rejected)?,
            )),
            other => Err(format!("{other:?} is not an asymmetric JWS algorithm")),
        }
    }

    /// The signature of `message` (the JWS signing input), as JWS carries it.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match self {
            Self::Rsa(kp, encoding) => {
                let mut out = vec![0u8; kp.public_modulus_len()];
                kp.sign(*encoding, &rng, message, &mut out)
                    .map_err(|_| "RSA signing failed".to_owned())?;
                Ok(out)
            }
            Self::Ecdsa(kp) => kp
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| "ECDSA signing failed".to_owned()),
            Self::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
        }
    }
}
