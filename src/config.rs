//! The plugin's options: their names, types and defaults as registered with lightningd, and
//! their validation into a [`Config`] at `init`.
//!
//! Validation messages are part of the interface: lightningd logs them verbatim as
//! `Killing plugin: disabled itself at init: <reason>`, and operators search for them.

use crate::broker::url::{AmqpUrl, UrlError};
use crate::broker::{self, AmqpSettings};
use crate::tls::{ClientAuth, OwnCert, TlsName};
use cln_plugin::options::{
    ConfigOption, DefaultIntegerConfigOption, DefaultStringArrayConfigOption,
    DefaultStringConfigOption, IntegerConfigOption, StringArrayConfigOption, StringConfigOption,
};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// The default Content-Security-Policy, the same as the upstream plugin's.
pub const DEFAULT_CSP: &str = "default-src 'self'; font-src 'self'; img-src 'self' data:; frame-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline';";

pub const OPT_PORT: IntegerConfigOption =
    ConfigOption::new_i64_no_default("clnrest-port", "REST server port to listen");
pub const OPT_PROTOCOL: DefaultStringConfigOption = ConfigOption::new_str_with_default(
    "clnrest-protocol",
    "https",
    "REST server protocol (https or http)",
);
pub const OPT_HOST: DefaultStringConfigOption =
    ConfigOption::new_str_with_default("clnrest-host", "127.0.0.1", "REST server host");
pub const OPT_CERTS: StringConfigOption = ConfigOption::new_str_no_default(
    "clnrest-certs",
    "Path for certificates (default: the node's network directory)",
);
pub const OPT_CORS_ORIGINS: DefaultStringArrayConfigOption = ConfigOption::new_str_arr_with_default(
    "clnrest-cors-origins",
    "*",
    "Cross origin resource sharing origins (may be given several times)",
);
pub const OPT_CSP: DefaultStringConfigOption = ConfigOption::new_str_with_default(
    "clnrest-csp",
    DEFAULT_CSP,
    "Content security policy (CSP) for the server",
);
pub const OPT_SWAGGER_ROOT: DefaultStringConfigOption =
    ConfigOption::new_str_with_default("clnrest-swagger-root", "/", "Root path for Swagger UI");

pub const OPT_MAX_CONNECTIONS: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "clnrest-max-connections",
    DEFAULT_MAX_CONNECTIONS,
    "Most concurrent client connections; more are answered 503 and closed",
);
const DEFAULT_MAX_CONNECTIONS: i64 = 16384;

pub const OPT_TLS_EXTRA_NAME: StringArrayConfigOption = ConfigOption::new_str_arr_no_default(
    "clnrest-tls-extra-name",
    "Another IP address or DNS name (domain, .onion) for the server certificate (may be given \
     several times)",
);
pub const OPT_TLS_CERT: StringConfigOption = ConfigOption::new_str_no_default(
    "clnrest-tls-cert",
    "PEM certificate chain to serve instead of the generated server certificate (with \
     clnrest-tls-key; re-read when it changes)",
);
pub const OPT_TLS_KEY: StringConfigOption =
    ConfigOption::new_str_no_default("clnrest-tls-key", "PEM private key of clnrest-tls-cert");
pub const OPT_TLS_CLIENT_AUTH: DefaultStringConfigOption = ConfigOption::new_str_with_default(
    "clnrest-tls-client-auth",
    "none",
    "TLS client certificates signed by the CA: none, optional or required",
);

pub const OPT_AMQP_URL: StringConfigOption = ConfigOption::new_str_no_default(
    "clnrest-amqp-url",
    "Publish every notification to this AMQP 0.9.1 broker (amqp:// or amqps:// URL; unset: off)",
);
pub const OPT_AMQP_EXCHANGE: DefaultStringConfigOption = ConfigOption::new_str_with_default(
    "clnrest-amqp-exchange",
    broker::DEFAULT_EXCHANGE,
    "AMQP exchange notifications are published to (created as a durable topic exchange if \
     missing)",
);

/// Paths the REST API itself owns: the Swagger UI may not be mounted over them.
const RESERVED_PREFIXES: [&str; 4] = ["/v1", "/swagger.json", "/socket.io", "/metrics"];

/// Plain or TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Https,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
        })
    }
}

/// The option values as lightningd gave them at `init`, before validation.
#[derive(Clone, Debug, Default)]
pub struct RawOptions {
    pub port: Option<i64>,
    pub protocol: String,
    pub host: String,
    pub certs: Option<String>,
    pub cors_origins: Vec<String>,
    pub csp: String,
    pub swagger_root: String,
    pub max_connections: Option<i64>,
    pub tls_extra_names: Vec<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub tls_client_auth: String,
    pub amqp_url: Option<String>,
    pub amqp_exchange: String,
}

/// Which origins may call the API from a browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorsOrigins {
    Any,
    List(Vec<String>),
}

/// The validated configuration the server runs with.
#[derive(Clone, Debug)]
pub struct Config {
    pub port: u16,
    pub protocol: Protocol,
    /// The host exactly as configured (an IP address or `localhost`), used in logs and
    /// certificates.
    pub host: String,
    /// Where to listen.
    pub bind_addr: SocketAddr,
    /// `clnrest-certs`, if given; otherwise certificates live in the lightning dir.
    pub certs_dir: Option<PathBuf>,
    pub cors_origins: CorsOrigins,
    pub csp: String,
    /// Where Swagger UI is mounted, without a trailing `/` (except the root itself).
    pub swagger_root: String,
    /// Most concurrent client connections.
    pub max_connections: usize,
    /// `clnrest-tls-extra-name`s, in the order given (see [`Config::tls_extra_names`]).
    pub tls_extra_names: Vec<TlsName>,
    /// `clnrest-tls-cert` and `clnrest-tls-key`, when both are set.
    pub tls_own_cert: Option<OwnCert>,
    pub tls_client_auth: ClientAuth,
    /// `clnrest-amqp-url` and `clnrest-amqp-exchange`, when the URL is set.
    pub amqp: Option<AmqpSettings>,
}

/// A reason to refuse the configuration; its text is what lightningd logs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("`clnrest-port` option is not configured")]
    MissingPort,
    #[error("`clnrest-port` {0}, should be a valid available port between 1024 and 65535.")]
    PortOutOfRange(i64),
    #[error("`clnrest-protocol` can either be http or https.")]
    BadProtocol,
    #[error("`clnrest-host` should be a valid IP.")]
    BadHost,
    #[error("`clnrest-swagger-root` must start with `/`")]
    SwaggerRootNotAbsolute,
    #[error("`clnrest-swagger-root` {0} may only contain letters, digits and -._~/")]
    SwaggerRootCharacters(String),
    #[error("`clnrest-swagger-root` {0} would hide the REST API's own {1}")]
    SwaggerRootReserved(String, &'static str),
    #[error("`clnrest-cors-origins` {0} is not a valid origin")]
    BadCorsOrigin(String),
    #[error("`clnrest-csp` is not a valid header value")]
    BadCsp,
    #[error("`clnrest-max-connections` {0}, should be at least 1")]
    BadMaxConnections(i64),
    #[error("`clnrest-tls-extra-name` {0} is not an IP address or a DNS name")]
    BadTlsExtraName(String),
    #[error("`clnrest-tls-cert` is set but `clnrest-tls-key` is not: give both or neither")]
    TlsCertWithoutKey,
    #[error("`clnrest-tls-key` is set but `clnrest-tls-cert` is not: give both or neither")]
    TlsKeyWithoutCert,
    #[error("`clnrest-tls-client-auth` can be none, optional or required.")]
    BadTlsClientAuth,
    #[error("`clnrest-tls-client-auth` {0} needs `clnrest-protocol` https")]
    TlsClientAuthWithoutHttps(ClientAuth),
    /// The URL itself is never repeated: it may hold a password.
    #[error("`clnrest-amqp-url` should be amqp[s]://[user[:password]@]host[:port][/vhost]: {0}")]
    BadAmqpUrl(UrlError),
    #[error("`clnrest-amqp-exchange` {0} should be 1 to 255 letters, digits and -_.:")]
    BadAmqpExchange(String),
}

impl RawOptions {
    /// Reads the option values from the plugin being configured.
    pub fn from_plugin<I, O>(
        plugin: &cln_plugin::ConfiguredPlugin<crate::state::AppState, I, O>,
    ) -> anyhow::Result<RawOptions>
    where
        I: tokio::io::AsyncRead + Send + Unpin + 'static,
        O: tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        Ok(RawOptions {
            port: plugin.option(&OPT_PORT)?,
            protocol: plugin.option(&OPT_PROTOCOL)?,
            host: plugin.option(&OPT_HOST)?,
            certs: plugin.option(&OPT_CERTS)?,
            cors_origins: string_list(plugin.option_str(OPT_CORS_ORIGINS.name)?),
            csp: plugin.option(&OPT_CSP)?,
            swagger_root: plugin.option(&OPT_SWAGGER_ROOT)?,
            max_connections: plugin.option(&OPT_MAX_CONNECTIONS).ok(),
            tls_extra_names: string_list(plugin.option_str(OPT_TLS_EXTRA_NAME.name)?),
            tls_cert: plugin.option(&OPT_TLS_CERT)?,
            tls_key: plugin.option(&OPT_TLS_KEY)?,
            tls_client_auth: plugin.option(&OPT_TLS_CLIENT_AUTH)?,
            amqp_url: plugin.option(&OPT_AMQP_URL)?,
            amqp_exchange: plugin.option(&OPT_AMQP_EXCHANGE)?,
        })
    }
}

/// A multi string option's values. Read by hand: cln-plugin represents this option's default
/// as a single string and panics when asked for it as a list.
fn string_list(value: Option<cln_plugin::options::Value>) -> Vec<String> {
    use cln_plugin::options::Value;
    match value {
        Some(Value::StringArray(values)) => values,
        Some(Value::String(value)) => vec![value],
        _ => Vec::new(),
    }
}

impl Config {
    /// Validates the options, in the order the upstream plugin checks them.
    pub fn validate(raw: RawOptions) -> Result<Config, ConfigError> {
        let port = raw.port.ok_or(ConfigError::MissingPort)?;
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p >= 1024)
            .ok_or(ConfigError::PortOutOfRange(port))?;

        let protocol = match raw.protocol.to_ascii_lowercase().as_str() {
            "http" => Protocol::Http,
            "https" => Protocol::Https,
            _ => return Err(ConfigError::BadProtocol),
        };

        let ip = if raw.host == "localhost" {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            raw.host
                .parse::<IpAddr>()
                .map_err(|_| ConfigError::BadHost)?
        };

        let swagger_root = validate_swagger_root(&raw.swagger_root)?;

        let cors_origins =
            if raw.cors_origins.is_empty() || raw.cors_origins.iter().any(|o| o == "*") {
                CorsOrigins::Any
            } else {
                for origin in &raw.cors_origins {
                    if http::HeaderValue::from_str(origin).is_err() || origin.is_empty() {
                        return Err(ConfigError::BadCorsOrigin(origin.clone()));
                    }
                }
                CorsOrigins::List(raw.cors_origins.clone())
            };

        if http::HeaderValue::from_str(&raw.csp).is_err() {
            return Err(ConfigError::BadCsp);
        }

        let max_connections = raw.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        let max_connections = usize::try_from(max_connections)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or(ConfigError::BadMaxConnections(max_connections))?;

        let tls_extra_names = raw
            .tls_extra_names
            .iter()
            .map(|value| {
                TlsName::parse(value).ok_or_else(|| ConfigError::BadTlsExtraName(value.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tls_own_cert = match (raw.tls_cert, raw.tls_key) {
            (Some(cert), Some(key)) => Some(OwnCert {
                cert: PathBuf::from(cert),
                key: PathBuf::from(key),
            }),
            (Some(_), None) => return Err(ConfigError::TlsCertWithoutKey),
            (None, Some(_)) => return Err(ConfigError::TlsKeyWithoutCert),
            (None, None) => None,
        };
        let tls_client_auth = if raw.tls_client_auth.is_empty() {
            ClientAuth::None
        } else {
            ClientAuth::parse(&raw.tls_client_auth).ok_or(ConfigError::BadTlsClientAuth)?
        };
        if protocol == Protocol::Http && tls_client_auth != ClientAuth::None {
            return Err(ConfigError::TlsClientAuthWithoutHttps(tls_client_auth));
        }

        let amqp = match raw.amqp_url {
            None => None,
            Some(url) => {
                let url = AmqpUrl::parse(&url).map_err(ConfigError::BadAmqpUrl)?;
                if !broker::is_exchange_name(&raw.amqp_exchange) {
                    return Err(ConfigError::BadAmqpExchange(raw.amqp_exchange));
                }
                Some(AmqpSettings {
                    url,
                    exchange: raw.amqp_exchange,
                })
            }
        };

        Ok(Config {
            port,
            protocol,
            host: raw.host,
            bind_addr: SocketAddr::new(ip, port),
            certs_dir: raw.certs.map(PathBuf::from),
            cors_origins,
            csp: raw.csp,
            swagger_root,
            max_connections,
            tls_extra_names,
            tls_own_cert,
            tls_client_auth,
            amqp,
        })
    }

    /// The `clnrest-tls-extra-name`s, in the order configured: the names (besides `cln`,
    /// `localhost` and `clnrest-host`) clients may reach the server by. [`TlsName::url_host`]
    /// writes one as a URL's host.
    pub fn tls_extra_names(&self) -> &[TlsName] {
        &self.tls_extra_names
    }

    /// The certificate directory: `clnrest-certs`, else `lightning_dir` (the node's network
    /// directory). It holds `ca.pem`, `client.pem` and `client-key.pem` ([`crate::tls`]).
    pub fn certs_dir_or(&self, lightning_dir: &Path) -> PathBuf {
        self.certs_dir
            .clone()
            .unwrap_or_else(|| lightning_dir.to_path_buf())
    }

    /// The URL clients use, as logged once the server listens.
    pub fn url(&self) -> String {
        format!("{}://{}:{}", self.protocol, self.host, self.port)
    }
}

fn validate_swagger_root(root: &str) -> Result<String, ConfigError> {
    if !root.starts_with('/') {
        return Err(ConfigError::SwaggerRootNotAbsolute);
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~/".contains(c);
    if !root.chars().all(allowed) || root.contains("//") {
        return Err(ConfigError::SwaggerRootCharacters(root.to_string()));
    }
    let trimmed = root.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok("/".to_string());
    }
    for reserved in RESERVED_PREFIXES {
        if trimmed == reserved || trimmed.starts_with(&format!("{reserved}/")) {
            return Err(ConfigError::SwaggerRootReserved(root.to_string(), reserved));
        }
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawOptions {
        RawOptions {
            port: Some(3010),
            protocol: "https".into(),
            host: "127.0.0.1".into(),
            certs: None,
            cors_origins: vec!["*".into()],
            csp: DEFAULT_CSP.into(),
            swagger_root: "/".into(),
            max_connections: None,
            tls_extra_names: Vec::new(),
            tls_cert: None,
            tls_key: None,
            tls_client_auth: "none".into(),
            amqp_url: None,
            amqp_exchange: broker::DEFAULT_EXCHANGE.into(),
        }
    }

    fn error_of(raw: RawOptions) -> String {
        Config::validate(raw).unwrap_err().to_string()
    }

    #[test]
    fn defaults_validate() {
        let config = Config::validate(raw()).unwrap();
        assert_eq!(config.url(), "https://127.0.0.1:3010");
        assert_eq!(config.cors_origins, CorsOrigins::Any);
        assert_eq!(config.swagger_root, "/");
    }

    #[test]
    fn messages_are_exact() {
        assert_eq!(
            error_of(RawOptions {
                port: None,
                ..raw()
            }),
            "`clnrest-port` option is not configured"
        );
        assert_eq!(
            error_of(RawOptions {
                port: Some(80),
                ..raw()
            }),
            "`clnrest-port` 80, should be a valid available port between 1024 and 65535."
        );
        assert_eq!(
            error_of(RawOptions {
                port: Some(65536),
                ..raw()
            }),
            "`clnrest-port` 65536, should be a valid available port between 1024 and 65535."
        );
        assert_eq!(
            error_of(RawOptions {
                protocol: "ftp".into(),
                ..raw()
            }),
            "`clnrest-protocol` can either be http or https."
        );
        assert_eq!(
            error_of(RawOptions {
                host: "example.com".into(),
                ..raw()
            }),
            "`clnrest-host` should be a valid IP."
        );
        assert_eq!(
            error_of(RawOptions {
                swagger_root: "docs".into(),
                ..raw()
            }),
            "`clnrest-swagger-root` must start with `/`"
        );
    }

    #[test]
    fn protocol_is_case_insensitive_and_localhost_is_a_host() {
        let config = Config::validate(RawOptions {
            protocol: "HTTP".into(),
            host: "localhost".into(),
            ..raw()
        })
        .unwrap();
        assert_eq!(config.protocol, Protocol::Http);
        assert_eq!(config.url(), "http://localhost:3010");
        assert_eq!(config.bind_addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn swagger_root_cannot_shadow_the_api() {
        assert!(error_of(RawOptions {
            swagger_root: "/v1".into(),
            ..raw()
        })
        .contains("would hide"));
        assert!(error_of(RawOptions {
            swagger_root: "/metrics".into(),
            ..raw()
        })
        .contains("would hide"));
        assert!(error_of(RawOptions {
            swagger_root: "/a{b}".into(),
            ..raw()
        })
        .contains("may only contain"));
        let config = Config::validate(RawOptions {
            swagger_root: "/docs/".into(),
            ..raw()
        });
        assert_eq!(config.unwrap().swagger_root, "/docs");
    }

    #[test]
    fn cors_list_is_kept_unless_it_contains_a_star() {
        let config = Config::validate(RawOptions {
            cors_origins: vec!["https://a.example".into(), "https://b.example".into()],
            ..raw()
        })
        .unwrap();
        assert_eq!(
            config.cors_origins,
            CorsOrigins::List(vec!["https://a.example".into(), "https://b.example".into()])
        );
    }

    #[test]
    fn tls_options_validate_with_exact_messages() {
        let config = Config::validate(RawOptions {
            tls_extra_names: vec!["192.168.1.20".into(), "Node.Example.com".into()],
            tls_cert: Some("/etc/fullchain.pem".into()),
            tls_key: Some("/etc/privkey.pem".into()),
            tls_client_auth: "Required".into(),
            ..raw()
        })
        .unwrap();
        let names: Vec<String> = config
            .tls_extra_names()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(names, ["192.168.1.20", "node.example.com"]);
        assert_eq!(config.tls_client_auth, ClientAuth::Required);
        assert_eq!(
            config.tls_own_cert,
            Some(OwnCert {
                cert: "/etc/fullchain.pem".into(),
                key: "/etc/privkey.pem".into()
            })
        );
        assert_eq!(
            config.certs_dir_or(Path::new("/ln/regtest")),
            PathBuf::from("/ln/regtest")
        );
        assert_eq!(
            Config::validate(raw()).unwrap().tls_client_auth,
            ClientAuth::None
        );

        for bad in ["*.example.com", "node example", "10.0.0.300", ""] {
            assert_eq!(
                error_of(RawOptions {
                    tls_extra_names: vec!["ok.example".into(), bad.into()],
                    ..raw()
                }),
                format!("`clnrest-tls-extra-name` {bad} is not an IP address or a DNS name")
            );
        }
        assert_eq!(
            error_of(RawOptions {
                tls_cert: Some("/c.pem".into()),
                ..raw()
            }),
            "`clnrest-tls-cert` is set but `clnrest-tls-key` is not: give both or neither"
        );
        assert_eq!(
            error_of(RawOptions {
                tls_key: Some("/k.pem".into()),
                ..raw()
            }),
            "`clnrest-tls-key` is set but `clnrest-tls-cert` is not: give both or neither"
        );
        assert_eq!(
            error_of(RawOptions {
                tls_client_auth: "yes".into(),
                ..raw()
            }),
            "`clnrest-tls-client-auth` can be none, optional or required."
        );
        assert_eq!(
            error_of(RawOptions {
                protocol: "http".into(),
                tls_client_auth: "optional".into(),
                ..raw()
            }),
            "`clnrest-tls-client-auth` optional needs `clnrest-protocol` https"
        );
    }

    #[test]
    fn amqp_options_validate_with_exact_messages() {
        assert_eq!(Config::validate(raw()).unwrap().amqp, None);
        let config = Config::validate(RawOptions {
            amqp_url: Some("amqps://ln:secret@broker.example/shop".into()),
            amqp_exchange: "amq.topic".into(),
            ..raw()
        })
        .unwrap();
        let amqp = config.amqp.unwrap();
        assert_eq!(amqp.exchange, "amq.topic");
        assert_eq!(amqp.url.to_string(), "amqps://ln@broker.example:5671/shop");
        assert_eq!(
            error_of(RawOptions {
                amqp_url: Some("http://ln:secret@broker.example".into()),
                ..raw()
            }),
            "`clnrest-amqp-url` should be amqp[s]://[user[:password]@]host[:port][/vhost]: \
             its scheme is http, not amqp or amqps"
        );
        assert_eq!(
            error_of(RawOptions {
                amqp_url: Some("amqp://h".into()),
                amqp_exchange: "my exchange".into(),
                ..raw()
            }),
            "`clnrest-amqp-exchange` my exchange should be 1 to 255 letters, digits and -_.:"
        );
        // Without a URL the exchange is not used, so not checked.
        assert!(Config::validate(RawOptions {
            amqp_exchange: String::new(),
            ..raw()
        })
        .is_ok());
    }
}
