//! The 8-byte VXLAN header (RFC 7348 section 5).
//!
//! ```text
//!  0                   1                   2                   3
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! |                VXLAN Network Identifier (VNI) |   Reserved     |
//! ```

use std::fmt;

/// Length of the VXLAN header.
pub const VXLAN_HEADER_LEN: usize = 8;
/// The IANA-assigned UDP destination port.
pub const VXLAN_PORT: u16 = 4789;

const FLAG_I: u8 = 0x08;

/// A 24-bit VXLAN network identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vni(u32);

impl Vni {
    /// Largest VNI (2^24 - 1).
    pub const MAX: u32 = 0x00ff_ffff;

    /// A VNI.
    ///
    /// # Errors
    /// [`VxlanError::VniOutOfRange`] above 16,777,215.
    pub fn new(v: u32) -> Result<Vni, VxlanError> {
        if v > Self::MAX {
            return Err(VxlanError::VniOutOfRange(v));
        }
        Ok(Vni(v))
    }

    /// The numeric value.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why bytes are not a usable VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VxlanError {
    /// Fewer than 8 bytes.
    Truncated,
    /// The I flag, which says the VNI is valid, is clear.
    NoVniFlag,
    /// A VNI above 2^24 - 1.
    VniOutOfRange(u32),
}

impl fmt::Display for VxlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VxlanError::Truncated => write!(f, "VXLAN header truncated: need 8 bytes"),
            VxlanError::NoVniFlag => write!(f, "VXLAN header without the I flag"),
            VxlanError::VniOutOfRange(v) => write!(f, "invalid VNI {v}: must be 0-16777215"),
        }
    }
}

impl std::error::Error for VxlanError {}

/// The parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanHeader {
    /// The network identifier.
    pub vni: Vni,
}

impl VxlanHeader {
    /// Parses the front of a UDP payload. Reserved bits are ignored on receipt, as the RFC says.
    ///
    /// # Errors
    /// [`VxlanError::Truncated`] or [`VxlanError::NoVniFlag`].
    pub fn parse(b: &[u8]) -> Result<VxlanHeader, VxlanError> {
        if b.len() < VXLAN_HEADER_LEN {
            return Err(VxlanError::Truncated);
        }
        if b[0] & FLAG_I == 0 {
            return Err(VxlanError::NoVniFlag);
        }
        let vni = u32::from_be_bytes([0, b[4], b[5], b[6]]);
        Ok(VxlanHeader { vni: Vni(vni) })
    }

    /// Bytes the header takes.
    pub fn buffer_len(&self) -> usize {
        VXLAN_HEADER_LEN
    }

    /// Writes the header (I flag set, reserved bits zero) into the first 8 bytes of `b`.
    ///
    /// # Panics
    /// If `b` is shorter than 8 bytes.
    pub fn emit(&self, b: &mut [u8]) {
        let v = self.vni.0.to_be_bytes();
        b[..VXLAN_HEADER_LEN].copy_from_slice(&[FLAG_I, 0, 0, 0, v[1], v[2], v[3], 0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HDR_VNI_42: [u8; 8] = [0x08, 0, 0, 0, 0, 0, 42, 0];

    #[test]
    fn test_deconstruct() {
        assert_eq!(VxlanHeader::parse(&HDR_VNI_42).unwrap().vni.get(), 42);
    }

    #[test]
    fn test_construct() {
        let mut b = [0xffu8; 8];
        VxlanHeader {
            vni: Vni::new(42).unwrap(),
        }
        .emit(&mut b);
        assert_eq!(b, HDR_VNI_42);
    }

    #[test]
    fn rejects_bad_headers() {
        assert_eq!(VxlanHeader::parse(&HDR_VNI_42[..7]), Err(VxlanError::Truncated));
        assert_eq!(VxlanHeader::parse(&[0u8; 8]), Err(VxlanError::NoVniFlag));
        assert_eq!(
            Vni::new(1 << 24).unwrap_err().to_string(),
            "invalid VNI 16777216: must be 0-16777215"
        );
    }

    proptest! {
        #[test]
        fn emit_parse_round_trip(v in 0..=Vni::MAX) {
            let h = VxlanHeader { vni: Vni::new(v).unwrap() };
            let mut b = [0u8; 8];
            h.emit(&mut b);
            prop_assert_eq!(VxlanHeader::parse(&b).unwrap(), h);
        }
    }
}
