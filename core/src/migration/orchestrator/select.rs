//! Protocol choice and the up-front flag checks (§1, §3 "Setup").

use super::types::{Mode, OrchestratorConfig, Protocol, ProtocolRequest};
use crate::migration::error::{
    RemoteError, ERR_ARGUMENT_UNSUPPORTED, ERR_INTERNAL_ERROR, ERR_NO_SUPPORT,
    ERR_OPERATION_INVALID, FROM_NONE,
};
use crate::migration::flags::{Feature, MigrateFlags};

fn invalid(msg: &str) -> RemoteError {
    RemoteError::new(ERR_OPERATION_INVALID, FROM_NONE, msg)
}

fn unsupported(msg: &str) -> RemoteError {
    RemoteError::new(ERR_ARGUMENT_UNSUPPORTED, FROM_NONE, msg)
}

/// The outcome of the checks: the protocol and whether the source calls carry
/// CHANGE_PROTECTION.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The protocol to run.
    pub protocol: Protocol,
    /// `prot` of `virDomainMigrateVersion3Full`: CHANGE_PROTECTION on source-side calls.
    pub protect: bool,
}

/// Choose the protocol as `virDomainMigrate3` (managed, §1) or
/// `virDomainMigrateUnmanagedParams` + `qemuMigrationSrcPerformPeer2Peer` (P2P, §3) do,
/// with the caller's request as an upper bound.
pub fn choose(cfg: &OrchestratorConfig) -> Result<Choice, RemoteError> {
    let src = &cfg.source_features;
    let dst = &cfg.destination_features;
    let flags = cfg.flags;

    if flags.contains(MigrateFlags::NON_SHARED_DISK) && flags.contains(MigrateFlags::NON_SHARED_INC)
    {
        return Err(invalid(
            "migration flags VIR_MIGRATE_NON_SHARED_DISK and VIR_MIGRATE_NON_SHARED_INC are mutually exclusive",
        ));
    }
    if flags.contains(MigrateFlags::TUNNELLED) && cfg.mode == Mode::Managed {
        return Err(invalid(
            "cannot perform tunnelled migration without using peer2peer flag",
        ));
    }
    if flags.contains(MigrateFlags::CHANGE_PROTECTION) && !src.has(Feature::MigrateChangeProtection)
    {
        return Err(unsupported("cannot enforce change protection"));
    }
    if flags.contains(MigrateFlags::OFFLINE) {
        if !src.has(Feature::MigrationOffline) {
            return Err(unsupported(
                "offline migration is not supported by the source host",
            ));
        }
        if !dst.has(Feature::MigrationOffline) {
            return Err(unsupported(
                "offline migration is not supported by the destination host",
            ));
        }
    }

    let (v3_src, v3_dst) = match cfg.mode {
        Mode::Managed => (src.has(Feature::MigrationV3), dst.has(Feature::MigrationV3)),
        Mode::PeerToPeer => {
            if !src.has(Feature::MigrationP2p) {
                return Err(RemoteError::new(
                    ERR_NO_SUPPORT,
                    FROM_NONE,
                    "this function is not supported by the connection driver: virDomainMigrate with P2P",
                ));
            }
            if !dst.has(Feature::MigrationP2p) {
                return Err(RemoteError::new(
                    ERR_INTERNAL_ERROR,
                    crate::migration::error::FROM_QEMU,
                    "Destination libvirt does not support peer-to-peer migration protocol",
                ));
            }
            // The source is the local daemon: always v3-capable when it has V3.
            (src.has(Feature::MigrationV3), dst.has(Feature::MigrationV3))
        }
    };
    let params_both = src.has(Feature::MigrationParams) && dst.has(Feature::MigrationParams);
    let v2_both = src.has(Feature::MigrationV2) && dst.has(Feature::MigrationV2);
    let compat = cfg.params.is_compat();
    let ext_err = || {
        unsupported(
            "Migration APIs with extensible parameters are not supported but extended parameters were passed",
        )
    };

    let protocol = match cfg.protocol {
        ProtocolRequest::Auto => {
            if v3_src && v3_dst && params_both {
                Protocol::V3Params
            } else if !compat {
                return Err(ext_err());
            } else if v3_src && v3_dst {
                Protocol::V3
            } else if v2_both {
                Protocol::V2
            } else {
                return Err(no_protocol());
            }
        }
        ProtocolRequest::V3Params => {
            if !(v3_src && v3_dst && params_both) {
                return Err(no_protocol());
            }
            Protocol::V3Params
        }
        ProtocolRequest::V3 => {
            if !(v3_src && v3_dst) {
                return Err(no_protocol());
            }
            if !compat {
                return Err(ext_err());
            }
            Protocol::V3
        }
        ProtocolRequest::V2 => {
            if !v2_both {
                return Err(no_protocol());
            }
            if !compat {
                return Err(ext_err());
            }
            Protocol::V2
        }
    };
    if protocol == Protocol::V2
        && cfg.mode == Mode::Managed
        && cfg
            .params
            .get(crate::migration::flags::param::DEST_XML)
            .is_some()
    {
        return Err(unsupported(
            "Unable to change target guest XML during migration",
        ));
    }
    // §1: CHANGE_PROTECTION is re-added on source calls when the source supports it (managed
    // v3 only); P2P clears it (§3).
    let protect =
        cfg.mode == Mode::Managed && protocol.is_v3() && src.has(Feature::MigrateChangeProtection);
    Ok(Choice { protocol, protect })
}

fn no_protocol() -> RemoteError {
    RemoteError::new(
        ERR_NO_SUPPORT,
        FROM_NONE,
        "this function is not supported by the connection driver: no migration protocol supported by both hosts",
    )
}
