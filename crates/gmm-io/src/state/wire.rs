//! Little-endian primitives with bounded reading: every length is checked against the
//! bytes that remain before anything is allocated, so a record can never make the
//! reader allocate more than its own size.

use super::StateRecordError;

#[derive(Default)]
pub(super) struct Writer {
    pub bytes: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }

    pub fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    pub fn i32(&mut self, v: i32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    pub fn i64(&mut self, v: i64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    pub fn f64(&mut self, v: f64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    pub fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }

    /// Values whose count the reader knows from the shape.
    pub fn f64s<'a>(&mut self, values: impl IntoIterator<Item = &'a f64>) {
        for v in values {
            self.f64(*v);
        }
    }

    pub fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.bytes.extend_from_slice(s.as_bytes());
    }

    pub fn option<T>(&mut self, v: Option<&T>, write: impl FnOnce(&mut Self, &T)) {
        match v {
            Some(v) => {
                self.u8(1);
                write(self, v);
            }
            None => self.u8(0),
        }
    }
}

pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StateRecordError> {
        if n > self.remaining() {
            return Err(malformed(format!(
                "{n} bytes wanted at byte {} of {}",
                self.at,
                self.bytes.len()
            )));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StateRecordError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, StateRecordError> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, StateRecordError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, StateRecordError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> Result<i32, StateRecordError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, StateRecordError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub fn f64(&mut self) -> Result<f64, StateRecordError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    pub fn bool(&mut self) -> Result<bool, StateRecordError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(malformed(format!("{other} is not a boolean"))),
        }
    }

    /// `n` numbers, refused before allocating when fewer bytes remain.
    pub fn f64s(&mut self, n: usize) -> Result<Vec<f64>, StateRecordError> {
        let bytes = n
            .checked_mul(8)
            .filter(|&b| b <= self.remaining())
            .ok_or_else(|| malformed(format!("{n} numbers announced, fewer bytes remain")))?;
        Ok(self
            .take(bytes)?
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect())
    }

    /// A count of items of at least `item_bytes` each, refused when they cannot fit.
    pub fn count(&mut self, item_bytes: usize) -> Result<usize, StateRecordError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(item_bytes.max(1)) > self.remaining() {
            return Err(malformed(format!(
                "{n} items announced, fewer bytes remain"
            )));
        }
        Ok(n)
    }

    pub fn str(&mut self) -> Result<String, StateRecordError> {
        let n = self.u32()? as usize;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| malformed("a string is not UTF-8".into()))
    }

    pub fn option<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, StateRecordError>,
    ) -> Result<Option<T>, StateRecordError> {
        if self.bool()? {
            read(self).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn finish(&self) -> Result<(), StateRecordError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(malformed(format!("{} bytes left over", self.remaining())))
        }
    }
}

pub(super) fn malformed(why: String) -> StateRecordError {
    StateRecordError::Malformed(why)
}
