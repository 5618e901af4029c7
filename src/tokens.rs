//! JWTs the harness mints for auth cases. Forged ones need no secret (a random key, no
//! signature, no JWT at all); with the server's HS256 secret it also mints valid tokens and
//! correctly signed ones that must still be refused (expired, not yet valid, wrong algorithm).

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

fn mint(secret: &str, exp: u64) -> Result<String, String> {
    sign(Algorithm::HS256, secret, json!({"sub": "wsprobe", "iat": now_secs(), "exp": exp}))
}

fn sign(algorithm: Algorithm, secret: &str, claims: Value) -> Result<String, String> {
    encode(&Header::new(algorithm), &claims, &EncodingKey::from_secret(secret.as_bytes()))
        .map_err(|e| format!("cannot mint a token: {e}"))
}

fn now_secs() -> u64 {
    reference_server::now_ms() / 1000
}

/// Valid for an hour.
pub fn valid(secret: &str) -> Result<String, String> {
    mint(secret, now_secs() + 3600)
}

/// Correctly signed, expired a minute ago.
pub fn expired(secret: &str) -> Result<String, String> {
    mint(secret, now_secs().saturating_sub(60))
}

/// Signed with a different secret.
pub fn bad_signature(secret: &str) -> Result<String, String> {
    mint(&format!("{secret}-not-the-secret"), now_secs() + 3600)
}

/// Well-formed, unexpired, HS256, and signed with a random key: no server can verify it.
pub fn forged_signature() -> Result<String, String> {
    mint(&random_secret(), now_secs() + 3600)
}

/// Not a JWT at all.
pub const GARBAGE: &str = "wsprobe-garbage-token";

/// Correctly signed, but `nbf` (and `iat`) an hour from now: not valid yet.
pub fn not_yet_valid(secret: &str) -> Result<String, String> {
    let later = now_secs() + 3600;
    sign(Algorithm::HS256, secret, json!({"sub": "wsprobe", "iat": later, "nbf": later, "exp": later + 3600}))
}

/// Signed with the right secret but HS512, where the server accepts HS256 only.
pub fn wrong_algorithm(secret: &str) -> Result<String, String> {
    sign(Algorithm::HS512, secret, json!({"sub": "wsprobe", "iat": now_secs(), "exp": now_secs() + 3600}))
}

/// `{"alg":"none","typ":"JWT"}` with a far-future `exp` and no signature.
pub const ALG_NONE: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ3c3Byb2JlIiwiZXhwIjo0MTAyNDQ0ODAwfQ.";

/// A secret for the bundled server.
pub fn random_secret() -> String {
    reference_server::random_secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_judged_as_intended() {
        let verifier = reference_server::TokenVerifier::new("k");
        assert_eq!(verifier.verify(&valid("k").unwrap()), Ok(()));
        assert_eq!(verifier.verify(&expired("k").unwrap()), Err(reference_server::AuthFailure::Expired));
        assert_eq!(verifier.verify(&bad_signature("k").unwrap()), Err(reference_server::AuthFailure::BadSignature));
        assert_eq!(verifier.verify(ALG_NONE), Err(reference_server::AuthFailure::WrongAlgorithm));
        assert_eq!(verifier.verify(&forged_signature().unwrap()), Err(reference_server::AuthFailure::BadSignature));
        assert_eq!(verifier.verify(GARBAGE), Err(reference_server::AuthFailure::Malformed));
        assert_eq!(verifier.verify(&not_yet_valid("k").unwrap()), Err(reference_server::AuthFailure::NotYetValid));
        assert_eq!(verifier.verify(&wrong_algorithm("k").unwrap()), Err(reference_server::AuthFailure::WrongAlgorithm));
        assert_ne!(random_secret(), random_secret());
    }
}
