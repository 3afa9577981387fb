//! TLS for SPICE links with rustls: the server certificate must chain to the given CA and
//! match either the certificate subject announced by the source (MIGRATE_BEGIN's
//! cert_subject, or the configured one) or the host name (spec/spice-migration.md
//! invariant 15; subject syntax as spice-common's `ssl_verify.c`: `TYPE=value` entries
//! separated by `,`, `\,` and `\\` escapes, compared in order).

use std::sync::Arc;

use livemig_core::spice::session::Verify;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA file holds no usable certificate.
    #[error("CA: {0}")]
    Ca(String),
    /// The server name is not a valid DNS name or IP address.
    #[error("bad server name {0:?}")]
    Name(String),
    /// rustls refused the configuration.
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Trust anchors for SPICE servers.
#[derive(Clone, Debug)]
pub struct Trust {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl Trust {
    /// Trust the CA certificates in `pem`.
    pub fn from_pem(pem: &[u8]) -> Result<Trust, TlsSetupError> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| TlsSetupError::Ca(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| TlsSetupError::Ca(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(TlsSetupError::Ca("no certificate in the CA file".into()));
        }
        Ok(Trust {
            roots: Arc::new(roots),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        })
    }

    /// A client connection for one link, verified as `verify` says.
    pub fn connect(&self, verify: &Verify, host: &str) -> Result<ClientConnection, TlsSetupError> {
        let webpki =
            WebPkiServerVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
                .build()
                .map_err(|e| TlsSetupError::Ca(e.to_string()))?;
        let builder = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?;
        let (config, name) = match verify {
            Verify::Hostname(h) => (
                builder.with_webpki_verifier(webpki).with_no_client_auth(),
                h.clone(),
            ),
            Verify::Subject(subject) => {
                let v = SubjectVerifier {
                    roots: self.roots.clone(),
                    subject: parse_subject(subject),
                    provider: self.provider.clone(),
                };
                (
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(v))
                        .with_no_client_auth(),
                    host.to_owned(),
                )
            }
        };
        let name = ServerName::try_from(name.clone()).map_err(|_| TlsSetupError::Name(name))?;
        Ok(ClientConnection::new(Arc::new(config), name)?)
    }
}

/// `TYPE=value` pairs of a subject string, in order (spice-common `ssl_verify.c`).
pub fn parse_subject(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    let mut entries = Vec::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' => entries.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    entries.push(cur);
    for e in entries {
        let e = e.trim_start();
        if e.is_empty() {
            continue;
        }
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        out.push((k.trim().to_ascii_uppercase(), v.to_owned()));
    }
    out
}

/// The subject of a DER certificate as ordered `TYPE=value` pairs.
pub fn cert_subject(der: &[u8]) -> Option<Vec<(String, String)>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut out = Vec::new();
    for rdn in cert.subject().iter() {
        for atv in rdn.iter() {
            let oid = atv.attr_type();
            let key = x509_parser::objects::oid2abbrev(oid, x509_parser::objects::oid_registry())
                .map(|s| s.to_ascii_uppercase())
                .unwrap_or_else(|_| oid.to_id_string());
            let value = atv.as_str().ok()?.to_owned();
            out.push((key, value));
        }
    }
    Some(out)
}

/// Chain to the CA (any name), then compare the leaf's subject with the expected one.
#[derive(Debug)]
struct SubjectVerifier {
    roots: Arc<RootCertStore>,
    subject: Vec<(String, String)>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SubjectVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| rustls::Error::General(format!("bad certificate: {e:?}")))?;
        cert.verify_for_usage(
            self.provider.signature_verification_algorithms.all,
            &self.roots.roots,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| rustls::Error::General(format!("certificate chain: {e:?}")))?;
        let got = cert_subject(end_entity.as_ref())
            .ok_or_else(|| rustls::Error::General("unreadable certificate subject".into()))?;
        if got != self.subject {
            return Err(rustls::Error::General(format!(
                "certificate subject {got:?} differs from the expected {:?}",
                self.subject
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_subject;

    #[test]
    fn subject_syntax_follows_spice_common() {
        assert_eq!(
            parse_subject("C=XX, L=livemig,O=a\\,b,CN=127.0.0.1"),
            vec![
                ("C".into(), "XX".into()),
                ("L".into(), "livemig".into()),
                ("O".into(), "a,b".into()),
                ("CN".into(), "127.0.0.1".into()),
            ]
        );
    }
}
