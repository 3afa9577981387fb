//! Test-time certificates for SPICE over TLS.
//!
//! spice-server (through QEMU's `-spice tls-port=N,x509-dir=DIR`) reads three files from
//! `DIR`: `ca-cert.pem` (the CA it trusts), `server-cert.pem` (its certificate, signed by that
//! CA) and `server-key.pem` (the certificate's private key). [`TlsDir::generate`] writes a
//! fresh CA and server certificate (ECDSA P-256) in that layout.
//!
//! # The `cert-subject` string
//!
//! QMP `client_migrate_info` takes a `cert-subject` that spice-server forwards verbatim to the
//! client in `MAIN_MIGRATE_BEGIN[_SEAMLESS]`; the client then checks the destination's
//! certificate subject against it. spice-gtk does this in spice-common `ssl_verify.c`
//! (`subject_to_x509_name` + `verify_subject`): the string is a list of `TYPE=value` entries
//! separated by `,` (a space before a key is skipped, `\,` and `\\` escape a comma and a
//! backslash in a value, an empty value is an error), turned **in order** into an
//! `X509_NAME`, which must have as many entries as the certificate's subject and compare
//! equal with `X509_NAME_cmp` (so order matters, and comparison is of OpenSSL's canonical,
//! case-folded encoding). Hence [`TlsDir::cert_subject`] lists the certificate's RDNs in the
//! certificate's order, e.g. `C=XX,L=livemig,O=livemig,CN=127.0.0.1`, the same form as
//! spice-gtk's `--spice-host-subject` / virt-viewer's `host-subject`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// The subject used by [`TlsDir::generate_temp_default`].
pub const DEFAULT_SUBJECT: &str = "C=XX,L=livemig,O=livemig,CN=127.0.0.1";

/// The subject alternative names used by [`TlsDir::generate_temp_default`].
pub const DEFAULT_SANS: &[&str] = &["127.0.0.1", "localhost"];

/// Errors while making certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The subject string is not in the `TYPE=value,...` form, or names an unknown type.
    #[error("bad certificate subject {subject:?}: {reason}")]
    Subject { subject: String, reason: String },
    /// rcgen refused the parameters.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// Writing the files failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// A directory holding `ca-cert.pem`, `server-cert.pem` and `server-key.pem`, plus what a
/// client needs to trust it. Cheap to clone; a directory made by a `generate_temp*`
/// constructor is removed when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct TlsDir {
    /// The directory to give QEMU as `x509-dir`.
    pub dir: PathBuf,
    /// The CA certificate (PEM), to give the SPICE client as its trust anchor.
    pub ca_cert_pem: String,
    /// The server certificate (PEM).
    pub server_cert_pem: String,
    /// The server certificate's subject in the form spice clients expect in `cert-subject`
    /// (see the module docs), e.g. `C=XX,L=livemig,O=livemig,CN=127.0.0.1`.
    pub cert_subject: String,
    cleanup: Option<Arc<RemoveOnDrop>>,
}

#[derive(Debug)]
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

impl TlsDir {
    /// Generates a CA and a server certificate with `subject` (`TYPE=value,...`, types `C`,
    /// `ST`, `L`, `O`, `OU`, `CN`, in the order given) and the subject alternative names
    /// `sans` (IP addresses or DNS names) into `dir` (created if missing; files overwritten).
    /// The directory is left in place.
    pub fn generate(
        dir: impl Into<PathBuf>,
        subject: &str,
        sans: &[&str],
    ) -> Result<TlsDir, TlsError> {
        let dir = dir.into();
        let entries = parse_subject(subject)?;
        fs::create_dir_all(&dir).map_err(|e| io_err(format!("create {}", dir.display()), e))?;

        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.distinguished_name = DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "livemig test CA");
        ca_params
            .distinguished_name
            .push(DnType::OrganizationName, "livemig");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut ca_params);
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name = DistinguishedName::new();
        for (ty, value) in &entries {
            // X.520 wants countryName as a PrintableString (as OpenSSL writes it).
            let value = match ty {
                DnType::CountryName => DnValue::PrintableString(value.as_str().try_into()?),
                _ => DnValue::Utf8String(value.clone()),
            };
            params.distinguished_name.push(ty.clone(), value);
        }
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;

        let ca_cert_pem = ca_cert.pem();
        let server_cert_pem = cert.pem();
        write_file(&dir.join("ca-cert.pem"), ca_cert_pem.as_bytes(), 0o644)?;
        write_file(
            &dir.join("server-cert.pem"),
            server_cert_pem.as_bytes(),
            0o644,
        )?;
        write_file(
            &dir.join("server-key.pem"),
            key.serialize_pem().as_bytes(),
            0o600,
        )?;
        Ok(TlsDir {
            dir,
            ca_cert_pem,
            server_cert_pem,
            cert_subject: format_subject(&entries),
            cleanup: None,
        })
    }

    /// Like [`generate`](Self::generate), into a fresh directory under
    /// `std::env::temp_dir()` that is removed when the last clone of the result is dropped.
    pub fn generate_temp(subject: &str, sans: &[&str]) -> Result<TlsDir, TlsError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "livemig-tls-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        let guard = Arc::new(RemoveOnDrop(dir.clone()));
        let mut tls = TlsDir::generate(dir, subject, sans)?;
        tls.cleanup = Some(guard);
        Ok(tls)
    }

    /// [`generate_temp`](Self::generate_temp) with [`DEFAULT_SUBJECT`] and [`DEFAULT_SANS`].
    pub fn generate_temp_default() -> Result<TlsDir, TlsError> {
        TlsDir::generate_temp(DEFAULT_SUBJECT, DEFAULT_SANS)
    }

    /// `DIR/ca-cert.pem`.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join("ca-cert.pem")
    }

    /// `DIR/server-cert.pem`.
    pub fn server_cert_path(&self) -> PathBuf {
        self.dir.join("server-cert.pem")
    }

    /// `DIR/server-key.pem`.
    pub fn server_key_path(&self) -> PathBuf {
        self.dir.join("server-key.pem")
    }
}

fn validity(params: &mut CertificateParams) {
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 12, 31);
}

fn io_err(context: String, source: std::io::Error) -> TlsError {
    TlsError::Io { context, source }
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), TlsError> {
    let ctx = || format!("write {}", path.display());
    let _ = fs::remove_file(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| io_err(ctx(), e))?;
    f.write_all(data).map_err(|e| io_err(ctx(), e))
}

/// Parses a subject in spice-common's `subject_to_x509_name` grammar (see the module docs)
/// into ordered (type, value) pairs. Only the types `C`, `ST`, `L`, `O`, `OU` and `CN` are
/// accepted.
pub fn parse_subject(subject: &str) -> Result<Vec<(DnType, String)>, TlsError> {
    let bad = |reason: &str| TlsError::Subject {
        subject: subject.to_string(),
        reason: reason.to_string(),
    };
    let mut out = Vec::new();
    let mut chars = subject.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            if out.is_empty() {
                return Err(bad("empty subject"));
            }
            return Err(bad("trailing comma"));
        }
        let mut key = String::new();
        loop {
            match chars.next() {
                Some('=') => break,
                Some(',') | None => return Err(bad("an entry without '='")),
                Some('\\') => return Err(bad("escape in a key")),
                Some(c) => key.push(c),
            }
        }
        let mut value = String::new();
        let mut more = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(e @ ('\\' | ',')) => value.push(e),
                    _ => return Err(bad("only '\\\\' and '\\,' may follow a backslash")),
                },
                ',' => {
                    more = true;
                    break;
                }
                c => value.push(c),
            }
        }
        if value.is_empty() {
            return Err(bad("an empty value"));
        }
        let ty = match key.as_str() {
            "C" => DnType::CountryName,
            "ST" => DnType::StateOrProvinceName,
            "L" => DnType::LocalityName,
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            "CN" => DnType::CommonName,
            _ => return Err(bad(&format!("unsupported type {key:?}"))),
        };
        out.push((ty, value));
        if !more {
            return Ok(out);
        }
    }
}

/// Formats (type, value) pairs as a `cert-subject` string (`C=..,L=..,...`, commas and
/// backslashes in values escaped).
pub fn format_subject(entries: &[(DnType, String)]) -> String {
    let parts: Vec<String> = entries
        .iter()
        .map(|(ty, v)| {
            let key = match ty {
                DnType::CountryName => "C",
                DnType::StateOrProvinceName => "ST",
                DnType::LocalityName => "L",
                DnType::OrganizationName => "O",
                DnType::OrganizationalUnitName => "OU",
                DnType::CommonName => "CN",
                _ => "?",
            };
            format!("{key}={}", v.replace('\\', "\\\\").replace(',', "\\,"))
        })
        .collect();
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_round_trips_in_spice_form() {
        let e = parse_subject(" C=XX, L=a\\,b,O=o\\\\x,CN=127.0.0.1").unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!(e[1].1, "a,b");
        assert_eq!(e[2].1, "o\\x");
        assert_eq!(format_subject(&e), "C=XX,L=a\\,b,O=o\\\\x,CN=127.0.0.1");
        for bad in ["", "C=", "C", "C=XX,", "X=1", "C=a\\b"] {
            assert!(parse_subject(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn generates_the_spice_layout() {
        let tls = TlsDir::generate_temp_default().unwrap();
        let dir = tls.dir.clone();
        for f in ["ca-cert.pem", "server-cert.pem", "server-key.pem"] {
            let text = fs::read_to_string(dir.join(f)).unwrap();
            assert!(text.starts_with("-----BEGIN "), "{f}: {text}");
        }
        assert_eq!(tls.cert_subject, DEFAULT_SUBJECT);
        let copy = tls.clone();
        drop(tls);
        assert!(dir.exists());
        drop(copy);
        assert!(!dir.exists());
    }
}
