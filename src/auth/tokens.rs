//! Bearer tokens: which are valid, whose they are, and the check of
//! `authorization: Bearer <token>` on a call.
//!
//! The token file has one credential a line:
//! `TOKEN [name=LABEL] [org=UUID[,UUID...]|org=*]`, where `TOKEN` may be
//! written `sha256:<64 lowercase hex>`, the digest of the token, so that the
//! file need not hold the secret. Blank lines and `#` comments are ignored;
//! no `org=` means every organisation, as for tokens given inline.
//!
//! Only SHA-256 digests are kept, and a presented token's digest is compared
//! with every configured one in constant time, so neither a token's content,
//! its length nor which line it matched shows in the time an answer takes.
//! Tokens are never logged: `Debug` shows how many there are, nothing else.

use std::{fmt, path::Path, sync::Arc};

use anyhow::Context;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use tonic::Request;

use super::{Caller, Scope, meaningful_lines};
use crate::api::status::Refusal;

type TokenDigest = [u8; 32];

/// How the file writes a token given by its digest.
const DIGEST_PREFIX: &str = "sha256:";
/// Longest `name=` label: it goes into every log line of the caller's calls.
const MAX_LABEL_CHARS: usize = 64;

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

/// One accepted token, by digest, and the caller it identifies.
#[derive(Clone, PartialEq, Eq)]
struct Credential {
    digest: TokenDigest,
    caller: Caller,
}

/// The accepted tokens; cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerTokens {
    credentials: Arc<[Credential]>,
}

impl fmt::Debug for BearerTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BearerTokens({} configured)", self.credentials.len())
    }
}

fn digest(token: &[u8]) -> TokenDigest {
    Sha256::digest(token).into()
}

/// A token given inline (flag, environment, tests): every organisation,
/// named by its position, since it has no label.
fn inline(position: usize, token: &str) -> Option<Credential> {
    let token = token.trim();
    (!token.is_empty()).then(|| Credential {
        digest: digest(token.as_bytes()),
        caller: Caller::new(format!("auth-tokens:{position}"), Scope::All),
    })
}

/// `sha256:<64 lowercase hex>` as a digest.
fn parse_digest(hex: &str) -> Result<TokenDigest, String> {
    let malformed = || format!("{DIGEST_PREFIX} must be followed by 64 lowercase hexadecimal digits");
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(malformed());
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| malformed())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| malformed())?;
    }
    Ok(digest)
}

fn parse_label(label: &str) -> Result<&str, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._:@/-".contains(c);
    if label.is_empty() || label.chars().count() > MAX_LABEL_CHARS || !label.chars().all(allowed) {
        return Err(format!(
            "name= must be 1 to {MAX_LABEL_CHARS} letters, digits or . _ : @ / -, not {label:?}"
        ));
    }
    Ok(label)
}

/// One meaningful line of the token file.
fn parse_line(number: usize, line: &str) -> Result<Credential, String> {
    let mut fields = line.split_whitespace();
    let token = fields.next().unwrap_or_default();
    if token.starts_with("name=") || token.starts_with("org=") {
        return Err("the token is missing: a line starts with the token".to_owned());
    }
    let digest = match token.strip_prefix(DIGEST_PREFIX) {
        Some(hex) => parse_digest(hex)?,
        None => digest(token.as_bytes()),
    };
    let (mut name, mut scope) = (None, None);
    for field in fields {
        match field.split_once('=') {
            Some(("name", label)) if name.is_none() => name = Some(parse_label(label)?.to_owned()),
            Some(("org", organizations)) if scope.is_none() => scope = Some(Scope::parse(organizations)?),
            Some(("name" | "org", _)) => return Err(format!("{field:?} repeats an attribute")),
            _ => return Err(format!("{field:?} is neither name=LABEL nor org=UUID[,UUID...]|org=*")),
        }
    }
    let name = name.unwrap_or_else(|| format!("tokens-file:{number}"));
    Ok(Credential { digest, caller: Caller::new(name, scope.unwrap_or(Scope::All)) })
}

impl BearerTokens {
    /// The given tokens, each for every organisation, or `None` when there
    /// are none (authentication off).
    pub fn new<T: AsRef<str>>(tokens: impl IntoIterator<Item = T>) -> Option<Self> {
        let credentials: Vec<_> =
            tokens.into_iter().enumerate().filter_map(|(i, t)| inline(i + 1, t.as_ref())).collect();
        (!credentials.is_empty()).then(|| Self { credentials: credentials.into() })
    }

    /// Tokens from `file` (the format is in the module's documentation)
    /// together with `inline` ones; `None` when there are none. A line that
    /// does not parse, or a token given twice, is an error naming the line.
    pub fn load(file: Option<&Path>, inline_tokens: &[SecretToken]) -> anyhow::Result<Option<Self>> {
        let mut credentials: Vec<(String, Credential)> = Vec::new();
        if let Some(file) = file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading the token file {}", file.display()))?;
            for (number, line) in meaningful_lines(&text) {
                let credential = parse_line(number, line).map_err(|why| {
                    anyhow::anyhow!("the token file {}, line {number}: {why}", file.display())
                })?;
                credentials.push((format!("line {number}"), credential));
            }
            anyhow::ensure!(
                !credentials.is_empty(),
                "the token file {} holds no token; remove the setting to turn authentication off",
                file.display()
            );
        }
        let inline_credentials = inline_tokens.iter().enumerate().filter_map(|(i, t)| inline(i + 1, &t.0));
        credentials.extend(inline_credentials.map(|c| (format!("inline token {}", c.caller.name), c)));
        for (later, (place, credential)) in credentials.iter().enumerate() {
            if let Some((first, _)) = credentials[..later].iter().find(|(_, c)| c.digest == credential.digest)
            {
                let file = file.map(|f| f.display().to_string()).unwrap_or_default();
                anyhow::bail!("the token file {file}: {place} repeats the token of {first}");
            }
        }
        let credentials: Vec<_> = credentials.into_iter().map(|(_, c)| c).collect();
        Ok((!credentials.is_empty()).then(|| Self { credentials: credentials.into() }))
    }

    /// The caller whose token `token` is, if any. Every digest is compared,
    /// whichever matches.
    pub fn identify(&self, token: &str) -> Option<Caller> {
        let presented = digest(token.as_bytes());
        let mut found = Choice::from(0);
        let mut index = 0u64;
        for (i, credential) in self.credentials.iter().enumerate() {
            let matches = credential.digest.ct_eq(&presented);
            index.conditional_assign(&(i as u64), matches);
            found |= matches;
        }
        let index = usize::try_from(index).expect("an index of the slice");
        bool::from(found).then(|| self.credentials[index].caller.clone())
    }

    /// True when `token` is one of the accepted tokens.
    pub fn accepts(&self, token: &str) -> bool {
        self.identify(token).is_some()
    }

    /// Checks the metadata of a call: the caller its token identifies.
    pub fn check<T>(&self, request: &Request<T>) -> Result<Caller, Refusal> {
        let header = request.metadata().get("authorization").ok_or(Refusal::MissingCredentials)?;
        // The scheme is case-insensitive (RFC 9110); the token is not.
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(Refusal::InvalidCredentials)?;
        self.identify(token).ok_or(Refusal::InvalidCredentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "0191d3e4-5b6a-7c8d-9e0f-1a2b3c4d5e6f";

    fn hex(digest: TokenDigest) -> String {
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn load(text: &str) -> anyhow::Result<Option<BearerTokens>> {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        BearerTokens::load(Some(file.path()), &[])
    }

    #[test]
    fn accepts_only_configured_tokens() {
        let tokens = BearerTokens::new(["alpha", " beta "]).unwrap();

        assert!(tokens.accepts("alpha"));
        assert!(tokens.accepts("beta"));
        assert!(!tokens.accepts("alph"));
        assert!(!tokens.accepts("alphaa"));
        assert!(!tokens.accepts(""));
        assert_eq!(tokens.identify("beta").unwrap().name.as_ref(), "auth-tokens:2");
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

        assert_eq!(tokens.credentials.len(), 3);
        assert!(tokens.accepts("second"));
        assert!(!tokens.accepts("# rotated 2030-01-01"));
        assert_eq!(format!("{tokens:?}"), "BearerTokens(3 configured)");
        assert_eq!(format!("{inline:?}"), "[SecretToken(<redacted>)]");
    }

    #[test]
    fn token_file_lines_carry_a_label_and_a_scope() {
        let text = format!(
            "plain\nlabelled name=billing org={ORG}\nsha256:{} name=digested org=*\n",
            hex(digest(b"digested-secret"))
        );
        let tokens = load(&text).unwrap().unwrap();

        assert_eq!(tokens.identify("plain").unwrap(), Caller::new("tokens-file:1", Scope::All));
        let billing = tokens.identify("labelled").unwrap();
        assert_eq!(billing.name.as_ref(), "billing");
        assert_eq!(billing.scope, Scope::parse(ORG).unwrap());
        assert_eq!(tokens.identify("digested-secret").unwrap(), Caller::new("digested", Scope::All));
        let digest_as_token = format!("sha256:{}", hex(digest(b"digested-secret")));
        assert!(!tokens.accepts(&digest_as_token), "the digest itself is not a token");
    }

    #[test]
    fn an_empty_token_file_is_an_error() {
        assert!(load("# nothing yet\n").is_err());
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        let upper = hex(digest(b"x")).to_uppercase();
        let cases = [
            ("sha256:abc", "64 lowercase hexadecimal"),
            (&format!("sha256:{upper}"), "64 lowercase hexadecimal"),
            ("token org=not-a-uuid", "org="),
            ("token org=", "org="),
            ("token org=*,*", "stands alone"),
            ("token name=a name=b", "repeats an attribute"),
            ("token name=", "name="),
            ("token name=has\u{7}bell", "name="),
            ("token colour=blue", "neither name="),
            ("name=orphan org=*", "token is missing"),
        ];
        for (line, expected) in cases {
            let error = load(&format!("# header\n\nfine\n{line}\n")).unwrap_err().to_string();

            assert!(error.contains("line 4: "), "{line:?}: {error}");
            assert!(error.contains(expected), "{line:?}: {error}");
        }
    }

    #[test]
    fn a_token_given_twice_is_an_error() {
        let twice = format!("one name=a\nsha256:{} name=b\n", hex(digest(b"one")));

        let error = load(&twice).unwrap_err().to_string();

        assert!(error.contains("line 2 repeats the token of line 1"), "{error}");
    }
}
