//! Any bytes as what a Postgres client sends: the listener's framing ([`MessageFrames`]) gives the
//! same verdict and releases the same bytes however the stream is split into reads; the `pgwire`
//! frontend decoder, fed only what the framing released, never panics and reads each message to
//! exactly its announced length; and the statement text handling — splitting, classification,
//! `$n` counting and substitution — never panics, and a statement with its parameters substituted
//! has none left.
#![no_main]

use bytes::BytesMut;
use edgelens_query::pgwire::MessageFrames;
use edgelens_query::pgwire::sql_text::{Escapes, classify, parameter_count, split_statements, substitute_parameters};
use libfuzzer_sys::fuzz_target;
use pgwire::messages::{DecodeContext, PgWireFrontendMessage, SslNegotiationMetaMessage};

fn released(data: &[u8], split: usize) -> (bool, Vec<u8>) {
    let mut frames = MessageFrames::default();
    let mut out = Vec::new();
    let ok = data.chunks(split).all(|c| frames.push(c, 1 << 16, &mut out).is_ok());
    (ok, out)
}

fuzz_target!(|data: &[u8]| {
    let whole = released(data, data.len().max(1));
    let split = data.first().map_or(1, |b| usize::from(*b % 7) + 1);
    assert_eq!(whole, released(data, split), "the framing depends on how the stream is read");

    // The decoder through the phases the listener goes through: encryption requests, startup (or
    // cancel), then typed messages.
    let mut buf = BytesMut::from(&whole.1[..]);
    let mut ctx = DecodeContext::default();
    while !buf.is_empty() {
        let typed = !ctx.awaiting_frontend_ssl && !ctx.awaiting_frontend_startup;
        let at = usize::from(typed);
        let announced = i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize + at;
        let before = buf.len();
        match PgWireFrontendMessage::decode(&mut buf, &ctx) {
            Ok(Some(PgWireFrontendMessage::SslNegotiation(SslNegotiationMetaMessage::None))) => {
                assert_eq!(buf.len(), before, "the negotiation probe reads nothing");
                ctx.awaiting_frontend_ssl = false;
                continue;
            }
            Ok(Some(message)) => {
                assert_eq!(before - buf.len(), announced, "{message:?} read other than its own bytes");
                if matches!(message, PgWireFrontendMessage::Startup(_) | PgWireFrontendMessage::CancelRequest(_)) {
                    ctx.awaiting_frontend_startup = false;
                }
            }
            // The decoder refuses what the framing let through (e.g. an unsupported protocol
            // version): the listener ends the connection there.
            Ok(None) | Err(_) => break,
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
