//! The names a server certificate is valid for: `cln`, `localhost`, `clnrest-host` and every
//! `clnrest-tls-extra-name`; parsing them, turning them into subject alternative names, and
//! reading them back from a certificate to see whether it still fits the configuration.

use super::*;
use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv6Addr;

/// A name a server certificate can be valid for: an IP address or a DNS name (a domain, an
/// `.onion` address, `localhost`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsName {
    Ip(IpAddr),
    /// Lower case, without a trailing dot.
    Dns(String),
}

impl TlsName {
    /// Parses an IP address (an IPv6 one may be in brackets) or a DNS name (letters, digits,
    /// `-` and `_` in dot-separated labels of at most 63 characters, the last one not all
    /// digits; one trailing dot allowed). DNS names are lowercased. `None` for anything else,
    /// wildcards and surrounding spaces included.
    pub fn parse(value: &str) -> Option<TlsName> {
        if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            return inner
                .parse::<Ipv6Addr>()
                .ok()
                .map(|ip| TlsName::Ip(IpAddr::V6(ip)));
        }
        if let Ok(ip) = value.parse::<IpAddr>() {
            return Some(TlsName::Ip(ip));
        }
        let name = value.strip_suffix('.').unwrap_or(value);
        if name.is_empty() || name.ends_with('.') {
            return None;
        }
        rustls::pki_types::DnsName::try_from(name).ok()?;
        Some(TlsName::Dns(name.to_ascii_lowercase()))
    }

    /// The name as it goes in a URL's host: IPv6 addresses in brackets.
    pub fn url_host(&self) -> String {
        match self {
            TlsName::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for TlsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsName::Ip(ip) => write!(f, "{ip}"),
            TlsName::Dns(name) => f.write_str(name),
        }
    }
}

/// The names the server certificate must carry, in order and without repeats: `cln`,
/// `localhost`, `host` (an IP address, possibly in brackets, or a host name; an empty or
/// unusable one is left out, the latter with a warning), then `extra`.
pub fn server_names(host: &str, extra: &[TlsName]) -> Vec<TlsName> {
    let mut names = vec![
        TlsName::Dns("cln".to_string()),
        TlsName::Dns("localhost".to_string()),
    ];
    let host = host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if !host.is_empty() {
        match TlsName::parse(host) {
            Some(name) => names.push(name),
            None => {
                tracing::warn!("not adding {host:?} to the server certificate's names: not an IP address or a DNS name")
            }
        }
    }
    names.extend(extra.iter().cloned());
    let mut seen = BTreeSet::new();
    names.retain(|name| seen.insert(name.clone()));
    names
}

/// The subject alternative names for `names`.
pub(super) fn subject_alt_names(names: &[TlsName]) -> Result<Vec<SanType>, TlsError> {
    names
        .iter()
        .map(|name| match name {
            TlsName::Ip(ip) => Ok(SanType::IpAddress(*ip)),
            TlsName::Dns(dns) => dns
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(TlsError::Generate),
        })
        .collect()
}

/// The IP and DNS names in a certificate's subject alternative names (other kinds are
/// ignored).
pub(super) fn names_in_cert(der: &[u8]) -> Result<BTreeSet<TlsName>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let mut names = BTreeSet::new();
    let Some(extension) = cert.subject_alternative_name().map_err(|e| e.to_string())? else {
        return Ok(names);
    };
    use x509_parser::extensions::GeneralName;
    for name in &extension.value.general_names {
        match name {
            GeneralName::DNSName(dns) => {
                names.insert(TlsName::Dns(dns.to_ascii_lowercase()));
            }
            GeneralName::IPAddress(bytes) => {
                if let Ok(octets) = <[u8; 4]>::try_from(*bytes) {
                    names.insert(TlsName::Ip(IpAddr::from(octets)));
                } else if let Ok(octets) = <[u8; 16]>::try_from(*bytes) {
                    names.insert(TlsName::Ip(IpAddr::from(octets)));
                }
            }
            _ => {}
        }
    }
    Ok(names)
}

/// A set of names for a log line: `cln, localhost, 127.0.0.1`.
pub(super) fn list<'a>(names: impl IntoIterator<Item = &'a TlsName>) -> String {
    let names: Vec<String> = names.into_iter().map(ToString::to_string).collect();
    if names.is_empty() {
        "no name".to_string()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ips_dns_names_and_onions_and_refuses_the_rest() {
        let onion = "vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd.onion";
        for (value, expected) in [
            ("10.0.0.5", "10.0.0.5"),
            ("::1", "::1"),
            ("[fe80::1]", "fe80::1"),
            ("Node.Example.COM", "node.example.com"),
            ("node.example.com.", "node.example.com"),
            ("my_node", "my_node"),
            (onion, onion),
        ] {
            let name = TlsName::parse(value).unwrap_or_else(|| panic!("{value} refused"));
            assert_eq!(name.to_string(), expected, "{value}");
        }
        assert_eq!(TlsName::parse("::1").unwrap().url_host(), "[::1]");
        for value in [
            "",
            ".",
            " node.example.com",
            "*.example.com",
            "a..b",
            "-a.example",
            "1.2.3",
            "10.0.0.256",
            "[10.0.0.1]",
            "http://x",
            "a/b",
            "node.example.com..",
        ] {
            assert_eq!(TlsName::parse(value), None, "{value:?} accepted");
        }
    }

    #[test]
    fn server_names_are_in_order_without_repeats() {
        let extra = [
            TlsName::parse("LOCALHOST").unwrap(),
            TlsName::parse("node.example").unwrap(),
            TlsName::parse("127.0.0.1").unwrap(),
        ];
        assert_eq!(
            list(&server_names("127.0.0.1", &extra)),
            "cln, localhost, 127.0.0.1, node.example"
        );
        assert_eq!(list(&server_names("[::1]", &[])), "cln, localhost, ::1");
        assert_eq!(list(&server_names("", &[])), "cln, localhost");
    }
}
