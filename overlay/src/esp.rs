//! Sealing of tunnel packets as IPsec ESP (RFC 4303) with AES-256-GCM (RFC 4106), sans-IO:
//! the format a sealed overlay's datagrams take between two hosts, one security association
//! (SA) per direction of a pair of hosts. tshark decodes it, and decrypts it when given the
//! SA's key.
//!
//! ```text
//!  SPI (4) | sequence number (4) | IV (8) | AES-256-GCM( payload | padding | pad length | next header ) | ICV (16)
//!  nonce = salt (4, from the key material) | IV; associated data = SPI | sequence number
//! ```
//!
//! The IV is the 64-bit count of packets sealed under the key, so it never repeats; the
//! sequence number is its low 32 bits, and an SA refuses to seal past 2^32 - 1 packets (it
//! must be replaced before). An opening SA refuses a packet whose sequence number it took
//! before, or one more than [`REPLAY_WINDOW`] behind the highest it took (RFC 4303's
//! anti-replay window, kept as a bitmap of blocks as RFC 6479 describes), and it learns a
//! sequence number only once the packet's ICV held.

use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM};

/// Bytes of the ESP header: SPI and sequence number.
pub const ESP_HEADER_LEN: usize = 8;
/// Bytes of the explicit IV.
pub const IV_LEN: usize = 8;
/// Bytes of the ICV (the GCM tag).
pub const ICV_LEN: usize = 16;
/// Bytes of key material per SA: a 32-byte AES key and a 4-byte salt.
pub const KEY_LEN: usize = 36;
/// The next-header value of a UDP datagram (what a sealed VXLAN datagram carries).
pub const NEXT_HEADER_UDP: u8 = 17;
/// How far behind the highest sequence number taken a packet may still be taken.
pub const REPLAY_WINDOW: u32 = 1024 - 64;

/// Bytes sealing adds to a payload of `len` bytes at most (header, IV, padding to a
/// 4-byte boundary, the trailer's two bytes, ICV).
pub const fn overhead(len: usize) -> usize {
    ESP_HEADER_LEN + IV_LEN + pad_len(len) + 2 + ICV_LEN
}

const fn pad_len(len: usize) -> usize {
    (4 - (len + 2) % 4) % 4
}

/// Why a packet was not sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EspError {
    /// Too short to be ESP of this format, or its trailer does not parse.
    #[error("not an ESP packet of this format")]
    Malformed,
    /// Its SPI is not the SA's.
    #[error("SPI {0:#010x} is not this security association's")]
    UnknownSpi(u32),
    /// Its ICV did not hold: forged, altered on the way, or sealed under another key.
    #[error("the packet's integrity check failed")]
    Forged,
    /// Its sequence number was taken before, or is too far behind.
    #[error("sequence number {0} was seen before or is outside the replay window")]
    Replayed(u32),
    /// The SA sealed 2^32 - 1 packets: a new one must take over.
    #[error("the security association is worn out: 2^32 - 1 packets were sealed under it")]
    Exhausted,
}

/// One direction's security association: its SPI, key and salt.
pub struct Sa {
    spi: u32,
    key: LessSafeKey,
    salt: [u8; 4],
}

impl std::fmt::Debug for Sa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sa({:#010x})", self.spi)
    }
}

impl Sa {
    /// The SA `spi` with key material `km` (32 key bytes, then the 4-byte salt).
    pub fn new(spi: u32, km: &[u8; KEY_LEN]) -> Sa {
        let key = UnboundKey::new(&AES_256_GCM, &km[..32]).expect("32 bytes is AES-256's key length");
        let mut salt = [0u8; 4];
        salt.copy_from_slice(&km[32..]);
        Sa {
            spi,
            key: LessSafeKey::new(key),
            salt,
        }
    }

    /// Its SPI.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    fn nonce(&self, iv: [u8; IV_LEN]) -> Nonce {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&self.salt);
        n[4..].copy_from_slice(&iv);
        Nonce::assume_unique_for_key(n)
    }
}

/// The sending side of an SA.
#[derive(Debug)]
pub struct Sealer {
    sa: Sa,
    /// Packets sealed so far.
    sent: u64,
}

impl Sealer {
    /// Seals under `sa`, from sequence number 1.
    pub fn new(sa: Sa) -> Sealer {
        Sealer { sa, sent: 0 }
    }

    /// Appends to `out` the ESP packet carrying the payload `parts` joined (a datagram whose
    /// protocol is `next_header`).
    ///
    /// # Errors
    /// [`EspError::Exhausted`] after 2^32 - 1 packets; nothing is appended.
    pub fn seal(&mut self, next_header: u8, parts: &[&[u8]], out: &mut Vec<u8>) -> Result<(), EspError> {
        let seq = u32::try_from(self.sent + 1).map_err(|_| EspError::Exhausted)?;
        self.sent += 1;
        let iv = self.sent.to_be_bytes();
        let start = out.len();
        out.extend_from_slice(&self.sa.spi.to_be_bytes());
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&iv);
        let body = out.len();
        for part in parts {
            out.extend_from_slice(part);
        }
        let pad = pad_len(out.len() - body);
        out.extend((1..=pad as u8).chain([pad as u8, next_header]));
        let aad: [u8; ESP_HEADER_LEN] = out[start..start + ESP_HEADER_LEN].try_into().expect("8 bytes");
        let tag = self
            .sa
            .key
            .seal_in_place_separate_tag(self.sa.nonce(iv), Aad::from(aad), &mut out[body..])
            .expect("packets are far below AES-GCM's limit");
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Packets sealed so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Its SPI.
    pub fn spi(&self) -> u32 {
        self.sa.spi
    }
}

/// What an opened packet carries.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    /// Its sequence number.
    pub seq: u32,
    /// The protocol of the payload.
    pub next_header: u8,
    /// The payload, decrypted in place.
    pub payload: &'a [u8],
}

/// The receiving side of an SA, with its anti-replay window.
#[derive(Debug)]
pub struct Opener {
    sa: Sa,
    window: Window,
}

impl Opener {
    /// Opens packets sealed under `sa`.
    pub fn new(sa: Sa) -> Opener {
        Opener {
            sa,
            window: Window::default(),
        }
    }

    /// The SPI of an ESP packet, read before choosing the SA to open it with.
    pub fn spi_of(packet: &[u8]) -> Option<u32> {
        Some(u32::from_be_bytes(packet.get(..4)?.try_into().ok()?))
    }

    /// Its SPI.
    pub fn spi(&self) -> u32 {
        self.sa.spi
    }

    /// Opens `packet` in place.
    ///
    /// # Errors
    /// [`EspError`]: why it is dropped (the caller counts each). Nothing changes in the
    /// window unless the packet is taken.
    pub fn open<'a>(&mut self, packet: &'a mut [u8]) -> Result<Opened<'a>, EspError> {
        if packet.len() < ESP_HEADER_LEN + IV_LEN + 4 + ICV_LEN {
            return Err(EspError::Malformed);
        }
        let spi = Opener::spi_of(packet).ok_or(EspError::Malformed)?;
        if spi != self.sa.spi {
            return Err(EspError::UnknownSpi(spi));
        }
        let seq = u32::from_be_bytes(packet[4..8].try_into().expect("4 bytes"));
        if !self.window.fresh(seq) {
            return Err(EspError::Replayed(seq));
        }
        let aad: [u8; ESP_HEADER_LEN] = packet[..ESP_HEADER_LEN].try_into().expect("8 bytes");
        let iv: [u8; IV_LEN] = packet[ESP_HEADER_LEN..ESP_HEADER_LEN + IV_LEN]
            .try_into()
            .expect("8 bytes");
        let rest = &mut packet[ESP_HEADER_LEN + IV_LEN..];
        let (body, icv) = rest.split_at_mut(rest.len() - ICV_LEN);
        let tag = Tag::try_from(&icv[..]).map_err(|_| EspError::Malformed)?;
        self.sa
            .key
            .open_in_place_separate_tag(self.sa.nonce(iv), Aad::from(aad), tag, body, 0..)
            .map_err(|_| EspError::Forged)?;
        let n = body.len();
        let (pad, next_header) = (usize::from(body[n - 2]), body[n - 1]);
        if pad + 2 > n {
            return Err(EspError::Malformed);
        }
        self.window.take(seq);
        Ok(Opened {
            seq,
            next_header,
            payload: &body[..n - 2 - pad],
        })
    }
}

/// RFC 4303's anti-replay window over sequence numbers, kept as RFC 6479 does: a ring of
/// 64-bit blocks, whole blocks cleared as the top moves on.
#[derive(Debug, Default)]
struct Window {
    /// The highest sequence number taken (0: none yet).
    top: u32,
    blocks: [u64; BLOCKS],
}

const BLOCKS: usize = 16;
const BITS: u32 = (BLOCKS * 64) as u32;

impl Window {
    /// Whether `seq` may be taken: never taken, and not too far behind the top.
    fn fresh(&self, seq: u32) -> bool {
        if seq == 0 {
            return false;
        }
        if seq > self.top {
            return true;
        }
        if self.top - seq >= REPLAY_WINDOW {
            return false;
        }
        let bit = seq % BITS;
        self.blocks[(bit / 64) as usize] & (1 << (bit % 64)) == 0
    }

    /// Notes `seq` as taken (checked fresh, its packet authentic).
    fn take(&mut self, seq: u32) {
        if seq > self.top {
            let (from, to) = (self.top / 64, seq / 64);
            let cleared = (to - from).min(BLOCKS as u32);
            for i in 1..=cleared {
                self.blocks[((from + i) % BLOCKS as u32) as usize] = 0;
            }
            self.top = seq;
        }
        let bit = seq % BITS;
        self.blocks[(bit / 64) as usize] |= 1 << (bit % 64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pair() -> (Sealer, Opener) {
        let km = [7u8; KEY_LEN];
        (Sealer::new(Sa::new(0x1001, &km)), Opener::new(Sa::new(0x1001, &km)))
    }

    #[test]
    fn a_sealed_datagram_opens_and_hides_its_payload() {
        let (mut s, mut o) = pair();
        for len in [0usize, 1, 2, 3, 4, 50, 1450] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut p = Vec::new();
            s.seal(NEXT_HEADER_UDP, &[&payload[..]], &mut p).unwrap();
            assert_eq!(p.len(), len + overhead(len), "{len}");
            assert_eq!((p.len() - ESP_HEADER_LEN - IV_LEN - ICV_LEN) % 4, 0, "aligned");
            if len >= 16 {
                assert!(!p.windows(16).any(|w| w == &payload[..16]), "no plaintext on the wire");
            }
            let got = o.open(&mut p).unwrap();
            assert_eq!((got.next_header, got.payload), (NEXT_HEADER_UDP, &payload[..]));
        }
    }

    #[test]
    fn forged_tampered_replayed_and_foreign_packets_are_refused() {
        let (mut s, mut o) = pair();
        let mut p = Vec::new();
        s.seal(NEXT_HEADER_UDP, &[b"hello, peer"], &mut p).unwrap();
        for i in [4, 9, 20, p.len() - 1] {
            let mut bad = p.clone();
            bad[i] ^= 1;
            let e = o.open(&mut bad).unwrap_err();
            assert!(matches!(e, EspError::Forged | EspError::Replayed(_)), "byte {i}: {e:?}");
        }
        let mut other = Vec::new();
        Sealer::new(Sa::new(0x1001, &[8; KEY_LEN]))
            .seal(NEXT_HEADER_UDP, &[b"x"], &mut other)
            .unwrap();
        assert_eq!(o.open(&mut other.clone()), Err(EspError::Forged), "another key");
        let mut wrong_spi = p.clone();
        wrong_spi[..4].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(o.open(&mut wrong_spi), Err(EspError::UnknownSpi(7)));
        assert_eq!(o.open(&mut p[..20].to_vec()), Err(EspError::Malformed));
        // Refusals left the window alone: the packet still opens, once.
        let copy = p.clone();
        assert!(o.open(&mut p).is_ok());
        assert_eq!(o.open(&mut copy.clone()), Err(EspError::Replayed(1)));
    }

    #[test]
    fn the_window_takes_late_packets_once_and_refuses_old_ones() {
        let (mut s, mut o) = pair();
        let sealed: Vec<Vec<u8>> = (0..3000)
            .map(|_| {
                let mut p = Vec::new();
                s.seal(NEXT_HEADER_UDP, &[b"x"], &mut p).unwrap();
                p
            })
            .collect();
        // 2000 first, then 1100 (within the window), then 500 (too old).
        assert!(o.open(&mut sealed[1999].clone()).is_ok());
        assert!(o.open(&mut sealed[1099].clone()).is_ok());
        assert_eq!(o.open(&mut sealed[1099].clone()), Err(EspError::Replayed(1100)));
        assert_eq!(o.open(&mut sealed[499].clone()), Err(EspError::Replayed(500)));
        assert!(o.open(&mut sealed[2999].clone()).is_ok());
    }

    proptest! {
        /// Against a model (every sequence number ever taken, and the highest): any order
        /// of arrivals, duplicates included, takes each packet at most once, never one more
        /// than the window behind, and every one that is fresh.
        #[test]
        fn the_window_agrees_with_a_model(arrivals in prop::collection::vec(1u32..5000, 1..400)) {
            let mut w = Window::default();
            let mut taken = std::collections::BTreeSet::new();
            let mut top = 0u32;
            for seq in arrivals {
                let model = !taken.contains(&seq) && (seq > top || top - seq < REPLAY_WINDOW);
                prop_assert_eq!(w.fresh(seq), model, "seq {} top {}", seq, top);
                if model {
                    w.take(seq);
                    taken.insert(seq);
                    top = top.max(seq);
                }
            }
        }
    }

    #[test]
    fn an_sa_refuses_to_seal_past_its_sequence_space() {
        let (mut s, _) = pair();
        s.sent = u64::from(u32::MAX) - 1;
        let mut p = Vec::new();
        assert!(s.seal(NEXT_HEADER_UDP, &[b"x"], &mut p).is_ok());
        let n = p.len();
        assert_eq!(s.seal(NEXT_HEADER_UDP, &[b"x"], &mut p), Err(EspError::Exhausted));
        assert_eq!(p.len(), n, "nothing appended");
    }
}
