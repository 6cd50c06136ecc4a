//! Frames written to port descriptors in batches: the writes of one burst go to the kernel in
//! one io_uring submission instead of one `write` each.
//!
//! A TAP write runs the receiving sandbox's stack inline, and the wake-up of a receiver on
//! this CPU used to preempt the dataplane after every frame (a write, a switch to the
//! receiver, one datagram read, a switch back). Submitted together, the writes all happen
//! before the dataplane returns to user space, so the receiver wakes once and finds the whole
//! burst. A burst of one frame is written with a plain `write`, which costs less.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, types, IoUring};
use switch::PortId;

/// Writes queued in a burst.
const ENTRIES: usize = 256;

/// A queued write: descriptor, frame, and for the counters its port and length without the
/// virtio-net header.
#[derive(Clone, Copy)]
struct Queued {
    fd: RawFd,
    ptr: *const u8,
    len: usize,
    port: PortId,
    bytes: usize,
}

/// The ring and the writes waiting for it.
pub struct Writer {
    ring: IoUring,
    queued: Vec<Queued>,
    /// Frames handed to the kernel (those it refused included: their ports count them as
    /// tx_failed), and the flushes that carried them.
    frames: u64,
    bursts: u64,
}

impl Writer {
    /// A ring, or the reason the kernel refused one (io_uring disabled or missing).
    pub fn new() -> io::Result<Writer> {
        Ok(Writer {
            ring: IoUring::new(ENTRIES as u32)?,
            queued: Vec::with_capacity(ENTRIES),
            frames: 0,
            bursts: 0,
        })
    }

    /// Whether another write fits before [`Writer::flush`].
    pub fn has_room(&self) -> bool {
        self.queued.len() < ENTRIES
    }

    /// Frames handed to the kernel so far, and the bursts (flushes) that carried them.
    pub fn counts(&self) -> (u64, u64) {
        (self.frames, self.bursts)
    }

    /// Whether writes are waiting.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Queues a write of `buf` to `fd`, counted for `port` as `bytes`; a full queue drops it
    /// (check [`Writer::has_room`] first).
    ///
    /// # Safety
    /// `buf` must stay valid and unchanged, and `fd` open, until the next [`Writer::flush`].
    pub unsafe fn push(&mut self, fd: RawFd, buf: &[u8], port: PortId, bytes: usize) {
        if self.has_room() {
            self.queued.push(Queued {
                fd,
                ptr: buf.as_ptr(),
                len: buf.len(),
                port,
                bytes,
            });
        }
    }

    /// Writes what is queued and waits for all of it; `done` gets each write's port, its
    /// length and whether it was written. An error of the ring itself is returned after the
    /// writes it left undone were reported as failed; the caller then drops the writer and
    /// writes frame by frame. After such an error the kernel may still be carrying out writes
    /// it took, so the caller must never reuse or change their buffers.
    pub fn flush(&mut self, mut done: impl FnMut(PortId, usize, bool)) -> io::Result<()> {
        if !self.queued.is_empty() {
            self.frames += self.queued.len() as u64;
            self.bursts += 1;
        }
        let r = match self.queued.as_slice() {
            [] => Ok(()),
            [q] => {
                // SAFETY: push's caller keeps the buffer valid and the descriptor open until now.
                let ok = unsafe { libc::write(q.fd, q.ptr.cast(), q.len) } >= 0;
                done(q.port, q.bytes, ok);
                Ok(())
            }
            _ => self.submit(&mut done),
        };
        self.queued.clear();
        r
    }

    fn submit(&mut self, done: &mut impl FnMut(PortId, usize, bool)) -> io::Result<()> {
        {
            let mut sq = self.ring.submission();
            for (i, q) in self.queued.iter().enumerate() {
                let e = opcode::Write::new(types::Fd(q.fd), q.ptr, u32::try_from(q.len).unwrap_or(u32::MAX))
                    .build()
                    .user_data(i as u64);
                // SAFETY: push's caller keeps the buffer valid and the descriptor open until
                // this flush returns, which waits for every entry; the queue holds ENTRIES.
                if unsafe { sq.push(&e) }.is_err() {
                    unreachable!("at most ENTRIES writes are queued");
                }
            }
        }
        // Which entries completed (ENTRIES bits).
        let mut completed = [0u64; ENTRIES / 64];
        let mut left = self.queued.len();
        let mut result = Ok(());
        while left > 0 {
            match self.ring.submit_and_wait(left) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            for c in self.ring.completion() {
                let i = c.user_data() as usize;
                if let Some(q) = self.queued.get(i) {
                    if completed[i / 64] & 1 << (i % 64) == 0 {
                        completed[i / 64] |= 1 << (i % 64);
                        done(q.port, q.bytes, c.result() >= 0);
                        left -= 1;
                    }
                }
            }
        }
        if result.is_err() {
            for (i, q) in self.queued.iter().enumerate() {
                if completed[i / 64] & 1 << (i % 64) == 0 {
                    done(q.port, q.bytes, false);
                }
            }
        }
        result
    }
}
