//! The practice tenant's signing key for id_tokens: an RSA key (2048 bits) made once per data folder
//! and kept in the index (0600, beside the client secrets), published as a JWKS the way Microsoft's
//! `discovery/v2.0/keys` publishes its keys, and the RS256 signatures OpenID Connect clients check.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::error::IdentityError;
use crate::db::Db;

/// Where the key is kept in the index (`meta`): PKCS#8, base64.
const META_KEY: &str = "id_token_rsa_pkcs8";

/// base64url without padding (JWT and JWK encoding).
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256.
pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

/// The signing key and its public half as a JWK.
pub struct SigningKey {
    pair: KeyPair,
    /// The key id: the JWK's RFC 7638 thumbprint.
    pub kid: String,
    n: String,
    e: String,
}

impl SigningKey {
    /// The key kept in the index, or a new one (kept there) on first use.
    pub fn load(db: &Db) -> Result<Self, IdentityError> {
        if let Some(kept) = db.meta_get(META_KEY)?
            && let Ok(der) = STANDARD.decode(kept.trim())
            && let Ok(pair) = KeyPair::from_pkcs8(&der)
        {
            return Ok(Self::from_pair(pair));
        }
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| IdentityError::Key)?;
        let der = pair.as_der().map_err(|_| IdentityError::Key)?;
        db.meta_set(META_KEY, &STANDARD.encode(der.as_ref()))?;
        Ok(Self::from_pair(pair))
    }

    fn from_pair(pair: KeyPair) -> Self {
        let public = pair.public_key();
        let n = b64url(public.modulus().big_endian_without_leading_zero());
        let e = b64url(public.exponent().big_endian_without_leading_zero());
        // RFC 7638: the SHA-256 of the required members in lexicographic order, no spaces.
        let thumbprint = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = b64url(&sha256(thumbprint.as_bytes()));
        Self { pair, kid, n, e }
    }

    /// The JWKS (`{"keys": [...]}`), shaped like Microsoft's.
    pub fn jwks(&self, issuer: &str) -> Value {
        json!({"keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
            "n": self.n, "e": self.e, "issuer": issuer,
        }]})
    }

    /// A JWT with these claims, signed RS256 with this key's `kid`.
    pub fn sign(&self, claims: &Value) -> Result<String, IdentityError> {
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": self.kid});
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| IdentityError::Key)?;
        Ok(format!("{input}.{}", b64url(&sig)))
    }

    /// The public key's modulus and exponent (base64url), for tests that verify a signature.
    pub fn components(&self) -> (&str, &str) {
        (&self.n, &self.e)
    }
}

/// OpenID Connect's `at_hash`: the left half of the SHA-256 of the access token, base64url.
pub fn at_hash(access_token: &str) -> String {
    let h = sha256(access_token.as_bytes());
    b64url(&h[..h.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_kept_and_its_signatures_verify() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = Db::open(&dir.path().join("index.sqlite")).expect("db");
        let key = SigningKey::load(&db).expect("key");
        let again = SigningKey::load(&db).expect("key again");
        assert_eq!(key.kid, again.kid, "made once, then kept");
        let token = key
            .sign(&json!({"sub": "x", "aud": "app", "exp": 4_000_000_000u64}))
            .expect("sign");
        let (n, e) = key.components();
        let decoding = jsonwebtoken::DecodingKey::from_rsa_components(n, e).expect("jwk");
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.set_audience(&["app"]);
        let claims = jsonwebtoken::decode::<Value>(&token, &decoding, &v).expect("verifies");
        assert_eq!(claims.claims["sub"], "x");
        assert_eq!(
            jsonwebtoken::decode_header(&token).expect("header").kid,
            Some(key.kid.clone())
        );
        // RFC 7636 appendix B's example: the S256 challenge of a known verifier.
        assert_eq!(
            b64url(&sha256(b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
