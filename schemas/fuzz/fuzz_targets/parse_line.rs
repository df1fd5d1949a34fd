//! Any bytes as one Logpush NDJSON line: the parser never panics, an accepted event satisfies the
//! validation rules, the fast path agrees with the general deserializer on every line it takes,
//! and redacting the line for storage never panics (and changes nothing under `keep`).
#![no_main]

use edgelens_schemas::parse_line;
use edgelens_schemas::privacy::ClientIpPolicy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_line(data) {
        Ok(ev) => {
            assert!((100..=599).contains(&ev.status), "status {} accepted", ev.status);
            assert!(!ev.site.is_empty(), "empty site accepted");
            let _ = (ev.is_cache_hit(), ev.is_blocked(), ev.status_class());
        }
        Err(reason) => {
            assert!(!reason.code().is_empty());
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(fast) = edgelens_schemas::flat_scan::scan(text) {
            assert_eq!(edgelens_schemas::event::deserialize(text).as_ref(), Ok(&fast), "fast path disagrees");
        }
        assert_eq!(ClientIpPolicy::Keep.redact(text), text);
        let _ = ClientIpPolicy::Truncate.redact(text);
        let _ = ClientIpPolicy::Hash { key: (1, 2) }.redact(text);
    }
});
