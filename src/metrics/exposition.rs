//! Bodies rendered once and served many times: the inventory part of `/metrics`, the tokens
//! API and the status page are compressed once per published snapshot and kept only in that
//! form. A gzip request gets the kept bytes as they are (shared, never copied) followed by
//! the small live part compressed for it; any other request is streamed, inflated a chunk at
//! a time. So a scrape's cost does not grow with the number of scrapers, and no request holds
//! a whole uncompressed copy.
//!
//! The kept part is a raw deflate stream ended with a sync flush (byte-aligned, no final
//! block), so that another deflate stream can follow it inside the same gzip member; the
//! gzip trailer's CRC-32 is the combination of both parts' (RFC 1952).

use std::io::{self, Write};

use bytes::Bytes;
use flate2::write::DeflateEncoder;
use flate2::{Compression, Decompress, FlushDecompress};

use crate::httpd::Body;

/// The compression level. A body is compressed once per snapshot and sent many times, so
/// the size matters more than the time: level 6 (zlib's default) keeps the exposition
/// within about 15% of its text, at about 20 ms of CPU per MB rendered.
const LEVEL: Compression = Compression::new(6);

/// How much an identity response inflates at a time.
const CHUNK: usize = 256 * 1024;

/// Text compressed once: a raw deflate stream without a final block, with the CRC-32 and
/// length of what went in.
#[derive(Clone)]
pub struct Compressed {
    deflate: Bytes,
    crc: crc32fast::Hasher,
    len: u64,
}

impl std::fmt::Debug for Compressed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressed")
            .field("compressed", &self.deflate.len())
            .field("len", &self.len)
            .finish()
    }
}

impl Default for Compressed {
    fn default() -> Self {
        Self {
            deflate: Bytes::new(),
            crc: crc32fast::Hasher::new(),
            len: 0,
        }
    }
}

/// Counts and checksums what is written through it, into a compressor. Writes are
/// gathered first: the text writers write a few bytes at a time, and a compressor called
/// that often is many times slower.
pub struct Sink {
    enc: DeflateEncoder<Vec<u8>>,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
}

/// How much [`Sink`] gathers before it compresses.
const GATHER: usize = 64 * 1024;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.crc.update(buf);
        self.len += buf.len() as u64;
        self.buf.extend_from_slice(buf);
        if self.buf.len() >= GATHER {
            self.enc.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.enc.write_all(&self.buf)?;
        self.buf.clear();
        self.enc.flush()
    }
}

impl Compressed {
    /// Compresses what `write` writes, as it writes it.
    pub fn render(write: impl FnOnce(&mut Sink) -> io::Result<()>) -> io::Result<Self> {
        let mut sink = Sink {
            enc: DeflateEncoder::new(Vec::new(), LEVEL),
            buf: Vec::with_capacity(GATHER),
            crc: crc32fast::Hasher::new(),
            len: 0,
        };
        write(&mut sink)?;
        // A sync flush ends the stream on a byte boundary without a final block, so that
        // another stream can follow it.
        sink.flush()?;
        let deflate = std::mem::take(sink.enc.get_mut());
        Ok(Self {
            deflate: deflate.into(),
            crc: sink.crc,
            len: sink.len,
        })
    }

    /// The length of the text.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The compressed size.
    pub fn compressed_len(&self) -> usize {
        self.deflate.len()
    }

    /// A gzip body: the kept text, then `tail` (compressed now).
    pub fn gzip(&self, tail: &[u8]) -> Body {
        let mut enc = DeflateEncoder::new(Vec::new(), LEVEL);
        // Writing into a Vec cannot fail.
        let _ = enc.write_all(tail);
        let last = enc.finish().unwrap_or_default();
        let mut crc = self.crc.clone();
        let mut tail_crc = crc32fast::Hasher::new();
        tail_crc.update(tail);
        crc.combine(&tail_crc);
        let total = self.len + tail.len() as u64;
        let mut trailer = Vec::with_capacity(8);
        trailer.extend_from_slice(&crc.finalize().to_le_bytes());
        // ISIZE is the length modulo 2^32.
        trailer.extend_from_slice(&(total as u32).to_le_bytes());
        Body::chunks(vec![
            Bytes::from_static(GZIP_HEADER),
            self.deflate.clone(),
            Bytes::from(last),
            Bytes::from(trailer),
        ])
    }

    /// An identity body: the kept text inflated a chunk at a time as the client reads, then
    /// `tail`.
    pub fn plain(&self, tail: Bytes) -> Body {
        let len = self.len + tail.len() as u64;
        let inflate = Inflate {
            input: self.deflate.clone(),
            state: Decompress::new(false),
            tail: Some(tail),
        };
        Body::stream(inflate, len)
    }

    /// The whole text, inflated (tests, and callers that need it in memory anyway).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        for chunk in (Inflate {
            input: self.deflate.clone(),
            state: Decompress::new(false),
            tail: None,
        }) {
            out.extend_from_slice(&chunk);
        }
        out
    }
}

/// A member header: deflate, no flags, no time, unknown OS.
const GZIP_HEADER: &[u8] = &[0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];

/// The chunks of an identity response.
struct Inflate {
    input: Bytes,
    state: Decompress,
    tail: Option<Bytes>,
}

impl Iterator for Inflate {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let read = usize::try_from(self.state.total_in()).unwrap_or(usize::MAX);
        if read < self.input.len() {
            let mut out = Vec::with_capacity(CHUNK);
            match self
                .state
                .decompress_vec(&self.input[read..], &mut out, FlushDecompress::None)
            {
                Ok(_) if !out.is_empty() => return Some(out.into()),
                Ok(_) => {}
                Err(e) => {
                    // Our own output: this is a bug. End the text; the tail still follows.
                    tracing::error!(error = %e, "cannot inflate a kept response body");
                }
            }
        }
        self.tail.take().filter(|t| !t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn collect(body: Body) -> Vec<u8> {
        body.into_chunks_blocking().concat()
    }

    #[test]
    fn gzip_and_plain_bodies_carry_the_same_text() {
        let text: String = (0..50_000)
            .map(|i| format!("metric{{token_id=\"t{i}\",name=\"ü{}\"}} {i}\n", i % 7))
            .collect();
        for (kept, tail) in [
            (text.as_str(), "# live\nlive 1\n"),
            ("", "only live\n"),
            (text.as_str(), ""),
            ("", ""),
        ] {
            let c = Compressed::render(|w| w.write_all(kept.as_bytes())).unwrap();
            assert_eq!(c.len(), kept.len() as u64);
            assert_eq!(c.to_vec(), kept.as_bytes());
            let plain = collect(c.plain(Bytes::copy_from_slice(tail.as_bytes())));
            assert_eq!(plain, format!("{kept}{tail}").into_bytes());
            let gz = collect(c.gzip(tail.as_bytes()));
            // One member: a strict single-member decoder reads all of it, CRC included.
            let mut decoded = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut decoded)
                .unwrap();
            assert_eq!(decoded, plain);
            if !kept.is_empty() {
                assert!(
                    gz.len() * 5 < kept.len(),
                    "compresses: {} of {}",
                    gz.len(),
                    kept.len()
                );
            }
        }
    }
}
