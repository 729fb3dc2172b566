//! Verification keys: JWKs and PEM public keys parsed into aws-lc public
//! keys, and the lookup of a token's key by `kid` and `alg`.

use std::fmt;

use aws_lc_rs::signature::{
    self as sig, EcdsaVerificationAlgorithm, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents,
};
use base64::{
    Engine,
    alphabet::URL_SAFE,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse},
};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::MAX_KEYS;
use crate::auth::jwt::JwtSetupError;

/// JWK values are base64url without padding (RFC 7517), but some IdPs pad.
const JWK_B64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const RSA_ALGORITHMS: [Algorithm; 6] =
    [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::PS384, Algorithm::PS512];

fn rsa_parameters(alg: Algorithm) -> Option<&'static RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn ecdsa_parameters(alg: Algorithm) -> Option<&'static EcdsaVerificationAlgorithm> {
    match alg {
        Algorithm::ES256 => Some(&sig::ECDSA_P256_SHA256_FIXED),
        Algorithm::ES384 => Some(&sig::ECDSA_P384_SHA384_FIXED),
        _ => None,
    }
}

/// A public key, parsed once for each algorithm it may verify.
pub(crate) struct VerifyKey {
    kid: Option<Box<str>>,
    by_alg: Vec<(Algorithm, ParsedPublicKey)>,
}

impl VerifyKey {
    fn get(&self, alg: Algorithm) -> Option<&ParsedPublicKey> {
        self.by_alg.iter().find(|(a, _)| *a == alg).map(|(_, key)| key)
    }
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algs: Vec<Algorithm> = self.by_alg.iter().map(|(a, _)| *a).collect();
        f.debug_struct("VerifyKey").field("kid", &self.kid).field("algorithms", &algs).finish()
    }
}

/// The outcome of looking a token's key up.
pub(crate) enum Lookup<'a> {
    Found(&'a ParsedPublicKey),
    /// No key fits: a refresh may help.
    Missing,
    /// The token has no `kid` and several keys fit its `alg`.
    Ambiguous,
    /// Keys carry the token's `kid`, but none may verify its `alg`.
    WrongAlgorithm,
}

/// The keys of one key set (or of the static configuration).
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: Vec<VerifyKey>,
}

/// Why a JWK was not loaded.
enum Skip {
    /// Marked for encryption (`use`, `key_ops`, or an encryption `alg`).
    NotForSignatures,
    /// Fine, but fits none of the allowed algorithms.
    NotAllowed,
    /// Broken or unsupported.
    Unusable(String),
}

impl KeySet {
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key for a token's `kid` and `alg`. A token without `kid` needs
    /// exactly one fitting key. A `kid` no key carries may still mean a key
    /// that has none (every PEM key), again only if exactly one fits.
    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Lookup<'_> {
        if let Some(kid) = kid {
            let mut named = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).peekable();
            if named.peek().is_some() {
                return named.find_map(|k| k.get(alg)).map_or(Lookup::WrongAlgorithm, Lookup::Found);
            }
        }
        let mut fitting = self.keys.iter().filter(|k| kid.is_none() || k.kid.is_none()).filter_map(|k| k.get(alg));
        match (fitting.next(), fitting.next(), kid) {
            (Some(key), None, _) => Lookup::Found(key),
            (Some(_), Some(_), None) => Lookup::Ambiguous,
            _ => Lookup::Missing,
        }
    }

    /// Keys from configuration: any key that cannot be used is an error.
    pub(crate) fn from_jwks(jwks: &[Jwk], allowed: &[Algorithm]) -> Result<KeySet, JwtSetupError> {
        let mut keys = Vec::with_capacity(jwks.len());
        for (i, jwk) in jwks.iter().enumerate() {
            let name = || jwk.common.key_id.as_ref().map_or_else(|| format!("keys[{i}]"), |kid| format!("kid {kid:?}"));
            match load_jwk(jwk, allowed) {
                Ok(key) => keys.push(key),
                Err(skip) => return Err(JwtSetupError::BadKey { key: name(), reason: skip.to_string() }),
            }
        }
        Ok(KeySet { keys })
    }

    /// Keys from PEM public keys, each pinned to the algorithm given with it.
    pub(crate) fn from_pem(pems: &[(Algorithm, String)], allowed: &[Algorithm]) -> Result<KeySet, JwtSetupError> {
        let mut keys = Vec::with_capacity(pems.len());
        for (i, (alg, pem)) in pems.iter().enumerate() {
            let bad = |reason: String| JwtSetupError::BadKey { key: format!("pem[{i}] ({alg:?})"), reason };
            let jwk = pem_to_jwk(*alg, pem).map_err(bad)?;
            keys.push(load_jwk(&jwk, allowed).map_err(|skip| bad(skip.to_string()))?);
        }
        Ok(KeySet { keys })
    }

    /// Keys from a fetched JWKS document. Keys that are not for signatures,
    /// fit no allowed algorithm, or are unsupported are skipped, not fatal:
    /// IdPs publish encryption keys and new key types next to the ones used.
    pub(crate) fn from_document(body: &[u8], allowed: &[Algorithm]) -> Result<KeySet, String> {
        #[derive(Deserialize)]
        struct Document<'a> {
            #[serde(borrow)]
            keys: Vec<&'a RawValue>,
        }
        let document: Document<'_> = serde_json::from_slice(body).map_err(|e| format!("not a JWK set: {e}"))?;
        let mut keys = Vec::new();
        for raw in document.keys {
            if keys.len() == MAX_KEYS {
                tracing::warn!(target: "mcp_guard::auth", max = MAX_KEYS, "jwks_too_many_keys_rest_ignored");
                break;
            }
            let jwk: Jwk = match serde_json::from_str(raw.get()) {
                Ok(jwk) => jwk,
                Err(e) => {
                    tracing::debug!(target: "mcp_guard::auth", error = %e, "jwks_key_skipped");
                    continue;
                }
            };
            match load_jwk(&jwk, allowed) {
                Ok(key) => keys.push(key),
                Err(Skip::Unusable(why)) => {
                    tracing::warn!(target: "mcp_guard::auth", kid = ?jwk.common.key_id, reason = %why, "jwks_key_unusable");
                }
                Err(skip) => {
                    tracing::debug!(target: "mcp_guard::auth", kid = ?jwk.common.key_id, reason = %skip, "jwks_key_skipped");
                }
            }
        }
        if keys.is_empty() {
            return Err("the key set holds no key usable with the allowed algorithms".into());
        }
        Ok(KeySet { keys })
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::NotForSignatures => f.write_str("the key is not for signature verification"),
            Skip::NotAllowed => f.write_str("the key fits none of the allowed algorithms"),
            Skip::Unusable(why) => f.write_str(why),
        }
    }
}

fn load_jwk(jwk: &Jwk, allowed: &[Algorithm]) -> Result<VerifyKey, Skip> {
    let common = &jwk.common;
    if !matches!(common.public_key_use, None | Some(PublicKeyUse::Signature))
        || common.key_operations.as_ref().is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Err(Skip::NotForSignatures);
    }
    let pinned = match common.key_algorithm {
        None => None,
        Some(alg) => Some(Algorithm::try_from(alg).map_err(|_| Skip::NotForSignatures)?),
    };
    // The algorithms this key may verify: its family's, narrowed by its own
    // `alg` and by the allowed list.
    let candidates = |family: &[Algorithm]| -> Result<Vec<Algorithm>, Skip> {
        if let Some(pin) = pinned
            && !family.contains(&pin)
        {
            return Err(Skip::Unusable(format!("alg {pin:?} does not fit the key type")));
        }
        let algs: Vec<Algorithm> =
            family.iter().copied().filter(|a| allowed.contains(a) && pinned.is_none_or(|p| p == *a)).collect();
        if algs.is_empty() { Err(Skip::NotAllowed) } else { Ok(algs) }
    };
    let invalid = |what: &str| Skip::Unusable(format!("invalid {what} key"));

    let by_alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => {
            let algs = candidates(&RSA_ALGORITHMS)?;
            let n = JWK_B64.decode(&p.n).map_err(|_| invalid("RSA"))?;
            let e = JWK_B64.decode(&p.e).map_err(|_| invalid("RSA"))?;
            // Big-endian integers; some IdPs emit a leading zero aws-lc refuses.
            let (n, e) = (strip_leading_zeros(&n), strip_leading_zeros(&e));
            let bits = n.first().map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
            if !(2048..=8192).contains(&bits) {
                return Err(Skip::Unusable(format!("RSA key of {bits} bits (2048 to 8192 are accepted)")));
            }
            let components = RsaPublicKeyComponents { n, e };
            algs.into_iter()
                .filter_map(|alg| Some((alg, rsa_parameters(alg)?)))
                .map(|(alg, params)| Ok((alg, components.to_parsed_public_key(params).map_err(|_| invalid("RSA"))?)))
                .collect::<Result<Vec<_>, Skip>>()?
        }
        AlgorithmParameters::EllipticCurve(p) => {
            let family = match p.curve {
                EllipticCurve::P256 => [Algorithm::ES256],
                EllipticCurve::P384 => [Algorithm::ES384],
                ref other => return Err(Skip::Unusable(format!("EC curve {other:?} is not supported"))),
            };
            let alg = candidates(&family)?[0];
            let mut point = vec![0x04];
            point.extend(JWK_B64.decode(&p.x).map_err(|_| invalid("EC"))?);
            point.extend(JWK_B64.decode(&p.y).map_err(|_| invalid("EC"))?);
            let params = ecdsa_parameters(alg).ok_or_else(|| invalid("EC"))?;
            vec![(alg, ParsedPublicKey::new(params, &point).map_err(|_| invalid("EC"))?)]
        }
        AlgorithmParameters::OctetKeyPair(p) => {
            if p.curve != EllipticCurve::Ed25519 {
                return Err(Skip::Unusable(format!("OKP curve {:?} is not supported", p.curve)));
            }
            let alg = candidates(&[Algorithm::EdDSA])?[0];
            let x = JWK_B64.decode(&p.x).map_err(|_| invalid("Ed25519"))?;
            vec![(alg, ParsedPublicKey::new(&sig::ED25519, &x).map_err(|_| invalid("Ed25519"))?)]
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err(Skip::Unusable(
                "symmetric (oct) keys are never loaded from a key set; an HMAC secret is configured as hmac_secret"
                    .into(),
            ));
        }
        _ => return Err(Skip::Unusable("unsupported key type".into())),
    };
    Ok(VerifyKey { kid: common.key_id.as_deref().map(Box::from), by_alg })
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// A PEM public key as a JWK pinned to `alg`, so it goes through the same
/// checks as a key from a key set. Only public-key blocks are accepted: a
/// private key or a certificate pasted by mistake is refused by name.
fn pem_to_jwk(alg: Algorithm, pem: &str) -> Result<Jwk, String> {
    let label = pem
        .trim_start()
        .strip_prefix("-----BEGIN ")
        .and_then(|rest| rest.split_once("-----"))
        .map(|(label, _)| label)
        .ok_or("not a PEM block")?;
    if label != "PUBLIC KEY" && label != "RSA PUBLIC KEY" {
        return Err(format!("the PEM block is a {label:?}; a \"PUBLIC KEY\" is required"));
    }
    let key = match alg {
        _ if RSA_ALGORITHMS.contains(&alg) => DecodingKey::from_rsa_pem(pem.as_bytes()),
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem.as_bytes()),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(pem.as_bytes()),
        _ => return Err(format!("{alg:?} does not use a public key; an HMAC secret is configured as hmac_secret")),
    }
    .map_err(|e| format!("not a {alg:?} public key: {e}"))?;
    Jwk::from_decoding_key(&key, Some(alg)).map_err(|e| format!("not a {alg:?} public key: {e}"))
}
