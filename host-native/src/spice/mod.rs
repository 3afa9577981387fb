//! The native SPICE client: runs `livemig_core::spice::session::Session` over real TCP and
//! TLS sockets, with the ticket encrypted by the `rsa` crate. Usable as a library
//! ([`client::spawn`]) and as `livemig spice ...`.

pub mod client;
pub mod ticket;
pub mod tls;
