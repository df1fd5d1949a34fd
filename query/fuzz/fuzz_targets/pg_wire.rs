//! Any bytes as what a Postgres client sends: the size guard's framing never panics and gives the
//! same verdict however the stream is split into reads; the frontend message decoder the listener
//! uses (startup phase, then typed messages) never panics; and the statement text handling —
//! splitting, classification, `$n` counting and substitution — never panics, and a statement with
//! its parameters substituted has none left.
#![no_main]

use bytes::BytesMut;
use edgelens_query::pgwire::MessageFrames;
use edgelens_query::pgwire::sql_text::{Escapes, classify, parameter_count, split_statements, substitute_parameters};
use libfuzzer_sys::fuzz_target;
use pgwire::messages::{DecodeContext, PgWireFrontendMessage};

fuzz_target!(|data: &[u8]| {
    let limit = 1 << 16;
    let whole = MessageFrames::default().observe(data, limit).is_ok();
    let split = data.first().map_or(1, |b| usize::from(*b % 7) + 1);
    let mut frames = MessageFrames::default();
    let chunked = data.chunks(split).all(|c| frames.observe(c, limit).is_ok());
    assert_eq!(whole, chunked, "the verdict depends on how the stream is read");

    for startup in [true, false] {
        let mut ctx = DecodeContext::default();
        if !startup {
            ctx.awaiting_frontend_ssl = false;
            ctx.awaiting_frontend_startup = false;
        }
        let mut buf = BytesMut::from(data);
        for _ in 0..64 {
            match PgWireFrontendMessage::decode(&mut buf, &ctx) {
                Ok(Some(_)) => {}
                _ => break,
            }
        }
    }

    if let Ok(sql) = std::str::from_utf8(data) {
        for escapes in [Escapes::Standard, Escapes::Backslash] {
            for statement in split_statements(sql, escapes) {
                let _ = classify(statement, escapes);
                if parameter_count(statement, escapes) > 0 {
                    let bound = substitute_parameters::<()>(statement, escapes, |_| Ok("NULL".into())).unwrap();
                    assert_eq!(parameter_count(&bound, escapes), 0, "{statement:?} → {bound:?}");
                }
            }
        }
    }
});
