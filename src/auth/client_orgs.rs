//! Under mutual TLS, the organisations each client certificate may act for,
//! by the certificate's subject common name (CN).
//!
//! The file (`--tls-client-orgs`) has one client a line:
//! `CN org=UUID[,UUID...]|org=*`; the CN is everything before the last
//! field, so it may contain spaces. Blank lines and `#` comments are
//! ignored. A certificate whose CN is not listed may call nothing.

use std::{collections::HashMap, fmt, path::Path, sync::Arc};

use anyhow::Context;
use tonic::Request;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{Caller, Scope, meaningful_lines};
use crate::api::status::Refusal;

/// The clients' scopes by CN; cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientOrganizations {
    by_common_name: Arc<HashMap<String, Scope>>,
}

impl fmt::Debug for ClientOrganizations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientOrganizations({} clients)", self.by_common_name.len())
    }
}

/// One meaningful line: the CN and its scope.
fn parse_line(line: &str) -> Result<(String, Scope), String> {
    let missing = || "expected `CN org=UUID[,UUID...]` or `CN org=*`".to_owned();
    let (common_name, last) = line.rsplit_once(char::is_whitespace).ok_or_else(missing)?;
    let organizations = last.strip_prefix("org=").ok_or_else(missing)?;
    Ok((common_name.trim_end().to_owned(), Scope::parse(organizations)?))
}

impl ClientOrganizations {
    /// The map in `text` (the format is in the module's documentation);
    /// `source` names it in errors, which also name the line.
    pub fn parse(text: &str, source: &str) -> anyhow::Result<Self> {
        let mut by_common_name = HashMap::new();
        let mut lines = HashMap::new();
        for (number, line) in meaningful_lines(text) {
            let (common_name, scope) =
                parse_line(line).map_err(|why| anyhow::anyhow!("{source}, line {number}: {why}"))?;
            if let Some(first) = lines.insert(common_name.clone(), number) {
                anyhow::bail!(
                    "{source}, line {number}: CN {common_name:?} was already listed on line {first}"
                );
            }
            by_common_name.insert(common_name, scope);
        }
        Ok(Self { by_common_name: Arc::new(by_common_name) })
    }

    pub fn load(file: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading the client organisations file {}", file.display()))?;
        Self::parse(&text, &format!("the client organisations file {}", file.display()))
    }

    /// The caller that the call's client certificate identifies; refused
    /// when its CN is not listed (or the call came without a certificate).
    pub fn check<T>(&self, request: &Request<T>) -> Result<Caller, Refusal> {
        let common_name = common_name(request).ok_or(Refusal::ClientNotAllowed { common_name: None })?;
        match self.by_common_name.get(&common_name) {
            Some(scope) => Ok(Caller::new(common_name, scope.clone())),
            None => Err(Refusal::ClientNotAllowed { common_name: Some(common_name) }),
        }
    }
}

/// The subject CN of the call's client certificate, when it has exactly one
/// (two would be ambiguous).
pub(super) fn common_name<T>(request: &Request<T>) -> Option<String> {
    let certificates = request.peer_certs()?;
    let (_, certificate) = X509Certificate::from_der(certificates.first()?).ok()?;
    let mut names = certificate.subject().iter_common_name();
    let name = names.next()?.as_str().ok()?.to_owned();
    names.next().is_none().then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "0191d3e4-5b6a-7c8d-9e0f-1a2b3c4d5e6f";

    #[test]
    fn lines_map_common_names_with_spaces_to_scopes() {
        let text = format!("# clients\n\nbilling-service org={ORG}\nOps Console  org=*\n");

        let map = ClientOrganizations::parse(&text, "test").unwrap();

        assert_eq!(map.by_common_name["billing-service"], Scope::parse(ORG).unwrap());
        assert_eq!(map.by_common_name["Ops Console"], Scope::All);
        assert_eq!(format!("{map:?}"), "ClientOrganizations(2 clients)");
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        let cases = [
            ("billing-service", "expected `CN org="),
            ("billing-service name=x", "expected `CN org="),
            ("billing-service org=nope", "org="),
            (&format!("org={ORG}"), "expected `CN org="),
            ("a org=*\nb org=*\na org=*", "already listed on line 2"),
        ];
        for (lines, expected) in cases {
            let error = ClientOrganizations::parse(&format!("# header\n{lines}\n"), "the file").unwrap_err();
            let error = error.to_string();

            assert!(error.starts_with("the file, line "), "{lines:?}: {error}");
            assert!(error.contains(expected), "{lines:?}: {error}");
        }
    }
}
