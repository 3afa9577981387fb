//! Fuzz target for the migration cookie codec (spec/libvirt-migration.md §6): parse
//! arbitrary bytes; whatever parses must format to bytes that parse back to the same
//! cookie, and the receiver's checks must not panic on it for any hop.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livemig_core::migration::cookie::{CheckContext, Cookie, CookieHop, MAX_COOKIE_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(Some(cookie)) = Cookie::parse(data) else {
        return;
    };
    let wire = cookie.format();
    assert_eq!(wire.last(), Some(&0));
    // Escaping can grow a cookie past the cap; below it the round trip must be exact.
    if wire.len() <= MAX_COOKIE_LEN {
        assert_eq!(Cookie::parse(&wire), Ok(Some(cookie.clone())));
    }
    for hop in CookieHop::ALL {
        for local in [
            cookie.hostuuid.as_str(),
            "0b0b0b0b-0000-4000-8000-00000000000b",
        ] {
            let ctx = CheckContext {
                expected_name: &cookie.name,
                expected_uuid: &cookie.uuid,
                local_host_uuid: local,
                hop,
                local_lock_driver: Some("sanlock"),
            };
            let _ = cookie.check(&ctx);
            let _ = Cookie::receive(data, &ctx);
        }
    }
});
