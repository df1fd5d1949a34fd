//! Streaming NDJSON reader for files and pipes, plain or gzip (detected by magic bytes; multi-member
//! gzip as Logpush writes it). Lines are handed out as slices of one reusable buffer, so memory is
//! bounded by `buffer size + max line length` whatever the input size. A line longer than the limit
//! is not buffered: its head is kept as an excerpt and the rest skipped up to the next newline.
//! Zero bytes after the last gzip member (padding, as block devices and some archivers leave it)
//! end the stream as `gzip -d` reads it; anything else after a member must be another member.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use edgelens_schemas::{parse_line, EdgeEvent, InvalidReason, MAX_EXCERPT_BYTES};

/// Default maximum accepted line length (1 MiB); Logpush lines are a few KB at most.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

const CHUNK: usize = 4 << 20;

/// One line of input.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A complete line without its `\n` (and without a trailing `\r`).
    Complete(&'a [u8]),
    /// A line over the limit: its first bytes, its full length and the limit it broke.
    TooLong { head: &'a [u8], len: usize, limit: usize },
}

impl<'a> Line<'a> {
    /// Parse and validate the line: the event, or the reason it is rejected with the bytes to
    /// keep as its raw excerpt.
    pub fn parse(&self) -> Result<EdgeEvent<'a>, (InvalidReason, &'a [u8])> {
        match *self {
            Line::TooLong { head, len, limit } => Err((InvalidReason::LineTooLong { len, limit }, head)),
            Line::Complete(bytes) => parse_line(bytes).map_err(|reason| (reason, bytes)),
        }
    }

    /// The line's bytes (its first bytes if too long).
    pub fn raw(&self) -> &'a [u8] {
        match *self {
            Line::Complete(b) | Line::TooLong { head: b, .. } => b,
        }
    }
}

/// A file's name as a source name (`replay:<name>`, `file:<name>`): its last component, or the
/// whole path when it has none.
pub fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Counts the bytes read from the underlying source (compressed bytes for gzip), for progress.
#[derive(Debug, Clone, Default)]
pub struct ByteCounter(Arc<AtomicU64>);

impl ByteCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Counting<R> {
    inner: R,
    counter: ByteCounter,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Open a file (plain or gzip) as a byte stream, with a counter of bytes read from disk.
pub fn open_file(path: &Path) -> io::Result<(Box<dyn Read + Send>, ByteCounter)> {
    open_file_buffered(path, 1 << 20)
}

/// [`open_file`] reading `buffer` bytes from disk at a time (smaller for many files open at once).
pub fn open_file_buffered(path: &Path, buffer: usize) -> io::Result<(Box<dyn Read + Send>, ByteCounter)> {
    let counter = ByteCounter::default();
    let file = Counting { inner: File::open(path)?, counter: counter.clone() };
    let mut buffered = BufReader::with_capacity(buffer.max(4096), file);
    let is_gzip = starts_like_gzip(buffered.fill_buf()?);
    let reader: Box<dyn Read + Send> = if is_gzip {
        // NDJSON never starts like gzip: a file compressed twice would be read as lines of
        // binary, each a dead letter (the receiver refuses such a body as well).
        let mut text = BufReader::with_capacity(64 << 10, GzipMembers::new(buffered));
        if starts_like_gzip(text.fill_buf()?) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "the file is gzip inside gzip: compress it once"));
        }
        Box::new(text)
    } else {
        Box::new(buffered)
    };
    Ok((reader, counter))
}

/// Whether `bytes` start with gzip's magic number. NDJSON never does, so text that starts like
/// gzip after one decompression was compressed twice.
pub fn starts_like_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// The text of every gzip member of `inner`, one after the other; zero bytes after a member end
/// the stream (padding), any other bytes must start the next member. An error leaves the reader
/// where it was: reading again retries (after `Interrupted`) or fails again, never ends quietly.
pub struct GzipMembers<R: BufRead> {
    state: Option<Members<R>>,
}

enum Members<R: BufRead> {
    /// Inside a member.
    Member(flate2::bufread::GzDecoder<R>),
    /// After a member: the next one, padding or the end.
    Between(R),
    Done,
}

impl<R: BufRead> GzipMembers<R> {
    pub fn new(inner: R) -> Self {
        GzipMembers { state: Some(Members::Member(flate2::bufread::GzDecoder::new(inner))) }
    }
}

impl<R: BufRead> Read for GzipMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.state.take().expect("a state between reads") {
                Members::Done => {
                    self.state = Some(Members::Done);
                    return Ok(0);
                }
                Members::Member(mut member) => {
                    let read = member.read(buf);
                    let ended = matches!(read, Ok(0)) && !buf.is_empty();
                    self.state = Some(if ended { Members::Between(member.into_inner()) } else { Members::Member(member) });
                    if !ended {
                        return read;
                    }
                }
                Members::Between(mut rest) => {
                    let next = match rest.fill_buf() {
                        Err(e) => Err(e),
                        Ok([]) => Ok(None),
                        Ok([0, ..]) => skip_padding(&mut rest).map(|()| None),
                        Ok(_) => Ok(Some(())),
                    };
                    match next {
                        Err(e) => {
                            self.state = Some(Members::Between(rest));
                            return Err(e);
                        }
                        Ok(None) => self.state = Some(Members::Done),
                        Ok(Some(())) => self.state = Some(Members::Member(flate2::bufread::GzDecoder::new(rest))),
                    }
                }
            }
        }
    }
}

/// Consume zero bytes to the end of `r`; an error at the first other byte.
fn skip_padding(r: &mut impl BufRead) -> io::Result<()> {
    loop {
        let head = r.fill_buf()?;
        if head.is_empty() {
            return Ok(());
        }
        if head.iter().any(|&b| b != 0) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "data after the zero padding that follows the last gzip member"));
        }
        let n = head.len();
        r.consume(n);
    }
}

/// A line found in the buffer, by its place in it.
#[derive(Debug, Clone, Copy)]
enum Cut {
    Blank,
    TooLong { start: usize, len: usize },
    Complete { start: usize, end: usize },
}

/// Splits a byte stream into lines with bounded memory.
pub struct LineReader<R> {
    inner: R,
    max_line: usize,
    /// The buffer's size, a quarter of it read at a time (it grows past it only for a line that
    /// needs it).
    chunk: usize,
    buf: Vec<u8>,
    /// Start of the unread part of `buf`.
    pos: usize,
    eof: bool,
    /// Number of lines handed out so far (= 0-based number of the next line).
    line_no: u64,
    /// Head of the last over-long line.
    long_head: Vec<u8>,
    /// Where the line last handed out starts, and its number: [`LineReader::unread`] goes back
    /// there (`None` after an over-long line, which is not kept).
    last: Option<(usize, u64)>,
    /// A read error (a truncated gzip file), given once the whole lines read before it are.
    error: Option<io::Error>,
}

impl<R: Read> LineReader<R> {
    pub fn new(inner: R, max_line: usize) -> Self {
        let cap = CHUNK.max(max_line.saturating_add(1).min(64 << 20));
        Self::with_buffer(inner, max_line, CHUNK, cap)
    }

    /// A reader holding about `chunk` bytes (at least 64 KiB) until a line needs more: for many
    /// readers open at once.
    pub fn with_chunk(inner: R, max_line: usize, chunk: usize) -> Self {
        let chunk = chunk.max(64 << 10);
        Self::with_buffer(inner, max_line, chunk, chunk)
    }

    fn with_buffer(inner: R, max_line: usize, chunk: usize, cap: usize) -> Self {
        Self { inner, max_line, chunk, buf: Vec::with_capacity(cap), pos: 0, eof: false, line_no: 0, long_head: Vec::new(), last: None, error: None }
    }

    /// Number of lines read so far, blank ones included.
    pub fn line_no(&self) -> u64 {
        self.line_no
    }

    /// The next line with its 0-based number in the input (blank lines counted, though skipped),
    /// or `None` at end of input.
    pub fn next_numbered(&mut self) -> io::Result<Option<(u64, Line<'_>)>> {
        let mut no = 0;
        let line = self.next_line_counting(&mut no)?;
        Ok(line.map(|l| (no, l)))
    }

    /// Read more input behind the unread part; returns false at end of input.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        // Up to a quarter chunk at a time, so lines are handed out in large runs, read into the
        // buffer's spare room: `read_to_end` does not zero it first (zeroing the whole buffer
        // before each read was work for nothing).
        let want = (self.chunk / 4).max(1);
        self.buf.reserve(want);
        let start = self.buf.len();
        let read = (&mut self.inner).take(want as u64).read_to_end(&mut self.buf);
        let got = self.buf.len() - start;
        if let Err(e) = read {
            // The bytes read before the error (`read_to_end` keeps them) are handed out first:
            // the whole lines among them; the error ends the input after them.
            self.eof = true;
            self.error = Some(e);
            return Ok(got > 0);
        }
        if got < want {
            self.eof = true;
        }
        Ok(got > 0)
    }

    /// Hand out the line last handed out again, with its number, at the next call (a reader
    /// that looked at a line and must not take it yet). Returns false, and does nothing, when
    /// that line was over the limit (its bytes are not kept) or another call came between.
    pub fn unread(&mut self) -> bool {
        match self.last.take() {
            Some((pos, no)) => {
                self.pos = pos;
                self.line_no = no;
                true
            }
            None => false,
        }
    }

    /// The next line, or `None` at end of input. Empty lines are skipped.
    #[allow(clippy::should_implement_trait)]
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.next_line_counting(&mut 0)
    }

    /// [`Self::next_line`], setting `no` to the 0-based number of the line returned.
    fn next_line_counting(&mut self, no: &mut u64) -> io::Result<Option<Line<'_>>> {
        self.last = None;
        loop {
            *no = self.line_no;
            let start = self.pos;
            match memchr::memchr(b'\n', &self.buf[start..]) {
                Some(i) => {
                    self.pos = start + i + 1;
                    self.line_no += 1;
                    match self.cut(start, start + i, *no) {
                        Cut::Blank => continue,
                        cut => return Ok(Some(self.line(cut))),
                    }
                }
                // One byte more may be the `\r` of a line of the limit's length.
                None if self.buf.len() - start > self.max_line.saturating_add(1) => return self.skip_long_line().map(Some),
                None => {
                    if self.fill()? {
                        continue;
                    }
                    // Input ended by a read error: the part of a line before it is cut off, and
                    // the error is the answer.
                    if let Some(e) = self.error.take() {
                        self.pos = self.buf.len();
                        return Err(e);
                    }
                    // End of input: a last line without a trailing newline.
                    let start = self.pos;
                    if start >= self.buf.len() {
                        return Ok(None);
                    }
                    self.pos = self.buf.len();
                    self.line_no += 1;
                    return Ok(match self.cut(start, self.buf.len(), *no) {
                        Cut::Blank => None,
                        cut => Some(self.line(cut)),
                    });
                }
            }
        }
    }

    /// What the buffer's `start..end` (a line without its `\n`) is, as line `no`: the limit is on
    /// the line, not its line end (`\n` or `\r\n`); a complete line loses a trailing `\r` and a
    /// byte order mark, and can be read again ([`LineReader::unread`]).
    fn cut(&mut self, start: usize, mut end: usize, no: u64) -> Cut {
        if end > start && self.buf[end - 1] == b'\r' {
            end -= 1;
        }
        if end - start > self.max_line {
            return Cut::TooLong { start, len: end - start };
        }
        let text = self.skip_bom(start, end);
        if self.buf[text..end].iter().all(|b| b.is_ascii_whitespace()) {
            return Cut::Blank;
        }
        self.last = Some((start, no));
        Cut::Complete { start: text, end }
    }

    /// The line a [`Cut`] (not blank) found.
    fn line(&self, cut: Cut) -> Line<'_> {
        match cut {
            Cut::TooLong { start, len } => Line::TooLong { head: &self.buf[start..start + MAX_EXCERPT_BYTES.min(self.max_line)], len, limit: self.max_line },
            Cut::Complete { start, end } => Line::Complete(&self.buf[start..end]),
            // Callers skip blank lines before asking.
            Cut::Blank => Line::Complete(&[]),
        }
    }

    /// Where the line `start..end` begins once a UTF-8 byte order mark is dropped: editors on
    /// some systems start a text file (or a body they save) with one, and files joined with `cat`
    /// have it at the start of a later line; it is never part of the JSON.
    fn skip_bom(&self, start: usize, end: usize) -> usize {
        if self.buf[start..end].starts_with(b"\xEF\xBB\xBF") { start + 3 } else { start }
    }

    /// The unread part holds more than `max_line` bytes and no newline: keep the head, discard
    /// input up to and including the next newline.
    fn skip_long_line(&mut self) -> io::Result<Line<'_>> {
        self.long_head.clear();
        self.long_head.extend_from_slice(&self.buf[self.pos..self.pos + MAX_EXCERPT_BYTES.min(self.max_line)]);
        let mut len = self.buf.len() - self.pos;
        self.buf.clear();
        self.pos = 0;
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            let n = match self.inner.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if let Some(i) = memchr::memchr(b'\n', &chunk[..n]) {
                len += i;
                self.buf.extend_from_slice(&chunk[i + 1..n]);
                break;
            }
            len += n;
        }
        self.line_no += 1;
        Ok(Line::TooLong { head: &self.long_head, len, limit: self.max_line })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut r = LineReader::new(input, max);
        let mut out = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            out.push(match l {
                Line::Complete(b) => String::from_utf8_lossy(b).into_owned(),
                Line::TooLong { head, len, .. } => format!("LONG {len} {}", head.len()),
            });
        }
        out
    }

    /// Regression: a read error (a truncated gzip file) threw away the whole lines read before it
    /// in the same read (up to a quarter of the buffer): `ingest file` appended a thousand lines
    /// fewer than `zcat` recovers.
    #[test]
    fn lines_read_before_an_error_are_handed_out_then_the_error() {
        /// Gives `data`, then fails.
        struct Cut {
            data: Vec<u8>,
            at: usize,
        }
        impl Read for Cut {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                if self.at == self.data.len() {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "deflate stream cut"));
                }
                let n = out.len().min(self.data.len() - self.at).min(1000);
                out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
                self.at += n;
                Ok(n)
            }
        }
        let mut data: Vec<u8> = (0..5000).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        data.extend_from_slice(b"cut off mid-li");
        let mut r = LineReader::new(Cut { data, at: 0 }, 1 << 10);
        let mut n = 0;
        let err = loop {
            match r.next_numbered() {
                Ok(Some((no, Line::Complete(l)))) => {
                    assert_eq!((no, l), (n, format!("line {n}").as_bytes()));
                    n += 1;
                }
                Ok(other) => panic!("{:?}", other.map(|(no, _)| no)),
                Err(e) => break e,
            }
        };
        assert_eq!((n, err.kind()), (5000, io::ErrorKind::UnexpectedEof), "every whole line, then the error; not the cut-off one");
    }

    #[test]
    fn long_line_head_stays_within_the_line_and_the_limit() {
        // A limit below the excerpt size: the head is cut at the limit, never past the line.
        assert_eq!(lines(b"aaaaaaaaaaaaaaaaaaaa\nb", 10), ["LONG 20 10", "b"]);
        assert_eq!(lines(b"x\naaaaaaaaaaaaaaaaaaaa", 10), ["x", "LONG 20 10"]);
    }

    #[test]
    fn splits_and_skips_blank() {
        assert_eq!(lines(b"a\nbb\r\n\n  \nccc", 100), ["a", "bb", "ccc"]);
        assert_eq!(lines(b"", 100), Vec::<String>::new());
        assert_eq!(lines(b"x\n", 100), ["x"]);
    }

    #[test]
    fn a_byte_order_mark_before_a_line_is_dropped() {
        assert_eq!(lines(b"\xEF\xBB\xBF{\"a\":1}\r\n{\"b\":2}", 100), ["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!(lines(b"\xEF\xBB\xBF{\"a\":1}", 100), ["{\"a\":1}"]);
        // Regression: files joined with `cat` have the second one's mark before a later line,
        // where it made the line malformed JSON.
        assert_eq!(lines(b"\xEF\xBB\xBF\n\xEF\xBB\xBFx\n{\"a\":1}\n\xEF\xBB\xBF{\"b\":2}", 100), ["x", "{\"a\":1}", "{\"b\":2}"]);
    }

    /// Regression: the limit counted a `\r\n` line end's `\r`, so a line of exactly the limit was
    /// accepted with `\n` and too long with `\r\n`; at the end of input a line one byte over the
    /// limit was accepted.
    #[test]
    fn the_line_limit_is_on_the_line_not_its_line_end() {
        assert_eq!(lines(b"aaaa\r\nbbbb\ncccc\r", 4), ["aaaa", "bbbb", "cccc"]);
        assert_eq!(lines(b"aaaaa\r\nbbbbb\nccccc", 4), ["LONG 5 4", "LONG 5 4", "LONG 5 4"]);
        // The same through a reader that hands out one byte at a time (a line end split over reads).
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(1);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut r = LineReader::new(Trickle(b"aaaa\r\naaaaa\r\nb"), 4);
        let mut got = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            got.push(match l {
                Line::Complete(b) => String::from_utf8_lossy(b).into_owned(),
                Line::TooLong { len, .. } => format!("LONG {len}"),
            });
        }
        assert_eq!(got, ["aaaa", "LONG 5", "b"]);
    }

    #[test]
    fn long_line_is_skipped_with_excerpt() {
        let mut input = b"first\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
        input.extend_from_slice(b"\nlast\n");
        let got = lines(&input, DEFAULT_MAX_LINE);
        assert_eq!(got, ["first", &format!("LONG {} {}", 10 * 1024 * 1024, MAX_EXCERPT_BYTES), "last"]);
    }

    #[test]
    fn a_line_unread_is_handed_out_again_with_its_number() {
        let mut r = LineReader::new(&b"a\n\nb\nc"[..], 100);
        assert_eq!(r.next_numbered().unwrap(), Some((0, Line::Complete(b"a"))));
        assert_eq!(r.next_numbered().unwrap(), Some((2, Line::Complete(b"b"))));
        assert!(r.unread());
        assert!(!r.unread(), "once");
        assert_eq!(r.next_numbered().unwrap(), Some((2, Line::Complete(b"b"))));
        assert_eq!(r.next_numbered().unwrap(), Some((3, Line::Complete(b"c"))));
        assert!(r.unread(), "the last line, without a newline");
        assert_eq!(r.next_numbered().unwrap(), Some((3, Line::Complete(b"c"))));
        assert_eq!(r.next_numbered().unwrap(), None);
        let mut r = LineReader::new(&b"aaaaaaaa\nb\n"[..], 4);
        assert!(matches!(r.next_line().unwrap(), Some(Line::TooLong { .. })));
        assert!(!r.unread(), "an over-long line is not kept");
    }

    #[test]
    fn a_small_chunk_reads_the_same_lines() {
        let mut input = Vec::new();
        for i in 0..20_000 {
            input.extend_from_slice(format!("line {i} {}\n", "x".repeat(i % 300)).as_bytes());
        }
        input.extend(std::iter::repeat_n(b'y', 300 << 10));
        input.extend_from_slice(b"\nlast");
        let read = |mut r: LineReader<&[u8]>| {
            let mut out = Vec::new();
            while let Some(l) = r.next_line().unwrap() {
                out.push(match l {
                    Line::Complete(b) => b.len(),
                    Line::TooLong { len, .. } => len + 1_000_000_000,
                });
            }
            out
        };
        let big = read(LineReader::new(&input[..], 200 << 10));
        assert_eq!(read(LineReader::with_chunk(&input[..], 200 << 10, 64 << 10)), big);
        assert_eq!(big.len(), 20_002);
        assert_eq!(big[20_000], (300 << 10) + 1_000_000_000, "over the limit");
    }

    #[test]
    fn line_numbers_count_blank_lines() {
        let mut r = LineReader::new(&b"a\n\nb\n"[..], 100);
        r.next_line().unwrap();
        assert_eq!(r.line_no(), 1);
        r.next_line().unwrap();
        assert_eq!(r.line_no(), 3);
    }

    #[test]
    fn a_file_compressed_twice_is_an_error() {
        use std::io::Write;
        let gz = |data: &[u8]| {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("twice.ndjson.gz");
        std::fs::write(&path, gz(&gz(b"{\"a\":1}\n"))).unwrap();
        let err = open_file(&path).err().expect("refused");
        assert!(err.to_string().contains("gzip inside gzip"), "{err}");
        std::fs::write(&path, gz(b"{\"a\":1}\n")).unwrap();
        let (mut r, _) = open_file(&path).unwrap();
        let mut text = String::new();
        r.read_to_string(&mut text).unwrap();
        assert_eq!(text, "{\"a\":1}\n");
    }

    /// A line's number counts the blank lines before it: a dead letter's offset (and a batch's
    /// first line in its message ids) named the wrong line after leading blank lines.
    #[test]
    fn numbered_lines_count_the_blank_lines_before_them() {
        let mut input = b"\n\r\n  \na\n\nb\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 300));
        input.extend_from_slice(b"\n\n\nc");
        let mut r = LineReader::new(&input[..], 100);
        let mut got = Vec::new();
        while let Some((no, line)) = r.next_numbered().unwrap() {
            got.push((no, matches!(line, Line::TooLong { .. })));
        }
        assert_eq!(got, [(3, false), (5, false), (6, true), (9, false)]);
    }

    #[test]
    fn gzip_multi_member_with_zero_padding() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ndjson.gz");
        let mut data = Vec::new();
        for part in ["a\nb\n", "c\n"] {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(part.as_bytes()).unwrap();
            data.extend(enc.finish().unwrap());
        }
        data.extend([0u8; 4096]); // padding to a block, as tar and block devices leave it
        std::fs::write(&path, data).unwrap();
        let (rd, counter) = open_file(&path).unwrap();
        let mut r = LineReader::new(rd, 100);
        let mut n = 0;
        while r.next_line().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 3);
        assert!(counter.get() > 0);
    }

    fn gz(text: &str) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap()
    }

    fn gunzip(data: &[u8]) -> io::Result<String> {
        let mut out = String::new();
        GzipMembers::new(data).read_to_string(&mut out)?;
        Ok(out)
    }

    #[test]
    fn zero_padding_after_the_last_member_ends_the_stream() {
        let mut data = gz("a\n");
        data.extend(gz("b\n"));
        data.extend([0u8; 1000]);
        assert_eq!(gunzip(&data).unwrap(), "a\nb\n");
        assert_eq!(gunzip(&gz("")).unwrap(), "");
    }

    /// Regression: an error at a member boundary (here `Interrupted`, which readers retry) lost
    /// the reader, and every later read ended the stream quietly: a truncated input.
    #[test]
    fn an_interrupted_read_between_members_is_retried() {
        struct Flaky<'a> {
            data: &'a [u8],
            pos: usize,
            trip_at: usize,
            tripped: bool,
        }
        impl Read for Flaky<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.fill_buf()?.len().min(buf.len());
                buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
                self.consume(n);
                Ok(n)
            }
        }
        impl BufRead for Flaky<'_> {
            fn fill_buf(&mut self) -> io::Result<&[u8]> {
                if self.pos == self.trip_at && !self.tripped {
                    self.tripped = true;
                    return Err(io::Error::from(io::ErrorKind::Interrupted));
                }
                // Never hand out bytes past the boundary in one piece, so the boundary is met.
                let end = if self.pos < self.trip_at { self.trip_at } else { self.data.len() };
                Ok(&self.data[self.pos..end])
            }
            fn consume(&mut self, n: usize) {
                self.pos += n;
            }
        }
        let first = gz("a\n");
        let mut data = first.clone();
        data.extend(gz("b\n"));
        let mut reader = Flaky { data: &data, pos: 0, trip_at: first.len(), tripped: false };
        let mut out = String::new();
        GzipMembers::new(&mut reader).read_to_string(&mut out).unwrap();
        assert!(reader.tripped, "the boundary was met");
        assert_eq!(out, "a\nb\n");
    }

    #[test]
    fn other_bytes_after_a_member_are_an_error() {
        for tail in [&b"x"[..], b"\0\0x", b"\0\x1f\x8b"] {
            let mut data = gz("a\n");
            data.extend_from_slice(tail);
            assert!(gunzip(&data).is_err(), "{tail:?}");
        }
        let whole = gz("a\nb\n");
        assert!(gunzip(&whole[..whole.len() - 4]).is_err(), "a truncated member");
    }
}
