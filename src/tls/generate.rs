//! Generating a new set with rcgen: a CA, and a server and a client certificate it signs
//! (ECDSA P-256 keys in PKCS#8, named as cln-grpc names them).

use super::*;

/// A freshly generated set: each file name with its PEM text, in [`ALL_FILES`] order.
pub(super) struct GeneratedSet {
    pub(super) files: [(&'static str, String); 6],
}

pub(super) fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// The server certificate's subject alternative names: `cln`, `localhost` and `host`.
pub(super) fn server_sans(host: &str) -> Vec<SanType> {
    let mut names = vec!["cln".to_string(), "localhost".to_string()];
    let host = host.trim();
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip = unbracketed.parse::<IpAddr>().ok();
    if ip.is_none() && !host.is_empty() && !names.iter().any(|n| n.eq_ignore_ascii_case(host)) {
        names.push(host.to_ascii_lowercase());
    }
    let mut sans = Vec::new();
    for name in names {
        match name.clone().try_into() {
            Ok(dns) => sans.push(SanType::DnsName(dns)),
            Err(error) => {
                tracing::warn!("not adding {name:?} to the server certificate's names: {error}")
            }
        }
    }
    sans.extend(ip.map(SanType::IpAddress));
    sans
}

/// Generates the CA, server and client certificates and keys in memory.
pub(super) fn generate_set(host: &str) -> Result<GeneratedSet, TlsError> {
    let ca_key = KeyPair::generate().map_err(TlsError::Generate)?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = distinguished_name(CA_CN);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(TlsError::Generate)?;

    let leaf = |cn: &str,
                sans: Vec<SanType>,
                usage: ExtendedKeyUsagePurpose|
     -> Result<(String, String), TlsError> {
        let key = KeyPair::generate().map_err(TlsError::Generate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(cn);
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &ca).map_err(TlsError::Generate)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let (server_cert, server_key) = leaf(
        SERVER_CN,
        server_sans(host),
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let (client_cert, client_key) = leaf(
        CLIENT_CN,
        vec![SanType::DnsName(
            "cln".try_into().map_err(TlsError::Generate)?,
        )],
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;

    Ok(GeneratedSet {
        files: [
            (CA_KEY, ca.key().serialize_pem()),
            (CA_CERT, ca.pem()),
            (SERVER_KEY, server_key),
            (SERVER_CERT, server_cert),
            (CLIENT_KEY, client_key),
            (CLIENT_CERT, client_cert),
        ],
    })
}
