//! Live capture sources behind one trait: pnet's AF_PACKET datalink channel (one frame per
//! `recvfrom`, timestamped with the system clock at receipt) and, on Linux, an mmap'd TPACKET_V3
//! ring ([`super::ring::RingCapture`], kernel timestamps, a block of frames per wake-up).
//!
//! Both hand frames to a callback as `(timestamp ns since the Unix epoch, bytes, wire length)`,
//! borrowed from their own buffers: nothing is allocated per frame.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::capture::LinkType;
use crate::config::CaptureConfig;

/// Largest frame a read can hold without truncation: libpcap's largest snap length. pnet's
/// default read buffer (4096 bytes) silently cuts jumbo and GRO/GSO-merged frames.
pub const MAX_FRAME: usize = 262_144;

/// What a capture and the kernel under it counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Frames handed to the callback.
    pub frames: u64,
    /// Frames the kernel queued for this socket, dropped ones included (PACKET_STATISTICS
    /// `tp_packets`), when the API exposes it.
    pub kernel_packets: Option<u64>,
    /// Frames the kernel dropped for this socket (receive buffer or ring full).
    pub kernel_drops: Option<u64>,
    /// TPACKET_V3 only: times the ring was full and the kernel froze its queue.
    pub freeze_q: Option<u64>,
    /// Read errors other than timeouts and interruptions.
    pub errors: u64,
}

/// A live source of frames.
pub trait LiveCapture {
    /// Waits at most the read timeout and hands every available frame (one, or a ring block) to
    /// `f` as `(timestamp ns, captured bytes, wire length)`; returns how many. 0 means the
    /// timeout passed (or a signal interrupted the wait).
    fn next(&mut self, f: &mut dyn FnMut(u64, &[u8], u32)) -> io::Result<usize>;
    /// Counters; reading the kernel's counters resets them there, so this accumulates.
    fn stats(&mut self) -> CaptureStats;
    /// The link type of the frames.
    fn link(&self) -> LinkType {
        LinkType::Ethernet
    }
    /// The longest a frame can wait in the kernel before it is handed out (a ring block's
    /// retire timeout): the engine's idle clock is held back by this much, so a late block does
    /// not arrive "in the past".
    fn latency_ns(&self) -> u64 {
        0
    }
    /// A short name for logs: `pnet` or `ring`.
    fn name(&self) -> &'static str;
}

/// Nanoseconds since the Unix epoch by the system clock (CLOCK_REALTIME).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The interface's index, or a clear error naming the interfaces there are.
pub fn interface_index(name: &str) -> Result<u32, String> {
    let found = pnet::datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name);
    match found {
        Some(i) => Ok(i.index),
        None => {
            let names: Vec<String> = pnet::datalink::interfaces()
                .into_iter()
                .map(|i| i.name)
                .collect();
            Err(format!(
                "capture.interface {name:?}: no such interface (this machine has: {})",
                names.join(", ")
            ))
        }
    }
}

/// An error opening a packet socket, explained.
pub fn open_error(iface: &str, e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => format!(
            "cannot capture on {iface}: {e}; botd needs root or CAP_NET_RAW to open the capture \
             (it drops to privileges.user afterwards)"
        ),
        _ => format!("cannot capture on {iface}: {e}"),
    }
}

/// A raw AF_PACKET socket that receives nothing until it is bound (protocol 0), so no frame
/// of another interface slips in before `bind`.
pub(crate) fn packet_socket() -> io::Result<RawFd> {
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// `setsockopt` of a plain value.
pub(crate) fn set_opt<T>(fd: RawFd, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of the size passed; the kernel only reads it.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// PACKET_STATISTICS (`struct tpacket_stats`, or `tpacket_stats_v3` for a V3 ring, whose first
/// two fields are the same): packets (drops included) and drops since the last call.
pub(crate) fn packet_stats(fd: RawFd) -> Option<(u64, u64, u64)> {
    let mut st = libc::tpacket_stats_v3 {
        tp_packets: 0,
        tp_drops: 0,
        tp_freeze_q_cnt: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
    // SAFETY: `st` is a writable `tpacket_stats_v3` and `len` its size; the kernel writes at
    // most `len` bytes and sets `len` to what it wrote.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut st as *mut libc::tpacket_stats_v3).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return None;
    }
    let freeze = if len as usize >= std::mem::size_of::<libc::tpacket_stats_v3>() {
        u64::from(st.tp_freeze_q_cnt)
    } else {
        0
    };
    Some((u64::from(st.tp_packets), u64::from(st.tp_drops), freeze))
}

/// Adds a PACKET_STATISTICS reading to running totals.
pub(crate) fn add_kernel_stats(stats: &mut CaptureStats, fd: RawFd, ring: bool) {
    if let Some((packets, drops, freeze)) = packet_stats(fd) {
        *stats.kernel_packets.get_or_insert(0) += packets;
        *stats.kernel_drops.get_or_insert(0) += drops;
        if ring {
            *stats.freeze_q.get_or_insert(0) += freeze;
        }
    }
}

/// pnet's datalink channel: one frame per `recvfrom`, no ring.
pub struct PnetCapture {
    rx: Box<dyn pnet::datalink::DataLinkReceiver>,
    /// The socket, owned by pnet (closed when `rx` is dropped); kept for PACKET_STATISTICS.
    fd: RawFd,
    snaplen: usize,
    stats: CaptureStats,
}

impl PnetCapture {
    pub fn open(cfg: &CaptureConfig) -> Result<PnetCapture, String> {
        let iface_name = cfg.interface.as_str();
        interface_index(iface_name)?;
        let iface = pnet::datalink::interfaces()
            .into_iter()
            .find(|i| i.name == iface_name)
            .ok_or_else(|| format!("capture.interface {iface_name:?}: no such interface"))?;
        // Our own socket (pnet binds it to ETH_P_ALL on the interface and takes ownership), so
        // that the kernel's drop counters can be read.
        let fd = packet_socket().map_err(|e| open_error(iface_name, &e))?;
        // A larger receive buffer absorbs bursts (root may exceed net.core.rmem_max).
        let rcvbuf: libc::c_int = 8 << 20;
        if set_opt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &rcvbuf).is_err() {
            let _ = set_opt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &rcvbuf);
        }
        let config = pnet::datalink::Config {
            read_timeout: Some(Duration::from_millis(cfg.read_timeout_ms.max(1))),
            // Room for the largest frame, whatever the snap length: a frame longer than the
            // buffer would be cut without notice and its wire length lost.
            read_buffer_size: MAX_FRAME + 4096,
            write_buffer_size: 64,
            promiscuous: cfg.promiscuous,
            socket_fd: Some(fd),
            ..pnet::datalink::Config::default()
        };
        let rx = match pnet::datalink::channel(&iface, config) {
            Ok(pnet::datalink::Channel::Ethernet(_tx, rx)) => rx,
            Ok(_) => {
                return Err(format!(
                    "cannot capture on {iface_name}: pnet returned an unknown channel type"
                ));
            }
            Err(e) => return Err(open_error(iface_name, &e)),
        };
        Ok(PnetCapture {
            rx,
            fd,
            snaplen: cfg.snaplen as usize,
            stats: CaptureStats::default(),
        })
    }
}

impl LiveCapture for PnetCapture {
    fn next(&mut self, f: &mut dyn FnMut(u64, &[u8], u32)) -> io::Result<usize> {
        match self.rx.next() {
            Ok(frame) => {
                let ts = now_ns();
                let wire = u32::try_from(frame.len()).unwrap_or(u32::MAX);
                let kept = frame.get(..self.snaplen).unwrap_or(frame);
                self.stats.frames += 1;
                f(ts, kept, wire);
                Ok(1)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(0)
            }
            Err(e) => {
                self.stats.errors += 1;
                Err(e)
            }
        }
    }

    fn stats(&mut self) -> CaptureStats {
        add_kernel_stats(&mut self.stats, self.fd, false);
        self.stats
    }

    fn name(&self) -> &'static str {
        "pnet"
    }
}
