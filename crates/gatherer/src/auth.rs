//! Bearer tokens: `[auth] ingest_tokens` guard `/gather`, `[auth] export_token` the export.
//!
//! The configured tokens are kept only as BLAKE2s digests, and a request's token is
//! digested before it is compared, so every comparison is of 32 bytes against 32 bytes in
//! constant time: neither which bytes match nor how long a token is shows in the time a
//! refusal takes. Every configured token is compared whichever matches. Nothing here
//! prints a token; `Debug` says only how many there are.

use blake2::{Blake2s256, Digest};
use secrecy::{ExposeSecret, SecretString};
use subtle::{Choice, ConstantTimeEq};

/// The tokens an endpoint accepts; none configured means the endpoint is open.
#[derive(Clone, Default)]
pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.digests.len())
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Blake2s256::digest(token).into()
}

impl Tokens {
    /// The non-empty ones of `secrets` (an empty string is how the configuration says
    /// "no token").
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a SecretString>) -> Tokens {
        let digests = secrets
            .into_iter()
            .map(ExposeSecret::expose_secret)
            .filter(|token| !token.is_empty())
            .map(|token| digest(token.as_bytes()))
            .collect();
        Tokens { digests }
    }

    /// True when no token is configured: anyone may call the endpoint.
    pub fn is_open(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether a request with this `Authorization` header value may pass: any request
    /// while the endpoint is open, else only `Bearer <token>` (the scheme in any case)
    /// with one of the tokens.
    pub fn allow(&self, authorization: Option<&[u8]>) -> bool {
        if self.is_open() {
            return true;
        }
        let Some(given) = authorization.and_then(bearer_token) else {
            return false;
        };
        let given = digest(given);
        let found = self
            .digests
            .iter()
            .fold(Choice::from(0), |found, token| found | token.ct_eq(&given));
        found.into()
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = value[7..].trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(list: &[&str]) -> Tokens {
        let secrets: Vec<SecretString> = list.iter().map(|t| (*t).to_owned().into()).collect();
        Tokens::new(&secrets)
    }

    #[test]
    fn no_token_configured_leaves_the_endpoint_open() {
        for open in [tokens(&[]), tokens(&[""])] {
            assert!(open.is_open());
            assert!(open.allow(None));
            assert!(open.allow(Some(b"Bearer anything")));
        }
    }

    #[test]
    fn only_a_configured_token_passes() {
        let tokens = tokens(&["old-t0ken", "new-t0ken", ""]);
        assert!(!tokens.is_open());
        assert!(tokens.allow(Some(b"Bearer old-t0ken")));
        assert!(tokens.allow(Some(b"Bearer new-t0ken")));
        assert!(tokens.allow(Some(b"bearer  new-t0ken ")));
        for refused in [
            None,
            Some(&b""[..]),
            Some(b"Bearer "),
            Some(b"Bearer"),
            Some(b"Bearer new-t0ke"),
            Some(b"Bearer new-t0ken2"),
            Some(b"Basic new-t0ken"),
            Some(b"new-t0ken"),
        ] {
            assert!(!tokens.allow(refused), "{refused:?}");
        }
    }

    #[test]
    fn debug_shows_how_many_tokens_never_which() {
        let shown = format!("{:?}", tokens(&["s3cret-token"]));
        assert_eq!(shown, "Tokens(1 configured)");
    }
}
