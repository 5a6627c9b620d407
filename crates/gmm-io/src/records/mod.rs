//! Splits a byte stream (a file, stdin) into records that carry their byte
//! positions, so that a reader can resume at "the byte offset of the next unread
//! record" and errors can name the line.
//!
//! Records are lent, not allocated: a record lying whole in the underlying
//! `BufRead` buffer is handed out from it directly; only records spanning a buffer
//! refill are copied, into one buffer reused from record to record.

use std::fmt;
use std::io::{self, BufRead};
use std::num::NonZeroUsize;

use memchr::memchr;

use crate::reject::{Reject, RejectReason};

#[cfg(test)]
mod tests;

/// Longest line accepted by default; a longer one is skipped and rejected, never
/// held in memory whole.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// How the stream splits into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Lines ended by `\n` (a trailing `\r` is stripped); a last line without a
    /// newline is still a record. For csv and json.
    Lines,
    /// Chunks of exactly this many bytes. For the binary formats.
    Fixed(NonZeroUsize),
}

/// Where a record is, for messages to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// 1-based line number.
    Line(u64),
    /// A line whose number is unknown (reading resumed mid-file), by the byte
    /// offset of its start.
    LineAtByte(u64),
    /// 1-based number of a fixed-size record, counted from the start of the stream.
    Record(u64),
}

impl Location {
    pub fn line(self) -> Option<u64> {
        match self {
            Location::Line(line) => Some(line),
            Location::LineAtByte(_) | Location::Record(_) => None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(line) => write!(f, "line {line}"),
            Location::LineAtByte(offset) => write!(f, "the line at byte {offset}"),
            Location::Record(number) => write!(f, "record {number}"),
        }
    }
}

/// One record and its place in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Byte offset of the record's first byte.
    pub start: u64,
    /// Byte offset just past the record and its newline: where the next one starts.
    pub end: u64,
    pub location: Location,
    /// The record's bytes (a line without its newline or trailing `\r`), or why
    /// the framing could not produce them: a line over the size limit, or a
    /// truncated binary record at the end of the input.
    pub payload: Result<&'a [u8], Reject>,
    /// The bytes behind a rejected payload, for the dead letter: a truncated
    /// record's bytes; empty for an over-long line (not kept, to bound memory)
    /// and for an accepted record.
    pub held: &'a [u8],
}

/// Reads records from a `BufRead`; see the module documentation.
///
/// Dropping the reader consumes the last lent record from the underlying buffer, so
/// a borrowed `BufRead` is left just past it (at [`RecordReader::position`]).
pub struct RecordReader<R: BufRead> {
    inner: R,
    framing: Framing,
    max_record_bytes: usize,
    /// Offset of the next unread byte.
    offset: u64,
    /// Number of the next line, when known.
    next_line: Option<u64>,
    /// Bytes of `inner`'s buffer lent out as the last record, consumed on the next call.
    lent: usize,
    /// Holds a record that spans buffer refills.
    assembled: Vec<u8>,
}

impl<R: BufRead> RecordReader<R> {
    /// Reads from the start of a stream: offset 0, line 1.
    pub fn new(inner: R, framing: Framing) -> Self {
        RecordReader {
            inner,
            framing,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            offset: 0,
            next_line: Some(1),
            lent: 0,
            assembled: Vec::new(),
        }
    }

    /// Numbers positions from `offset`, where the caller has already positioned
    /// `inner` (e.g. by seeking the file). `first_line` is the line number of the
    /// first record if the caller knows it; with `None`, lines are located by byte
    /// offset ([`Location::LineAtByte`]). Fixed-size records are numbered from
    /// `offset` and need no line.
    pub fn starting_at(mut self, offset: u64, first_line: Option<u64>) -> Self {
        self.offset = offset;
        self.next_line = first_line;
        self
    }

    /// Lines longer than this are rejected ([`RejectReason::TooLarge`]) and skipped.
    pub fn with_max_record_bytes(mut self, max_record_bytes: usize) -> Self {
        self.max_record_bytes = max_record_bytes;
        self
    }

    /// Offset of the next unread byte: the `end` of the last record returned.
    pub fn position(&self) -> u64 {
        self.offset
    }

    /// The next record, or `None` at the end of the input.
    pub fn next_record(&mut self) -> io::Result<Option<Record<'_>>> {
        self.release_lent();
        match self.framing {
            Framing::Lines => self.next_line(),
            Framing::Fixed(size) => self.next_fixed(size.get()),
        }
    }

    fn release_lent(&mut self) {
        self.inner.consume(self.lent);
        self.lent = 0;
    }

    fn next_line(&mut self) -> io::Result<Option<Record<'_>>> {
        let start = self.offset;
        if let Some(len) = self.buffered_line_len()? {
            let location = self.advance_line(len as u64 + 1);
            self.lent = len + 1;
            let line = lend(&mut self.inner, len)?;
            return Ok(Some(Record {
                start,
                end: self.offset,
                location,
                payload: Ok(strip_cr(line)),
                held: &[],
            }));
        }
        let (consumed, fits) = self.assemble_line()?;
        if consumed == 0 {
            return Ok(None);
        }
        let location = self.advance_line(consumed);
        let payload = if fits {
            Ok(strip_cr(&self.assembled))
        } else {
            Err(Reject::new(
                RejectReason::TooLarge,
                format!(
                    "line of {consumed} bytes exceeds the limit of {} bytes",
                    self.max_record_bytes
                ),
            ))
        };
        Ok(Some(Record {
            start,
            end: self.offset,
            location,
            payload,
            held: &[],
        }))
    }

    /// Length of the next line if it lies whole in `inner`'s buffer, within the limit.
    fn buffered_line_len(&mut self) -> io::Result<Option<usize>> {
        let buffer = fill_buf(&mut self.inner)?;
        Ok(memchr(b'\n', buffer).filter(|&len| len <= self.max_record_bytes))
    }

    /// Moves past a line of `consumed` bytes and says where it was.
    fn advance_line(&mut self, consumed: u64) -> Location {
        let location = match self.next_line {
            Some(line) => Location::Line(line),
            None => Location::LineAtByte(self.offset),
        };
        self.offset += consumed;
        self.next_line = self.next_line.map(|line| line + 1);
        location
    }

    /// Copies the next line, without its newline, into `assembled` across buffer
    /// refills. Returns the bytes consumed (0 at the end of input) and whether the
    /// line fits the limit; one that does not is read to its end but not kept.
    fn assemble_line(&mut self) -> io::Result<(u64, bool)> {
        self.assembled.clear();
        let (mut consumed, mut fits) = (0u64, true);
        loop {
            let buffer = fill_buf(&mut self.inner)?;
            if buffer.is_empty() {
                break;
            }
            let newline = memchr(b'\n', buffer);
            let piece = newline.unwrap_or(buffer.len());
            fits = fits && self.assembled.len() + piece <= self.max_record_bytes;
            if fits {
                self.assembled.extend_from_slice(&buffer[..piece]);
            } else {
                self.assembled.clear();
            }
            let used = piece + usize::from(newline.is_some());
            self.inner.consume(used);
            consumed += used as u64;
            if newline.is_some() {
                break;
            }
        }
        Ok((consumed, fits))
    }

    fn next_fixed(&mut self, size: usize) -> io::Result<Option<Record<'_>>> {
        let start = self.offset;
        let location = Location::Record(start / size as u64 + 1);
        if fill_buf(&mut self.inner)?.len() >= size {
            self.lent = size;
            self.offset += size as u64;
            let chunk = lend(&mut self.inner, size)?;
            return Ok(Some(Record {
                start,
                end: self.offset,
                location,
                payload: Ok(chunk),
                held: &[],
            }));
        }
        let got = self.assemble_fixed(size)?;
        if got == 0 {
            return Ok(None);
        }
        self.offset += got as u64;
        let (payload, held) = if got == size {
            (Ok(&self.assembled[..]), &[][..])
        } else {
            let reject = Reject::parse(format!("truncated record: {got} bytes, expected {size}"));
            (Err(reject), &self.assembled[..])
        };
        Ok(Some(Record {
            start,
            end: self.offset,
            location,
            payload,
            held,
        }))
    }

    /// Copies up to `size` bytes into `assembled`; fewer only at the end of input.
    fn assemble_fixed(&mut self, size: usize) -> io::Result<usize> {
        self.assembled.clear();
        while self.assembled.len() < size {
            let buffer = fill_buf(&mut self.inner)?;
            if buffer.is_empty() {
                break;
            }
            let take = buffer.len().min(size - self.assembled.len());
            self.assembled.extend_from_slice(&buffer[..take]);
            self.inner.consume(take);
        }
        Ok(self.assembled.len())
    }
}

impl<R: BufRead> Drop for RecordReader<R> {
    fn drop(&mut self) {
        self.release_lent();
    }
}

/// `fill_buf`, retrying when a signal interrupts the read.
fn fill_buf<R: BufRead>(reader: &mut R) -> io::Result<&[u8]> {
    loop {
        match reader.fill_buf() {
            Ok(_) => break,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        }
    }
    // A second call returns the buffered bytes without reading (returning the first
    // call's borrow from inside the loop is beyond the borrow checker today).
    reader.fill_buf()
}

/// The first `len` bytes of the reader's buffer, which the caller has just seen
/// holds at least that many; they are consumed later, by [`RecordReader::release_lent`].
fn lend<R: BufRead>(reader: &mut R, len: usize) -> io::Result<&[u8]> {
    fill_buf(reader)?
        .get(..len)
        .ok_or_else(|| io::Error::other("the input's buffer shrank between two reads"))
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}
