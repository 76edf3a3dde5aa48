//! Making certificates with rcgen: a new CA, and server and client certificates issued by a
//! CA (a new one or the one on disk). ECDSA P-256 keys in PKCS#8, named as cln-grpc names
//! them.

use super::*;

/// A certificate and its key, PEM encoded, ready to be written.
pub(super) struct Issued {
    pub(super) cert_pem: String,
    pub(super) key_pem: String,
}

pub(super) fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// A new self-signed CA ("cln Root CA"): the issuer to sign leaves with, and its files.
pub(super) fn new_ca() -> Result<(Issuer<'static, KeyPair>, Issued), TlsError> {
    let key = KeyPair::generate().map_err(TlsError::Generate)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(CA_CN);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).map_err(TlsError::Generate)?;
    let issued = Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    Ok((Issuer::new(params, key), issued))
}

/// The two certificates a CA issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Leaf {
    /// `server.pem`: the names of the configuration, for server authentication.
    Server,
    /// `client.pem`: the name `cln`, for client authentication (cln-grpc, mutual TLS).
    Client,
}

impl Leaf {
    pub(super) fn cert_file(self) -> &'static str {
        match self {
            Leaf::Server => SERVER_CERT,
            Leaf::Client => CLIENT_CERT,
        }
    }

    pub(super) fn key_file(self) -> &'static str {
        match self {
            Leaf::Server => SERVER_KEY,
            Leaf::Client => CLIENT_KEY,
        }
    }
}

/// A new key and certificate for `leaf`, signed by `issuer`. `names` are the server
/// certificate's names (unused for the client certificate).
pub(super) fn issue_leaf(
    issuer: &Issuer<'_, KeyPair>,
    leaf: Leaf,
    names: &[TlsName],
) -> Result<Issued, TlsError> {
    let (cn, sans, usage) = match leaf {
        Leaf::Server => (
            SERVER_CN,
            subject_alt_names(names)?,
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        Leaf::Client => (
            CLIENT_CN,
            subject_alt_names(&[TlsName::Dns("cln".to_string())])?,
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
    };
    let key = KeyPair::generate().map_err(TlsError::Generate)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(cn);
    params.subject_alt_names = sans;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, issuer).map_err(TlsError::Generate)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}
