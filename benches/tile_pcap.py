#!/usr/bin/env python3
"""Build a large benchmark capture by tiling one real capture into disjoint address ranges.

    python3 benches/tile_pcap.py OUT.pcap [--copies N] [--offset-us US] [--same-addresses]
                                 [--src /work/shared/data/debian-registry/pathspider/real.pcap]

The source (by default one hour of real, anonymised LAN traffic shipped in Debian's pathspider
package: 62,781 Ethernet packets, IPv4 and ARP) is read once into memory; N copies of it are then
merged in time order into one classic pcap (microsecond timestamps, link type of the source).

Copy k (0 <= k < N):

* timestamps: shifted by k * OFFSET microseconds (default 7 ms), so copies interleave packet by
  packet rather than running one after the other; the capture still spans about one hour.
* IPv4 addresses (IP source/destination and ARP sender/target protocol addresses): copy 0 keeps the
  original addresses. For copy k >= 1 each address a.b.c.d keeps its first octet a and its last
  octet d; its middle two octets (b.c) are replaced by a per-copy value: the distinct /24 prefixes
  a.b.c of the source, sorted, are numbered within their /8, and copy k's j-th prefix in /8 a becomes
  a.X.Y where X.Y is the ((k-1)*n_a + j)-th 16-bit value not used as b.c by any source prefix in
  that /8 (n_a = number of source /24s in /8 a). Per copy this is a bijection; across copies the
  ranges are disjoint, so no two copies share an address (checked at start-up). Private addresses
  stay private (10/8 stays in 10/8), multicast stays multicast (224/4 stays in 224/4); the limited
  broadcast 255.255.255.255 and 0.0.0.0 of copy k >= 1 become ordinary addresses in 255/8 and 0/8.
* MAC addresses (Ethernet source/destination and ARP sender/target hardware addresses): copy 0 keeps
  them; for copy k >= 1 every unicast MAC xx:xx:xx:ll:mm:nn becomes the locally administered
  02:KK:KK:ll:mm:nn (KK:KK = k, 16 bits); group (multicast/broadcast) MACs are kept.
* IP header and TCP/UDP checksums are NOT recomputed (the bytes that change are addresses, so the
  rewritten packets of copies k >= 1 carry stale checksums; flow meters like Argus and botd do not
  verify them). Frames whose IP/ARP header lies beyond the captured length keep their bytes.

The source holds 32 packets slightly out of time order; the merge keeps each copy's own order, so the
output holds the same small disorder, N times over. Deterministic: the same inputs give the same bytes.
"""

import argparse
import heapq
import os
import struct
import sys
import time

DEFAULT_SRC = "/work/shared/data/debian-registry/pathspider/real.pcap"


def read_pcap(path):
    """Return (endian, linktype, snaplen, [(ts_us, orig_len, data)]) of a classic pcap."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 24:
        sys.exit(f"{path}: too short for a pcap header")
    magic = buf[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        e, nano = "<", False
    elif magic == b"\xa1\xb2\xc3\xd4":
        e, nano = ">", False
    elif magic == b"\x4d\x3c\xb2\xa1":
        e, nano = "<", True
    elif magic == b"\xa1\xb2\x3c\x4d":
        e, nano = ">", True
    else:
        sys.exit(f"{path}: not a classic pcap (magic {magic.hex()}); convert pcapng with editcap -F pcap")
    _, _, _, _, snaplen, linktype = struct.unpack_from(e + "HHiIII", buf, 4)
    rec = struct.Struct(e + "IIII")
    pkts = []
    off, n = 24, len(buf)
    while off + 16 <= n:
        s, frac, caplen, origlen = rec.unpack_from(buf, off)
        off += 16
        if off + caplen > n:
            print(f"warning: {path}: truncated last record ignored", file=sys.stderr)
            break
        ts = s * 1_000_000 + (frac // 1000 if nano else frac)
        pkts.append((ts, origlen, buf[off:off + caplen]))
        off += caplen
    return e, linktype & 0xFFFF, snaplen, pkts


def l3_offset(data):
    """Offset of the L3 header and its ethertype in an Ethernet frame (skips 802.1Q/802.1ad tags)."""
    off = 12
    while off + 2 <= len(data):
        et = (data[off] << 8) | data[off + 1]
        if et in (0x8100, 0x88A8, 0x9100):
            off += 4
            continue
        return off + 2, et
    return None, None


def collect(pkts):
    """Distinct IPv4 addresses and MACs that the rewrite touches, and per-packet field offsets."""
    addrs, macs = set(), set()
    layout = []  # per packet: tuple of (start, kind) with kind 'm' (MAC, 6 B) or 'i' (IPv4, 4 B)
    for _, _, d in pkts:
        fields = []
        if len(d) >= 12:
            fields += [(0, "m"), (6, "m")]
        l3, et = l3_offset(d)
        if et == 0x0800 and len(d) >= l3 + 20 and (d[l3] >> 4) == 4:
            fields += [(l3 + 12, "i"), (l3 + 16, "i")]
        elif et == 0x0806 and len(d) >= l3 + 28 and d[l3 + 4] == 6 and d[l3 + 5] == 4:
            fields += [(l3 + 8, "m"), (l3 + 14, "i"), (l3 + 18, "m"), (l3 + 24, "i")]
        for start, kind in fields:
            if kind == "m":
                macs.add(d[start:start + 6])
            else:
                addrs.add(d[start:start + 4])
        layout.append(tuple(fields))
    return addrs, macs, layout


def build_ip_maps(addrs, copies):
    """Per copy, dict 4-byte address -> 4-byte address (see the module docstring)."""
    by_octet = {}
    for a in sorted(addrs):
        by_octet.setdefault(a[0], set()).add(a[1:3])
    maps = [{a: a for a in addrs}]
    # per /8: the source's b.c values (sorted) and a generator of unused 16-bit b.c values
    plan = {}
    for o, mids in by_octet.items():
        mids = sorted(mids)
        used = {int.from_bytes(m, "big") for m in mids}
        free = [v for v in range(65536) if v not in used]
        need = (copies - 1) * len(mids)
        if need > len(free):
            sys.exit(f"too many copies: /8 {o} would need {need} /24 prefixes")
        plan[o] = (mids, free)
    for k in range(1, copies):
        m = {}
        for a in addrs:
            mids, free = plan[a[0]]
            j = mids.index(a[1:3])
            v = free[(k - 1) * len(mids) + j]
            m[a] = bytes((a[0], v >> 8, v & 0xFF, a[3]))
        maps.append(m)
    # check: disjoint across copies, bijective within a copy
    seen = {}
    for k, m in enumerate(maps):
        if len(set(m.values())) != len(m):
            sys.exit(f"internal error: copy {k} address map is not injective")
        for v in m.values():
            if v in seen:
                sys.exit(f"internal error: address {'.'.join(map(str, v))} in copies {seen[v]} and {k}")
            seen[v] = k
    return maps


def build_mac_maps(macs, copies):
    maps = [{m: m for m in macs}]
    for k in range(1, copies):
        if k > 0xFFFF:
            sys.exit("too many copies for the MAC scheme (max 65536)")
        hi = bytes((0x02, k >> 8, k & 0xFF))
        maps.append({m: (m if m[0] & 1 else hi + m[3:]) for m in macs})
    seen = {}
    for k, mp in enumerate(maps):
        uni = [v for v in mp.values() if not v[0] & 1]
        if len(set(uni)) != len(uni) or any(v in seen for v in uni):
            sys.exit(f"MAC scheme collision in copy {k}: source MACs share their last 3 bytes")
        seen.update((v, k) for v in uni)
    return maps


def rewrite(d, fields, ipm, macm):
    parts = []
    pos = 0
    for start, kind in fields:
        parts.append(d[pos:start])
        if kind == "m":
            parts.append(macm[d[start:start + 6]])
            pos = start + 6
        else:
            parts.append(ipm[d[start:start + 4]])
            pos = start + 4
    parts.append(d[pos:])
    return b"".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output classic pcap")
    ap.add_argument("--copies", type=int, default=64, help="number of copies (default 64)")
    ap.add_argument("--src", default=DEFAULT_SRC, help="source classic pcap (Ethernet)")
    ap.add_argument("--offset-us", type=int, default=7000,
                    help="timestamp shift between consecutive copies in microseconds (default 7000)")
    ap.add_argument("--same-addresses", action="store_true",
                    help="every copy keeps the source's addresses (with a shift longer than the "
                         "source: the same LAN for longer)")
    args = ap.parse_args()
    if args.copies < 1:
        sys.exit("--copies must be >= 1")

    t0 = time.perf_counter()
    _, linktype, snaplen, pkts = read_pcap(args.src)
    if linktype != 1:
        sys.exit(f"{args.src}: link type {linktype}, only Ethernet (1) is supported")
    addrs, macs, layout = collect(pkts)
    if args.same_addresses:
        ipmaps = [{a: a for a in addrs}] * args.copies
        macmaps = [{m: m for m in macs}] * args.copies
    else:
        ipmaps = build_ip_maps(addrs, args.copies)
        macmaps = build_mac_maps(macs, args.copies)

    # Pre-build every copy's record header + frame lazily; merge by (ts, copy, index).
    n = len(pkts)
    tss = [p[0] for p in pkts]
    hdr = struct.Struct("<IIII")
    off_us = args.offset_us

    def keys(k):
        sh = k * off_us
        return ((t + sh, k, i) for i, t in enumerate(tss))

    tmp = args.out + ".tmp"
    count = 0
    with open(tmp, "wb", buffering=16 << 20) as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, max(snaplen, 65535), 1))
        w = f.write
        pack = hdr.pack
        for ts, k, i in heapq.merge(*(keys(k) for k in range(args.copies))):
            _, origlen, d = pkts[i]
            if k:
                d = rewrite(d, layout[i], ipmaps[k], macmaps[k])
            w(pack(ts // 1_000_000, ts % 1_000_000, len(d), origlen))
            w(d)
            count += 1
    os.replace(tmp, args.out)
    dt = time.perf_counter() - t0
    size = os.path.getsize(args.out)
    print(f"{args.out}: {count} packets ({args.copies} copies x {n}), {size} bytes "
          f"({size / 2**20:.1f} MiB), {len(addrs)} IPv4 addresses per copy, "
          f"{dt:.1f} s ({count / dt / 1e6:.2f} M packets/s)")


if __name__ == "__main__":
    main()
