//! Backends behind credentials, on 127.0.0.1, for the suite that proves the forwarder reaches
//! them (issue 13).
//!
//! - [`Pki`]: a CA, a server certificate and a client certificate signed by it, and an unrelated
//!   CA with a client certificate of its own; made fresh for each run.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// The common name of [`Pki::ca_pem`]'s certificate.
pub const CA_CN: &str = "sfit test CA";
/// The common name of [`Pki::client_pem`]'s certificate.
pub const CLIENT_CN: &str = "sfit forwarder";
/// The common name of [`Pki::other_ca_pem`]'s certificate.
pub const OTHER_CA_CN: &str = "sfit other CA";
/// The common name of [`Pki::other_client_pem`]'s certificate.
pub const OTHER_CLIENT_CN: &str = "sfit other forwarder";

/// Certificates for mutual TLS, each with an ECDSA P-256 key.
pub struct Pki {
    ca: String,
    /// The backend's certificate, for IP 127.0.0.1 and DNS `localhost`, and its key.
    server: String,
    client: String,
    other_ca: String,
    other_client: String,
}

impl Pki {
    /// Makes a CA ([`CA_CN`]) that signs the backend's certificate and a client certificate
    /// ([`CLIENT_CN`]), and an unrelated CA ([`OTHER_CA_CN`]) that signs a client certificate of
    /// its own ([`OTHER_CLIENT_CN`]).
    pub fn generate() -> Result<Self, String> {
        let make = || -> Result<Self, rcgen::Error> {
            let ca = authority(CA_CN)?;
            let other_ca = authority(OTHER_CA_CN)?;
            Ok(Self {
                server: leaf(
                    &ca,
                    "sfit backend",
                    &["127.0.0.1", "localhost"],
                    ExtendedKeyUsagePurpose::ServerAuth,
                )?,
                client: leaf(&ca, CLIENT_CN, &[], ExtendedKeyUsagePurpose::ClientAuth)?,
                other_client: leaf(
                    &other_ca,
                    OTHER_CLIENT_CN,
                    &[],
                    ExtendedKeyUsagePurpose::ClientAuth,
                )?,
                ca: ca.pem(),
                other_ca: other_ca.pem(),
            })
        };
        make().map_err(|e| format!("cannot generate the test certificates: {e}"))
    }

    /// The CA's certificate (PEM): the root the forwarder must trust for the backend's
    /// certificate, and the one the backend trusts for client certificates at first.
    pub fn ca_pem(&self) -> &str {
        &self.ca
    }

    /// The client certificate's chain (the certificate alone: the CA signed it) followed by its
    /// PKCS#8 private key, in one PEM string: what the forwarder reads from its secret.
    pub fn client_pem(&self) -> &str {
        &self.client
    }

    /// The unrelated CA's certificate (PEM), for [`SecureBackend::trust_client_ca`].
    pub fn other_ca_pem(&self) -> &str {
        &self.other_ca
    }

    /// A client certificate and key as [`Pki::client_pem`], signed by the unrelated CA: one the
    /// backend does not trust until it is told to trust [`Pki::other_ca_pem`].
    pub fn other_client_pem(&self) -> &str {
        &self.other_client
    }
}

/// A self-signed CA named `cn`.
fn authority(cn: &str) -> Result<CertifiedIssuer<'static, KeyPair>, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate()?)
}

/// A certificate for `names` (IP addresses or DNS names) signed by `issuer`, followed by its
/// PKCS#8 private key, in PEM.
fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> Result<String, rcgen::Error> {
    let mut params =
        CertificateParams::new(names.iter().map(|&n| n.to_owned()).collect::<Vec<_>>())?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let certificate = params.signed_by(&key, issuer)?;
    Ok(format!("{}{}", certificate.pem(), key.serialize_pem()))
}
