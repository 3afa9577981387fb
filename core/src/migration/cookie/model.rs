//! The cookie's data model: flags, hops and the typed elements of `<qemu-migration>`
//! (spec/libvirt-migration.md §6).

use serde::{Deserialize, Serialize};

/// A set of cookie flags, bit `1 << i` per the enum order of §6 ("Flags").
///
/// The same bits name both the elements a cookie carries and the mandatory
/// `<feature name='..'/>` entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CookieFlags(pub u32);

/// The `<feature name>` spelling of each flag, indexed by bit (§6).
const FLAG_NAMES: [&str; 12] = [
    "graphics",
    "lockstate",
    "persistent",
    "network",
    "nbd",
    "statistics",
    "memory-hotplug",
    "cpu-hotplug",
    "cpu",
    "allowReboot",
    "capabilities",
    "block-dirty-bitmaps",
];

impl CookieFlags {
    /// No flag.
    pub const NONE: CookieFlags = CookieFlags(0);
    /// `<graphics>` (SPICE seamless migration data).
    pub const GRAPHICS: CookieFlags = CookieFlags(1 << 0);
    /// `<lockstate>` (lock manager leases).
    pub const LOCKSTATE: CookieFlags = CookieFlags(1 << 1);
    /// `<domain>` (the persistent definition).
    pub const PERSISTENT: CookieFlags = CookieFlags(1 << 2);
    /// `<network>` (virtual port data).
    pub const NETWORK: CookieFlags = CookieFlags(1 << 3);
    /// `<nbd>` (storage migration port and disk capacities).
    pub const NBD: CookieFlags = CookieFlags(1 << 4);
    /// `<statistics>` (completed job statistics).
    pub const STATS: CookieFlags = CookieFlags(1 << 5);
    /// Memory hotplug (a mandatory feature only, no element).
    pub const MEMORY_HOTPLUG: CookieFlags = CookieFlags(1 << 6);
    /// CPU hotplug (a mandatory feature only, no element).
    pub const CPU_HOTPLUG: CookieFlags = CookieFlags(1 << 7);
    /// `<cpu>` (the migratable guest CPU).
    pub const CPU: CookieFlags = CookieFlags(1 << 8);
    /// `allowReboot`: a name only, never produced by current libvirt.
    pub const ALLOW_REBOOT: CookieFlags = CookieFlags(1 << 9);
    /// `<capabilities>` (migration capabilities).
    pub const CAPS: CookieFlags = CookieFlags(1 << 10);
    /// `<blockDirtyBitmaps>`.
    pub const BLOCK_DIRTY_BITMAPS: CookieFlags = CookieFlags(1 << 11);
    /// Every flag libvirt knows.
    pub const ALL: CookieFlags = CookieFlags((1 << 12) - 1);
    /// The flags libvirt ever marks mandatory: LOCKSTATE, PERSISTENT, MEMORY_HOTPLUG,
    /// CPU_HOTPLUG (§6 "Mandatory").
    pub const MANDATORY: CookieFlags = CookieFlags(
        Self::LOCKSTATE.0 | Self::PERSISTENT.0 | Self::MEMORY_HOTPLUG.0 | Self::CPU_HOTPLUG.0,
    );

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// True if every bit of `other` is set in `self`.
    pub const fn contains(self, other: CookieFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// True if `self` and `other` share a bit.
    pub const fn intersects(self, other: CookieFlags) -> bool {
        self.0 & other.0 != 0
    }
    /// `self` with the bits of `other` added.
    #[must_use]
    pub const fn with(self, other: CookieFlags) -> Self {
        CookieFlags(self.0 | other.0)
    }
    /// `self` with the bits of `other` removed.
    #[must_use]
    pub const fn without(self, other: CookieFlags) -> Self {
        CookieFlags(self.0 & !other.0)
    }
    /// True if no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The `<feature name>` of bit number `bit` (0 = graphics … 11 = block-dirty-bitmaps).
    pub fn name(bit: u32) -> Option<&'static str> {
        usize::try_from(bit)
            .ok()
            .and_then(|i| FLAG_NAMES.get(i).copied())
    }
    /// The single flag named `name` (exact, case-sensitive, as libvirt's enum lookup).
    pub fn from_name(name: &str) -> Option<CookieFlags> {
        FLAG_NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| CookieFlags(1 << i))
    }
    /// The single known flags set in `self`, in enum (= wire) order.
    pub fn iter(self) -> impl Iterator<Item = CookieFlags> {
        (0..12u32)
            .map(|i| CookieFlags(1 << i))
            .filter(move |f| self.contains(*f))
    }
    /// The names of the known flags set in `self`, in enum order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        (0..12u32)
            .filter(move |i| self.0 & (1 << i) != 0)
            .filter_map(Self::name)
    }
}

impl core::ops::BitOr for CookieFlags {
    type Output = CookieFlags;
    fn bitor(self, rhs: CookieFlags) -> CookieFlags {
        self.with(rhs)
    }
}

impl core::ops::BitOrAssign for CookieFlags {
    fn bitor_assign(&mut self, rhs: CookieFlags) {
        *self = self.with(rhs);
    }
}

/// Which hop a cookie travels (§6 "Flags per step").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CookieHop {
    /// Begin (source) → Prepare (destination).
    BeginToPrepare,
    /// Prepare (destination) → Perform (source).
    PrepareToPerform,
    /// Perform (source) → Finish (destination).
    PerformToFinish,
    /// Finish (destination) → Confirm (source).
    FinishToConfirm,
}

impl CookieHop {
    /// The four hops in protocol order.
    pub const ALL: [CookieHop; 4] = [
        CookieHop::BeginToPrepare,
        CookieHop::PrepareToPerform,
        CookieHop::PerformToFinish,
        CookieHop::FinishToConfirm,
    ];

    /// The receiver's parse flags for this hop (§6 table). Prepare → Perform includes NBD
    /// (the source parses it whenever it migrates storage).
    pub const fn parse_flags(self) -> CookieFlags {
        match self {
            CookieHop::BeginToPrepare => CookieFlags(
                CookieFlags::LOCKSTATE.0
                    | CookieFlags::NBD.0
                    | CookieFlags::MEMORY_HOTPLUG.0
                    | CookieFlags::CPU_HOTPLUG.0
                    | CookieFlags::CPU.0
                    | CookieFlags::CAPS.0
                    | CookieFlags::BLOCK_DIRTY_BITMAPS.0,
            ),
            CookieHop::PrepareToPerform => CookieFlags(
                CookieFlags::GRAPHICS.0
                    | CookieFlags::CAPS.0
                    | CookieFlags::BLOCK_DIRTY_BITMAPS.0
                    | CookieFlags::NBD.0,
            ),
            CookieHop::PerformToFinish => CookieFlags(
                CookieFlags::NETWORK.0
                    | CookieFlags::STATS.0
                    | CookieFlags::NBD.0
                    | CookieFlags::PERSISTENT.0,
            ),
            CookieHop::FinishToConfirm => CookieFlags::STATS,
        }
    }
}

/// An element kept verbatim: the exact text from its `<` to its closing `>` as received
/// (inner indentation included). It must be one well-formed element; see
/// [`RawXml::checked`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RawXml(pub String);

impl RawXml {
    /// The element text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The element's name (the text after `<` up to whitespace, `/` or `>`).
    pub fn name(&self) -> &str {
        let s = self.0.strip_prefix('<').unwrap_or("");
        let end = s
            .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
            .unwrap_or(s.len());
        s.get(..end).unwrap_or("")
    }
}

/// `<graphics type= port= listen= [tlsPort=]>[<cert info='subject' value=DN/>]</graphics>`:
/// where the destination's SPICE server listens, for seamless client migration.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Graphics {
    /// The graphics type (`spice` in practice; `vnc`, … are accepted).
    pub kind: String,
    /// The plain port.
    pub port: i32,
    /// The listen address.
    pub listen: String,
    /// `tlsPort` (required for SPICE, −1 when SPICE TLS is off).
    pub tls_port: Option<i32>,
    /// The subject DN of the server certificate (`<cert info='subject' value=..>`).
    pub cert_subject: Option<String>,
}

/// `<lockstate driver=..><leases>..</leases></lockstate>`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Lockstate {
    /// The lock manager plugin name (`sanlock`, `lockd`, …).
    pub driver: String,
    /// The lease state string (text of `<leases>`), if the element is there.
    pub leases: Option<String>,
}

/// `<nbd [port=]><disk target= capacity=/>…</nbd>`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Nbd {
    /// The NBD server port (libvirt omits the attribute when it is 0).
    pub port: Option<i32>,
    /// Disks to pre-create on the destination.
    pub disks: Vec<NbdDisk>,
}

/// One `<nbd><disk target= capacity=/></nbd>` entry.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NbdDisk {
    /// The disk's target device name (`vda`).
    pub target: String,
    /// Its capacity in bytes.
    pub capacity: u64,
}

/// Generates [`Statistics`] from one list so the struct, the element names and their
/// order (libvirt's `qemuMigrationCookieStatisticsXMLFormat`) cannot drift apart.
macro_rules! statistics {
    ($($(#[$doc:meta])* $field:ident : $ty:ty = $xml:literal,)*) => {
        /// `<statistics>`: the completed job's data (§6). Every field is optional; the
        /// formatter writes the present ones in libvirt's order.
        #[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
        pub struct Statistics {
            $($(#[$doc])* pub $field: Option<$ty>,)*
        }

        impl Statistics {
            /// The child element names, in libvirt's order.
            pub const ELEMENTS: &'static [&'static str] = &[$($xml),*];

            /// Appends `<name>value</name>` lines (at `indent`) for the present fields.
            pub(crate) fn format_fields(&self, out: &mut String, indent: &str) {
                $(
                    if let Some(v) = self.$field {
                        out.push_str(indent);
                        out.push_str(concat!("<", $xml, ">"));
                        out.push_str(&v.to_string());
                        out.push_str(concat!("</", $xml, ">\n"));
                    }
                )*
            }

            /// Sets the field of child element `name` from its text. `Ok(false)` if the
            /// name is not a statistics field (libvirt ignores those).
            pub(crate) fn set_field(
                &mut self,
                name: &str,
                text: &str,
            ) -> Result<bool, super::CookieError> {
                match name {
                    $(
                        $xml => {
                            if self.$field.is_some() {
                                return Err(super::CookieError::DuplicateElement($xml));
                            }
                            self.$field = Some(super::parse::number::<$ty>(text, $xml)?);
                        }
                    )*
                    _ => return Ok(false),
                }
                Ok(true)
            }
        }
    };
}

statistics! {
    /// Job start, ms since the epoch (sender's clock).
    started: u64 = "started",
    /// When the guest CPUs stopped, ms since the epoch.
    stopped: u64 = "stopped",
    /// When the cookie was sent, ms since the epoch.
    sent: u64 = "sent",
    /// Clock difference between the hosts, ms (signed; the destination adds it).
    delta: i64 = "delta",
    /// `time_elapsed`, ms.
    time_elapsed: u64 = "time_elapsed",
    /// `downtime`, ms.
    downtime: u64 = "downtime",
    /// `setup_time`, ms.
    setup_time: u64 = "setup_time",
    /// `memory_total`, bytes.
    memory_total: u64 = "memory_total",
    /// `memory_processed`, bytes.
    memory_processed: u64 = "memory_processed",
    /// `memory_remaining`, bytes.
    memory_remaining: u64 = "memory_remaining",
    /// `memory_bps`, bytes/s.
    memory_bps: u64 = "memory_bps",
    /// `memory_constant`, pages.
    memory_constant: u64 = "memory_constant",
    /// `memory_normal`, pages.
    memory_normal: u64 = "memory_normal",
    /// `memory_normal_bytes`.
    memory_normal_bytes: u64 = "memory_normal_bytes",
    /// `memory_dirty_rate`, pages/s.
    memory_dirty_rate: u64 = "memory_dirty_rate",
    /// `memory_iteration`.
    memory_iteration: u64 = "memory_iteration",
    /// `memory_postcopy_requests`.
    memory_postcopy_requests: u64 = "memory_postcopy_requests",
    /// `memory_page_size`, bytes.
    memory_page_size: u64 = "memory_page_size",
    /// `disk_total`, bytes.
    disk_total: u64 = "disk_total",
    /// `disk_processed`, bytes.
    disk_processed: u64 = "disk_processed",
    /// `disk_remaining`, bytes.
    disk_remaining: u64 = "disk_remaining",
    /// `disk_bps`, bytes/s.
    disk_bps: u64 = "disk_bps",
    /// `compression_cache` (XBZRLE cache size), bytes.
    compression_cache: u64 = "compression_cache",
    /// `compression_bytes`.
    compression_bytes: u64 = "compression_bytes",
    /// `compression_pages`.
    compression_pages: u64 = "compression_pages",
    /// `compression_cache_misses`.
    compression_cache_misses: u64 = "compression_cache_misses",
    /// `compression_overflow`.
    compression_overflow: u64 = "compression_overflow",
    /// `auto_converge_throttle`, percent.
    auto_converge_throttle: u64 = "auto_converge_throttle",
}

/// One `<capabilities><cap name= auto=/></capabilities>` entry.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capability {
    /// The QEMU migration capability (`xbzrle`, `late-block-activate`, …; unknown names kept).
    pub name: String,
    /// `auto='yes'`: libvirt turns it on by itself.
    pub auto: bool,
}

/// A `<qemu-migration>` cookie (§6). Elements appear in [`Cookie::format`]'s output in
/// libvirt's order whatever order they were received in; `unknown` ones go last.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cookie {
    /// `<name>`: the domain's (original) name.
    pub name: String,
    /// `<uuid>`: the domain UUID, as text.
    pub uuid: String,
    /// `<hostname>`: the sender's host name.
    pub hostname: String,
    /// `<hostuuid>`: the sender's host UUID, as text.
    pub hostuuid: String,
    /// The `<feature name='..'/>` elements (mandatory features).
    pub mandatory: CookieFlags,
    /// `<graphics>`.
    pub graphics: Option<Graphics>,
    /// `<lockstate>`.
    pub lockstate: Option<Lockstate>,
    /// `<domain>`: the persistent definition, verbatim.
    pub domain: Option<RawXml>,
    /// `<network>`, verbatim (validated: each `<interface>` has `vporttype`).
    pub network: Option<RawXml>,
    /// `<nbd>`.
    pub nbd: Option<Nbd>,
    /// `<statistics>`.
    pub statistics: Option<Statistics>,
    /// `<cpu>`, verbatim.
    pub cpu: Option<RawXml>,
    /// `<capabilities>` (`Some(vec![])` for an empty element).
    pub capabilities: Option<Vec<Capability>>,
    /// `<blockDirtyBitmaps>`, verbatim (validated: disk `target`, bitmap `name`/`alias`).
    pub block_dirty_bitmaps: Option<RawXml>,
    /// Elements the model does not know (e.g. legacy `<allowReboot>`), in received order;
    /// written back after all known ones.
    pub unknown: Vec<RawXml>,
}

impl Cookie {
    /// A cookie with only the identity elements.
    pub fn new(
        name: impl Into<String>,
        uuid: impl Into<String>,
        hostname: impl Into<String>,
        hostuuid: impl Into<String>,
    ) -> Cookie {
        Cookie {
            name: name.into(),
            uuid: uuid.into(),
            hostname: hostname.into(),
            hostuuid: hostuuid.into(),
            ..Cookie::default()
        }
    }

    /// The flags whose elements are present (GRAPHICS, LOCKSTATE, PERSISTENT for `<domain>`,
    /// NETWORK, NBD, STATS, CPU, CAPS, BLOCK_DIRTY_BITMAPS). Mandatory features are in
    /// [`Cookie::mandatory`], not here.
    pub fn present(&self) -> CookieFlags {
        let mut f = CookieFlags::NONE;
        let pairs = [
            (self.graphics.is_some(), CookieFlags::GRAPHICS),
            (self.lockstate.is_some(), CookieFlags::LOCKSTATE),
            (self.domain.is_some(), CookieFlags::PERSISTENT),
            (self.network.is_some(), CookieFlags::NETWORK),
            (self.nbd.is_some(), CookieFlags::NBD),
            (self.statistics.is_some(), CookieFlags::STATS),
            (self.cpu.is_some(), CookieFlags::CPU),
            (self.capabilities.is_some(), CookieFlags::CAPS),
            (
                self.block_dirty_bitmaps.is_some(),
                CookieFlags::BLOCK_DIRTY_BITMAPS,
            ),
        ];
        for (on, flag) in pairs {
            if on {
                f |= flag;
            }
        }
        f
    }

    /// Drops the elements whose flag is not in `flags`, as libvirt's parser skips them
    /// (§6 "elements whose flag is not in the parse flags are skipped"). Identity,
    /// mandatory features and unknown elements are kept.
    pub fn retain(&mut self, flags: CookieFlags) {
        if !flags.contains(CookieFlags::GRAPHICS) {
            self.graphics = None;
        }
        if !flags.contains(CookieFlags::LOCKSTATE) {
            self.lockstate = None;
        }
        if !flags.contains(CookieFlags::PERSISTENT) {
            self.domain = None;
        }
        if !flags.contains(CookieFlags::NETWORK) {
            self.network = None;
        }
        if !flags.contains(CookieFlags::NBD) {
            self.nbd = None;
        }
        if !flags.contains(CookieFlags::STATS) {
            self.statistics = None;
        }
        if !flags.contains(CookieFlags::CPU) {
            self.cpu = None;
        }
        if !flags.contains(CookieFlags::CAPS) {
            self.capabilities = None;
        }
        if !flags.contains(CookieFlags::BLOCK_DIRTY_BITMAPS) {
            self.block_dirty_bitmaps = None;
        }
    }
}
