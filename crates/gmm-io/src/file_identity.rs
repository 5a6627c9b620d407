//! Which file a file source's byte offset belongs to: checksums of the bytes a
//! snapshot's offset stands on, so that a restart can tell the file it resumes is
//! the one it read, not another one put at the same path (docs/reference.md,
//! "Resuming a file"). Reading the whole prefix at every snapshot would cost a pass
//! over the file each time; the first and the last [`WINDOW`] bytes before the
//! offset tell a replaced file apart at a bounded cost.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// Bytes checksummed at each end of the prefix.
pub const WINDOW: u64 = 64 * 1024;

/// CRC-32 of the first and of the last [`WINDOW`] bytes before `offset` (the
/// same bytes when the prefix is shorter than a window).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct FileIdentity {
    pub offset: u64,
    pub head_crc32: u32,
    pub tail_crc32: u32,
}

impl FileIdentity {
    /// The identity of the file at `path` up to `offset`; an error when the file
    /// cannot be read or is shorter than `offset`.
    pub fn of_path(path: &Path, offset: u64) -> io::Result<Self> {
        Self::of(&mut File::open(path)?, offset)
    }

    pub fn of<R: Read + Seek>(file: &mut R, offset: u64) -> io::Result<Self> {
        let head = window_crc(file, 0, offset.min(WINDOW))?;
        let tail_start = offset.saturating_sub(WINDOW);
        let tail = window_crc(file, tail_start, offset - tail_start)?;
        Ok(Self {
            offset,
            head_crc32: head,
            tail_crc32: tail,
        })
    }
}

fn window_crc<R: Read + Seek>(file: &mut R, start: u64, len: u64) -> io::Result<u32> {
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(len).read_to_end(&mut bytes)?;
    if (bytes.len() as u64) < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file is shorter than the offset",
        ));
    }
    Ok(crc32fast::hash(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn the_same_prefix_has_the_same_identity_and_another_file_another() {
        let text: Vec<u8> = (0..400_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let a = FileIdentity::of(&mut Cursor::new(&text), 150_000).expect("identity");
        let mut grown = text.clone();
        grown.extend_from_slice(b"appended\n");
        assert_eq!(
            FileIdentity::of(&mut Cursor::new(&grown), 150_000).expect("identity"),
            a
        );
        let mut edited = text.clone();
        edited[149_999] ^= 1;
        assert_ne!(
            FileIdentity::of(&mut Cursor::new(&edited), 150_000).expect("identity"),
            a
        );
        let mut edited = text.clone();
        edited[10] ^= 1;
        assert_ne!(
            FileIdentity::of(&mut Cursor::new(&edited), 150_000).expect("identity"),
            a
        );
        assert!(FileIdentity::of(&mut Cursor::new(&text[..1000]), 150_000).is_err());
        let short = FileIdentity::of(&mut Cursor::new(&text), 10).expect("identity");
        assert_eq!(short.head_crc32, short.tail_crc32);
    }
}
