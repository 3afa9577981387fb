//! Cookie errors. Messages follow libvirt's `qemu_migration_cookie.c` where it has one
//! (spec/libvirt-migration.md §6 "Wire", "Mandatory", "Parse checks"; §12.9).

use crate::migration::error::RemoteError;

/// Why a cookie was refused. Values quoted from the peer are cut to 128 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CookieError {
    /// Longer than the RPC cap ([`super::MAX_COOKIE_LEN`], NUL included).
    #[error("Migration cookie too large: {len} bytes (max {max})")]
    TooLarge {
        /// Received length, NUL included.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The last byte is not NUL.
    #[error("Migration cookie was not NULL terminated")]
    NotNulTerminated,
    /// A NUL before the terminating one.
    #[error("Migration cookie contains a NUL byte before its end")]
    InteriorNul,
    /// Not UTF-8.
    #[error("Migration cookie is not valid UTF-8")]
    InvalidUtf8,
    /// Not well-formed XML (or a construct refused here, e.g. a DOCTYPE): position + reason.
    #[error("Malformed migration cookie XML: {0}")]
    Malformed(String),
    /// The root element is not `<qemu-migration>`.
    #[error("Unexpected root element <{0}> in migration cookie")]
    WrongRoot(String),
    /// A required element is missing or empty (`name`, `uuid`, `hostname`, `hostuuid`).
    #[error("missing {0} element in migration data")]
    MissingElement(&'static str),
    /// A required attribute is missing (or empty where libvirt reads it as missing).
    #[error("missing {attribute} attribute of <{element}> in migration data")]
    MissingAttribute {
        /// Element name.
        element: &'static str,
        /// Attribute name.
        attribute: &'static str,
    },
    /// A value that does not parse (a number, a graphics type, a host UUID, …).
    #[error("Malformed {element} value '{value}' in migration cookie")]
    InvalidValue {
        /// Element (or `element@attribute`) the value came from.
        element: &'static str,
        /// The value as received.
        value: String,
    },
    /// A singleton element appears twice.
    #[error("Too many {0} elements in migration cookie")]
    DuplicateElement(&'static str),
    /// `<name>` is not the expected domain name.
    #[error("Incoming cookie data had unexpected name {got} vs {expected}")]
    UnexpectedName {
        /// Received.
        got: String,
        /// Expected.
        expected: String,
    },
    /// `<uuid>` is not the expected domain UUID.
    #[error("Incoming cookie data had unexpected UUID {got} vs {expected}")]
    UnexpectedUuid {
        /// Received.
        got: String,
        /// Expected.
        expected: String,
    },
    /// `<hostuuid>` is the receiving host's own UUID.
    #[error("Attempt to migrate guest to the same host {0}")]
    SameHost(String),
    /// A `<feature name>` libvirt does not know.
    #[error("Unknown migration cookie feature {0}")]
    UnknownFeature(String),
    /// A mandatory feature outside this hop's parse flags.
    #[error("Unsupported migration cookie feature {0}")]
    UnsupportedFeature(String),
    /// The sender's lock driver differs from ours.
    #[error("Source host lock driver {remote} different from target {local}")]
    LockDriverMismatch {
        /// The cookie's `<lockstate driver>`.
        remote: String,
        /// Ours.
        local: String,
    },
    /// Elements nested deeper than [`super::MAX_DEPTH`].
    #[error("Migration cookie nests elements too deeply")]
    TooDeep,
    /// More elements than [`super::MAX_ELEMENTS`].
    #[error("Migration cookie has too many elements")]
    TooManyElements,
}

impl CookieError {
    /// The error as a libvirt daemon would report it (`VIR_ERR_INTERNAL_ERROR` from
    /// `VIR_FROM_QEMU`, like every cookie error in `qemu_migration_cookie.c`).
    pub fn to_remote(&self) -> RemoteError {
        RemoteError::internal(self.to_string())
    }
}

impl From<CookieError> for RemoteError {
    fn from(e: CookieError) -> RemoteError {
        e.to_remote()
    }
}

/// At most 128 bytes of `s` (cut on a char boundary), for error messages.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 128;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    let mut out = s.get(..end).unwrap_or("").to_owned();
    out.push('…');
    out
}

/// An [`CookieError::InvalidValue`] with a clipped value.
pub(crate) fn invalid(element: &'static str, value: &str) -> CookieError {
    CookieError::InvalidValue {
        element,
        value: clip(value),
    }
}
