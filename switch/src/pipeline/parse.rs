//! Stage 1: view the frame and reject what must not enter the switch.

use crate::counters::DropReason;
use crate::wire::{EthernetFrame, MacAddr, VlanTag};

/// The header fields later stages need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub dst: MacAddr,
    pub src: MacAddr,
}

/// Checks length, source address and tagging of a frame arriving on an access port.
#[inline]
pub(crate) fn parse(frame: &[u8], max_frame_len: usize) -> Result<Header, DropReason> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::TooShort)?;
    if frame.len() > max_frame_len {
        return Err(DropReason::Oversized);
    }
    let src = eth.src();
    if src.is_multicast() || src == MacAddr::ZERO {
        return Err(DropReason::InvalidSource);
    }
    if eth.ethertype().is_vlan_tag() {
        // Access ports carry untagged frames only (as Open vSwitch access ports do): a tag a
        // container writes itself must not select a VLAN elsewhere. A cut-short tag is
        // reported as such.
        VlanTag::new_checked(eth.payload()).map_err(|_| DropReason::TooShort)?;
        return Err(DropReason::TaggedOnAccessPort);
    }
    Ok(Header { dst: eth.dst(), src })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: [u8; 6], src: [u8; 6], et: u16, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[0..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f[12..14].copy_from_slice(&et.to_be_bytes());
        f
    }

    const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

    #[test]
    fn accepts_a_plain_frame() {
        let h = parse(&frame(B, A, 0x0800, 60), 1514).unwrap();
        assert_eq!((h.dst, h.src), (MacAddr(B), MacAddr(A)));
    }

    #[test]
    fn drops_with_reasons() {
        assert_eq!(parse(&[0u8; 13], 1514).unwrap_err(), DropReason::TooShort);
        assert_eq!(
            parse(&frame(B, A, 0x0800, 1515), 1514).unwrap_err(),
            DropReason::Oversized
        );
        assert_eq!(
            parse(&frame(B, [1, 0, 0, 0, 0, 1], 0x0800, 60), 1514).unwrap_err(),
            DropReason::InvalidSource
        );
        assert_eq!(
            parse(&frame(B, [0; 6], 0x0800, 60), 1514).unwrap_err(),
            DropReason::InvalidSource
        );
        assert_eq!(
            parse(&frame(B, A, 0x8100, 60), 1514).unwrap_err(),
            DropReason::TaggedOnAccessPort
        );
        assert_eq!(
            parse(&frame(B, A, 0x88a8, 60), 1514).unwrap_err(),
            DropReason::TaggedOnAccessPort
        );
        assert_eq!(parse(&frame(B, A, 0x8100, 16), 1514).unwrap_err(), DropReason::TooShort);
    }
}
