//! A pcap file (libpcap's classic format, Ethernet link type) of the frames a failing run
//! involved, for tcpdump, tshark or Wireshark.

use std::io::{self, Write};

/// Frames kept for a capture: the last `cap` frames seen anywhere, with their time (µs).
pub struct Ring {
    frames: std::collections::VecDeque<(u64, Vec<u8>)>,
    cap: usize,
}

impl Ring {
    /// Keeps at most `cap` frames.
    pub fn new(cap: usize) -> Ring {
        Ring {
            frames: std::collections::VecDeque::with_capacity(cap.min(4096)),
            cap,
        }
    }

    /// Remembers a frame, forgetting the oldest when full.
    pub fn push(&mut self, at_us: u64, frame: &[u8]) {
        if self.cap == 0 {
            return;
        }
        if self.frames.len() == self.cap {
            self.frames.pop_front();
        }
        self.frames.push_back((at_us, frame.to_vec()));
    }

    /// The frames, oldest first.
    pub fn frames(&self) -> impl Iterator<Item = &(u64, Vec<u8>)> {
        self.frames.iter()
    }
}

/// Writes `frames` (time in µs, bytes) as a pcap file.
///
/// # Errors
/// What the writer reports.
pub fn write<'a>(mut w: impl Write, frames: impl Iterator<Item = &'a (u64, Vec<u8>)>) -> io::Result<()> {
    // Magic, version 2.4, GMT offset, accuracy, snap length, LINKTYPE_ETHERNET.
    w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&4u16.to_le_bytes())?;
    w.write_all(&[0; 8])?;
    w.write_all(&65_535u32.to_le_bytes())?;
    w.write_all(&1u32.to_le_bytes())?;
    for (t, f) in frames {
        let len = f.len() as u32;
        w.write_all(&((t / 1_000_000) as u32).to_le_bytes())?;
        w.write_all(&((t % 1_000_000) as u32).to_le_bytes())?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(f)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_records() {
        let mut r = Ring::new(2);
        r.push(1_500_000, &[1; 14]);
        r.push(2_000_001, &[2; 20]);
        r.push(3_000_000, &[3; 60]);
        let mut out = Vec::new();
        write(&mut out, r.frames()).unwrap();
        assert_eq!(out.len(), 24 + (16 + 20) + (16 + 60), "the oldest frame was dropped");
        assert_eq!(&out[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(&out[24..32], &[2, 0, 0, 0, 1, 0, 0, 0], "2 s and 1 µs");
    }
}
