//! HS256 JWT checks. Tokens are never logged: errors describe why a token failed, not what it was.

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("token is expired")]
    Expired,
    #[error("token is not valid yet (nbf or iat in the future)")]
    NotYetValid,
    #[error("token is not signed with HS256 (alg none and other algorithms are refused)")]
    WrongAlgorithm,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token has no exp claim")]
    MissingExp,
    #[error("token is malformed")]
    Malformed,
    #[error("no token was presented")]
    Missing,
}

/// How far in the future `nbf` and `iat` may lie, for clocks that disagree a little.
pub const NOT_BEFORE_LEEWAY_SECS: u64 = 5;

/// Verifies signature, algorithm and `exp` with no leeway; `nbf` and `iat` with
/// [`NOT_BEFORE_LEEWAY_SECS`].
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    pub fn new(secret: &str) -> TokenVerifier {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp"]);
        TokenVerifier { key: DecodingKey::from_secret(secret.as_bytes()), validation }
    }

    pub fn verify(&self, token: &str) -> Result<(), AuthFailure> {
        // Refuse `alg: none` explicitly before the library sees it, whatever its version does.
        if header_alg(token).is_some_and(|alg| !alg.eq_ignore_ascii_case("HS256")) {
            return Err(AuthFailure::WrongAlgorithm);
        }
        use jsonwebtoken::errors::ErrorKind;
        // The library checks `exp`; `nbf` and `iat` are checked here, with their leeway.
        let claims = decode::<serde_json::Value>(token, &self.key, &self.validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthFailure::Expired,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => AuthFailure::WrongAlgorithm,
            ErrorKind::InvalidSignature => AuthFailure::BadSignature,
            ErrorKind::MissingRequiredClaim(_) => AuthFailure::MissingExp,
            _ => AuthFailure::Malformed,
        })?;
        let latest = crate::now_ms() / 1000 + NOT_BEFORE_LEEWAY_SECS;
        for claim in ["nbf", "iat"] {
            match claims.claims.get(claim) {
                None => {}
                // NumericDate may have a fraction (RFC 7519, section 2).
                Some(value) => match value.as_f64() {
                    Some(at) if at <= latest as f64 => {}
                    Some(_) => return Err(AuthFailure::NotYetValid),
                    None => return Err(AuthFailure::Malformed),
                },
            }
        }
        Ok(())
    }
}

/// The `alg` of a compact JWT's header, if it decodes.
fn header_alg(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let bytes = base64url_decode(header)?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("alg")?.as_str().map(str::to_string)
}

fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// A token from `Authorization: Bearer …` or the `token` query parameter, if either is present.
/// The header wins when both are given.
pub fn token_from_request(authorization: Option<&str>, query: Option<&str>) -> Option<String> {
    if let Some(value) = authorization {
        let value = value.trim();
        let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).unwrap_or(value);
        return Some(token.trim().to_string());
    }
    query?.split('&').find_map(|pair| pair.strip_prefix("token=")).map(percent_decode)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn now() -> u64 {
        crate::clock::now_ms() / 1000
    }

    fn token(alg: Algorithm, secret: &str, exp: Option<u64>) -> String {
        let claims = match exp {
            Some(exp) => json!({"sub": "tester", "exp": exp}),
            None => json!({"sub": "tester"}),
        };
        encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    #[test]
    fn accepts_only_fresh_hs256_tokens_with_the_right_secret() {
        let verifier = TokenVerifier::new("s3cret");
        assert_eq!(verifier.verify(&token(Algorithm::HS256, "s3cret", Some(now() + 60))), Ok(()));
        assert_eq!(verifier.verify(&token(Algorithm::HS256, "s3cret", Some(now() - 1))), Err(AuthFailure::Expired));
        assert_eq!(
            verifier.verify(&token(Algorithm::HS256, "other", Some(now() + 60))),
            Err(AuthFailure::BadSignature)
        );
        assert_eq!(
            verifier.verify(&token(Algorithm::HS384, "s3cret", Some(now() + 60))),
            Err(AuthFailure::WrongAlgorithm)
        );
        assert_eq!(verifier.verify(&token(Algorithm::HS256, "s3cret", None)), Err(AuthFailure::MissingExp));
        assert_eq!(verifier.verify("not-a-token"), Err(AuthFailure::Malformed));
    }

    #[test]
    fn refuses_tokens_not_valid_yet_beyond_the_leeway() {
        let verifier = TokenVerifier::new("s3cret");
        let sign = |claims: serde_json::Value| {
            encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"s3cret")).unwrap()
        };
        let exp = now() + 7200;
        for claim in ["nbf", "iat"] {
            let early = sign(json!({"exp": exp, claim: now() + NOT_BEFORE_LEEWAY_SECS + 60}));
            assert_eq!(verifier.verify(&early), Err(AuthFailure::NotYetValid), "{claim}");
            let within = sign(json!({"exp": exp, claim: now() + NOT_BEFORE_LEEWAY_SECS - 2}));
            assert_eq!(verifier.verify(&within), Ok(()), "{claim} within the leeway");
            let fractional = sign(json!({"exp": exp, claim: now() as f64 - 0.5}));
            assert_eq!(verifier.verify(&fractional), Ok(()), "{claim} as a fraction");
        }
    }

    #[test]
    fn refuses_alg_none() {
        // {"alg":"none","typ":"JWT"} . {"exp": far future} . (no signature)
        let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJleHAiOjk5OTk5OTk5OTl9.";
        assert_eq!(TokenVerifier::new("s3cret").verify(unsigned), Err(AuthFailure::WrongAlgorithm));
    }

    #[test]
    fn finds_tokens_in_header_or_query() {
        assert_eq!(token_from_request(Some("Bearer abc.def.ghi"), None).as_deref(), Some("abc.def.ghi"));
        assert_eq!(token_from_request(None, Some("x=1&token=a.b%2Dc.d")).as_deref(), Some("a.b-c.d"));
        assert_eq!(token_from_request(None, Some("x=1")), None);
        assert_eq!(token_from_request(None, None), None);
    }
}
