//! A zero-copy view of a TCP header (RFC 9293) and its payload.

use super::WireError;

/// TCP flag bits (the 13th byte of the header).
pub mod tcp_flag {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// The acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
    /// Congestion window reduced (RFC 3168).
    pub const CWR: u8 = 0x80;
}

/// Length of a TCP header without options.
pub const TCP_HEADER_LEN: usize = 20;

/// A zero-copy view of a TCP segment: the header (options included) and the bytes after it.
#[derive(Debug, Clone, Copy)]
pub struct TcpSegment<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpSegment<T> {
    /// Wraps bytes known to hold a whole TCP header (built or checked here before); the
    /// accessors may panic on anything else.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        TcpSegment { buffer }
    }

    /// Wraps untrusted bytes (an IP packet's payload).
    ///
    /// # Errors
    /// [`WireError::Truncated`] when the buffer is shorter than the header its data offset
    /// announces, or the data offset is under 20 bytes.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < TCP_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = usize::from(b[12] >> 4) * 4;
        if hl < TCP_HEADER_LEN || b.len() < hl {
            return Err(WireError::Truncated);
        }
        Ok(TcpSegment { buffer })
    }

    #[inline(always)]
    fn u16_at(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    #[inline(always)]
    fn u32_at(&self, at: usize) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    /// The source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        self.u16_at(0)
    }

    /// The destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        self.u16_at(2)
    }

    /// The sequence number.
    #[inline]
    pub fn seq(&self) -> u32 {
        self.u32_at(4)
    }

    /// The acknowledgment number.
    #[inline]
    pub fn ack(&self) -> u32 {
        self.u32_at(8)
    }

    /// The header's length, options included (the data offset in bytes).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[12] >> 4) * 4
    }

    /// The flags ([`tcp_flag`]).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[13]
    }

    /// The receive window.
    #[inline]
    pub fn window(&self) -> u16 {
        self.u16_at(14)
    }

    /// The checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.u16_at(16)
    }

    /// The options, between the fixed header and the data.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[TCP_HEADER_LEN..self.header_len()]
    }

    /// The bytes after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// The bytes viewed.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpSegment<T> {
    /// Sets the sequence number.
    #[inline]
    pub fn set_seq(&mut self, seq: u32) {
        self.buffer.as_mut()[4..8].copy_from_slice(&seq.to_be_bytes());
    }

    /// Sets the flags.
    #[inline]
    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[13] = flags;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, sum: u16) {
        self.buffer.as_mut()[16..18].copy_from_slice(&sum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 40000 -> 80, seq 1, ack 2, data offset 6 (one 4-byte option), ACK|PSH, window 512, then "hi".
    const SEG: [u8; 26] = [
        0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 2, 0x60, 0x18, 2, 0, 0xab, 0xcd, 0, 0, 1, 1, 1, 0, b'h', b'i',
    ];

    #[test]
    fn reads_every_field() {
        let t = TcpSegment::new_checked(&SEG[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port(), t.seq(), t.ack()), (40000, 80, 1, 2));
        assert_eq!(
            (t.header_len(), t.flags(), t.window(), t.checksum()),
            (24, 0x18, 512, 0xabcd)
        );
        assert_eq!((t.options(), t.payload()), (&[1, 1, 1, 0][..], &b"hi"[..]));
    }

    #[test]
    fn writes_what_segmentation_changes() {
        let mut t = TcpSegment::new_checked(SEG).unwrap();
        t.set_seq(0xdead_beef);
        t.set_flags(tcp_flag::ACK | tcp_flag::FIN);
        t.set_checksum(7);
        assert_eq!((t.seq(), t.flags(), t.checksum()), (0xdead_beef, 0x11, 7));
    }

    #[test]
    fn refuses_a_header_longer_than_the_bytes_or_shorter_than_twenty() {
        assert_eq!(TcpSegment::new_checked(&SEG[..19]).unwrap_err(), WireError::Truncated);
        assert_eq!(TcpSegment::new_checked(&SEG[..23]).unwrap_err(), WireError::Truncated);
        let mut short = SEG;
        short[12] = 0x40;
        assert_eq!(TcpSegment::new_checked(&short[..]).unwrap_err(), WireError::Truncated);
    }
}
