//! `clnrest-amqp-url`: an `amqp://` or `amqps://` URL, read once at `init` into what the
//! client needs to connect.
//!
//! The form is RabbitMQ's URI spec: `amqp[s]://[user[:password]@]host[:port][/vhost]`, the user,
//! password and vhost percent-decoded; no user means `guest`/`guest`; no path (or `/`) means the
//! default vhost `/` (write `%2f` to name it explicitly). Of the spec's query parameters only
//! `heartbeat` (seconds) is taken; any other is refused rather than silently ignored.
//!
//! The password never leaves this module in text meant for people: [`AmqpUrl`]'s `Display` and
//! every validation message leave it out.

use amqprs::connection::OpenConnectionArguments;
use amqprs::tls::TlsAdaptor;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::fmt;
use std::sync::Arc;

/// What [`AmqpUrl`]'s `Display` escapes in the user and the vhost (RFC 3986's unreserved
/// characters are left as they are).
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The port of `amqp://` when the URL names none.
pub const AMQP_PORT: u16 = 5672;
/// The port of `amqps://` when the URL names none.
pub const AMQPS_PORT: u16 = 5671;
/// The heartbeat asked for when the URL names none (seconds), as RabbitMQ suggests.
pub const DEFAULT_HEARTBEAT: u16 = 60;

/// A validated broker URL.
#[derive(Clone, PartialEq, Eq)]
pub struct AmqpUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub user: String,
    password: String,
    pub vhost: String,
    pub heartbeat: u16,
}

/// Why a `clnrest-amqp-url` was refused; the text goes after the option's name in the
/// plugin's disable message. It never contains the password.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The parser's reason (it never quotes the input).
    #[error("it is not a URL ({0})")]
    NotAUrl(String),
    #[error("its scheme is {0}, not amqp or amqps")]
    Scheme(String),
    #[error("it names no host")]
    NoHost,
    #[error("its {0} is not valid UTF-8 once percent-decoded")]
    Encoding(&'static str),
    #[error("its port should be a number from 1 to 65535")]
    Port,
    #[error("its heartbeat should be a number of seconds from 0 to 65535")]
    Heartbeat,
    #[error("its query parameter {0} is not supported (only heartbeat is)")]
    Query(String),
    #[error("it has a fragment")]
    Fragment,
}

impl AmqpUrl {
    pub fn parse(text: &str) -> Result<AmqpUrl, UrlError> {
        let url = ::url::Url::parse(text.trim()).map_err(|e| match e {
            ::url::ParseError::EmptyHost => UrlError::NoHost,
            ::url::ParseError::InvalidPort => UrlError::Port,
            other => UrlError::NotAUrl(other.to_string()),
        })?;
        let tls = match url.scheme() {
            "amqp" => false,
            "amqps" => true,
            other => return Err(UrlError::Scheme(other.to_string())),
        };
        let host = match url.host() {
            Some(::url::Host::Domain(name)) if !name.is_empty() => decode(name, "host")?,
            Some(::url::Host::Ipv4(ip)) => ip.to_string(),
            Some(::url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(UrlError::NoHost),
        };
        if url.fragment().is_some() {
            return Err(UrlError::Fragment);
        }
        let port = match url.port() {
            Some(0) => return Err(UrlError::Port),
            Some(port) => port,
            None if tls => AMQPS_PORT,
            None => AMQP_PORT,
        };
        let (user, password) = if url.username().is_empty() {
            ("guest".to_string(), "guest".to_string())
        } else {
            (
                decode(url.username(), "user")?,
                decode(url.password().unwrap_or_default(), "password")?,
            )
        };
        let vhost = match url.path() {
            "" | "/" => "/".to_string(),
            path => decode(path.strip_prefix('/').unwrap_or(path), "vhost")?,
        };
        let mut heartbeat = DEFAULT_HEARTBEAT;
        for (name, value) in url.query_pairs() {
            match name.as_ref() {
                "heartbeat" => heartbeat = value.parse().map_err(|_| UrlError::Heartbeat)?,
                other => return Err(UrlError::Query(other.to_string())),
            }
        }
        Ok(AmqpUrl {
            tls,
            host,
            port,
            user,
            password,
            vhost,
            heartbeat,
        })
    }

    /// What the client connects with; `tls` is [`AmqpUrl::tls_adaptor`]'s, for `amqps`.
    pub fn connection_arguments(&self, tls: Option<&TlsAdaptor>) -> OpenConnectionArguments {
        let mut arguments =
            OpenConnectionArguments::new(&self.host, self.port, &self.user, &self.password);
        arguments
            .virtual_host(&self.vhost)
            .heartbeat(self.heartbeat)
            .connection_name(concat!("clnrest/", env!("CARGO_PKG_VERSION")));
        if let Some(tls) = tls {
            arguments.scheme("amqps").tls_adaptor(tls.clone());
        }
        arguments
    }

    /// For `amqps`, TLS that checks the broker's certificate against the system's CA
    /// certificates, as webhook deliveries do (`crate::tls::client`), and the URL's
    /// host name; `None` for `amqp`. Build it once: it reads the system's store.
    pub fn tls_adaptor(&self) -> Result<Option<TlsAdaptor>, rustls::Error> {
        if !self.tls {
            return Ok(None);
        }
        let config = crate::tls::client::config("AMQP broker")?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        Ok(Some(TlsAdaptor::new(connector, self.host.clone())))
    }
}

fn decode(part: &str, what: &'static str) -> Result<String, UrlError> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| UrlError::Encoding(what))
}

/// `amqp[s]://user@host:port/vhost`, without the password.
impl fmt::Display for AmqpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "amqps" } else { "amqp" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let user = utf8_percent_encode(&self.user, ESCAPED);
        let vhost = utf8_percent_encode(&self.vhost, ESCAPED);
        write!(f, "{scheme}://{user}@{host}:{}/{vhost}", self.port)
    }
}

impl fmt::Debug for AmqpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AmqpUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_uri_spec() {
        let url = AmqpUrl::parse("amqp://broker.example").unwrap();
        assert_eq!(
            (url.tls, url.host.as_str(), url.port, url.user.as_str()),
            (false, "broker.example", AMQP_PORT, "guest")
        );
        assert_eq!(url.password, "guest");
        assert_eq!(url.vhost, "/");
        assert_eq!(url.heartbeat, DEFAULT_HEARTBEAT);
        let tls = AmqpUrl::parse("amqps://h/").unwrap();
        assert_eq!(
            (tls.tls, tls.port, tls.vhost.as_str()),
            (true, AMQPS_PORT, "/")
        );
    }

    #[test]
    fn user_password_and_vhost_are_percent_decoded_and_the_password_is_never_shown() {
        let url = AmqpUrl::parse("amqp://ln%40node:p%3Ass@10.0.0.5:5673/shop%2Fprod?heartbeat=15")
            .unwrap();
        assert_eq!(url.user, "ln@node");
        assert_eq!(url.password, "p:ss");
        assert_eq!(url.vhost, "shop/prod");
        assert_eq!((url.port, url.heartbeat), (5673, 15));
        let shown = format!("{url} {url:?}");
        assert!(
            !shown.contains("p:ss") && !shown.contains("p%3Ass"),
            "{shown}"
        );
        assert_eq!(
            url.to_string(),
            "amqp://ln%40node@10.0.0.5:5673/shop%2Fprod"
        );
        assert_eq!(AmqpUrl::parse("amqp://h/%2f").unwrap().vhost, "/");
        assert_eq!(
            AmqpUrl::parse("amqp://[::1]:5672").unwrap().to_string(),
            "amqp://guest@[::1]:5672/%2F"
        );
    }

    #[test]
    fn amqps_gets_tls_with_the_system_roots_and_amqp_none() {
        let tls = AmqpUrl::parse("amqps://broker.example").unwrap();
        let adaptor = tls.tls_adaptor().unwrap();
        assert!(adaptor.is_some());
        // Builds (the roots themselves: `tls::client`'s test).
        let _ = tls.connection_arguments(adaptor.as_ref());
        let plain = AmqpUrl::parse("amqp://broker.example").unwrap();
        assert!(plain.tls_adaptor().unwrap().is_none());
    }

    #[test]
    fn what_is_refused_and_why() {
        let cases = [
            ("broker:5672", UrlError::Scheme("broker".into())),
            (
                "not a url",
                UrlError::NotAUrl("relative URL without a base".into()),
            ),
            ("http://h", UrlError::Scheme("http".into())),
            ("amqp://", UrlError::NoHost),
            ("amqp:///vhost", UrlError::NoHost),
            ("amqp://guest:secret@/", UrlError::NoHost),
            ("amqp://h?heartbeat=x", UrlError::Heartbeat),
            ("amqp://h?heartbeat=70000", UrlError::Heartbeat),
            (
                "amqp://h?cacertfile=/x",
                UrlError::Query("cacertfile".into()),
            ),
            ("amqp://h#x", UrlError::Fragment),
            ("amqp://u:%ff@h", UrlError::Encoding("password")),
            ("amqp://h:99999", UrlError::Port),
            ("amqp://h:0", UrlError::Port),
        ];
        for (text, error) in cases {
            assert_eq!(AmqpUrl::parse(text), Err(error), "{text}");
        }
    }
}
