//! The operator's own certificate (`clnrest-tls-cert`, `clnrest-tls-key`): served through a
//! resolver whose certificate can be swapped, and re-read while the server runs so that a
//! renewed certificate (certbot) is served without a restart.

use super::*;
use rustls::server::{ClientHello, ResolvesServerCert};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

/// How often the operator's certificate and key files are checked for changes.
pub const OWN_CERT_RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// For tests: a shorter (or longer) interval, in seconds (fractions allowed), than
/// [`OWN_CERT_RELOAD_INTERVAL`].
pub const RELOAD_INTERVAL_VAR: &str = "CLNREST_TLS_RELOAD_SECS";

/// The certificate and key files an operator configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnCert {
    /// The certificate chain, leaf first (certbot's `fullchain.pem`).
    pub cert: PathBuf,
    /// Its private key (certbot's `privkey.pem`).
    pub key: PathBuf,
}

/// Serves the operator's certificate; [`OwnCertReloader`] swaps it.
#[derive(Debug)]
pub(super) struct OwnCertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for OwnCertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// Re-reads the operator's files every interval; see [`OwnCertReloader::run`].
pub struct OwnCertReloader {
    resolver: Arc<OwnCertResolver>,
    files: OwnCert,
    /// The bytes of the two files last looked at (served or refused).
    seen: (Vec<u8>, Vec<u8>),
    /// The last warning, so that an unchanged problem is logged once.
    last_warning: Option<String>,
    interval: Duration,
}

/// The interval: [`RELOAD_INTERVAL_VAR`] if set to a positive number of seconds, else
/// [`OWN_CERT_RELOAD_INTERVAL`].
fn reload_interval() -> Duration {
    std::env::var(RELOAD_INTERVAL_VAR)
        .ok()
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|secs| secs.is_finite() && *secs > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(OWN_CERT_RELOAD_INTERVAL)
}

fn read_both(files: &OwnCert) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    Ok((read_file(&files.cert)?, read_file(&files.key)?))
}

/// Parses the operator's files and builds the served certificate; warns when it has expired
/// (it is served all the same: the operator may be about to renew it).
fn certified(files: &OwnCert, bytes: &(Vec<u8>, Vec<u8>)) -> Result<CertifiedKey, TlsError> {
    let pair = parse_pair(&files.cert, &bytes.0, &files.key, &bytes.1, &provider())?;
    if let Ok((expiry, text)) = not_after(&pair.certs[0]) {
        if expiry <= unix_now() {
            tracing::warn!("{} expired on {text}", files.cert.display());
        }
    }
    Ok(pair.certified)
}

/// Loads the operator's certificate at start: an error here keeps the plugin from starting.
pub(super) fn load_own_cert(
    files: &OwnCert,
) -> Result<(Arc<OwnCertResolver>, OwnCertReloader), TlsError> {
    let bytes = read_both(files)?;
    let resolver = Arc::new(OwnCertResolver {
        current: RwLock::new(Arc::new(certified(files, &bytes)?)),
    });
    tracing::info!(
        "serving the certificate in {} (key {}), re-read when it changes",
        files.cert.display(),
        files.key.display()
    );
    let reloader = OwnCertReloader {
        resolver: resolver.clone(),
        files: files.clone(),
        seen: bytes,
        last_warning: None,
        interval: reload_interval(),
    };
    Ok((resolver, reloader))
}

impl OwnCertReloader {
    /// How often [`run`](Self::run) looks.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Checks the files every [`interval`](Self::interval), forever.
    pub async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            self.check();
        }
    }

    /// Looks at the files once: when either changed since last time, parses them and serves
    /// the new certificate, or keeps the one in use and says why. Returns whether the served
    /// certificate changed.
    pub fn check(&mut self) -> bool {
        let bytes = match read_both(&self.files) {
            Ok(bytes) => bytes,
            Err(error) => {
                self.warn(format!("{error}; still serving the previous certificate"));
                return false;
            }
        };
        if bytes == self.seen {
            return false;
        }
        let result = certified(&self.files, &bytes);
        self.seen = bytes;
        match result {
            Ok(certified) => {
                *self
                    .resolver
                    .current
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Arc::new(certified);
                self.last_warning = None;
                tracing::info!(
                    "{} or {} changed: serving the new certificate",
                    self.files.cert.display(),
                    self.files.key.display()
                );
                true
            }
            Err(error) => {
                self.warn(format!(
                    "{} or {} changed but cannot be used ({error}); still serving the previous \
                     certificate",
                    self.files.cert.display(),
                    self.files.key.display()
                ));
                false
            }
        }
    }

    fn warn(&mut self, message: String) {
        if self.last_warning.as_ref() != Some(&message) {
            tracing::warn!("{message}");
            self.last_warning = Some(message);
        }
    }
}
