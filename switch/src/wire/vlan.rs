use std::fmt;

use super::{EtherType, WireError};

/// Length of an 802.1Q tag: TPID (the EtherType 0x8100 in the outer position) is counted as
/// part of the Ethernet header, so the view covers TCI and the inner EtherType.
pub const VLAN_TAG_LEN: usize = 4;

/// A VLAN identifier, 1-4094 (0 and 4095 are reserved by IEEE 802.1Q).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VlanId(u16);

impl VlanId {
    /// A valid VLAN ID.
    ///
    /// # Errors
    /// Values outside 1-4094 are refused with a message naming the value.
    #[inline]
    pub fn new(id: u16) -> Result<VlanId, InvalidVlanId> {
        if (1..=4094).contains(&id) {
            Ok(VlanId(id))
        } else {
            Err(InvalidVlanId(id))
        }
    }

    /// The numeric value.
    #[inline]
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for VlanId {
    #[inline]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A VLAN ID outside 1-4094.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidVlanId(pub u16);

impl fmt::Display for InvalidVlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid VLAN ID {}: must be 1-4094", self.0)
    }
}

impl std::error::Error for InvalidVlanId {}

/// A zero-copy view of the four bytes following an 802.1Q/802.1ad TPID: TCI and inner type.
#[derive(Debug, Clone, Copy)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wraps untrusted bytes (the Ethernet payload of a tagged frame).
    ///
    /// # Errors
    /// [`WireError::Truncated`] when fewer than four bytes are given.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < VLAN_TAG_LEN {
            return Err(WireError::Truncated);
        }
        Ok(VlanTag { buffer })
    }

    /// Priority code point (3 bits).
    #[inline]
    pub fn pcp(&self) -> u8 {
        self.buffer.as_ref()[0] >> 5
    }

    /// Drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        self.buffer.as_ref()[0] & 0x10 != 0
    }

    /// The raw 12-bit VLAN ID (may be the reserved 0 or 4095).
    #[inline]
    pub fn vid(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[0], b[1]]) & 0x0fff
    }

    /// The EtherType of what follows the tag (another TPID in a double-tagged frame).
    #[inline]
    pub fn inner_ethertype(&self) -> EtherType {
        let b = self.buffer.as_ref();
        EtherType(u16::from_be_bytes([b[2], b[3]]))
    }

    /// What follows the tag.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[VLAN_TAG_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    /// Writes priority, DEI and VLAN ID.
    #[inline]
    pub fn set_tci(&mut self, pcp: u8, dei: bool, vid: VlanId) {
        let tci = (u16::from(pcp & 0x7) << 13) | (u16::from(dei) << 12) | vid.get();
        self.buffer.as_mut()[0..2].copy_from_slice(&tci.to_be_bytes());
    }

    /// Writes the inner EtherType.
    #[inline]
    pub fn set_inner_ethertype(&mut self, t: EtherType) {
        self.buffer.as_mut()[2..4].copy_from_slice(&t.0.to_be_bytes());
    }
}

/// The TPID of an 802.1Q (customer) tag.
pub const TPID_8021Q: u16 = 0x8100;

/// The four bytes that tag a frame with `vlan` on a trunk (priority 0), inserted after the
/// source address.
#[inline]
pub fn trunk_tag(vlan: VlanId) -> [u8; VLAN_TAG_LEN] {
    let [t0, t1] = TPID_8021Q.to_be_bytes();
    let [v0, v1] = vlan.get().to_be_bytes();
    [t0, t1, v0, v1]
}

/// What the receiver of one VLAN on a trunk does with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrunkRx {
    /// Tagged with this VLAN, the tag already lifted out of the bytes (the kernel's receive
    /// path does that): the bytes are the untagged frame.
    Accept,
    /// Tagged with this VLAN in the bytes: the four bytes at offset 12 are to be removed.
    StripInline,
    /// Untagged, of another VLAN, or behind an 802.1ad service tag: not this VLAN's frame.
    Reject,
}

/// Classifies `frame` as received on a trunk for `vlan`. `outer` is the tag the kernel took
/// off (TPID, TCI), if any. Only the outermost tag selects the VLAN: a second tag inside
/// stays in the frame, where the access side refuses it, so a double-tagged frame never
/// reaches the VLAN its inner tag names.
#[inline]
pub fn trunk_rx(frame: &[u8], outer: Option<(u16, u16)>, vlan: VlanId) -> TrunkRx {
    let ours = |tpid: u16, tci: u16| tpid == TPID_8021Q && tci & 0x0fff == vlan.get();
    match outer {
        Some((tpid, tci)) if ours(tpid, tci) => TrunkRx::Accept,
        Some(_) => TrunkRx::Reject,
        None if frame.len() >= 18 => {
            let tpid = u16::from_be_bytes([frame[12], frame[13]]);
            let tci = u16::from_be_bytes([frame[14], frame[15]]);
            if ours(tpid, tci) {
                TrunkRx::StripInline
            } else {
                TrunkRx::Reject
            }
        }
        None => TrunkRx::Reject,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::EthernetFrame;

    // dst, src, 0x8100, PCP 5 DEI 0 VID 10, inner IPv4.
    const TAGGED: [u8; 18] = [
        0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x81, 0x00, 0xa0, 0x0a, 0x08, 0x00,
    ];

    #[test]
    fn test_deconstruct() {
        let f = EthernetFrame::new_checked(&TAGGED[..]).unwrap();
        assert!(f.ethertype().is_vlan_tag());
        let t = VlanTag::new_checked(f.payload()).unwrap();
        assert_eq!((t.pcp(), t.dei(), t.vid()), (5, false, 10));
        assert_eq!(t.inner_ethertype(), EtherType::IPV4);
    }

    #[test]
    fn test_construct() {
        let mut bytes = TAGGED;
        bytes[14..18].fill(0);
        let mut t = VlanTag::new_checked(&mut bytes[14..]).unwrap();
        t.set_tci(5, false, VlanId::new(10).unwrap());
        t.set_inner_ethertype(EtherType::IPV4);
        assert_eq!(bytes, TAGGED);
    }

    #[test]
    fn trunk_receivers_take_only_their_outer_tag() {
        let v10 = VlanId::new(10).unwrap();
        let untagged = [0u8; 60];
        assert_eq!(trunk_rx(&untagged, None, v10), TrunkRx::Reject);
        // Lifted by the kernel: PCP bits do not matter, the VLAN ID and TPID do.
        assert_eq!(trunk_rx(&untagged, Some((0x8100, 0xa00a)), v10), TrunkRx::Accept);
        assert_eq!(trunk_rx(&untagged, Some((0x8100, 20)), v10), TrunkRx::Reject);
        assert_eq!(trunk_rx(&untagged, Some((0x88a8, 10)), v10), TrunkRx::Reject);
        // In the bytes.
        let mut inline = [0u8; 60];
        inline[12..16].copy_from_slice(&trunk_tag(v10));
        assert_eq!(trunk_rx(&inline, None, v10), TrunkRx::StripInline);
        assert_eq!(trunk_rx(&inline, None, VlanId::new(11).unwrap()), TrunkRx::Reject);
        assert_eq!(trunk_rx(&inline[..17], None, v10), TrunkRx::Reject);
        // Double tag, outer 20 lifted, inner 10 in the bytes: VLAN 10 never sees it.
        assert_eq!(trunk_rx(&inline, Some((0x8100, 20)), v10), TrunkRx::Reject);
        assert_eq!(trunk_tag(VlanId::new(4094).unwrap()), [0x81, 0x00, 0x0f, 0xfe]);
    }

    #[test]
    fn vlan_id_range() {
        assert!(VlanId::new(0).is_err());
        assert_eq!(
            VlanId::new(4095).unwrap_err().to_string(),
            "invalid VLAN ID 4095: must be 1-4094"
        );
        assert_eq!(VlanId::new(4094).unwrap().get(), 4094);
        assert!(VlanTag::new_checked(&[0u8; 3][..]).is_err());
    }
}
