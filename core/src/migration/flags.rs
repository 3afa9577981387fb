//! `VIR_MIGRATE_*` flags, connection features and typed parameters
//! (spec/libvirt-migration.md §1 and §5).

use serde::{Deserialize, Serialize};

/// `virDomainMigrateFlags` (libvirt-domain.h), a bit set carried as a plain number.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MigrateFlags(pub u64);

macro_rules! flags {
    ($($name:ident = $bit:expr),* $(,)?) => {
        impl MigrateFlags {
            $(#[doc = concat!("`VIR_MIGRATE_", stringify!($name), "` (1 << ", stringify!($bit), ")")]
            pub const $name: MigrateFlags = MigrateFlags(1 << $bit);)*
            /// Every flag with its libvirt name, in bit order.
            pub const ALL: &'static [(&'static str, MigrateFlags)] = &[$((stringify!($name), MigrateFlags::$name)),*];
        }
    };
}

flags! {
    LIVE = 0, PEER2PEER = 1, TUNNELLED = 2, PERSIST_DEST = 3, UNDEFINE_SOURCE = 4, PAUSED = 5,
    NON_SHARED_DISK = 6, NON_SHARED_INC = 7, CHANGE_PROTECTION = 8, UNSAFE = 9, OFFLINE = 10,
    COMPRESSED = 11, ABORT_ON_ERROR = 12, AUTO_CONVERGE = 13, RDMA_PIN_ALL = 14, POSTCOPY = 15,
    TLS = 16, PARALLEL = 17, NON_SHARED_SYNCHRONOUS_WRITES = 18, POSTCOPY_RESUME = 19,
    ZEROCOPY = 20,
}

impl MigrateFlags {
    /// No flag.
    pub const NONE: MigrateFlags = MigrateFlags(0);
    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: MigrateFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// `self` with `other`'s bits set.
    pub const fn with(self, other: MigrateFlags) -> MigrateFlags {
        MigrateFlags(self.0 | other.0)
    }
    /// `self` with `other`'s bits cleared.
    pub const fn without(self, other: MigrateFlags) -> MigrateFlags {
        MigrateFlags(self.0 & !other.0)
    }
    /// Flags the destination receives: §2.2 drops ABORT_ON_ERROR and AUTO_CONVERGE (and
    /// CHANGE_PROTECTION never reaches the destination, §1).
    pub const fn for_destination(self) -> MigrateFlags {
        self.without(MigrateFlags(
            Self::ABORT_ON_ERROR.0 | Self::AUTO_CONVERGE.0 | Self::CHANGE_PROTECTION.0,
        ))
    }
}

impl std::fmt::Debug for MigrateFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for MigrateFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        let mut rest = self.0;
        for (name, flag) in Self::ALL {
            if self.contains(*flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
                rest &= !flag.0;
            }
        }
        if rest != 0 || first {
            if !first {
                f.write_str("|")?;
            }
            write!(f, "{rest:#x}")?;
        }
        Ok(())
    }
}

/// `virDrvFeature` values probed with `CONNECT_SUPPORTS_FEATURE` (libvirt_internal.h, §1).
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[repr(u32)]
pub enum Feature {
    /// `VIR_DRV_FEATURE_MIGRATION_V1`
    MigrationV1 = 1,
    /// `VIR_DRV_FEATURE_REMOTE`
    Remote = 2,
    /// `VIR_DRV_FEATURE_MIGRATION_V2`
    MigrationV2 = 3,
    /// `VIR_DRV_FEATURE_MIGRATION_P2P`
    MigrationP2p = 4,
    /// `VIR_DRV_FEATURE_MIGRATION_DIRECT`
    MigrationDirect = 5,
    /// `VIR_DRV_FEATURE_MIGRATION_V3`
    MigrationV3 = 6,
    /// `VIR_DRV_FEATURE_MIGRATE_CHANGE_PROTECTION`
    MigrateChangeProtection = 7,
    /// `VIR_DRV_FEATURE_FD_PASSING`
    FdPassing = 8,
    /// `VIR_DRV_FEATURE_TYPED_PARAM_STRING`
    TypedParamString = 9,
    /// `VIR_DRV_FEATURE_PROGRAM_KEEPALIVE`
    ProgramKeepalive = 10,
    /// `VIR_DRV_FEATURE_XML_MIGRATABLE`
    XmlMigratable = 11,
    /// `VIR_DRV_FEATURE_MIGRATION_OFFLINE`
    MigrationOffline = 12,
    /// `VIR_DRV_FEATURE_MIGRATION_PARAMS`
    MigrationParams = 13,
}

impl Feature {
    /// Every feature, in number order.
    pub const ALL: [Feature; 13] = [
        Feature::MigrationV1,
        Feature::Remote,
        Feature::MigrationV2,
        Feature::MigrationP2p,
        Feature::MigrationDirect,
        Feature::MigrationV3,
        Feature::MigrateChangeProtection,
        Feature::FdPassing,
        Feature::TypedParamString,
        Feature::ProgramKeepalive,
        Feature::XmlMigratable,
        Feature::MigrationOffline,
        Feature::MigrationParams,
    ];
    /// The number sent in `CONNECT_SUPPORTS_FEATURE`.
    pub const fn number(self) -> u32 {
        self as u32
    }
}

/// The set of features one host answered 1 for. Serialized as an ordered list of names.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FeatureSet(pub std::collections::BTreeSet<Feature>);

impl FeatureSet {
    /// What libvirt's QEMU driver answers (`qemuConnectSupportsFeature`, §1).
    pub fn qemu() -> FeatureSet {
        use Feature::*;
        [
            MigrationV2,
            MigrationV3,
            MigrationP2p,
            MigrateChangeProtection,
            FdPassing,
            TypedParamString,
            XmlMigratable,
            MigrationOffline,
            MigrationParams,
        ]
        .into_iter()
        .collect()
    }
    /// Whether `f` is supported.
    pub fn has(&self, f: Feature) -> bool {
        self.0.contains(&f)
    }
}

impl FromIterator<Feature> for FeatureSet {
    fn from_iter<I: IntoIterator<Item = Feature>>(iter: I) -> Self {
        FeatureSet(iter.into_iter().collect())
    }
}

/// Names of the typed migration parameters (`VIR_MIGRATE_PARAM_*`, §5).
pub mod param {
    /// `VIR_MIGRATE_PARAM_URI`
    pub const URI: &str = "migrate_uri";
    /// `VIR_MIGRATE_PARAM_DEST_NAME`
    pub const DEST_NAME: &str = "destination_name";
    /// `VIR_MIGRATE_PARAM_DEST_XML`
    pub const DEST_XML: &str = "destination_xml";
    /// `VIR_MIGRATE_PARAM_PERSIST_XML`
    pub const PERSIST_XML: &str = "persistent_xml";
    /// `VIR_MIGRATE_PARAM_BANDWIDTH` (MiB/s)
    pub const BANDWIDTH: &str = "bandwidth";
    /// `VIR_MIGRATE_PARAM_GRAPHICS_URI`
    pub const GRAPHICS_URI: &str = "graphics_uri";
    /// `VIR_MIGRATE_PARAM_LISTEN_ADDRESS`
    pub const LISTEN_ADDRESS: &str = "listen_address";
    /// `VIR_MIGRATE_PARAM_MIGRATE_DISKS`
    pub const MIGRATE_DISKS: &str = "migrate_disks";
    /// `VIR_MIGRATE_PARAM_DISKS_PORT`
    pub const DISKS_PORT: &str = "disks_port";
    /// The parameters the pre-params APIs can carry (§1): anything else needs PARAMS.
    pub const COMPAT: [&str; 4] = [URI, DEST_NAME, DEST_XML, BANDWIDTH];
}

/// A typed parameter value (`remote_typed_param_value`; the wire type number in brackets).
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamValue {
    /// `VIR_TYPED_PARAM_INT` (1)
    Int(i32),
    /// `VIR_TYPED_PARAM_UINT` (2)
    Uint(u32),
    /// `VIR_TYPED_PARAM_LLONG` (3)
    Llong(i64),
    /// `VIR_TYPED_PARAM_ULLONG` (4)
    Ullong(u64),
    /// `VIR_TYPED_PARAM_DOUBLE` (5), as its IEEE bits so the value stays `Eq`.
    DoubleBits(u64),
    /// `VIR_TYPED_PARAM_BOOLEAN` (6)
    Boolean(bool),
    /// `VIR_TYPED_PARAM_STRING` (7)
    String(String),
}

/// One `virTypedParameter`.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypedParam {
    /// The parameter's name, e.g. `migrate_uri`.
    pub field: String,
    /// Its value.
    pub value: ParamValue,
}

/// An ordered list of typed parameters, with libvirt's replace-or-append semantics
/// (`virTypedParamsReplaceString`) so the order on the wire matches libvirt's.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Params(pub Vec<TypedParam>);

impl Params {
    /// The first value named `field`.
    pub fn get(&self, field: &str) -> Option<&ParamValue> {
        self.0.iter().find(|p| p.field == field).map(|p| &p.value)
    }
    /// The string value named `field`, if it is a string.
    pub fn get_str(&self, field: &str) -> Option<&str> {
        match self.get(field) {
            Some(ParamValue::String(s)) => Some(s),
            _ => None,
        }
    }
    /// Replace the value named `field` in place, or append it.
    pub fn replace(&mut self, field: &str, value: ParamValue) {
        match self.0.iter_mut().find(|p| p.field == field) {
            Some(p) => p.value = value,
            None => self.0.push(TypedParam {
                field: field.to_owned(),
                value,
            }),
        }
    }
    /// Replace or append a string value.
    pub fn replace_str(&mut self, field: &str, value: impl Into<String>) {
        self.replace(field, ParamValue::String(value.into()));
    }
    /// Whether there is no param.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Whether every parameter is one the pre-params APIs can carry.
    pub fn is_compat(&self) -> bool {
        self.0
            .iter()
            .all(|p| param::COMPAT.contains(&p.field.as_str()))
    }
}
