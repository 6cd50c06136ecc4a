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
    pub fn new(id: u16) -> Result<VlanId, String> {
        if (1..=4094).contains(&id) {
            Ok(VlanId(id))
        } else {
            Err(format!("invalid VLAN ID {id}: must be 1-4094"))
        }
    }

    /// The numeric value.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for VlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

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
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < VLAN_TAG_LEN {
            return Err(WireError::Truncated);
        }
        Ok(VlanTag { buffer })
    }

    /// Priority code point (3 bits).
    pub fn pcp(&self) -> u8 {
        self.buffer.as_ref()[0] >> 5
    }

    /// Drop eligible indicator.
    pub fn dei(&self) -> bool {
        self.buffer.as_ref()[0] & 0x10 != 0
    }

    /// The raw 12-bit VLAN ID (may be the reserved 0 or 4095).
    pub fn vid(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[0], b[1]]) & 0x0fff
    }

    /// The EtherType of what follows the tag (another TPID in a double-tagged frame).
    pub fn inner_ethertype(&self) -> EtherType {
        let b = self.buffer.as_ref();
        EtherType(u16::from_be_bytes([b[2], b[3]]))
    }

    /// What follows the tag.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[VLAN_TAG_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    /// Writes priority, DEI and VLAN ID.
    pub fn set_tci(&mut self, pcp: u8, dei: bool, vid: VlanId) {
        let tci = (u16::from(pcp & 0x7) << 13) | (u16::from(dei) << 12) | vid.get();
        self.buffer.as_mut()[0..2].copy_from_slice(&tci.to_be_bytes());
    }

    /// Writes the inner EtherType.
    pub fn set_inner_ethertype(&mut self, t: EtherType) {
        self.buffer.as_mut()[2..4].copy_from_slice(&t.0.to_be_bytes());
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
    fn vlan_id_range() {
        assert!(VlanId::new(0).is_err());
        assert_eq!(VlanId::new(4095).unwrap_err(), "invalid VLAN ID 4095: must be 1-4094");
        assert_eq!(VlanId::new(4094).unwrap().get(), 4094);
        assert!(VlanTag::new_checked(&[0u8; 3][..]).is_err());
    }
}
