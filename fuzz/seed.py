#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ from ../shared/data and the repository (stdlib only).

Only small inputs: libFuzzer runs fastest on small files, and tract's protobuf reader is slow on
large models. Existing corpus files are kept (seeding only adds).

app_payload: the payload segments of real flows (DNS over UDP and TCP, TLS, HTTP, DHCP, SMTP,
IRC, SSH, BitTorrent, stratum, ARP, neighbour discovery, ...), read from the captures of
../shared/data (classic pcap, pcapng, gzip) with a small decoder of its own, a few flows per
protocol and capture (about 5 s for the captures up to 8 MB). intel_feed: small feed files
written here.
Usage: python3 fuzz/seed.py  (from anywhere)
"""
import gzip
import hashlib
import os
import struct
import sys
import time
import zlib

FUZZ = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(FUZZ)
DATA = os.path.join(ROOT, "..", "shared", "data")
CORPUS = os.path.join(FUZZ, "corpus")


def put(target, blob):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(blob).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(blob)


def small_captures(limit=16 * 1024):
    out = []
    for dirpath, _, files in os.walk(DATA):
        for fn in sorted(files):
            if fn.endswith((".pcap", ".pcapng", ".cap", ".gz")):
                p = os.path.join(dirpath, fn)
                if os.path.getsize(p) <= limit:
                    out.append(p)
    return sorted(out)


def pcap_frames(blob, max_frames=64):
    """(linktype, frame) pairs of a classic pcap (either byte order, us or ns)."""
    if len(blob) < 24:
        return []
    magic = blob[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return []
    link = struct.unpack(e + "I", blob[20:24])[0] & 0x03FFFFFF
    off, out = 24, []
    while off + 16 <= len(blob) and len(out) < max_frames:
        _, _, caplen, _ = struct.unpack(e + "IIII", blob[off:off + 16])
        off += 16
        if caplen > 65535 or off + caplen > len(blob):
            break
        out.append((link, blob[off:off + caplen]))
        off += caplen
    return out


# Index in the frame_to_table target's link table.
LINK_SEL = {1: 0, 101: 1, 12: 1, 14: 1, 228: 2, 229: 3, 113: 4, 276: 5, 0: 6, 108: 7}


def frame_seed(frames, cfg0, cfg1):
    out = bytearray([cfg0, cfg1])
    for i, (link, fr) in enumerate(frames):
        fr = fr[:255]
        sel = LINK_SEL.get(link, 8)
        step = (i * 7) % 40  # 0..1.95 s apart
        out += bytes([sel, step, len(fr)]) + fr
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# app_payload: flows' payload segments from the captures.

# Input layout of the app_payload target: [proto index (+0x04: ports from its table)]
# [sport:2 BE] [dport:2 BE], then segments [dir (0 from the flow's source, 1 back)] [len:2 LE].
APP_PROTO_INDEX = {6: 0, 17: 1, 58: 2, 255: 3}
# The dispatcher reads INSPECT_SEGMENTS (src/flow/app.rs) payloads per direction, each cut to
# PAYLOAD_CAP bytes (src/proto/mod.rs).
APP_SEGMENTS = 8
PAYLOAD_CAP = 2048
APP_MAX_LEN = 8192  # run.sh's -max_len for the target
APP_PER_KIND = 24  # flows seeded per protocol kind, over all captures
APP_PER_FILE_KIND = 4  # ... and per capture
SCAN_MAX_BYTES = 8 * 1024 * 1024  # captures larger than this are not scanned
SCAN_MAX_FRAMES = 40000


def capture_records(blob):
    """(linktype, frame) of a classic pcap or a pcapng (any byte order, several interfaces)."""
    if blob[:2] == b"\x1f\x8b":
        try:
            blob = gzip.decompress(blob)
        except (OSError, EOFError, zlib.error):
            return
        if blob[:2] == b"\x1f\x8b":  # gzip inside gzip
            try:
                blob = gzip.decompress(blob)
            except (OSError, EOFError, zlib.error):
                return
    if len(blob) < 24:
        return
    if blob[:4] == b"\x0a\x0d\x0d\x0a":
        yield from pcapng_records(blob)
        return
    for link, frame in pcap_frames(blob, max_frames=SCAN_MAX_FRAMES):
        yield link, frame


def pcapng_records(blob):
    off, e, links, n = 0, "<", [], 0
    while off + 12 <= len(blob) and n < SCAN_MAX_FRAMES:
        btype = blob[off:off + 4]
        if btype == b"\x0a\x0d\x0d\x0a":
            bom = blob[off + 8:off + 12]
            e = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        (typ, blen) = struct.unpack(e + "II", blob[off:off + 8])
        if blen < 12 or off + blen > len(blob):
            return
        body = blob[off + 8:off + blen - 4]
        if typ == 1 and len(body) >= 2:  # interface description
            links.append(struct.unpack(e + "H", body[:2])[0])
        elif typ == 6 and len(body) >= 20:  # enhanced packet
            iface, _, _, caplen, _ = struct.unpack(e + "IIIII", body[:20])
            if iface < len(links):
                n += 1
                yield links[iface], body[20:20 + caplen]
        elif typ == 3 and len(body) >= 4 and links:  # simple packet
            n += 1
            yield links[0], body[4:]
        off += blen


def link_payload(link, fr):
    """(ethertype, network-layer bytes) of a frame, or None."""
    if link == 1:  # Ethernet, with VLAN tags
        if len(fr) < 14:
            return None
        et, off = struct.unpack(">H", fr[12:14])[0], 14
        while et in (0x8100, 0x88A8) and len(fr) >= off + 4:
            et, off = struct.unpack(">H", fr[off + 2:off + 4])[0], off + 4
        return et, fr[off:]
    if link in (101, 12, 14, 228, 229):  # raw IP
        if not fr:
            return None
        v = fr[0] >> 4
        return (0x0800 if v == 4 else 0x86DD if v == 6 else 0), fr
    if link == 113 and len(fr) >= 16:  # Linux cooked
        return struct.unpack(">H", fr[14:16])[0], fr[16:]
    if link == 276 and len(fr) >= 20:  # Linux cooked v2
        return struct.unpack(">H", fr[0:2])[0], fr[20:]
    if link in (0, 108) and len(fr) >= 4:  # BSD loopback
        fam = struct.unpack("<I", fr[:4])[0]
        if fam > 0xFFFF:
            fam = struct.unpack(">I", fr[:4])[0]
        return (0x0800 if fam == 2 else 0x86DD if fam in (10, 24, 28, 30) else 0), fr[4:]
    return None


def transport(link, fr):
    """(ip proto, src, dst, sport, dport, payload) as the app dispatcher is offered it."""
    lp = link_payload(link, fr)
    if lp is None:
        return None
    et, p = lp
    if et == 0x0806 and len(p) >= 28:  # ARP: the body, addresses from it
        return 255, p[14:18], p[24:28], 0, 0, p[:28]
    if et == 0x0800 and len(p) >= 20 and p[0] >> 4 == 4:
        ihl = (p[0] & 15) * 4
        total = struct.unpack(">H", p[2:4])[0]
        frag = struct.unpack(">H", p[6:8])[0]
        if frag & 0x1FFF or ihl < 20:
            return None  # later fragments carry no transport header
        proto, src, dst = p[9], p[12:16], p[16:20]
        body = p[ihl:total] if ihl <= total <= len(p) else p[ihl:]
    elif et == 0x86DD and len(p) >= 40 and p[0] >> 4 == 6:
        proto, src, dst = p[6], p[8:24], p[24:40]
        plen = struct.unpack(">H", p[4:6])[0]
        body = p[40:40 + plen] if plen else p[40:]
        # Hop-by-hop, routing, destination options.
        while proto in (0, 43, 60) and len(body) >= 8:
            proto, body = body[0], body[(body[1] + 1) * 8:]
    else:
        return None
    if proto == 6 and len(body) >= 20:
        sport, dport = struct.unpack(">HH", body[:4])
        return 6, src, dst, sport, dport, body[(body[12] >> 4) * 4:]
    if proto == 17 and len(body) >= 8:
        sport, dport = struct.unpack(">HH", body[:4])
        return 17, src, dst, sport, dport, body[8:]
    if proto == 58 and len(body) >= 4:
        return 58, src, dst, 0, 0, body
    return None


HTTP_METHODS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"CONNECT ",
                b"PATCH ", b"TRACE ")


def flow_kind(proto, sport, dport, first):
    """The protocol a flow's first payload suggests (for picking a few flows of each)."""
    ports = (sport, dport)
    if proto == 255:
        return "arp"
    if proto == 58:
        return "ndp" if first[:1] and 133 <= first[0] <= 136 else None
    if proto == 17:
        if sport in (67, 68) and dport in (67, 68):
            return "dhcp"
        if 53 in ports:
            return "dns"
        if 5353 in ports or 5355 in ports or 137 in ports:
            return "mdns-llmnr-nbns"
        if first.startswith(b"d1:"):
            return "krpc"
        return "udp-other"
    if first[:1] == b"\x16" and first[1:2] == b"\x03":
        return "tls"
    if first.startswith(HTTP_METHODS) or first.startswith(b"HTTP/1."):
        return "http"
    if first.startswith(b"SSH-"):
        return "ssh"
    if first[:1] == b"\x13" and first[1:20] == b"BitTorrent protocol":
        return "bittorrent"
    if first[:1] == b"{" and (b"mining." in first or b"login" in first):
        return "stratum"
    if 53 in ports:
        return "dns-tcp"
    if ports[0] in (25, 587, 465) or ports[1] in (25, 587, 465) or first.startswith(b"220"):
        return "smtp"
    if 6667 in ports or first.startswith((b"NICK ", b"USER ", b"PASS ", b":")):
        return "irc"
    if first[:1].isalpha():
        return "tcp-text"
    return None  # binary TCP: worth_inspecting drops most of it


def app_seed(proto, sport, dport, segments):
    out = bytearray([APP_PROTO_INDEX[proto]]) + struct.pack(">HH", sport, dport)
    for d, p in segments:
        p = p[:PAYLOAD_CAP]
        if len(out) + 3 + len(p) > APP_MAX_LEN:
            p = p[:max(0, APP_MAX_LEN - len(out) - 3)]
        if not p:
            break
        out += bytes([d]) + struct.pack("<H", len(p)) + p
    return bytes(out)


def scan_flows(blob, taken, budget):
    """Flows of one capture: {key: [proto, sport, dport, kind, [(dir, payload)], per-dir count]}."""
    flows = {}
    for link, fr in capture_records(blob):
        t = transport(link, fr)
        if t is None:
            continue
        proto, src, dst, sport, dport, payload = t
        if not payload:
            continue
        a, b = (src, sport), (dst, dport)
        key = (proto,) + ((a, b) if a <= b else (b, a))
        f = flows.get(key)
        if f is None:
            kind = flow_kind(proto, sport, dport, payload)
            if kind is None or taken.get(kind, 0) >= APP_PER_KIND:
                flows[key] = None
                continue
            if sum(1 for g in flows.values() if g and g[3] == kind) >= APP_PER_FILE_KIND:
                flows[key] = None
                continue
            f = flows[key] = [proto, sport, dport, kind, [], [0, 0], a]
        if f is None:
            continue
        d = 0 if a == f[6] else 1
        if f[5][d] < APP_SEGMENTS:
            f[5][d] += 1
            f[4].append((d, payload))
        if len(flows) > budget:
            break
    return [f for f in flows.values() if f]


def seed_app_payload():
    t0 = time.time()
    taken, n = {}, 0
    files = []
    for dirpath, _, names in os.walk(DATA):
        for fn in names:
            if fn.endswith((".pcap", ".pcapng", ".cap", ".gz")) and "pcapfix" not in dirpath:
                p = os.path.join(dirpath, fn)
                if os.path.getsize(p) <= SCAN_MAX_BYTES:
                    files.append(p)
    for p in sorted(files):
        with open(p, "rb") as f:
            blob = f.read()
        try:
            flows = scan_flows(blob, taken, budget=200000)
        except (struct.error, IndexError, ValueError):
            continue
        for proto, sport, dport, kind, segs, _, _ in flows:
            if taken.get(kind, 0) >= APP_PER_KIND:
                continue
            taken[kind] = taken.get(kind, 0) + 1
            put("app_payload", app_seed(proto, sport, dport, segs))
            n += 1
            # The first payload alone too, and the flow with the ports from the target's table
            # replaced by raw values (classification by content only).
            put("app_payload", app_seed(proto, sport, dport, segs[:1]))
            put("app_payload", app_seed(proto, 40000, 40001, segs))
    print(f"app_payload: {n} flows from {len(files)} captures in {time.time() - t0:.1f}s: "
          + ", ".join(f"{k} {v}" for k, v in sorted(taken.items())), file=sys.stderr)
    return n


def seed_app_payload_synthetic():
    """Hand-made payloads: edge cases the captures may lack."""
    dns_q = bytes.fromhex("18cd010000010000000000000377777706676f6f676c6503636f6d0000010001")
    # A response whose answer name is a compression pointer to itself.
    loop = bytes.fromhex("000181800001000100000000016100000100 01c00c000100010000003c000401020304".replace(" ", ""))
    seeds = [
        (17, 53, 53, [(0, dns_q), (1, loop)]),
        (6, 40000, 53, [(0, struct.pack(">H", len(dns_q)) + dns_q), (0, b"\x00")]),
        (6, 40000, 80, [(0, b"GET /a?b=c HTTP/1.1\r\nHost: ex"), (0, b"ample.com\r\nUser-Agent: x\r\n\r\n"),
                        (1, b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=x\r\n\r\n")]),
        (6, 40000, 25, [(1, b"220 mx ESMTP\r\n"), (0, b"EHLO a\r\nMAIL FROM:<a@b>\r\n")]),
        (6, 40000, 6667, [(0, b"NICK bot\r\nUSER a 0 * :b\r\nJOIN #c key\r\n")]),
        (6, 40000, 22, [(0, b"SSH-2.0-OpenSSH_9.6\r\n"), (1, b"SSH-2.0-dropbear\r\n")]),
        (6, 40000, 3333, [(0, b'{"id":1,"method":"mining.subscribe","params":["x"]}\n'),
                          (0, b'{"id":2,"method":"login","params":{"login":"w","agent":"xmrig"}}\n')]),
        (6, 40000, 6881, [(0, b"\x13BitTorrent protocol" + bytes(8) + bytes(range(40)))]),
        (17, 40000, 6881, [(0, b"d1:ad2:id20:" + bytes(20) + b"e1:q4:ping1:t2:aa1:y1:qe")]),
        (58, 0, 0, [(0, bytes([135, 0, 0, 0, 0, 0, 0, 0]) + bytes(16) + bytes([1, 1, 1, 2, 3, 4, 5, 6])),
                    (1, bytes([136, 0, 0, 0, 0xE0, 0, 0, 0]) + bytes(16) + bytes([2, 1, 1, 2, 3, 4, 5, 6]))]),
        (255, 0, 0, [(0, bytes.fromhex("0001080006040001") + bytes(6) + bytes([10, 0, 0, 1]) + bytes(6) + bytes([10, 0, 0, 2]))]),
    ]
    for proto, sp, dp, segs in seeds:
        put("app_payload", app_seed(proto, sp, dp, segs))
    # DHCP DISCOVER with hostname and vendor class, and one whose last option overruns.
    bootp = bytes([1, 1, 6, 0]) + bytes(4) + bytes(8) + bytes(16) + bytes(range(1, 7)) + bytes(10) + bytes(192)
    opts = b"\x63\x82\x53\x63" + b"\x35\x01\x01" + b"\x0c\x04host" + b"\x3c\x08MSFT 5.0" + b"\x32\x04\x0a\x00\x00\x05"
    put("app_payload", app_seed(17, 68, 67, [(0, bootp + opts + b"\xff"), (1, bootp + opts + b"\x06\x08\x01")]))


# ---------------------------------------------------------------------------------------------
# intel_feed: small feed files. First byte: feed name (low 3 bits: x.ip, x.domains, x.csv, x.ja3,
# feed), max_entries (bits 3-4: 1, 8, 64, 100000), 0x20 the same bytes as a second feed, 0x40
# max_feeds 1.

INTEL_FEEDS = [
    (0, b"# Spamhaus DROP style\n1.10.16.0/20 ; SBL256894\n2.56.192.0/22 ; SBL459831\n"
        b"192.0.2.1 # one host\n2001:db8::/32\n::ffff:198.51.100.0/120\n10.0.0.1/32\n"),
    (1, b"evil.example\n*.bad.example.org.\nxn--80ak6aa92e.com # punycode\nexample.co.uk\n"),
    (2, b"# first_seen_utc,dst_ip,dst_port,c2_status,last_online,malware\n"
        b"\"2021-01-17 07:44:46\",\"51.178.161.32\",\"4643\",\"online\",\"2023-01-01\",\"Dridex\"\n"
        b"\"2021-01-17 07:44:47\",\"2a01:4f8::1\",\"443\",\"offline\",\"\",\"Emotet\"\n"),
    (2, b"# Listingdate,SHA1,Listingreason\n2024-01-01 00:00:00,"
        b"0123456789abcdef0123456789abcdef01234567,Dridex C&C\n"
        b"2024-01-02 00:00:00,01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67,AsyncRAT C&C\n"),
    (2, b"id,dateadded,url,url_status,threat,tags\n1,2024-01-01,http://user@evil.example:8080/x.exe,online,"
        b"malware_download,\"elf,mirai\"\n2,2024-01-02,https://[2001:db8::5]/p,offline,,none\n"),
    (3, b"# ja3_md5,Firstseen,Lastseen,Listingreason\n"
        b"e7d705a3286e19ea42f587b344ee6865\nt13d1516h2_8daaf6152771_b186095e22b6\n"),
    (4, b"0.0.0.0 evil.example\n127.0.0.1 localhost\n::1 localhost ip6-loopback\n"
        b"0.0.0.0 ads.example.net tracker.example.com\n"),
    (4, b"\xef\xbb\xbf1.2.3.4\r\n5.6.7.0/24\r\n# comment\r\n;another\r\n"),
    (4, b"e7d705a3286e19ea42f587b344ee6865\n6734f37431670b3ab4292b8f60f29984 # Trickbot\n"),
    (4, b"ip,malware\n1.2.3.4,Mirai\n5.6.7.8:443,QakBot\n[2001:db8::9]:80,x\n"),
    (4, b"bad line\nevil.example\n\xff\xfe\n"),
    (4, b"# only comments\n\n"),
]


def seed_intel_feed():
    for sel, body in INTEL_FEEDS:
        # Enough entries; then one over the limit (1 entry), and twice under max_feeds 1 and 2.
        put("intel_feed", bytes([sel | 0x18]) + body)
        put("intel_feed", bytes([sel]) + body)
        put("intel_feed", bytes([sel | 0x18 | 0x20]) + body)
        put("intel_feed", bytes([sel | 0x18 | 0x20 | 0x40]) + body)


def main():
    caps = small_captures()
    n_pcap = 0
    for p in caps:
        with open(p, "rb") as f:
            blob = f.read()
        put("pcap_reader", blob)
        n_pcap += 1
        raw = blob
        if p.endswith(".gz"):
            try:
                raw = gzip.decompress(blob)
            except Exception:
                continue
        frames = pcap_frames(raw)
        if frames:
            # Unwindowed capacity 4; windowed capacity 2 with idle timeouts.
            put("frame_to_table", frame_seed(frames[:24], 0x03, 0x21))
            put("frame_to_table", frame_seed(frames[:24], 0x19, 0x12))
    # A gzip-wrapped pcap too, whatever the data set holds.
    for p in caps[:3]:
        if p.endswith((".pcap", ".pcapng")):
            with open(p, "rb") as f:
                put("pcap_reader", gzip.compress(f.read()))

    for p in [os.path.join(ROOT, "config", "botd.toml")]:
        with open(p, "rb") as f:
            put("config_toml", f.read())
    put("config_toml", b"[flows]\ncapacity = 1024\n")
    put("config_toml", b"[network]\nhome = [\"192.168.0.0/16\", \"fd00::/8\"]\n")
    put("config_toml", b"[alerts]\nsyslog = \"udp://127.0.0.1:514\"\n")

    for p in [
        os.path.join(ROOT, "tests", "data", "small-forest.onnx"),
        os.path.join(ROOT, "models", "argus-rf.onnx"),
        os.path.join(ROOT, "models", "ctu-rf.onnx"),
    ]:
        if os.path.exists(p):
            with open(p, "rb") as f:
                blob = f.read()
            # Large models would make every run slow: keep the head only (libFuzzer's max_len
            # would cut them anyway).
            put("model_onnx", blob[:16384])
    seed_app_payload_synthetic()
    seed_app_payload()
    seed_intel_feed()
    print(f"seeded: {n_pcap} captures; corpus in {CORPUS}", file=sys.stderr)


if __name__ == "__main__":
    main()
