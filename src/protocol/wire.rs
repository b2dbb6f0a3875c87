//! Wire primitives: the big-endian integers, variable byte integers, strings and binary data
//! every packet is made of. [`Reader`] walks a frozen packet body and hands out strings and
//! payloads as `Bytes` slices of it (no copy); the `put_*` functions append to a `BytesMut`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::types::{MqttString, MAX_STRING_LEN};

/// The largest value of a variable byte integer (four bytes).
pub const MAX_VARIABLE_INTEGER: u32 = 268_435_455;

/// A cursor over one packet's body.
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        Self { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Fails with `TrailingBytes` unless every byte was read.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.buf.len()))
        }
    }

    fn need(&self, n: usize, what: &'static str) -> Result<(), DecodeError> {
        if self.buf.len() < n {
            Err(DecodeError::Truncated(what))
        } else {
            Ok(())
        }
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        self.need(1, what)?;
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        self.need(2, what)?;
        Ok(self.buf.get_u16())
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        self.need(4, what)?;
        Ok(self.buf.get_u32())
    }

    pub(crate) fn variable_integer(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let mut value = 0u32;
        for shift in [0, 7, 14, 21] {
            let byte = self.u8(what)?;
            value |= u32::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::MalformedVariableInteger)
    }

    /// Takes the next `n` bytes as their own slice.
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<Bytes, DecodeError> {
        self.need(n, what)?;
        Ok(self.buf.split_to(n))
    }

    /// Takes everything that is left (a PUBLISH payload, a SUBSCRIBE's filters).
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Two-byte length then that many bytes.
    pub(crate) fn binary(&mut self, what: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.u16(what)?;
        self.take(usize::from(len), what)
    }

    /// A length-prefixed UTF-8 string, validated.
    pub(crate) fn string(&mut self, what: &'static str) -> Result<MqttString, DecodeError> {
        MqttString::from_bytes(self.binary(what)?)
    }
}

/// Bytes a variable byte integer takes on the wire.
pub(crate) fn variable_integer_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Appends a variable byte integer; the caller guarantees `value <= MAX_VARIABLE_INTEGER`.
pub(crate) fn put_variable_integer(buf: &mut BytesMut, value: usize) {
    debug_assert!(value <= MAX_VARIABLE_INTEGER as usize);
    let mut value = value;
    loop {
        let mut byte = (value & 0x7F) as u8;
        value >>= 7;
        if value > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if value == 0 {
            return;
        }
    }
}

/// Appends a two-byte length and the bytes.
pub(crate) fn put_binary(buf: &mut BytesMut, data: &[u8]) {
    debug_assert!(data.len() <= MAX_STRING_LEN, "checked by check_field_len");
    buf.put_u16(data.len() as u16);
    buf.put_slice(data);
}

/// Bytes a length-prefixed field takes.
pub(crate) fn binary_len(data: &[u8]) -> usize {
    2 + data.len()
}

/// Checks that a field fits a two-byte length before anything is written.
pub(crate) fn check_field_len(data: &[u8], what: &'static str) -> Result<(), EncodeError> {
    if data.len() > MAX_STRING_LEN {
        Err(EncodeError::FieldTooLong(what))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_integer_boundaries_round_trip() {
        for value in [
            0usize,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            268_435_455,
        ] {
            let mut buf = BytesMut::new();
            put_variable_integer(&mut buf, value);
            assert_eq!(buf.len(), variable_integer_len(value), "length of {value}");
            let mut reader = Reader::new(buf.freeze());
            assert_eq!(reader.variable_integer("test").ok(), Some(value as u32));
            assert!(reader.is_empty());
        }
    }

    #[test]
    fn five_byte_variable_integer_is_malformed() {
        let mut reader = Reader::new(Bytes::from_static(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]));
        assert_eq!(
            reader.variable_integer("test"),
            Err(DecodeError::MalformedVariableInteger)
        );
    }

    #[test]
    fn truncated_string_is_an_error() {
        let mut reader = Reader::new(Bytes::from_static(&[0x00, 0x05, b'a', b'b']));
        assert_eq!(reader.string("topic"), Err(DecodeError::Truncated("topic")));
    }

    #[test]
    fn string_is_a_slice_of_the_buffer() {
        let body = Bytes::from_static(&[0x00, 0x03, b'a', b'/', b'b', 0xAA]);
        let start = body.as_ptr() as usize;
        let mut reader = Reader::new(body);
        let text = reader.string("topic").ok();
        assert_eq!(text.as_ref().map(|t| t.as_str()), Some("a/b"));
        let text_ptr = text.map(|t| t.as_bytes().as_ptr() as usize);
        assert_eq!(text_ptr, Some(start + 2));
    }
}
