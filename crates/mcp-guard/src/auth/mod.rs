//! Authentication: who is calling. Hashed API keys and OAuth 2.1 bearer
//! tokens (JWT), each turned into a
//! [`Principal`](mcp_guard_layers::identity::Principal) behind the
//! [`Authenticate`] seam of the auth layer.
//!
//! Both travel as `Authorization: Bearer <credential>`; a credential shaped
//! like a JWT (three dot-separated base64url parts) goes to the JWT
//! verifier, anything else to the API keys. API key names and token
//! subjects share one namespace of principals.

pub mod api_key;
pub mod jwks;
pub mod jwt;
mod metadata;

use std::{future::Future, pin::Pin, sync::Arc};

use mcp_guard_layers::{
    auth::{AuthFailure, Authenticate},
    identity::{AuthMethod, Principal},
};

pub use metadata::ResourceMetadata;

use self::{
    api_key::ApiKeys,
    jwt::{HmacSecret, JwtSettings, JwtVerifier, KeySource},
};
use crate::config::JwtConfig;

/// The verifier for `config`; its audience defaults to `resource`.
/// Builds no connection: keys are fetched on first use.
pub fn jwt_verifier(config: &JwtConfig, resource: &str) -> Result<JwtVerifier, String> {
    let audiences = if config.audiences.is_empty() { vec![resource.to_owned()] } else { config.audiences.clone() };
    let keys = if !config.pem_keys.is_empty() {
        let keys = config.pem_keys.iter().map(|(alg, pem)| Ok((algorithm(alg)?, pem.clone())));
        KeySource::Pem(keys.collect::<Result<_, String>>()?)
    } else if let Some(uri) = &config.jwks_uri {
        KeySource::JwksUrl(uri.clone())
    } else {
        KeySource::Discovery(config.issuer.clone())
    };
    let mut settings = JwtSettings::new(config.issuer.clone(), audiences, keys);
    if let Some(names) = &config.algorithms {
        settings.algorithms = names.iter().map(|a| algorithm(a)).collect::<Result<_, _>>()?;
    }
    settings.leeway = config.leeway;
    settings.hmac_secret = config.hmac_secret.as_ref().map(|s| HmacSecret::new(s.expose().as_bytes().to_vec()));
    JwtVerifier::new(settings).map_err(|e| e.to_string())
}

/// A JWS algorithm name (`RS256`, `ES256`, `EdDSA`, …).
pub fn algorithm(name: &str) -> Result<jsonwebtoken::Algorithm, String> {
    name.parse().map_err(|_| format!("`{name}` is not a JWS algorithm (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, HS256, HS384, HS512)"))
}

/// API keys and, optionally, a JWT verifier.
#[derive(Clone, Debug)]
pub struct Authenticator {
    keys: ApiKeys,
    jwt: Option<JwtVerifier>,
}

impl Authenticator {
    /// Accepts these keys and, when given, tokens `jwt` verifies.
    pub fn new(keys: ApiKeys, jwt: Option<JwtVerifier>) -> Self {
        Authenticator { keys, jwt }
    }
}

fn looks_like_jwt(credential: &str) -> bool {
    let parts = credential.split('.');
    parts.clone().count() == 3
        && parts.into_iter().all(|p| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

impl Authenticate for Authenticator {
    fn authenticate<'a>(
        &'a self,
        credential: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Principal, AuthFailure>> + Send + 'a>> {
        Box::pin(async move {
            if !looks_like_jwt(credential) {
                return self.keys.verify(credential).ok_or(AuthFailure::invalid("unknown_api_key"));
            }
            let Some(jwt) = &self.jwt else {
                return Err(AuthFailure::invalid("jwt_not_accepted"));
            };
            match jwt.verify(credential).await {
                Ok(token) => Ok(Principal {
                    subject: token.subject.into(),
                    scopes: Arc::from(token.scopes),
                    method: AuthMethod::Bearer,
                }),
                Err(e) if e.keys_unavailable() => Err(AuthFailure::unavailable(e.reason())),
                Err(e) => Err(AuthFailure::invalid(e.reason())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(!looks_like_jwt("mcpg_abc"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a.b=.c"));
    }

    #[tokio::test]
    async fn api_keys_without_jwt() {
        let key = api_key::generate().expect("rng");
        let mut keys = ApiKeys::default();
        keys.add(&api_key::hash(&key), "ci", vec![]).expect("hash");
        let auth = Authenticator::new(keys, None);
        assert_eq!(auth.authenticate(&key).await.map(|p| p.subject.to_string()), Ok("ci".to_owned()));
        assert_eq!(
            auth.authenticate("mcpg_nope").await.map(|p| p.subject.to_string()),
            Err(AuthFailure::invalid("unknown_api_key"))
        );
        assert_eq!(auth.authenticate("a.b.c").await.map(|_| ()), Err(AuthFailure::invalid("jwt_not_accepted")));
    }
}
