//! Turns what an AF_PACKET socket hands over into frames as a wire would
//! carry them. With PACKET_VNET_HDR the kernel prefixes each frame with a
//! virtio-net header telling whether its checksum is still to be filled in
//! (a peer with tx checksum offload) and whether it is a super-frame to be
//! segmented (a peer with TSO/GSO, or GRO): written out as is, the first
//! would arrive with a wrong checksum and the second would not fit the MTU.
//! With PACKET_AUXDATA it says which VLAN tag the kernel took off.

/// Size of `struct virtio_net_hdr`.
pub const VNET_HDR_LEN: usize = 10;

const NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
const GSO_UDP_L4: u8 = 5;
const GSO_ECN: u8 = 0x80;

const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// `struct virtio_net_hdr`, in host byte order (packet sockets use the
/// legacy layout, which is the host's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    pub fn parse(b: &[u8; VNET_HDR_LEN]) -> Self {
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        VnetHdr {
            flags: b[0],
            gso_type: b[1],
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum WireError {
    /// Offsets in the header do not fit the frame.
    Malformed(&'static str),
    /// A super-frame kind the relay does not split (UFO, tunnels, SCTP).
    Unsupported(u8),
}

/// Appends to `out` the wire frames `frame` stands for: itself with its
/// checksum completed, or its segments. Returns whether it was split.
pub fn to_wire(hdr: &VnetHdr, frame: &[u8], out: &mut Vec<Vec<u8>>) -> Result<bool, WireError> {
    let gso = hdr.gso_type & !GSO_ECN;
    if gso == GSO_NONE || hdr.gso_size == 0 {
        let mut f = frame.to_vec();
        if hdr.flags & NEEDS_CSUM != 0 {
            complete_checksum(&mut f, hdr.csum_start.into(), hdr.csum_offset.into())?;
        }
        out.push(f);
        return Ok(false);
    }
    segment(hdr, gso, frame, out)?;
    Ok(true)
}

/// Fills in a partial checksum: the field holds the pseudo-header sum,
/// the rest is the one's complement sum from `start` to the end.
fn complete_checksum(f: &mut [u8], start: usize, offset: usize) -> Result<(), WireError> {
    let field = start + offset;
    if field + 2 > f.len() {
        return Err(WireError::Malformed("checksum offset beyond the frame"));
    }
    let sum = !fold(sum_words(&f[start..], 0));
    // 0 would mean "no checksum" to UDP; 0xffff is the same sum.
    let sum = if sum == 0 { 0xffff } else { sum };
    f[field..field + 2].copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

/// Splits a TCP or UDP (USO) super-frame into frames of `gso_size`
/// payload bytes, each with its own lengths, sequence number and
/// checksums, as the kernel's software GSO does.
fn segment(hdr: &VnetHdr, gso: u8, f: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), WireError> {
    let l3 = l3_offset(f).ok_or(WireError::Malformed("truncated Ethernet header"))?;
    let l4 = usize::from(hdr.csum_start);
    let v4 = match f.get(l3).map(|b| b >> 4) {
        Some(4) => true,
        Some(6) => false,
        _ => return Err(WireError::Malformed("super-frame is neither IPv4 nor IPv6")),
    };
    let tcp = match gso {
        GSO_TCPV4 | GSO_TCPV6 => true,
        GSO_UDP_L4 => false,
        other => return Err(WireError::Unsupported(other)),
    };
    let min_l4_len = if tcp { 20 } else { 8 };
    if l4 < l3 + if v4 { 20 } else { 40 } || l4 + min_l4_len > f.len() {
        return Err(WireError::Malformed("transport header out of the frame"));
    }
    let l4_len = if tcp { usize::from(f[l4 + 12] >> 4) * 4 } else { 8 };
    let head = l4 + l4_len;
    if l4_len < min_l4_len || head > f.len() {
        return Err(WireError::Malformed("transport header out of the frame"));
    }
    let ip_id = u16_at(f, l3 + 4);
    let seq = u32::from_be_bytes([f[l4 + 4], f[l4 + 5], f[l4 + 6], f[l4 + 7]]);
    let chunks: Vec<&[u8]> = f[head..].chunks(usize::from(hdr.gso_size)).collect();
    let last = chunks.len().saturating_sub(1);
    for (i, chunk) in chunks.into_iter().enumerate() {
        let mut s = Vec::with_capacity(head + chunk.len());
        s.extend_from_slice(&f[..head]);
        s.extend_from_slice(chunk);
        let (l3_bytes, l4_bytes) = (s.len() - l3, s.len() - l4);
        if v4 {
            put_u16(&mut s, l3 + 2, l3_bytes as u16);
            put_u16(&mut s, l3 + 4, ip_id.wrapping_add(i as u16));
            let ihl = usize::from(s[l3] & 0x0f) * 4;
            put_u16(&mut s, l3 + 10, 0);
            let sum = !fold(sum_words(&s[l3..l3 + ihl], 0));
            put_u16(&mut s, l3 + 10, sum);
        } else {
            put_u16(&mut s, l3 + 4, (l3_bytes - 40) as u16);
        }
        let csum_at = if tcp {
            let seg_seq = seq.wrapping_add((i * usize::from(hdr.gso_size)) as u32);
            s[l4 + 4..l4 + 8].copy_from_slice(&seg_seq.to_be_bytes());
            if i != last {
                s[l4 + 13] &= !(TCP_FIN | TCP_PSH);
            }
            if i != 0 {
                s[l4 + 13] &= !TCP_CWR;
            }
            l4 + 16
        } else {
            put_u16(&mut s, l4 + 4, l4_bytes as u16);
            l4 + 6
        };
        put_u16(&mut s, csum_at, 0);
        let proto = if tcp { 6 } else { 17 };
        let pseudo = pseudo_header_sum(&s, l3, v4, proto, l4_bytes);
        let sum = !fold(sum_words(&s[l4..], pseudo));
        put_u16(&mut s, csum_at, if sum == 0 && !tcp { 0xffff } else { sum });
        out.push(s);
    }
    Ok(())
}

/// Puts back the VLAN tag the kernel moved out of the frame on receive.
pub fn insert_vlan(frame: &mut Vec<u8>, tpid: u16, tci: u16) {
    if frame.len() >= 12 {
        let [t0, t1] = tpid.to_be_bytes();
        let [c0, c1] = tci.to_be_bytes();
        frame.splice(12..12, [t0, t1, c0, c1]);
    }
}

/// Where the IP header starts, past any VLAN tags still in the frame.
fn l3_offset(f: &[u8]) -> Option<usize> {
    let mut at = 12;
    loop {
        match u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]) {
            0x8100 | 0x88a8 => at += 4,
            _ => return Some(at + 2),
        }
    }
}

fn pseudo_header_sum(s: &[u8], l3: usize, v4: bool, proto: u8, l4_bytes: usize) -> u64 {
    let addrs = if v4 {
        &s[l3 + 12..l3 + 20]
    } else {
        &s[l3 + 8..l3 + 40]
    };
    sum_words(addrs, u64::from(proto) + l4_bytes as u64)
}

/// One's complement sum of big-endian 16-bit words (odd tail padded),
/// added to `acc`; fold before use.
pub fn sum_words(data: &[u8], mut acc: u64) -> u64 {
    // 32-bit words into 64 bits: the carries fold in the same way.
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    for p in words.remainder().chunks(2) {
        acc += u64::from(u16::from_be_bytes([p[0], *p.get(1).unwrap_or(&0)]));
    }
    acc
}

pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

fn u16_at(f: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([f[at], f[at + 1]])
}

fn put_u16(f: &mut [u8], at: usize, v: u16) {
    f[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
