//! The read memory a shard shares between its connections, so an idle connection holds no
//! read buffer at all.
//!
//! A connection with nothing half-read reads into the shard's current scratch chunk; the bytes
//! that arrived are split off it (`BytesMut::split_to`, no copy) and become that connection's
//! buffer, from which packets are decoded in place, so a PUBLISH payload is still a slice of
//! what the kernel wrote. The rest of the chunk stays for the next read by any connection; a
//! chunk with too little room left is replaced, and freed once the last packet slicing it is
//! dropped. Only a connection in the middle of a packet keeps a buffer of its own, sized by
//! the codec for that packet.
//!
//! The chunk is borrowed only inside one `poll_read` call (glommio's `recv` happens there, and
//! a pending read holds no buffer), so one chunk serves every connection of the shard.
//! Single-threaded (`RefCell`); never blocks.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_lite::io::AsyncRead;

/// Reads shorter than this would make more syscalls than they save memory: a chunk with less
/// room left is replaced.
const MIN_READ_BYTES: usize = 512;

/// One shard's shared read memory.
#[derive(Debug)]
pub struct ReadScratch {
    chunk: BytesMut,
    chunk_bytes: usize,
}

impl ReadScratch {
    /// Scratch memory handed out in chunks of `chunk_bytes`.
    pub fn new(chunk_bytes: usize) -> Self {
        Self {
            chunk: BytesMut::new(),
            chunk_bytes: chunk_bytes.max(MIN_READ_BYTES * 2),
        }
    }

    /// Polls one read from `reader` into the scratch; on data, `out` (empty) becomes the bytes
    /// read, sharing the chunk's memory.
    pub fn poll_read<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        out: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        if self.chunk.len() < MIN_READ_BYTES {
            // Zeroed once per chunk: the reads below hand out only initialised memory.
            self.chunk = BytesMut::zeroed(self.chunk_bytes);
        }
        let read = Pin::new(reader).poll_read(cx, &mut self.chunk[..]);
        if let Poll::Ready(Ok(n)) = read {
            *out = self.chunk.split_to(n);
        }
        read
    }
}

/// Reads once from `reader`: into the shard's scratch when `buf` is empty, else into `buf`'s
/// own spare room (a packet is half read; the codec has reserved room for the rest).
pub async fn read_into<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    scratch: &RefCell<ReadScratch>,
) -> io::Result<usize> {
    if buf.is_empty() {
        return futures_lite::future::poll_fn(|cx| scratch.borrow_mut().poll_read(cx, reader, buf))
            .await;
    }
    if buf.capacity() - buf.len() < MIN_READ_BYTES {
        buf.reserve(4 * MIN_READ_BYTES);
    }
    let start = buf.len();
    buf.resize(buf.capacity(), 0);
    let read = futures_lite::io::AsyncReadExt::read(reader, &mut buf[start..]).await;
    buf.truncate(start + *read.as_ref().unwrap_or(&0));
    read
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn reads_share_one_chunk_and_half_read_packets_get_their_own_buffer() {
        let scratch = RefCell::new(ReadScratch::new(4096));
        let mut source: &[u8] = b"first";
        let mut a = BytesMut::new();
        let n = futures_lite::future::block_on(read_into(&mut source, &mut a, &scratch)).unwrap();
        assert_eq!((n, &a[..]), (5, &b"first"[..]));
        let mut source: &[u8] = b"second";
        let mut b = BytesMut::new();
        futures_lite::future::block_on(read_into(&mut source, &mut b, &scratch)).unwrap();
        assert_eq!(&b[..], b"second");
        assert_eq!(
            b.as_ptr() as usize - a.as_ptr() as usize,
            5,
            "the second read follows the first in the same chunk"
        );
        // `a` holds a half-read packet: the next read appends to it.
        let mut source: &[u8] = b"-more";
        futures_lite::future::block_on(read_into(&mut source, &mut a, &scratch)).unwrap();
        assert_eq!(&a[..], b"first-more");
        assert_eq!(
            &b[..],
            b"second",
            "appending did not write over the neighbour"
        );
    }
}
