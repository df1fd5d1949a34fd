//! What a Postgres client sends, checked before the `pgwire` decoder sees any of it. Pure.
//!
//! The decoder reads a message's fields from everything buffered, not from the message its length
//! prefix announces: a body shorter than its fields reads into the next message, or past the end of
//! the buffer (a panic in `bytes`), and a longer one leaves bytes that are then taken for the next
//! message. So [`MessageFrames`] releases only whole messages whose bodies hold exactly the fields
//! of their type — as the decoder will read them — and refuses, with a [`FrameError`], the first
//! message that announces more than the size limit (as soon as its header is in, before its body is
//! buffered) or that is malformed. The connection is then closed with a `FATAL` error.

use std::fmt;

/// Why a client's stream was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A length prefix announced more than the limit, or less than the length field itself.
    TooLarge { announced: usize, limit: usize },
    /// A whole message whose body does not hold exactly the fields of its type.
    Malformed { message: String, reason: &'static str },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { announced, .. } if *announced < 4 => write!(f, "invalid message length {announced}"),
            FrameError::TooLarge { announced, limit } => {
                write!(f, "message of {announced} bytes exceeds the limit of {limit} bytes")
            }
            FrameError::Malformed { message, reason } => write!(f, "malformed {message} message: {reason}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// The request codes of the untyped messages of the startup phase.
const SSL_REQUEST: i32 = 80_877_103;
const GSS_ENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

/// The client's stream cut into whole, well-formed messages.
#[derive(Debug, Clone)]
pub struct MessageFrames {
    /// The next message has no type byte (startup phase: SSL/GSS requests, startup, cancel).
    untyped: bool,
    /// Bytes of the message not yet complete.
    pending: Vec<u8>,
}

impl Default for MessageFrames {
    fn default() -> Self {
        MessageFrames { untyped: true, pending: Vec::new() }
    }
}

impl MessageFrames {
    /// Take `data`, the next bytes from the client, and append to `out` the bytes of every message
    /// now complete and well-formed, in order. An error on the first message announcing more than
    /// `limit` bytes or malformed; nothing after it is released.
    pub fn push(&mut self, data: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), FrameError> {
        self.pending.extend_from_slice(data);
        let mut at = 0;
        let result = loop {
            let rest = &self.pending[at..];
            let header = if self.untyped { 4 } else { 5 };
            if rest.len() < header {
                break Ok(());
            }
            let len = i32::from_be_bytes([rest[header - 4], rest[header - 3], rest[header - 2], rest[header - 1]]);
            let announced = usize::try_from(len).unwrap_or(0);
            if announced < 4 || announced > limit {
                break Err(FrameError::TooLarge { announced, limit });
            }
            let total = header - 4 + announced;
            if rest.len() < total {
                break Ok(());
            }
            let message = &rest[..total];
            let checked = if self.untyped { check_untyped(message) } else { check_typed(message[0], &message[5..]) };
            match checked {
                Ok(still_untyped) => {
                    self.untyped = still_untyped;
                    out.extend_from_slice(message);
                    at += total;
                }
                Err(e) => break Err(e),
            }
        };
        self.pending.drain(..at);
        result
    }
}

/// A startup-phase message (length prefix included); whether the next one is untyped too (after an
/// SSL or GSS encryption request).
fn check_untyped(message: &[u8]) -> Result<bool, FrameError> {
    let malformed = |reason| FrameError::Malformed { message: "startup".to_owned(), reason };
    if message.len() < 8 {
        return Err(malformed("shorter than 8 bytes"));
    }
    let code = i32::from_be_bytes([message[4], message[5], message[6], message[7]]);
    match code {
        SSL_REQUEST | GSS_ENC_REQUEST if message.len() == 8 => Ok(true),
        SSL_REQUEST | GSS_ENC_REQUEST => Err(malformed("an encryption request has 8 bytes")),
        // Process id and a secret key of 4 (protocol 3.0) to 256 bytes (3.2).
        CANCEL_REQUEST if (16..=268).contains(&message.len()) => Ok(false),
        CANCEL_REQUEST => Err(malformed("a cancel request has 16 to 268 bytes")),
        _ => {
            // Protocol version, then name/value pairs ended by an empty name.
            let mut body = Fields(&message[8..]);
            loop {
                let name = body.cstring().map_err(malformed)?;
                if name.is_empty() {
                    break;
                }
                body.cstring().map_err(malformed)?;
            }
            body.end().map_err(malformed)?;
            Ok(false)
        }
    }
}

/// A typed message's body holds exactly the fields of its type.
fn check_typed(kind: u8, body: &[u8]) -> Result<bool, FrameError> {
    let Some(name) = message_name(kind) else {
        return Err(FrameError::Malformed { message: format!("{:?}", char::from(kind)), reason: "unknown message type" });
    };
    let mut f = Fields(body);
    let mut fields = || -> Result<(), &'static str> {
        match kind {
            b'Q' | b'f' => {
                f.cstring()?;
            }
            b'P' => {
                f.cstring()?;
                f.cstring()?;
                let types = f.u16()?;
                f.take(4 * usize::from(types))?;
            }
            b'B' => {
                f.cstring()?;
                f.cstring()?;
                let formats = f.u16()?;
                f.take(2 * usize::from(formats))?;
                for _ in 0..f.u16()? {
                    // A negative length is NULL.
                    if let Ok(len) = usize::try_from(f.i32()?) {
                        f.take(len)?;
                    }
                }
                let results = f.u16()?;
                f.take(2 * usize::from(results))?;
            }
            b'C' | b'D' => {
                if !matches!(f.take(1)?, [b'S' | b'P']) {
                    return Err("target is neither S nor P");
                }
                f.cstring()?;
            }
            b'E' => {
                f.cstring()?;
                f.i32()?;
            }
            // Raw bytes as a whole: password and SASL responses, copy data.
            b'p' | b'd' => {
                f.take(body.len())?;
            }
            // Flush, Sync, Terminate, CopyDone: no body.
            _ => {}
        }
        f.end()
    };
    fields().map_err(|reason| FrameError::Malformed { message: name.to_owned(), reason })?;
    Ok(false)
}

/// The frontend message types the listener takes, by type byte.
fn message_name(kind: u8) -> Option<&'static str> {
    Some(match kind {
        b'Q' => "Query",
        b'P' => "Parse",
        b'B' => "Bind",
        b'C' => "Close",
        b'D' => "Describe",
        b'E' => "Execute",
        b'H' => "Flush",
        b'S' => "Sync",
        b'X' => "Terminate",
        b'c' => "CopyDone",
        b'd' => "CopyData",
        b'f' => "CopyFail",
        b'p' => "password",
        _ => return None,
    })
}

/// A cursor over a message body; every read fails rather than run past the end.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if n > self.0.len() {
            return Err("shorter than its fields");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    /// A NUL-terminated string (without its NUL).
    fn cstring(&mut self) -> Result<&'a [u8], &'static str> {
        let end = self.0.iter().position(|&b| b == 0).ok_or("unterminated string")?;
        let s = &self.0[..end];
        self.0 = &self.0[end + 1..];
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, &'static str> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, &'static str> {
        self.take(4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn end(&self) -> Result<(), &'static str> {
        if self.0.is_empty() { Ok(()) } else { Err("longer than its fields") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn untyped(body: &[u8]) -> Vec<u8> {
        let mut m = (body.len() as i32 + 4).to_be_bytes().to_vec();
        m.extend_from_slice(body);
        m
    }

    const STARTUP: &[u8] = b"\0\x03\0\0user\0me\0database\0\0\0";

    /// Everything `data` releases, fed in pieces of `split` bytes.
    fn released(data: &[u8], split: usize) -> Result<Vec<u8>, FrameError> {
        let mut f = MessageFrames::default();
        let mut out = Vec::new();
        for piece in data.chunks(split) {
            f.push(piece, 1 << 16, &mut out)?;
        }
        Ok(out)
    }

    fn session(messages: &[Vec<u8>]) -> Vec<u8> {
        let mut s = untyped(&80_877_103i32.to_be_bytes());
        s.extend(untyped(STARTUP));
        for m in messages {
            s.extend_from_slice(m);
        }
        s
    }

    #[test]
    fn well_formed_sessions_pass_unchanged_however_they_are_read() {
        let mut bind = b"\0s1\0".to_vec();
        bind.extend_from_slice(&[0, 1, 0, 1, 0, 2]);
        bind.extend_from_slice(&3i32.to_be_bytes());
        bind.extend_from_slice(b"abc");
        bind.extend_from_slice(&(-1i32).to_be_bytes());
        bind.extend_from_slice(&[0, 1, 0, 0]);
        let mut parse = b"s1\0SELECT $1, $2\0".to_vec();
        parse.extend_from_slice(&[0, 2, 0, 0, 0, 25, 0, 0, 0, 23]);
        let stream = session(&[
            typed(b'p', b"secret\0"),
            typed(b'Q', b"SELECT 1\0"),
            typed(b'Q', b"\0"),
            typed(b'P', &parse),
            typed(b'B', &bind),
            typed(b'D', b"P\0"),
            typed(b'E', b"\0\0\0\0\0"),
            typed(b'C', b"Ss1\0"),
            typed(b'H', b""),
            typed(b'S', b""),
            typed(b'X', b""),
        ]);
        for split in [1, 2, 3, 7, 64, stream.len()] {
            assert_eq!(released(&stream, split).unwrap(), stream, "split {split}");
        }
        // A cancel request is a session of its own.
        let mut cancel = 80_877_102i32.to_be_bytes().to_vec();
        cancel.extend_from_slice(&[0, 0, 0, 7, 1, 2, 3, 4]);
        assert_eq!(released(&untyped(&cancel), 5).unwrap(), untyped(&cancel));
    }

    #[test]
    fn a_message_is_released_only_when_whole() {
        let stream = session(&[typed(b'Q', b"SELECT 1\0")]);
        let mut f = MessageFrames::default();
        let mut out = Vec::new();
        f.push(&stream[..stream.len() - 1], 100, &mut out).unwrap();
        assert_eq!(out, stream[..stream.len() - 14], "the query is held back until its last byte");
        f.push(&stream[stream.len() - 1..], 100, &mut out).unwrap();
        assert_eq!(out, stream);
    }

    #[test]
    fn bodies_shorter_or_longer_than_their_fields_are_refused() {
        let cases: [(u8, &[u8], &str); 12] = [
            // The short Execute the fuzz target found: the decoder read past the buffer.
            (b'E', b"\0", "shorter than its fields"),
            (b'E', b"\0\0\0\0\0\0", "longer than its fields"),
            (b'E', b"portal", "unterminated string"),
            (b'Q', b"SELECT 1", "unterminated string"),
            (b'Q', b"SELECT 1\0; drop\0", "longer than its fields"),
            (b'P', b"s\0SELECT 1\0\0\x02\0\0\0\x19", "shorter than its fields"),
            (b'B', b"\0\0\0\0\0\x01\0\0\0\x09ab\0\0", "shorter than its fields"),
            (b'B', b"\0\0\0\0\0\x01", "shorter than its fields"),
            (b'D', b"Xname\0", "target is neither S nor P"),
            (b'C', b"", "shorter than its fields"),
            (b'S', b"x", "longer than its fields"),
            (b'Z', b"", "unknown message type"),
        ];
        for (kind, body, reason) in cases {
            let stream = session(&[typed(b'Q', b"SELECT 1\0"), typed(kind, body), typed(b'S', b"")]);
            let mut f = MessageFrames::default();
            let mut out = Vec::new();
            let err = f.push(&stream, 1 << 16, &mut out).unwrap_err();
            match &err {
                FrameError::Malformed { reason: r, .. } => assert_eq!(*r, reason, "{:?} {body:?}", char::from(kind)),
                other => panic!("{other:?}"),
            }
            assert!(err.to_string().starts_with("malformed "), "{err}");
            // What came before is released; nothing from the bad message on.
            assert_eq!(out, session(&[typed(b'Q', b"SELECT 1\0")]), "{:?} {body:?}", char::from(kind));
        }
    }

    #[test]
    fn startup_messages_are_checked() {
        for (body, reason) in [
            (&b"\0\x03\0\0user\0me\0"[..], "unterminated string"),
            (b"\0\x03\0\0user\0me\0\0\0", "longer than its fields"),
            (b"\0\x03\0\0", "unterminated string"),
        ] {
            let err = released(&untyped(body), 3).unwrap_err();
            assert_eq!(err, FrameError::Malformed { message: "startup".into(), reason }, "{body:?}");
        }
        let mut long_ssl = 80_877_103i32.to_be_bytes().to_vec();
        long_ssl.push(0);
        assert!(matches!(released(&untyped(&long_ssl), 4), Err(FrameError::Malformed { reason: "an encryption request has 8 bytes", .. })));
        assert!(matches!(released(&untyped(b"\0\x03"), 4), Err(FrameError::Malformed { reason: "shorter than 8 bytes", .. })));
    }

    #[test]
    fn oversized_and_impossible_lengths_are_refused_on_the_header() {
        let mut f = MessageFrames::default();
        let mut out = Vec::new();
        f.push(&untyped(STARTUP), 1000, &mut out).unwrap();
        let mut big = vec![b'Q'];
        big.extend_from_slice(&1_000_001i32.to_be_bytes());
        let err = f.push(&big, 1000, &mut out).unwrap_err();
        assert_eq!(err, FrameError::TooLarge { announced: 1_000_001, limit: 1000 });
        assert!(err.to_string().contains("exceeds the limit of 1000 bytes"));
        for len in [-5i32, 2] {
            let err = MessageFrames::default().push(&len.to_be_bytes(), 1000, &mut out).unwrap_err();
            assert!(matches!(err, FrameError::TooLarge { .. }), "{err:?}");
            assert!(err.to_string().starts_with("invalid message length"), "{err}");
        }
    }
}
