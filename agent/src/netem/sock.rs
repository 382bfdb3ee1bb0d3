//! The system calls the relay needs: entering a namespace, AF_PACKET
//! sockets, GRO through the ethtool ioctl, an eventfd to stop, ppoll.

use std::fs::File;
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Moves the calling thread (only it) into the namespace /run/netns/NAME.
pub fn enter_netns(name: &str) -> io::Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a namespace name",
        ));
    }
    let file = File::open(format!("/run/netns/{name}"))?;
    // SAFETY: a valid namespace fd; CLONE_NEWNET switches only this thread.
    cvt(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) })?;
    Ok(())
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn setsockopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points at a live T of the given size.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

fn ifreq(iface: &str) -> io::Result<libc::ifreq> {
    if iface.is_empty() || iface.len() >= libc::IFNAMSIZ || iface.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not an interface name",
        ));
    }
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(iface.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(ifr)
}

/// A packet socket in the calling thread's namespace, receiving nothing
/// until bound to a protocol.
pub fn packet_socket(nonblocking: bool) -> io::Result<OwnedFd> {
    let flags = libc::SOCK_CLOEXEC | if nonblocking { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: plain socket(2); the fd is owned from here on.
    let fd = cvt(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | flags, 0) })?;
    // SAFETY: a fresh fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The index of `iface` in the socket's namespace.
pub fn ifindex(fd: &OwnedFd, iface: &str) -> io::Result<libc::c_int> {
    let mut ifr = ifreq(iface)?;
    // SAFETY: SIOCGIFINDEX reads the name and writes the index into ifr.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFINDEX, &mut ifr) })?;
    // SAFETY: the kernel filled the ifindex member.
    Ok(unsafe { ifr.ifr_ifru.ifru_ifindex })
}

/// Binds to one interface; protocol 0 sends only, ETH_P_ALL also receives.
pub fn bind(fd: &OwnedFd, ifindex: libc::c_int, protocol: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: a valid sockaddr_ll and its size.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Prepares a receiving socket, before it is bound: virtio-net headers
/// (offload state), auxdata (VLAN tags), none of the interface's own
/// outgoing frames (which include what the other direction writes), and a
/// large buffer so bursts wait instead of dropping.
pub fn prepare_rx(fd: &OwnedFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    setsockopt(fd, libc::SOL_PACKET, libc::PACKET_VNET_HDR, &one)?;
    setsockopt(fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, &one)?;
    setsockopt(fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &one)?;
    let bytes: libc::c_int = 8 << 20;
    // FORCE passes rmem_max as root; the plain option is the fallback.
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &bytes)
        .or_else(|_| setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &bytes))
}

/// Promiscuous while the socket lives: the kernel drops the membership,
/// and the interface's promiscuity with it, when the socket closes.
pub fn promiscuous(fd: &OwnedFd, ifindex: libc::c_int) -> io::Result<()> {
    let mreq = libc::packet_mreq {
        mr_ifindex: ifindex,
        mr_type: libc::PACKET_MR_PROMISC as u16,
        mr_alen: 0,
        mr_address: [0; 8],
    };
    setsockopt(fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
}

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}
const ETHTOOL_GGRO: u32 = 0x2b;
const ETHTOOL_SGRO: u32 = 0x2c;

/// Whether GRO is on; `None` when the device has no such setting.
pub fn gro(fd: &OwnedFd, iface: &str) -> io::Result<Option<bool>> {
    match ethtool(fd, iface, ETHTOOL_GGRO, 0) {
        Ok(v) => Ok(Some(v != 0)),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn set_gro(fd: &OwnedFd, iface: &str, on: bool) -> io::Result<()> {
    ethtool(fd, iface, ETHTOOL_SGRO, u32::from(on)).map(drop)
}

const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_STXCSUM: u32 = 0x17;

/// Turns transmit checksum offload off (and with it TSO, which needs it);
/// true when it was on.
pub fn clear_tx_checksum(fd: &OwnedFd, iface: &str) -> io::Result<bool> {
    match ethtool(fd, iface, ETHTOOL_GTXCSUM, 0) {
        Ok(0) => Ok(false),
        Ok(_) => ethtool(fd, iface, ETHTOOL_STXCSUM, 0).map(|_| true),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(false),
        Err(e) => Err(e),
    }
}

/// One legacy ethtool get/set; the socket's namespace names the device.
fn ethtool(fd: &OwnedFd, iface: &str, cmd: u32, data: u32) -> io::Result<u32> {
    let mut value = EthtoolValue { cmd, data };
    let mut ifr = ifreq(iface)?;
    ifr.ifr_ifru.ifru_data = (&mut value as *mut EthtoolValue).cast();
    // SAFETY: SIOCETHTOOL reads/writes `value` through ifr, both live here.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCETHTOOL, &mut ifr) })?;
    Ok(value.data)
}

pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain eventfd(2); the fd is owned from here on.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // SAFETY: a fresh fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes the eventfd readable for good (it is never read).
pub fn signal(fd: &OwnedFd) {
    // SAFETY: writes 8 bytes from a live u64.
    unsafe { libc::eventfd_write(fd.as_raw_fd(), 1) };
}

pub enum Wake {
    Stop,
    Readable,
    Timeout,
}

/// Sleeps until `rx` has a frame, `stop` is signalled or `timeout` passes
/// (None: no timeout). ppoll takes nanoseconds, so release times are met
/// to the timer slack (50 µs), with no CPU spent in between.
pub fn wait(rx: RawFd, stop: RawFd, timeout: Option<Duration>) -> io::Result<Wake> {
    let mut fds = [
        libc::pollfd {
            fd: stop,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: rx,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos().into(),
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: two live pollfds, a live timespec or null, no signal mask.
    let n = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, ts_ptr, std::ptr::null()) };
    if n < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::Interrupted => Ok(Wake::Timeout),
            _ => Err(err),
        };
    }
    Ok(if fds[0].revents != 0 {
        Wake::Stop
    } else if fds[1].revents != 0 {
        Wake::Readable
    } else {
        Wake::Timeout
    })
}

/// One frame read by [`recv`].
pub struct Received {
    /// Bytes in the buffer: the virtio-net header, then the frame.
    pub len: usize,
    /// The kernel cut the frame to the buffer.
    pub truncated: bool,
    /// The interface sent it (not received), so it is not ours to relay.
    pub outgoing: bool,
    /// The VLAN tag (TPID, TCI) the kernel took out of the frame.
    pub vlan: Option<(u16, u16)>,
}

/// Reads one frame without blocking; `Ok(None)` when none is waiting.
pub fn recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<Option<Received>> {
    // SAFETY: plain data, filled by the kernel below.
    let mut from: libc::sockaddr_ll = unsafe { zeroed() };
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below stays live.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 8]>();
    // SAFETY: msg describes live buffers of the stated sizes.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT | libc::MSG_TRUNC) };
    if n < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::WouldBlock => Ok(None),
            _ => Err(err),
        };
    }
    let mut vlan = None;
    // SAFETY: walks the control messages the kernel wrote into `control`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_PACKET && (*cmsg).cmsg_type == libc::PACKET_AUXDATA {
                let aux = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::tpacket_auxdata>());
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                    let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                        aux.tp_vlan_tpid
                    } else {
                        0x8100
                    };
                    vlan = Some((tpid, aux.tp_vlan_tci));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let n = n as usize;
    Ok(Some(Received {
        len: n.min(buf.len()),
        truncated: n > buf.len() || msg.msg_flags & libc::MSG_TRUNC != 0,
        outgoing: from.sll_pkttype == libc::PACKET_OUTGOING,
        vlan,
    }))
}

/// Writes one frame without blocking: a full destination drops it, as a
/// full device queue would, instead of stalling the other frames.
pub fn send(fd: &OwnedFd, frame: &[u8]) -> io::Result<()> {
    // SAFETY: a live buffer and its length.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
