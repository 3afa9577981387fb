//! The native runner of livemig-core: trace replay and readable presentation (the libvirt,
//! SPICE, QEMU and sandbox drivers arrive with their issues).
#![forbid(unsafe_code)]

pub mod demo;
pub mod libvirt;
pub mod libvirt_compare;
pub mod libvirt_hosts;
pub mod libvirt_proxy;
pub mod migrate;
pub mod present;
pub mod qemu;
pub mod replay;
pub mod sandbox;
pub mod spice;
