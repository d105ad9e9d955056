//! Who is calling, and for which organisations: bearer tokens (`tokens`)
//! and, under mutual TLS, client certificates (`client_orgs`) identify a
//! [`Caller`], whose [`Scope`] is the set of organisations it may act for.
//!
//! The [`Authenticator`] interceptor refuses calls without valid
//! credentials and puts the caller into the request's extensions; each
//! handler admits the organisation it decoded against that caller before
//! anything is read or written (see `api`). Callers are named by the label
//! their operator gave them, or their certificate's common name, never by
//! a secret.

mod client_orgs;
mod tokens;

use std::{collections::BTreeSet, fmt, sync::Arc};

use tonic::{Request, Status, service::Interceptor};
use tracing::{Span, field::display};

pub use self::{
    client_orgs::ClientOrganizations,
    tokens::{BearerTokens, SecretToken},
};
use crate::{api::status::Refusal, domain::OrganizationId};

/// The organisations a caller may act for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every organisation (`org=*`, or no `org=` at all).
    All,
    /// Only these.
    Only(Arc<BTreeSet<OrganizationId>>),
}

impl Scope {
    pub fn allows(&self, organization_id: OrganizationId) -> bool {
        match self {
            Self::All => true,
            Self::Only(organizations) => organizations.contains(&organization_id),
        }
    }

    /// What both scopes allow: a caller with a token *and* a certificate
    /// may act only where both let it.
    fn intersection(&self, other: &Self) -> Self {
        match (self, other) {
            (Self::All, scope) | (scope, Self::All) => scope.clone(),
            (Self::Only(a), Self::Only(b)) => Self::Only(Arc::new(a.intersection(b).copied().collect())),
        }
    }

    /// Parses the value of an `org=` attribute: `*`, or UUIDs separated by
    /// commas.
    fn parse(value: &str) -> Result<Self, String> {
        if value == "*" {
            return Ok(Self::All);
        }
        let mut organizations = BTreeSet::new();
        for text in value.split(',') {
            if text == "*" {
                return Err("org=* stands alone; it cannot be combined with UUIDs".to_owned());
            }
            let id = OrganizationId::parse("org", text)
                .map_err(|violation| format!("org= {text:?}: {}", violation.description))?;
            organizations.insert(id);
        }
        Ok(Self::Only(Arc::new(organizations)))
    }
}

/// Who made a call and what it may reach; the authenticator puts it into
/// every authenticated request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// For logs: the token's `name=` label, or the certificate's CN.
    pub name: Arc<str>,
    pub scope: Scope,
}

impl Caller {
    pub fn new(name: impl Into<Arc<str>>, scope: Scope) -> Self {
        Self { name: name.into(), scope }
    }

    /// Anyone, when no credentials are configured.
    fn anonymous() -> Self {
        Self::new("anonymous", Scope::All)
    }

    /// Refuses a call for an organisation outside the caller's scope.
    pub fn admit(&self, organization_id: OrganizationId) -> Result<(), Refusal> {
        if self.scope.allows(organization_id) {
            Ok(())
        } else {
            Err(Refusal::OrganizationNotAllowed { organization_id })
        }
    }

    /// The caller identified by a token (`self`) and a certificate.
    fn and(self, certificate: Self) -> Self {
        Self::new(format!("{}@{}", self.name, certificate.name), self.scope.intersection(&certificate.scope))
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The lines of a credentials file that say something: trimmed, numbered
/// from 1, without blank lines and `#` comments.
fn meaningful_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
}

/// Guards a service: with tokens configured every call must carry one of
/// them; with client organisations configured, the client certificate's
/// CN must be listed. Either way the caller goes into the request's
/// extensions, and its name into the call's span.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    tokens: Option<BearerTokens>,
    client_orgs: Option<ClientOrganizations>,
}

impl Authenticator {
    pub fn new(tokens: Option<BearerTokens>, client_orgs: Option<ClientOrganizations>) -> Self {
        Self { tokens, client_orgs }
    }

    fn identify<T>(&self, request: &Request<T>) -> Result<Caller, Refusal> {
        let by_token = self.tokens.as_ref().map(|tokens| tokens.check(request)).transpose()?;
        let by_certificate = match &self.client_orgs {
            Some(client_orgs) => Some(client_orgs.check(request)?),
            // Mutual TLS without a map: any certificate of the CA may call
            // anything, and is named by its CN.
            None => client_orgs::common_name(request).map(|cn| Caller::new(cn, Scope::All)),
        };
        Ok(match (by_token, by_certificate) {
            (Some(token), Some(certificate)) => token.and(certificate),
            (Some(caller), None) | (None, Some(caller)) => caller,
            (None, None) => Caller::anonymous(),
        })
    }
}

impl Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let caller = self.identify(&request)?;
        Span::current().record("caller", display(&caller));
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(text: &str) -> OrganizationId {
        OrganizationId::parse("org", text).unwrap()
    }

    const A: &str = "0191d3e4-5b6a-7c8d-9e0f-1a2b3c4d5e6f";
    const B: &str = "0191d3e4-5b6a-7c8d-9e0f-1a2b3c4d5e70";

    #[test]
    fn scopes_parse_from_star_or_uuids() {
        assert_eq!(Scope::parse("*"), Ok(Scope::All));
        let both = Scope::parse(&format!("{A},{B}")).unwrap();
        assert!(both.allows(org(A)) && both.allows(org(B)));
        let one = Scope::parse(A).unwrap();
        assert!(one.allows(org(A)) && !one.allows(org(B)));

        for bad in ["", "*,0191d3e4-5b6a-7c8d-9e0f-1a2b3c4d5e6f", "not-a-uuid", &format!("{A},")] {
            assert!(Scope::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_token_and_a_certificate_allow_only_what_both_allow() {
        let token = Caller::new("ci", Scope::parse(&format!("{A},{B}")).unwrap());
        let certificate = Caller::new("billing", Scope::parse(A).unwrap());

        let caller = token.and(certificate);

        assert_eq!(caller.name.as_ref(), "ci@billing");
        assert!(caller.admit(org(A)).is_ok());
        assert!(caller.admit(org(B)).is_err());
    }
}
