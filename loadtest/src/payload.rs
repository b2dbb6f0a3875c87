//! The bytes every test message carries: which run and publisher sent it, its sequence number,
//! whether it counts, and when it was due. Subscribers read them to measure end-to-end latency,
//! loss, duplicates and ordering.
//!
//! Layout (big-endian), then filler up to the payload size:
//! `run nonce u32 | publisher id u32 | measured bit + sequence u63 | due time u64 ns`.
//! Measured messages (published after warm-up) are numbered from 0 in their own sequence, so
//! a subscriber knows exactly which numbers to expect. Parsing never panics: anything short or
//! from another run is reported as foreign.

use bytes::{BufMut, BytesMut};

/// Bytes of the header; the smallest payload the harness can send.
pub const HEADER_LEN: usize = 24;

const MEASURED_BIT: u64 = 1 << 63;

/// The header of one test message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Identifies the run, so leftovers of an earlier run (retained or queued messages) are
    /// not counted.
    pub nonce: u32,
    /// Publisher id, unique within the run.
    pub publisher: u32,
    /// Sequence number within the publisher's warm-up or measured sequence.
    pub seq: u64,
    /// True for messages published during the measured window.
    pub measured: bool,
    /// When the message was due, in nanoseconds since the run's epoch.
    pub sent_ns: u64,
}

impl Stamp {
    /// Appends the header and `filler` zero bytes to `buf`.
    pub fn write(&self, filler: usize, buf: &mut BytesMut) {
        buf.reserve(HEADER_LEN + filler);
        buf.put_u32(self.nonce);
        buf.put_u32(self.publisher);
        let flag = if self.measured { MEASURED_BIT } else { 0 };
        buf.put_u64((self.seq & !MEASURED_BIT) | flag);
        buf.put_u64(self.sent_ns);
        buf.put_bytes(0, filler);
    }

    /// Reads the header; `None` when the payload is too short to be one of ours.
    pub fn read(payload: &[u8]) -> Option<Self> {
        let header: &[u8; HEADER_LEN] = payload.get(..HEADER_LEN)?.try_into().ok()?;
        let word = |range: std::ops::Range<usize>| {
            let mut bytes = [0u8; 8];
            bytes[8 - range.len()..].copy_from_slice(&header[range]);
            u64::from_be_bytes(bytes)
        };
        let seq_word = word(8..16);
        Some(Self {
            nonce: word(0..4) as u32,
            publisher: word(4..8) as u32,
            seq: seq_word & !MEASURED_BIT,
            measured: seq_word & MEASURED_BIT != 0,
            sent_ns: word(16..24),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_filler() {
        let stamp = Stamp {
            nonce: 0xDEAD_BEEF,
            publisher: 42,
            seq: 123_456_789,
            measured: true,
            sent_ns: 987_654_321_000,
        };
        let mut buf = BytesMut::new();
        stamp.write(40, &mut buf);
        assert_eq!(buf.len(), HEADER_LEN + 40);
        assert_eq!(Stamp::read(&buf), Some(stamp));
        let warmup = Stamp {
            measured: false,
            ..stamp
        };
        let mut buf = BytesMut::new();
        warmup.write(0, &mut buf);
        assert_eq!(Stamp::read(&buf), Some(warmup));
    }

    #[test]
    fn short_payloads_are_rejected() {
        assert_eq!(Stamp::read(&[0u8; HEADER_LEN - 1]), None);
        assert_eq!(Stamp::read(b""), None);
    }
}
