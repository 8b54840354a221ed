//! Syslog over a byte stream: octet counting (RFC 6587 §3.4.1, RFC 5425
//! §4.3: `MSG-LEN SP SYSLOG-MSG`, MSG-LEN a decimal without leading zero)
//! and non-transparent framing (RFC 6587 §3.4.2: each message ends with
//! LF; a CR before the LF is dropped too).
//!
//! [`FrameBuf`] is one connection's read buffer. It starts small and grows
//! only as far as one frame needs, never beyond `max_message_length` plus
//! the length prefix, so a connection holds at most about one maximal
//! message whatever it sends; it shrinks back when it empties. Framing
//! errors are final: after one the stream has no trustworthy boundary left.

/// Bytes a fresh buffer holds.
pub(crate) const INITIAL_CAPACITY: usize = 8 * 1024;
/// An empty buffer larger than this is given back.
const SHRINK_ABOVE: usize = 4 * INITIAL_CAPACITY;
/// Room for the longest length prefix: 20 digits of a u64 and the space.
const PREFIX_MAX: usize = 21;

/// How messages are delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `LEN SP MSG`.
    OctetCounting,
    /// `MSG LF`.
    NonTransparent,
}

/// Why a stream cannot be read further.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// The length prefix is not `NONZERO-DIGIT *DIGIT SP`.
    #[error("invalid octet-counting length prefix")]
    BadLength,
    /// The frame is longer than the maximum message length.
    #[error("frame longer than the maximum message length")]
    TooLong,
}

/// One connection's framing state and read buffer.
#[derive(Debug)]
pub(crate) struct FrameBuf {
    framing: Framing,
    max: usize,
    buf: Vec<u8>,
    /// First unconsumed byte.
    start: usize,
    /// End of the bytes read.
    end: usize,
    /// Non-transparent: bytes from `start` already searched for LF.
    scanned: usize,
}

impl FrameBuf {
    /// An empty buffer for messages of at most `max_message_length` bytes.
    pub(crate) fn new(framing: Framing, max_message_length: usize) -> Self {
        Self {
            framing,
            max: max_message_length,
            buf: Vec::new(),
            start: 0,
            end: 0,
            scanned: 0,
        }
    }

    /// The most this buffer ever holds.
    fn limit(&self) -> usize {
        self.max.saturating_add(PREFIX_MAX)
    }

    /// Bytes read but not yet returned as a frame.
    pub(crate) fn pending(&self) -> usize {
        self.end - self.start
    }

    /// Bytes allocated (for tests of the memory bound).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `None` if more bytes are needed.
    pub(crate) fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        match self.framing {
            Framing::OctetCounting => self.next_counted(),
            Framing::NonTransparent => self.next_line(),
        }
    }

    fn next_counted(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let data = &self.buf[self.start..self.end];
        let Some(&first) = data.first() else {
            return Ok(None);
        };
        if !(b'1'..=b'9').contains(&first) {
            return Err(FrameError::BadLength);
        }
        let mut len: usize = 0;
        let mut i = 0;
        loop {
            match data.get(i) {
                None => return Ok(None),
                Some(&d @ b'0'..=b'9') => {
                    len = len
                        .checked_mul(10)
                        .and_then(|l| l.checked_add(usize::from(d - b'0')))
                        .filter(|&l| l <= self.max)
                        .ok_or(FrameError::TooLong)?;
                    i += 1;
                }
                Some(b' ') => break,
                Some(_) => return Err(FrameError::BadLength),
            }
        }
        let total = i + 1 + len;
        if data.len() < total {
            return Ok(None);
        }
        let frame_start = self.start + i + 1;
        self.start += total;
        Ok(Some(&self.buf[frame_start..frame_start + len]))
    }

    fn next_line(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let from = self.start + self.scanned;
        match self.buf[from..self.end].iter().position(|&b| b == b'\n') {
            Some(at) => {
                let frame_start = self.start;
                let lf = from + at;
                self.start = lf + 1;
                self.scanned = 0;
                let mut frame = &self.buf[frame_start..lf];
                if let [rest @ .., b'\r'] = frame {
                    frame = rest;
                }
                if frame.len() > self.max {
                    return Err(FrameError::TooLong);
                }
                Ok(Some(frame))
            }
            None => {
                self.scanned = self.end - self.start;
                // The CR of a maximal message's CRLF may be waiting for its LF.
                if self.scanned > self.max + 1 {
                    return Err(FrameError::TooLong);
                }
                Ok(None)
            }
        }
    }

    /// Free space to read into, after [`FrameBuf::next_frame`] returned
    /// `None`: compacts, then grows (up to the limit) or shrinks an empty
    /// buffer back to its initial size.
    pub(crate) fn space(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            self.scanned = 0;
            if self.buf.len() > SHRINK_ABOVE {
                self.buf = Vec::new();
            }
        }
        if self.buf.is_empty() {
            self.buf = vec![0; INITIAL_CAPACITY.min(self.limit())];
        }
        if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // `next_frame` refuses any frame that would not fit the limit,
            // so a full buffer below it is the only case left.
            let grown = (self.buf.len() * 2).min(self.limit());
            self.buf.resize(grown, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes of [`FrameBuf::space`] as read.
    pub(crate) fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Feeds `input` in chunks of `chunk` bytes; returns frames and the error.
    fn run(
        framing: Framing,
        max: usize,
        input: &[u8],
        chunk: usize,
    ) -> (Vec<Vec<u8>>, Option<FrameError>, usize) {
        let mut fb = FrameBuf::new(framing, max);
        let mut frames = Vec::new();
        let mut most = 0;
        for piece in input.chunks(chunk) {
            let mut piece = piece;
            while !piece.is_empty() {
                let space = fb.space();
                let n = space.len().min(piece.len());
                space[..n].copy_from_slice(&piece[..n]);
                fb.filled(n);
                most = most.max(fb.capacity());
                piece = &piece[n..];
                loop {
                    match fb.next_frame() {
                        Ok(Some(f)) => frames.push(f.to_vec()),
                        Ok(None) => break,
                        Err(e) => return (frames, Some(e), most),
                    }
                }
            }
        }
        (frames, None, most)
    }

    #[test]
    fn octet_counting_in_any_chunking() {
        let input = b"5 <1>1 3 abc11 <14>1 hello";
        for chunk in 1..input.len() {
            let (frames, err, _) = run(Framing::OctetCounting, 100, input, chunk);
            assert_eq!(err, None);
            assert_eq!(
                frames,
                vec![b"<1>1 ".to_vec(), b"abc".to_vec(), b"<14>1 hello".to_vec()],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn octet_counting_rejects_bad_prefixes() {
        for bad in [
            &b"0 x"[..],
            b"abc",
            b" 5 hello",
            b"5x hello",
            b"\n5 hello",
            b"-1 x",
        ] {
            let (_, err, _) = run(Framing::OctetCounting, 100, bad, 64);
            assert_eq!(err, Some(FrameError::BadLength), "{bad:?}");
        }
    }

    #[test]
    fn octet_counting_refuses_a_length_over_the_maximum_before_its_body() {
        let (_, err, most) = run(Framing::OctetCounting, 100, b"101 ", 64);
        assert_eq!(err, Some(FrameError::TooLong));
        assert!(most <= 121);
        // Endless digits are refused as soon as they exceed the maximum.
        let (_, err, _) = run(Framing::OctetCounting, 100, &[b'9'; 10_000], 64);
        assert_eq!(err, Some(FrameError::TooLong));
        // Exactly the maximum is fine.
        let mut input = b"100 ".to_vec();
        input.extend([b'x'; 100]);
        let (frames, err, most) = run(Framing::OctetCounting, 100, &input, 7);
        assert_eq!((frames.len(), err), (1, None));
        assert!(most <= 121, "buffer grew to {most}");
    }

    #[test]
    fn buffer_grows_only_to_the_frame_limit_and_shrinks_when_empty() {
        let max = 200 * 1024;
        let mut input = format!("{max} ").into_bytes();
        input.extend(std::iter::repeat_n(b'y', max));
        let (frames, err, most) = run(Framing::OctetCounting, max, &input, 60_000);
        assert_eq!((frames.len(), err), (1, None));
        assert!(most <= max + PREFIX_MAX, "grew to {most}");
        let mut fb = FrameBuf::new(Framing::OctetCounting, max);
        fb.space();
        assert_eq!(fb.capacity(), INITIAL_CAPACITY);
        let big = input.len();
        let mut off = 0;
        while off < big {
            let s = fb.space();
            let n = s.len().min(big - off);
            s[..n].copy_from_slice(&input[off..off + n]);
            fb.filled(n);
            off += n;
            let _ = fb.next_frame().unwrap();
        }
        assert_eq!(fb.pending(), 0);
        fb.space();
        assert_eq!(
            fb.capacity(),
            INITIAL_CAPACITY,
            "an empty buffer shrinks back"
        );
    }

    #[test]
    fn non_transparent_lines() {
        let input = b"one\ntwo\r\n\nthree\n";
        for chunk in 1..input.len() {
            let (frames, err, _) = run(Framing::NonTransparent, 100, input, chunk);
            assert_eq!(err, None);
            assert_eq!(
                frames,
                vec![
                    b"one".to_vec(),
                    b"two".to_vec(),
                    b"".to_vec(),
                    b"three".to_vec()
                ]
            );
        }
    }

    #[test]
    fn non_transparent_line_longer_than_the_maximum_is_refused() {
        let (_, err, most) = run(Framing::NonTransparent, 100, &[b'x'; 5000], 13);
        assert_eq!(err, Some(FrameError::TooLong));
        assert!(most <= 121);
        let mut line = vec![b'x'; 100];
        line.extend(b"\r\n");
        let (frames, err, _) = run(Framing::NonTransparent, 100, &line, 1);
        assert_eq!((frames.len(), err), (1, None));
        let mut line = vec![b'x'; 101];
        line.push(b'\n');
        let (_, err, _) = run(Framing::NonTransparent, 100, &line, 1);
        assert_eq!(err, Some(FrameError::TooLong));
    }
}
