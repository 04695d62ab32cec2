//! ArcQL parser fuzz target: parsing never panics, and whatever parses prints to text that
//! parses back to the same query.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(q) = arcbase::arcql::parse(text) {
        let printed = arcbase::arcql::print(&q);
        let again = arcbase::arcql::parse(&printed)
            .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?} does not parse: {e}"));
        assert_eq!(again, q, "{text:?} printed as {printed:?}");
    }
});
