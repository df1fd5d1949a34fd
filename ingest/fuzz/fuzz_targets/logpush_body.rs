//! Any bytes as a `POST /v1/logpush` body, with or without `Content-Encoding: gzip`: decoding
//! never panics, never holds more than the decompressed-size limit (gzip bombs are refused, not
//! inflated; so are bodies whose dead letters would take more), and every non-blank line ends up
//! either as an event or as a dead letter.
#![no_main]

use edgelens_ingest::receiver::{decode_batch, BatchError};
use libfuzzer_sys::fuzz_target;

const MAX_DECOMPRESSED: usize = 1 << 20;
const MAX_LINE: usize = 4 << 10;

fuzz_target!(|data: &[u8]| {
    let Some((&flag, body)) = data.split_first() else { return };
    match decode_batch(body, flag & 1 == 1, MAX_DECOMPRESSED, MAX_LINE, 0) {
        Ok(batch) => {
            let kept: usize = batch.messages.iter().map(|r| r.value.len()).sum();
            assert!(kept <= MAX_DECOMPRESSED, "{kept} bytes kept from a batch limited to {MAX_DECOMPRESSED}");
            let packed: usize = batch.messages.iter().map(|r| edgelens_ingest::log::message_lines(&r.value).count()).sum();
            assert_eq!(packed as u64, batch.events, "every valid event is in exactly one message");
            for d in &batch.dead_letters {
                assert!(!d.reason.is_empty());
            }
            // Plain bodies: every non-blank line is accounted for.
            if flag & 1 == 0 && !body.starts_with(&[0x1f, 0x8b]) {
                let lines = body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
                assert!(batch.events as usize + batch.dead_letters.len() <= lines.max(1));
            }
        }
        Err(BatchError::TooLarge { limit }) => assert_eq!(limit, MAX_DECOMPRESSED),
        // Rejected lines whose dead letters would take more than a batch may.
        Err(BatchError::TooManyRejected { limit, lines }) => assert!(limit == MAX_DECOMPRESSED && lines > 0),
        Err(BatchError::BadGzip(_)) => {}
        Err(e @ BatchError::Busy { .. }) => panic!("no budget, yet {e}"),
    }
});
