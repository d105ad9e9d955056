//! Bearer-token authentication: which tokens are valid, and the interceptor
//! that checks `authorization: Bearer <token>` on every call it guards.
//!
//! Only SHA-256 digests of the tokens are kept, and a presented token is
//! compared digest against digest in constant time, so neither a token's
//! content nor its length shows in the time an answer takes. Tokens are never
//! logged: `Debug` shows how many there are, nothing else.

use std::{fmt, path::Path, sync::Arc};

use anyhow::Context;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use tonic::{Request, Status, service::Interceptor};

use crate::api::status::Refusal;

type TokenDigest = [u8; 32];

/// A token given on the command line or in the environment; `Debug` does
/// not show it, so printing the configuration cannot leak it.
#[derive(Clone)]
pub struct SecretToken(String);

impl std::str::FromStr for SecretToken {
    type Err = std::convert::Infallible;

    fn from_str(token: &str) -> Result<Self, Self::Err> {
        Ok(Self(token.to_owned()))
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken(<redacted>)")
    }
}

/// The accepted tokens; cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerTokens {
    digests: Arc<[TokenDigest]>,
}

impl fmt::Debug for BearerTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BearerTokens({} configured)", self.digests.len())
    }
}

fn digest(token: &[u8]) -> TokenDigest {
    Sha256::digest(token).into()
}

impl BearerTokens {
    /// The given tokens, or `None` when there are none (authentication off).
    pub fn new<T: AsRef<str>>(tokens: impl IntoIterator<Item = T>) -> Option<Self> {
        let digests: Vec<_> = tokens
            .into_iter()
            .map(|t| t.as_ref().trim().to_owned())
            .filter(|t| !t.is_empty())
            .map(|t| digest(t.as_bytes()))
            .collect();
        (!digests.is_empty()).then(|| Self { digests: digests.into() })
    }

    /// Tokens from `file` (one per line; blank lines and lines starting with
    /// `#` are ignored) together with `inline` ones; `None` when there are none.
    pub fn load(file: Option<&Path>, inline: &[SecretToken]) -> anyhow::Result<Option<Self>> {
        let mut tokens: Vec<String> = inline.iter().map(|t| t.0.clone()).collect();
        if let Some(file) = file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading the token file {}", file.display()))?;
            tokens.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
            anyhow::ensure!(
                !tokens.is_empty(),
                "the token file {} holds no token; remove the setting to turn authentication off",
                file.display()
            );
        }
        Ok(Self::new(tokens))
    }

    /// True when `token` is one of the accepted tokens. Every digest is
    /// compared, whichever matches.
    pub fn accepts(&self, token: &str) -> bool {
        let presented = digest(token.as_bytes());
        let matched = self.digests.iter().fold(Choice::from(0), |found, d| found | d.ct_eq(&presented));
        matched.into()
    }

    /// Checks the metadata of a call.
    pub fn check<T>(&self, request: &Request<T>) -> Result<(), Refusal> {
        let header = request.metadata().get("authorization").ok_or(Refusal::MissingCredentials)?;
        // The scheme is case-insensitive (RFC 9110); the token is not.
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(Refusal::InvalidCredentials)?;
        if self.accepts(token) { Ok(()) } else { Err(Refusal::InvalidCredentials) }
    }
}

/// Guards a service: with tokens configured every call must carry one of
/// them; without, every call passes.
#[derive(Debug, Clone)]
pub struct Authenticator {
    tokens: Option<BearerTokens>,
}

impl Authenticator {
    pub fn new(tokens: Option<BearerTokens>) -> Self {
        Self { tokens }
    }
}

impl Interceptor for Authenticator {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        match &self.tokens {
            Some(tokens) => tokens.check(&request).map(|()| request).map_err(Status::from),
            None => Ok(request),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_tokens() {
        let tokens = BearerTokens::new(["alpha", " beta "]).unwrap();

        assert!(tokens.accepts("alpha"));
        assert!(tokens.accepts("beta"));
        assert!(!tokens.accepts("alph"));
        assert!(!tokens.accepts("alphaa"));
        assert!(!tokens.accepts(""));
    }

    #[test]
    fn no_tokens_means_authentication_off() {
        assert!(BearerTokens::new(["", "  "]).is_none());
        assert!(BearerTokens::load(None, &[]).unwrap().is_none());
    }

    #[test]
    fn token_file_skips_blank_lines_and_comments() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "# rotated 2030-01-01\n\nfirst\n  second  \n").unwrap();

        let inline = ["third".parse().unwrap()];
        let tokens = BearerTokens::load(Some(file.path()), &inline).unwrap().unwrap();

        assert_eq!(tokens.digests.len(), 3);
        assert!(tokens.accepts("second"));
        assert!(!tokens.accepts("# rotated 2030-01-01"));
        assert_eq!(format!("{tokens:?}"), "BearerTokens(3 configured)");
        assert_eq!(format!("{inline:?}"), "[SecretToken(<redacted>)]");
    }

    #[test]
    fn an_empty_token_file_is_an_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "# nothing yet\n").unwrap();

        assert!(BearerTokens::load(Some(file.path()), &[]).is_err());
    }
}
