//! Bounded newline framing for the stdio transport.
//!
//! [`LineFramer`] is a pure state machine: feed it chunks as they arrive, and it yields complete
//! lines. Memory stays bounded by the line limit: a line that grows past it is dropped as it
//! streams in (nothing of it is kept), and one [`Frame::Oversized`] is reported when its newline
//! finally arrives, so the session can answer once and keep serving. It does not parse JSON.

/// Default maximum line length: large enough for any realistic tool call, small enough that a
/// hostile client cannot make the server hold much memory per line.
pub const DEFAULT_MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// One unit of input from the framer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line without its `\n` (and without one trailing `\r`). Never blank.
    Line(Vec<u8>),
    /// A line that exceeded the limit; `len` is its full length in bytes, none of them kept.
    Oversized {
        /// Total length of the discarded line.
        len: usize,
    },
}

/// Splits a byte stream into lines of at most `max_line_bytes`.
#[derive(Debug)]
pub struct LineFramer {
    max_line_bytes: usize,
    partial: Vec<u8>,
    /// Bytes of the current line already thrown away, once it has gone over the limit.
    discarding: Option<usize>,
}

impl LineFramer {
    /// A framer that accepts lines up to `max_line_bytes` (excluding the newline).
    pub fn new(max_line_bytes: usize) -> Self {
        LineFramer {
            max_line_bytes,
            partial: Vec::new(),
            discarding: None,
        }
    }

    /// Consumes `chunk` and appends every frame it completes to `frames`.
    pub fn push(&mut self, mut chunk: &[u8], frames: &mut Vec<Frame>) {
        while !chunk.is_empty() {
            match memchr::memchr(b'\n', chunk) {
                Some(newline) => {
                    self.take(&chunk[..newline], true, frames);
                    chunk = &chunk[newline + 1..];
                }
                None => {
                    self.take(chunk, false, frames);
                    chunk = &[];
                }
            }
        }
    }

    /// Ends the stream: an unterminated last line still counts as a line.
    pub fn finish(&mut self, frames: &mut Vec<Frame>) {
        self.take(&[], true, frames);
    }

    fn take(&mut self, part: &[u8], line_complete: bool, frames: &mut Vec<Frame>) {
        if let Some(discarded) = self.discarding.as_mut() {
            *discarded += part.len();
            if line_complete {
                frames.push(Frame::Oversized { len: *discarded });
                self.discarding = None;
            }
            return;
        }
        if self.partial.len() + part.len() > self.max_line_bytes {
            self.discarding = Some(self.partial.len() + part.len());
            // Release the memory, not just the length: the limit is about what we hold.
            self.partial = Vec::new();
            if line_complete {
                self.take(&[], true, frames);
            }
            return;
        }
        self.partial.extend_from_slice(part);
        if line_complete {
            let mut line = std::mem::take(&mut self.partial);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                frames.push(Frame::Line(line));
            }
        }
    }

    /// Bytes currently buffered for an incomplete line (for tests of the memory bound).
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_of(max: usize, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut framer = LineFramer::new(max);
        let mut frames = Vec::new();
        for chunk in chunks {
            framer.push(chunk, &mut frames);
        }
        framer.finish(&mut frames);
        frames
    }

    fn line(s: &str) -> Frame {
        Frame::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn splits_lines_across_and_within_chunks() {
        assert_eq!(
            frames_of(100, &[b"ab", b"c\nde\r\n", b"\n  \nf"]),
            vec![line("abc"), line("de"), line("f")]
        );
    }

    #[test]
    fn oversize_line_is_reported_once_and_the_next_line_survives() {
        let frames = frames_of(4, &[b"12", b"345", b"67\nok\n"]);
        assert_eq!(frames, vec![Frame::Oversized { len: 7 }, line("ok")]);
    }

    #[test]
    fn exactly_the_limit_is_accepted() {
        assert_eq!(
            frames_of(4, &[b"1234\n12345\n"]),
            vec![line("1234"), Frame::Oversized { len: 5 }]
        );
    }

    #[test]
    fn memory_stays_bounded_while_discarding() {
        let mut framer = LineFramer::new(1024);
        let mut frames = Vec::new();
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..320 {
            framer.push(&chunk, &mut frames);
            assert!(framer.buffered() <= 1024);
        }
        framer.push(b"\n", &mut frames);
        assert_eq!(
            frames,
            vec![Frame::Oversized {
                len: 320 * 64 * 1024
            }]
        );
    }

    #[test]
    fn unterminated_oversize_line_at_eof_is_reported() {
        assert_eq!(frames_of(2, &[b"abc"]), vec![Frame::Oversized { len: 3 }]);
    }
}
