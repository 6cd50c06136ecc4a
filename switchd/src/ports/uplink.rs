//! The uplink of a macvlan network carried by switchd's own 802.1Q (the kernel has no 8021q):
//! an AF_PACKET socket on the parent interface that tags what it sends with the network's
//! VLAN and takes in only frames carrying that tag.
//!
//! The kernel lifts an 802.1Q tag off every received frame before packet sockets see it and
//! hands it over beside the frame (PACKET_AUXDATA); a classic BPF filter drops the other
//! VLANs in the kernel, and [`switch::trunk_rx`] checks again in userspace.

use std::io::{self, IoSlice};
use std::os::fd::{OwnedFd, RawFd};

use switch::{trunk_tag, VlanId};

use overlay::offload::{VirtioNetHdr, VIRTIO_NET_HDR_F_NEEDS_CSUM};

use crate::ports::packet;
use crate::ports::tap::VNET_HDR_LEN;

/// Offset of the MAC addresses' end (where a tag goes) behind the virtio-net header.
const TAG_AT: usize = VNET_HDR_LEN + 12;

/// Opens the uplink for `vlan` on `iface`, promiscuous while it lives.
pub fn open(iface: &str, vlan: VlanId) -> io::Result<OwnedFd> {
    packet::socket(
        iface,
        &packet::Options {
            auxdata: true,
            promisc: true,
            filter: Some(filter(vlan)),
        },
    )
}

/// The kernel-side filter: a frame passes when its outer 802.1Q tag (lifted or still in the
/// bytes) carries `vlan`.
pub fn filter(vlan: VlanId) -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let ad = |off: libc::c_int| (libc::SKF_AD_OFF + off) as u32;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let vid = u32::from(vlan.get());
    let tpid = u32::from(switch::wire::TPID_8021Q);
    vec![
        /* 0 */ op(LD_W_ABS, 0, 0, ad(libc::SKF_AD_VLAN_TAG_PRESENT)),
        /* 1 */ op(JEQ_K, 5, 0, 0), // no lifted tag: look in the bytes (7)
        /* 2 */ op(LD_W_ABS, 0, 0, ad(libc::SKF_AD_VLAN_TPID)),
        /* 3 */ op(JEQ_K, 0, 9, tpid), // 802.1ad and others: drop (13)
        /* 4 */ op(LD_W_ABS, 0, 0, ad(libc::SKF_AD_VLAN_TAG)),
        /* 5 */ op(AND_K, 0, 0, 0x0fff),
        /* 6 */ op(JEQ_K, 5, 6, vid), // accept (12) or drop (13)
        /* 7 */ op(LD_H_ABS, 0, 0, 12),
        /* 8 */ op(JEQ_K, 0, 4, tpid), // untagged: drop (13)
        /* 9 */ op(LD_H_ABS, 0, 0, 14),
        /* 10 */ op(AND_K, 0, 0, 0x0fff),
        /* 11 */ op(JEQ_K, 0, 1, vid),
        /* 12 */ op(RET_K, 0, 0, u32::MAX),
        /* 13 */ op(RET_K, 0, 0, 0),
    ]
}

/// Reads one frame (behind its virtio-net header) into `buf`: its length and the tag the
/// kernel lifted off it (TPID, TCI), if any.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<(u16, u16)>)> {
    // Room for one cmsghdr and a tpacket_auxdata, 8-byte aligned.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is valid before we fill it.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control);
    // SAFETY: msg points at a live iovec over buf and at the control buffer, both sized.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut tag = None;
    // SAFETY: the CMSG_* walk stays within msg_control/msg_controllen as the kernel filled them.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA {
                let aux = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::tpacket_auxdata>());
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                    let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                        aux.tp_vlan_tpid
                    } else {
                        switch::wire::TPID_8021Q
                    };
                    tag = Some((tpid, aux.tp_vlan_tci));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, tag))
}

/// Moves the checksum start and header length of a virtio-net header by `delta` bytes (a tag
/// put in or taken out before them).
pub fn shift_offsets(hdr: &mut [u8], delta: i16) {
    let Some(mut h) = VirtioNetHdr::parse(hdr) else { return };
    let mv = |v: u16| if v != 0 { v.wrapping_add_signed(delta) } else { v };
    if h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 {
        h.csum_start = mv(h.csum_start);
    }
    h.hdr_len = mv(h.hdr_len);
    h.emit(hdr);
}

/// Takes an in-line tag out of the frame in `buf[..n]` (behind its virtio-net header); the new
/// length.
pub fn strip_inline(buf: &mut [u8], n: usize) -> usize {
    buf.copy_within(TAG_AT + 4..n, TAG_AT);
    shift_offsets(&mut buf[..VNET_HDR_LEN], -4);
    n - 4
}

/// Sends `packet` (a frame behind its virtio-net header) tagged with `vlan`.
pub fn send(fd: RawFd, packet: &[u8], vlan: VlanId) -> io::Result<()> {
    if packet.len() < TAG_AT {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame shorter than its header",
        ));
    }
    let mut head = [0u8; TAG_AT];
    head.copy_from_slice(&packet[..TAG_AT]);
    shift_offsets(&mut head[..VNET_HDR_LEN], 4);
    let tag = trunk_tag(vlan);
    let iov = [IoSlice::new(&head), IoSlice::new(&tag), IoSlice::new(&packet[TAG_AT..])];
    // SAFETY: iov holds three live slices; IoSlice is ABI-compatible with iovec.
    let n = unsafe { libc::writev(fd, iov.as_ptr().cast(), iov.len() as libc::c_int) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use switch::{trunk_rx, TrunkRx};

    /// Runs the subset of classic BPF the filter uses, as the kernel would on a frame whose
    /// lifted tag is `lifted`.
    fn run(prog: &[libc::sock_filter], frame: &[u8], lifted: Option<(u16, u16)>) -> u32 {
        let ad = |off: libc::c_int| (libc::SKF_AD_OFF + off) as u32;
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code as u32 {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    a = match i.k {
                        k if k == ad(libc::SKF_AD_VLAN_TAG_PRESENT) => u32::from(lifted.is_some()),
                        k if k == ad(libc::SKF_AD_VLAN_TPID) => u32::from(lifted.map_or(0, |t| t.0)),
                        k if k == ad(libc::SKF_AD_VLAN_TAG) => u32::from(lifted.map_or(0, |t| t.1)),
                        k => panic!("unexpected load {k:#x}"),
                    }
                }
                c if c == libc::BPF_LD | libc::BPF_H | libc::BPF_ABS => {
                    let k = i.k as usize;
                    match frame.get(k..k + 2) {
                        Some(b) => a = u32::from(u16::from_be_bytes([b[0], b[1]])),
                        None => return 0, // out of bounds: the kernel drops
                    }
                }
                c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => a &= i.k,
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => {
                    pc += usize::from(if a == i.k { i.jt } else { i.jf })
                }
                c if c == libc::BPF_RET | libc::BPF_K => return i.k,
                c => panic!("unexpected op {c:#x}"),
            }
        }
    }

    #[test]
    fn the_kernel_filter_agrees_with_the_userspace_check() {
        let v10 = VlanId::new(10).unwrap();
        let prog = filter(v10);
        let mut inline10 = vec![0u8; 64];
        inline10[12..16].copy_from_slice(&trunk_tag(v10));
        let mut inline20 = inline10.clone();
        inline20[12..16].copy_from_slice(&trunk_tag(VlanId::new(20).unwrap()));
        let mut qinq = inline10.clone();
        qinq[12..14].copy_from_slice(&0x88a8u16.to_be_bytes());
        let untagged = vec![0u8; 64];
        type Lifted = Option<(u16, u16)>;
        let cases: [(&[u8], Lifted); 9] = [
            (&untagged, None),
            (&untagged, Some((0x8100, 10))),
            (&untagged, Some((0x8100, 0xe00a))),
            (&untagged, Some((0x8100, 20))),
            (&untagged, Some((0x88a8, 10))),
            (&inline10, None),
            (&inline20, None),
            (&qinq, None),
            (&inline10, Some((0x8100, 20))),
        ];
        for (frame, lifted) in cases {
            let kernel = run(&prog, frame, lifted) != 0;
            let user = trunk_rx(frame, lifted, v10) != TrunkRx::Reject;
            assert_eq!(kernel, user, "frame {:02x?} lifted {lifted:x?}", &frame[12..16]);
        }
        assert_eq!(run(&prog, &untagged[..13], None), 0);
    }

    #[test]
    fn offsets_follow_the_tag() {
        // NEEDS_CSUM, TCPv4 GSO, hdr_len 66, gso_size 1448, csum_start 34, csum_offset 16.
        let mut h = [1u8, 1, 66, 0, 0xa8, 0x05, 34, 0, 16, 0];
        shift_offsets(&mut h, 4);
        assert_eq!(h, [1, 1, 70, 0, 0xa8, 0x05, 38, 0, 16, 0]);
        shift_offsets(&mut h, -4);
        assert_eq!(h, [1, 1, 66, 0, 0xa8, 0x05, 34, 0, 16, 0]);
        // A plain header stays plain.
        let mut plain = [0u8; 10];
        shift_offsets(&mut plain, 4);
        assert_eq!(plain, [0; 10]);
    }

    #[test]
    fn an_inline_tag_comes_out() {
        let mut buf = vec![0u8; VNET_HDR_LEN];
        buf.extend_from_slice(&[0xaa; 6]);
        buf.extend_from_slice(&[0xbb; 6]);
        buf.extend_from_slice(&trunk_tag(VlanId::new(10).unwrap()));
        buf.extend_from_slice(&[0x08, 0x00, 1, 2, 3]);
        let len = buf.len();
        let n = strip_inline(&mut buf, len);
        assert_eq!(&buf[TAG_AT..n], &[0x08, 0x00, 1, 2, 3]);
        assert_eq!(n, VNET_HDR_LEN + 12 + 5);
    }
}
