//! The SPICE ticket natively: RSA-OAEP (SHA-1, MGF1-SHA1, empty label) of the password and
//! its NUL under the server's per-link key (spec/spice-migration.md §1.1, invariant 1).

use rsa::pkcs8::DecodePublicKey;
use rsa::{Oaep, RsaPublicKey};

/// Why a ticket could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// The server's key is not a DER SubjectPublicKeyInfo of an RSA key.
    #[error("bad server public key: {0}")]
    Key(String),
    /// Longer than spice-server accepts (60 bytes).
    #[error("password longer than 60 bytes")]
    TooLong,
    /// RSA refused (message too long for the key).
    #[error("encryption failed: {0}")]
    Encrypt(String),
}

/// Encrypt `password` + NUL under `public_key_der`; 128 bytes for spice-server's RSA-1024.
pub fn encrypt_ticket(public_key_der: &[u8], password: &str) -> Result<Vec<u8>, TicketError> {
    if password.len() > 60 {
        return Err(TicketError::TooLong);
    }
    let key = RsaPublicKey::from_public_key_der(public_key_der)
        .map_err(|e| TicketError::Key(e.to_string()))?;
    let mut plain = password.as_bytes().to_vec();
    plain.push(0);
    key.encrypt(&mut rand::thread_rng(), Oaep::new::<sha1::Sha1>(), &plain)
        .map_err(|e| TicketError::Encrypt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::EncodePublicKey;
    use rsa::RsaPrivateKey;

    #[test]
    fn round_trips_with_the_private_key() {
        let mut rng = rand::thread_rng();
        let private = RsaPrivateKey::new(&mut rng, 1024).unwrap();
        let der = private.to_public_key().to_public_key_der().unwrap();
        let ticket = encrypt_ticket(der.as_bytes(), "s3cret").unwrap();
        assert_eq!(ticket.len(), 128);
        let plain = private.decrypt(Oaep::new::<sha1::Sha1>(), &ticket).unwrap();
        assert_eq!(plain, b"s3cret\0");
    }

    #[test]
    fn refuses_garbage_keys_and_long_passwords() {
        assert!(matches!(
            encrypt_ticket(&[1, 2, 3], ""),
            Err(TicketError::Key(_))
        ));
        let long = "x".repeat(61);
        assert!(matches!(
            encrypt_ticket(&[], &long),
            Err(TicketError::TooLong)
        ));
    }
}
