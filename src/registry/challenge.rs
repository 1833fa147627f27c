//! Answering a registry's `WWW-Authenticate` challenge: Basic, or a Bearer token fetched
//! from the realm (ghcr.io's anonymous pulls, distribution's token auth).

use serde::Deserialize;

use crate::credentials::Secret;

/// A parsed `WWW-Authenticate` challenge we know how to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic realm=…`, or a 401 with no usable challenge.
    Basic,
    /// `Bearer realm=…,service=…`.
    Bearer { realm: String, service: Option<String> },
}

impl Challenge {
    /// Parse the header value; Bearer is preferred when several challenges are offered.
    pub(crate) fn parse(header: &str) -> Challenge {
        let Ok(challenges) = http_auth::parse_challenges(header) else {
            return Challenge::Basic;
        };
        for c in &challenges {
            if c.scheme.eq_ignore_ascii_case("bearer") {
                let param = |name: &str| {
                    c.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_unescaped())
                };
                if let Some(realm) = param("realm") {
                    return Challenge::Bearer { realm, service: param("service") };
                }
            }
        }
        Challenge::Basic
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
}

/// Pull the token out of a token-service answer.
pub(crate) fn parse_token(body: &[u8]) -> Option<Secret> {
    let t: TokenResponse = serde_json::from_slice(body).ok()?;
    t.token.or(t.access_token).filter(|t| !t.is_empty()).map(Secret::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            Challenge::parse(r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull""#),
            Challenge::Bearer { realm: "https://ghcr.io/token".into(), service: Some("ghcr.io".into()) }
        );
        assert_eq!(Challenge::parse(r#"Basic realm="Registry Realm""#), Challenge::Basic);
        assert_eq!(Challenge::parse(""), Challenge::Basic);
        assert_eq!(parse_token(br#"{"access_token":"abc"}"#).unwrap().expose(), "abc");
        assert!(parse_token(br#"{"token":""}"#).is_none());
    }
}
