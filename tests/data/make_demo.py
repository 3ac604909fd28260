#!/usr/bin/env python3
"""Synthesise tests/data/demo.pcap: ~32 minutes of a small home LAN with one infected IoT camera.

    python3 tests/data/make_demo.py [OUT.pcap]

Standard library only, deterministic (random.Random(42), no clock, no environment): every run writes
the same bytes. See tests/data/README.md for the hosts and what each does. Nothing here is a real
capture; every packet is built field by field (Ethernet II, IPv4, TCP, UDP, ICMP, ARP, DNS, mDNS,
NTP, SSDP, TLS record framing, HTTP, telnet) with correct lengths and checksums.
"""

import os
import random
import struct
import sys

R = random.Random(42)
T0 = 1710439331.0  # 2024-03-14 18:02:11 UTC
DURATION = 1920.0  # 32 minutes
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo.pcap")

PKTS = []  # (ts_us, order, frame)


def emit(t, frame):
    if 0.0 <= t < DURATION:
        if len(frame) < 60:  # captured on a switch mirror port: frames arrive padded to the minimum
            frame += bytes(60 - len(frame))
        PKTS.append((int(round((T0 + t) * 1e6)), len(PKTS), frame))


def ip2b(s):
    return bytes(int(x) for x in s.split("."))


def mac2b(s):
    return bytes.fromhex(s.replace(":", ""))


def csum(data):
    if len(data) & 1:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def eth(dst, src, etype, payload):
    return dst + src + struct.pack("!H", etype) + payload


def ipv4(src, dst, proto, payload, ttl, ident, df=True, tos=0):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(payload), ident & 0xFFFF,
                      0x4000 if df else 0, ttl, proto, 0, src, dst)
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def l4sum(src, dst, proto, seg):
    return csum(src + dst + struct.pack("!BBH", 0, proto, len(seg)) + seg)


def udp(src, dst, sport, dport, data):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    c = l4sum(src, dst, 17, seg) or 0xFFFF
    return seg[:6] + struct.pack("!H", c) + seg[8:]


FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16


def tcp(src, dst, sport, dport, seq, ack, flags, win, opts=b"", data=b""):
    assert len(opts) % 4 == 0
    off = (20 + len(opts)) // 4
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, off << 4, flags,
                      win, 0, 0) + opts + data
    c = l4sum(src, dst, 6, seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def icmp_echo(typ, ident, seq, data):
    m = struct.pack("!BBHHH", typ, 0, 0, ident, seq) + data
    return m[:2] + struct.pack("!H", csum(m)) + m[4:]


# --------------------------------------------------------------------------------------- hosts

class Host:
    def __init__(self, name, ip, mac, ttl=64, eph=(32768, 60999), win=(64240, 7, 502)):
        self.name, self.ip, self.mac, self.ttl = name, ip2b(ip), mac2b(mac), ttl
        self.ipid = R.getrandbits(16)
        self.eph = eph
        self.port = R.randint(*eph)
        self.tsbase = R.getrandbits(32)
        self.syn_win, self.ws, self.win = win
        self.dns_cache = {}

    def next_id(self):
        self.ipid = (self.ipid + R.choice((1, 1, 1, 2, 3))) & 0xFFFF
        return self.ipid

    def eport(self):
        self.port += R.randint(1, 9)
        if self.port > self.eph[1]:
            self.port = self.eph[0] + (self.port - self.eph[1])
        return self.port

    def tsval(self, t):
        return (self.tsbase + int(t * 1000)) & 0xFFFFFFFF


GW = Host("gateway", "192.168.1.1", "50:c7:bf:3a:91:0e")
LAPTOP = Host("laptop", "192.168.1.23", "3c:22:fb:7d:14:a2", eph=(49152, 65535), win=(65535, 6, 2048))
PHONE = Host("phone", "192.168.1.42", "8c:f5:a3:61:0b:5d", eph=(37000, 60999), win=(65535, 9, 342))
TV = Host("tv", "192.168.1.50", "a8:23:fe:c4:77:19", win=(29200, 7, 229))
PRINTER = Host("printer", "192.168.1.30", "3c:d9:2b:58:e0:c7", ttl=64)
CAMERA = Host("camera", "192.168.1.66", "c0:56:e3:2f:8a:41", win=(5840, 2, 1460))
LAN = [LAPTOP, PHONE, TV, PRINTER, CAMERA]
BCAST = b"\xff" * 6


def is_lan(ipb):
    return ipb[:3] == b"\xc0\xa8\x01"


def lan_host(ipb):
    for h in LAN + [GW]:
        if h.ip == ipb:
            return h
    return None


def frame_ip(t, src_mac, dst_mac, ip_payload):
    emit(t, eth(dst_mac, src_mac, 0x0800, ip_payload))


def send_udp(t, h, dst_ip, sport, dport, data, df=False, ttl=None):
    """LAN host h -> dst (gateway MAC if off-LAN)."""
    dst = ip2b(dst_ip) if isinstance(dst_ip, str) else dst_ip
    peer = lan_host(dst)
    dmac = peer.mac if peer else GW.mac
    frame_ip(t, h.mac, dmac, ipv4(h.ip, dst, 17, udp(h.ip, dst, sport, dport, data), ttl or h.ttl,
                                 h.next_id(), df=df))


def recv_udp(t, src_ip, h, sport, dport, data, ttl, ident=None, df=False):
    """remote (or LAN host) -> LAN host h."""
    src = ip2b(src_ip) if isinstance(src_ip, str) else src_ip
    peer = lan_host(src)
    smac = peer.mac if peer else GW.mac
    if ident is None:
        ident = peer.next_id() if peer else R.getrandbits(16)
    frame_ip(t, smac, h.mac, ipv4(src, h.ip, 17, udp(src, h.ip, sport, dport, data), ttl, ident, df=df))


# --------------------------------------------------------------------------------------- ARP

def arp(t, asker, target, reply_delay=None):
    """who-has target tell asker, then the reply (asker/target are Hosts)."""
    who = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, asker.mac, asker.ip, bytes(6), target.ip)
    emit(t, eth(BCAST, asker.mac, 0x0806, who))
    t2 = t + (reply_delay if reply_delay is not None else R.uniform(0.0002, 0.004))
    rep = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, target.mac, target.ip, asker.mac, asker.ip)
    emit(t2, eth(asker.mac, target.mac, 0x0806, rep))


# --------------------------------------------------------------------------------------- DNS

def dns_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        lb = label.encode()
        out += bytes((len(lb),)) + lb
    return out + b"\0"


QTYPE = {"A": 1, "PTR": 12, "TXT": 16, "AAAA": 28, "SRV": 33, "CNAME": 5, "HTTPS": 65}


def dns_msg(ident, flags, questions, answers=(), additionals=()):
    """questions: [(name, qtype, qclass)], answers: [(name, type, class, ttl, rdata)] (names uncompressed,
    except that a name equal to the first question's name is written as a pointer to offset 12)."""
    first = questions[0][0] if questions else None
    body = b""
    for name, qt, qc in questions:
        body += dns_name(name) + struct.pack("!HH", qt, qc)
    for name, rt, rc, ttl, rdata in list(answers) + list(additionals):
        owner = b"\xc0\x0c" if (name == first) else dns_name(name)
        body += owner + struct.pack("!HHIH", rt, rc, ttl, len(rdata)) + rdata
    return struct.pack("!HHHHHH", ident, flags, len(questions), len(answers), 0, len(additionals)) + body


# Catalogue of external names: name -> (cname or None, [addresses], ttl)
DNS = {
    "www.wikipedia.org": ("dyna.wikimedia.org", ["185.15.59.224"], 600),
    "upload.wikimedia.org": (None, ["185.15.59.240"], 600),
    "github.com": (None, ["140.82.121.4"], 60),
    "avatars.githubusercontent.com": (None, ["185.199.108.133", "185.199.109.133"], 3600),
    "github.githubassets.com": (None, ["185.199.110.154", "185.199.111.154"], 3600),
    "news.ycombinator.com": (None, ["209.216.230.207"], 300),
    "docs.python.org": ("dualstack.python.map.fastly.net", ["151.101.36.223"], 30),
    "www.bbc.co.uk": ("www.bbc.co.uk.pri.bbc.co.uk", ["151.101.0.81"], 300),
    "static.files.bbci.co.uk": ("bbc.map.fastly.net", ["151.101.64.81"], 300),
    "www.google.com": (None, ["142.250.185.100"], 300),
    "fonts.gstatic.com": (None, ["142.250.185.67"], 300),
    "duckduckgo.com": (None, ["52.142.124.215"], 200),
    "crates.io": (None, ["18.154.227.67"], 60),
    "static.crates.io": ("d19xqa3lc3clo8.cloudfront.net", ["18.154.227.114"], 60),
    "courier.push.apple.com": ("courier.push.apple.com.edgekey.net", ["17.57.146.20"], 60),
    "time.apple.com": (None, ["17.253.14.251"], 3600),
    "mtalk.google.com": (None, ["142.250.102.188"], 300),
    "www.googleapis.com": (None, ["142.250.186.74"], 300),
    "android.clients.google.com": (None, ["142.250.186.46"], 300),
    "i.instagram.com": ("instagram.c10r.instagram.com", ["157.240.223.63"], 60),
    "scontent.cdninstagram.com": (None, ["157.240.223.174"], 60),
    "time.android.com": (None, ["216.239.35.4"], 600),
    "snu.lge.com": ("snu-elb-1530126470.eu-central-1.elb.amazonaws.com", ["52.58.144.17"], 60),
    "api.netflix.com": ("api-global.netflix.com", ["54.155.178.5"], 60),
    "ipv4-c012-fra002-ix.1.oca.nflxvideo.net": (None, ["45.57.90.140"], 300),
    "0.pool.ntp.org": (None, ["162.159.200.1"], 130),
    "p2p.camcloud.example": (None, ["203.0.113.10"], 300),
}
# hosts that ask for AAAA too (get an empty NOERROR answer: the ISP gives this home no IPv6)
AAAA_ASKERS = {LAPTOP, PHONE}


def resolve(t, h, name):
    """h looks name up at the gateway unless cached; returns (time when answer arrived, address)."""
    cname, addrs, ttl = DNS[name]
    cached = h.dns_cache.get(name)
    if cached and cached > t:
        return t, R.choice(addrs)
    qtypes = ["A", "AAAA"] if h in AAAA_ASKERS else ["A"]
    tend = t
    for i, qt in enumerate(qtypes):
        tq = t + i * R.uniform(0.00005, 0.0004)
        ident = R.getrandbits(16)
        sport = h.eport()
        q = dns_msg(ident, 0x0100, [(name, QTYPE[qt], 1)])
        send_udp(tq, h, GW.ip, sport, 53, q)
        # cache miss at the gateway's dnsmasq: a forwarded lookup takes 8-40 ms
        ta = tq + (R.uniform(0.008, 0.040) if i == 0 else R.uniform(0.0005, 0.03))
        ans = []
        if qt == "A":
            owner = name
            if cname:
                ans.append((name, 5, 1, ttl, dns_name(cname)))
                owner = cname
            for a in addrs:
                ans.append((owner, 1, 1, ttl, ip2b(a)))
        elif cname:
            ans.append((name, 5, 1, ttl, dns_name(cname)))
        r = dns_msg(ident, 0x8180, [(name, QTYPE[qt], 1)], ans)
        recv_udp(ta, GW.ip, h, 53, sport, r, 64)
        tend = max(tend, ta)
    h.dns_cache[name] = t + ttl
    return tend + R.uniform(0.0003, 0.002), R.choice(addrs)


# --------------------------------------------------------------------------------------- TCP

def ts_opt(val, ecr):
    return b"\x01\x01\x08\x0a" + struct.pack("!II", val & 0xFFFFFFFF, ecr & 0xFFFFFFFF)


class Conn:
    """One TCP connection seen on the LAN side: client is a LAN host, server is remote (via GW) or LAN."""

    def __init__(self, h, rip, dport, rtt, rttl, sport=None, srv_win=(65535, 8, 1026), ts=True,
                 srv_isn=None):
        self.h, self.rip, self.dport = h, ip2b(rip), dport
        self.sport = sport or h.eport()
        peer = lan_host(self.rip)
        self.rmac = peer.mac if peer else GW.mac
        self.rtt, self.rttl = rtt, rttl
        self.cseq = R.getrandbits(32)
        self.sseq = R.getrandbits(32) if srv_isn is None else srv_isn
        self.srv_syn_win, self.srv_ws, self.srv_win = srv_win
        self.ts = ts
        self.sts = R.getrandbits(32)
        self.sid = R.getrandbits(16)
        self.last_c = h.tsval(0)
        self.last_s = self.sts
        self.mss = 1448 if ts else 1460

    def stsval(self, t):
        return (self.sts + int(t * 1000)) & 0xFFFFFFFF

    def c(self, t, flags, data=b"", opts=None, win=None, seq=None, ack=None):
        h = self.h
        if opts is None:
            opts = ts_opt(h.tsval(t), self.last_s) if self.ts else b""
        if self.ts:
            self.last_c = h.tsval(t)
        seg = tcp(h.ip, self.rip, self.sport, self.dport, self.cseq if seq is None else seq,
                  self.sseq if ack is None else ack, flags, h.win if win is None else win, opts, data)
        frame_ip(t, h.mac, self.rmac, ipv4(h.ip, self.rip, 6, seg, h.ttl, h.next_id()))
        if seq is None:
            self.cseq += len(data) + (1 if flags & (SYN | FIN) else 0)

    def s(self, t, flags, data=b"", opts=None, win=None, seq=None, ack=None):
        if opts is None:
            opts = ts_opt(self.stsval(t), self.last_c) if self.ts else b""
        if self.ts:
            self.last_s = self.stsval(t)
        seg = tcp(self.rip, self.h.ip, self.dport, self.sport, self.sseq if seq is None else seq,
                  self.cseq if ack is None else ack, flags, self.srv_win if win is None else win, opts, data)
        self.sid = (self.sid + 1) & 0xFFFF
        frame_ip(t, self.rmac, self.h.mac, ipv4(self.rip, self.h.ip, 6, seg, self.rttl, self.sid))
        if seq is None:
            self.sseq += len(data) + (1 if flags & (SYN | FIN) else 0)

    def j(self, scale=1.0):
        return self.rtt * scale * R.uniform(0.92, 1.15)

    def open(self, t):
        h = self.h
        if self.ts:
            o = (struct.pack("!BBH", 2, 4, 1460) + b"\x04\x02" + b"\x08\x0a" +
                 struct.pack("!II", h.tsval(t), 0) + b"\x01" + struct.pack("!BBB", 3, 3, h.ws))
        else:
            o = struct.pack("!BBH", 2, 4, 1460) + b"\x01\x03\x03" + bytes((h.ws,)) + b"\x01\x01\x04\x02"
        self.c(t, SYN, opts=o, win=h.syn_win)
        t += self.j()
        if self.ts:
            o = (struct.pack("!BBH", 2, 4, 1460) + b"\x04\x02" + b"\x08\x0a" +
                 struct.pack("!II", self.stsval(t), self.last_c) + b"\x01" + struct.pack("!BBB", 3, 3, self.srv_ws))
        else:
            o = struct.pack("!BBH", 2, 4, 1460) + b"\x01\x03\x03" + bytes((self.srv_ws,)) + b"\x01\x01\x04\x02"
        self.s(t, SYN | ACK, opts=o, win=self.srv_syn_win)
        t += R.uniform(0.0001, 0.0006)
        self.c(t, ACK)
        return t + R.uniform(0.00005, 0.0003)

    def upload(self, t, data):
        """client -> server; server ACKs (delayed) after one RTT. Returns time of last server ACK."""
        return self._xfer(t, data, up=True)

    def download(self, t, data, rate=None):
        """server -> client, with slow start; client ACKs every second segment. Returns time of last ACK."""
        return self._xfer(t, data, up=False, rate=rate)

    def _xfer(self, t, data, up, rate=None):
        mss = self.mss
        segs = [data[i:i + mss] for i in range(0, len(data), mss)]
        gap = mss * 8 / (rate or R.choice((40e6, 60e6, 90e6)))
        cwnd = 10
        i = 0
        last = t
        while i < len(segs):
            flight = segs[i:i + cwnd]
            tt = t
            acks = []
            for k, sg in enumerate(flight):
                flags = ACK | (PSH if i + k == len(segs) - 1 else 0)
                (self.c if up else self.s)(tt, flags, sg)
                if k % 2 == 1 or k == len(flight) - 1:
                    acks.append((tt, self.cseq if up else self.sseq))
                last = tt
                tt += gap * R.uniform(0.9, 1.3)
            first_ack = None
            rtt = self.j()
            for ta, upto in acks:
                if up:
                    at = ta + rtt
                    self.s(at, ACK, ack=upto)
                else:
                    at = ta + R.uniform(0.00003, 0.0004)
                    self.c(at, ACK, ack=upto)
                first_ack = first_ack or at
                last = max(last, at)
            i += len(flight)
            cwnd = min(cwnd * 2, 80)
            t = (first_ack + (R.uniform(0.0001, 0.0005) if up else self.j())) if i < len(segs) else last
        return last

    def exchange(self, t, req, resp, think=0.0, rate=None):
        """request (client) then response (server) after one RTT (+think); returns time after response."""
        t_req_end = t
        if len(req) <= self.mss:
            self.c(t, ACK | PSH, req)
        else:
            t_req_end = self.upload(t, req)
        t2 = max(t, t_req_end) + self.j() + think
        if len(resp) <= self.mss:
            self.s(t2, ACK | PSH, resp)
            t3 = t2 + R.uniform(0.00003, 0.0004)
            if R.random() < 0.6:
                self.c(t3, ACK)
            return t3
        return self.download(t2, resp, rate)

    def close(self, t, client_first=True):
        if client_first:
            self.c(t, FIN | ACK)
            t += self.j()
            self.s(t, FIN | ACK)
            t += R.uniform(0.00005, 0.0004)
            self.c(t, ACK)
        else:
            self.s(t, FIN | ACK)
            t += R.uniform(0.00005, 0.0004)
            self.c(t, ACK)
            t += R.uniform(0.0005, 0.02)
            self.c(t, FIN | ACK)
            t += self.j()
            self.s(t, ACK)
        return t


# --------------------------------------------------------------------------------------- TLS

def tls_record(ctype, body, version=0x0303):
    return struct.pack("!BHH", ctype, version, len(body)) + body


def ext(typ, body):
    return struct.pack("!HH", typ, len(body)) + body


def client_hello(sni):
    sn = sni.encode()
    exts = (ext(0, struct.pack("!HBH", len(sn) + 3, 0, len(sn)) + sn) +
            ext(23, b"") + ext(65281, b"\x00") +
            ext(10, struct.pack("!H", 8) + struct.pack("!HHHH", 0x001D, 0x0017, 0x0018, 0x0019)) +
            ext(11, b"\x01\x00") +
            ext(16, struct.pack("!H", 12) + b"\x02h2" + b"\x08http/1.1") +
            ext(13, struct.pack("!H", 16) + struct.pack("!8H", 0x0403, 0x0804, 0x0401, 0x0503, 0x0805,
                                                          0x0501, 0x0806, 0x0601)) +
            ext(51, struct.pack("!HHH", 36, 0x001D, 32) + R.randbytes(32)) +
            ext(45, b"\x01\x01") +
            ext(43, b"\x04\x03\x04\x03\x03"))
    pad = 512 - 4 - (2 + 32 + 1 + 32 + 2 + 16 + 2 + 2 + len(exts)) - 4
    if pad > 0:
        exts += ext(21, bytes(pad))
    suites = struct.pack("!8H", 0x1301, 0x1303, 0x1302, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0x00FF)
    body = (b"\x03\x03" + R.randbytes(32) + b"\x20" + R.randbytes(32) + struct.pack("!H", len(suites)) +
            suites + b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return tls_record(22, hs, 0x0301)


def server_flight(enc_len):
    exts = ext(43, b"\x03\x04") + ext(51, struct.pack("!HH", 0x001D, 32) + R.randbytes(32))
    body = (b"\x03\x03" + R.randbytes(32) + b"\x20" + R.randbytes(32) + b"\x13\x01" + b"\x00" +
            struct.pack("!H", len(exts)) + exts)
    sh = tls_record(22, b"\x02" + len(body).to_bytes(3, "big") + body)
    return sh + tls_record(20, b"\x01") + app_data(enc_len)


def app_data(n):
    """n bytes of TLS 1.3 application-data records (each <= 16384 + 17 bytes of ciphertext)."""
    out = b""
    while n > 0:
        k = min(n, 16401)
        out += tls_record(23, R.randbytes(k))
        n -= k
    return out


def client_finished():
    return tls_record(20, b"\x01") + app_data(53)


def https(t, h, name, fetches, rtt, rttl, think=(0.01, 0.08), linger=None, srv_win=None, rate=None,
          port=443):
    """A TLS 1.3 session: handshake, then fetches = [(request bytes, response bytes, gap before)].
    Returns time of the last packet."""
    t, addr = resolve(t, h, name)
    c = Conn(h, addr, port, rtt, rttl, srv_win=srv_win or R.choice(((65535, 9, 501), (28960, 7, 1026),
                                                                     (65160, 7, 509))))
    t = c.open(t)
    c.c(t, ACK | PSH, client_hello(name))
    t = t + c.j() + R.uniform(0.001, 0.006)
    t = c.download(t, server_flight(R.randint(2400, 4200)), rate)
    t += R.uniform(0.001, 0.004)
    c.c(t, ACK | PSH, client_finished())
    for req, resp, gap in fetches:
        t += gap
        t = c.exchange(t + R.uniform(0.0002, 0.002), app_data(req), app_data(resp),
                       think=R.uniform(*think), rate=rate)
    t += linger if linger is not None else R.uniform(3.0, 60.0)
    # the server closes an idle connection with a TLS alert-less FIN (HTTP/2 GOAWAY included before)
    if R.random() < 0.5:
        c.s(t - 0.0001, ACK | PSH, app_data(26))
        c.c(t + R.uniform(0.00003, 0.0004), ACK)
        t += R.uniform(0.001, 0.01)
        return c.close(t, client_first=False)
    c.c(t, ACK | PSH, app_data(24))  # HTTP/2 GOAWAY from the client; the server's FIN/ACK acks it
    return c.close(t + R.uniform(0.0005, 0.003), client_first=True)


# --------------------------------------------------------------------------------------- NTP

NTP_EPOCH = 2208988800


def ntp_ts(t):
    x = T0 + t + NTP_EPOCH
    sec = int(x)
    return struct.pack("!II", sec & 0xFFFFFFFF, int((x - sec) * 2**32) & 0xFFFFFFFF)


def ntp(t, h, server, sport=123, rttl=56, rtt=0.02):
    t, addr = resolve(t, h, server)
    tx = ntp_ts(t)
    req = struct.pack("!BBbb", 0x23, 0, 0, 0x20) + bytes(8) + bytes(4) + bytes(24) + tx
    send_udp(t, h, addr, sport, 123, req)
    ta = t + rtt * R.uniform(0.95, 1.1)
    refid = b"\x11\xfd\x0e\xfb" if server.startswith("time.apple") else b"GOOG" if "android" in server else ip2b("10.10.8.4")
    resp = (struct.pack("!BBbb", 0x24, 2 if refid != b"GOOG" else 1, 3, -23) + struct.pack("!II", 0x12, 0x2A) +
            refid + ntp_ts(t - R.uniform(20, 900)) + tx + ntp_ts(t + rtt / 2) + ntp_ts(t + rtt / 2 + 0.00002))
    recv_udp(ta, addr, h, 123, sport, resp, rttl)


# --------------------------------------------------------------------------------------- mDNS / SSDP

MDNS_IP, MDNS_MAC = ip2b("224.0.0.251"), mac2b("01:00:5e:00:00:fb")
SSDP_IP, SSDP_MAC = ip2b("239.255.255.250"), mac2b("01:00:5e:7f:ff:fa")


def mdns(t, h, msg):
    frame_ip(t, h.mac, MDNS_MAC, ipv4(h.ip, MDNS_IP, 17, udp(h.ip, MDNS_IP, 5353, 5353, msg), 255, h.next_id(),
                                      df=True))


def txt(*items):
    return b"".join(bytes((len(s),)) + s.encode() for s in items)


PRN = "HP OfficeJet Pro 8020 [58E0C7]"
PRN_HOST = "HP3CD92B58E0C7.local"


def printer_records():
    inst = PRN + "._ipp._tcp.local"
    return [
        ("_ipp._tcp.local", 12, 1, 4500, dns_name(inst)),
        (inst, 33, 0x8001, 120, struct.pack("!HHH", 0, 0, 631) + dns_name(PRN_HOST)),
        (inst, 16, 0x8001, 4500, txt("txtvers=1", "qtotal=1", "rp=ipp/print", "ty=HP OfficeJet Pro 8020 series",
                                     "pdl=application/pdf,image/urf,image/jpeg", "Color=T", "Duplex=T",
                                     "UUID=1c852a4d-b800-1f08-abcd-3cd92b58e0c7", "URF=CP1,MT1-2-8-9-10-11,RS600")),
        (PRN_HOST, 1, 0x8001, 120, PRINTER.ip),
    ]


def printer_announce(t):
    recs = printer_records()
    mdns(t, PRINTER, dns_msg(0, 0x8400, [], recs))


def mdns_query(t, h, service):
    mdns(t, h, dns_msg(0, 0x0000, [(service, 12, 1)]))


def ssdp_notify(t):
    for nt in ("upnp:rootdevice", "urn:dial-multiscreen-org:service:dial:1"):
        msg = ("NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\n"
               "LOCATION: http://192.168.1.50:1880/\r\nNT: %s\r\nNTS: ssdp:alive\r\n"
               "SERVER: WebOS/6.0 UPnP/1.0 webOSTV/1.0\r\nUSN: uuid:4f1b6e2a-73a1-4d86-bd1e-a823fec47719::%s\r\n\r\n"
               % (nt, nt)).encode()
        frame_ip(t, TV.mac, SSDP_MAC, ipv4(TV.ip, SSDP_IP, 17, udp(TV.ip, SSDP_IP, 1900, 1900, msg), 4, TV.next_id()))
        t += R.uniform(0.0005, 0.003)


def ssdp_search(t, h):
    sport = h.eport()
    msg = (b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\n"
           b"ST: urn:dial-multiscreen-org:service:dial:1\r\nUSER-AGENT: Google Chrome/122.0 Linux\r\n\r\n")
    frame_ip(t, h.mac, SSDP_MAC, ipv4(h.ip, SSDP_IP, 17, udp(h.ip, SSDP_IP, sport, 1900, msg), 1, h.next_id()))
    resp = (b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\nLOCATION: http://192.168.1.50:1880/\r\n"
            b"SERVER: WebOS/6.0 UPnP/1.0 webOSTV/1.0\r\nST: urn:dial-multiscreen-org:service:dial:1\r\n"
            b"USN: uuid:4f1b6e2a-73a1-4d86-bd1e-a823fec47719::urn:dial-multiscreen-org:service:dial:1\r\n\r\n")
    recv_udp(t + R.uniform(0.05, 0.4), TV.ip, h, 1900, sport, resp, 64)


# --------------------------------------------------------------------------------------- ICMP

def ping(t, h, dst, count, rtt, rttl):
    dst_b = ip2b(dst)
    ident = R.getrandbits(16)
    peer = lan_host(dst_b)
    rmac = peer.mac if peer else GW.mac
    for seq in range(count):
        data = ntp_ts(t)[:4] + struct.pack("!I", int((t % 1) * 1e6)) + bytes(range(0x10, 0x38))
        frame_ip(t, h.mac, rmac, ipv4(h.ip, dst_b, 1, icmp_echo(8, ident, seq, data), h.ttl, h.next_id(), df=False))
        tr = t + rtt * R.uniform(0.9, 1.25)
        rid = peer.next_id() if peer else R.getrandbits(16)
        frame_ip(tr, rmac, h.mac, ipv4(dst_b, h.ip, 1, icmp_echo(0, ident, seq, data), rttl, rid, df=False))
        t += R.uniform(0.999, 1.003)


# ======================================================================================= scenario

def at(t):
    """A scheduled start time, off the round second."""
    return t + R.uniform(0.0, 0.999)


LAPTOP_MDNS_QUERY = [at(2.1)]


def laptop():
    h = LAPTOP
    mdns_query(LAPTOP_MDNS_QUERY[0], h, "_ipp._tcp.local")
    ntp(at(3.4), h, "time.apple.com", sport=123, rttl=57, rtt=0.011)
    ping(at(5.0), h, "192.168.1.1", 4, 0.0006, 64)
    ping(at(9.2), h, "1.1.1.1", 4, 0.0125, 57)
    # Apple push: one long-lived TLS connection, a small keep-alive every ~15 min
    sites = [
        ("www.wikipedia.org", 0.031, 55, [("upload.wikimedia.org", 0.031, 55, 4)]),
        ("github.com", 0.038, 51, [("avatars.githubusercontent.com", 0.012, 58, 5),
                                   ("github.githubassets.com", 0.012, 58, 6)]),
        ("news.ycombinator.com", 0.145, 48, []),
        ("docs.python.org", 0.012, 58, [("fonts.gstatic.com", 0.011, 118, 2)]),
        ("www.bbc.co.uk", 0.013, 58, [("static.files.bbci.co.uk", 0.013, 58, 6)]),
        ("www.google.com", 0.011, 118, [("fonts.gstatic.com", 0.011, 118, 1)]),
        ("duckduckgo.com", 0.024, 109, []),
        ("crates.io", 0.016, 243, [("static.crates.io", 0.016, 243, 3)]),
    ]
    t = 40.0
    sessions = [(40, 420), (760, 1080), (1390, 1880)]
    for start, end in sessions:
        t = start + R.uniform(0, 20)
        while t < end:
            name, rtt, ttl, subs = R.choice(sites)
            n_main = R.randint(1, 4)
            fetches = [(R.randint(90, 700), R.randint(1500, 11000), R.uniform(0, 0.3) if i else 0.0)
                       for i in range(n_main)]
            t_end = https(t, h, name, fetches, rtt, ttl, linger=R.uniform(4, 50))
            tt = t + R.uniform(0.15, 0.5)
            for sub, srtt, sttl, nobj in subs:
                f = [(R.randint(80, 400), R.randint(800, 6000), R.uniform(0, 0.05)) for _ in range(R.randint(1, nobj))]
                https(tt, h, sub, f, srtt, sttl, linger=R.uniform(2, 40))
                tt += R.uniform(0.01, 0.1)
            # reading time before the next click: a burst every 20 s - 3 min
            t += R.expovariate(1 / 70.0) + 15
    # push keep-alives on a connection opened before the capture started (no handshake seen)
    c = Conn(h, "17.57.146.20", 5223, 0.021, 55, srv_win=(65535, 8, 255))
    t = R.uniform(100, 300)
    while t < DURATION:
        c.exchange(t, app_data(R.choice((31, 31, 63))), app_data(31))
        t += R.uniform(880, 920)


def phone():
    h = PHONE
    ntp(at(15.3), h, "time.android.com", sport=h.eport(), rttl=118, rtt=0.014)
    # FCM on mtalk.google.com:5228, connected before the capture: heartbeats every ~4-5 min
    c = Conn(h, "142.250.102.188", 5228, 0.012, 118, srv_win=(65535, 8, 1050))
    t = R.uniform(30, 200)
    while t < DURATION:
        c.exchange(t, app_data(R.choice((2, 2, 40))), app_data(R.choice((2, 2, 2, 180))))
        t += R.uniform(240, 300)
    # background sync every 6-10 min
    t = at(80.0)
    while t < DURATION:
        https(t, h, R.choice(("www.googleapis.com", "android.clients.google.com")),
              [(R.randint(300, 900), R.randint(600, 6000), 0.0)], 0.012, 118, linger=R.uniform(1, 10))
        t += R.uniform(360, 600)
    # a few minutes of scrolling Instagram
    t = at(1150.0)
    https(t, h, "i.instagram.com", [(R.randint(200, 600), R.randint(2000, 9000), R.uniform(0.2, 2))
                                    for _ in range(8)], 0.018, 54, linger=20)
    tt = t + 0.6
    for _ in range(3):
        https(tt, h, "scontent.cdninstagram.com", [(R.randint(200, 400), R.randint(6000, 20000), R.uniform(0.5, 8))
                                                   for _ in range(3)], 0.018, 54, linger=R.uniform(5, 30))
        tt += R.uniform(20, 60)
    mdns_query(t + 0.21, h, "_googlecast._tcp.local")
    ssdp_search(t + 0.37, h)


def tv():
    h = TV
    ntp(at(20.0), h, "0.pool.ntp.org", sport=h.eport(), rttl=57, rtt=0.009)
    t = at(7.0)
    while t < DURATION:
        ssdp_notify(t)
        t += R.uniform(170, 190)
    # LG update check every ~15 min
    t = at(300.0)
    while t < DURATION:
        https(t, h, "snu.lge.com", [(R.randint(400, 700), R.randint(500, 1500), 0.0)], 0.028, 233, linger=1.0)
        t += R.uniform(870, 930)
    # watching a short clip: API calls, then 8 video segments over ~45 s (sizes scaled down so that the
    # demo file stays small: real video segments are 10-100 times larger)
    t = at(930.0)
    https(t, h, "api.netflix.com", [(R.randint(600, 1400), R.randint(2000, 12000), R.uniform(0.1, 1))
                                     for _ in range(4)], 0.034, 237, linger=15)
    segs = [(R.randint(300, 420), R.randint(18000, 30000), 6.0 + R.uniform(-0.3, 0.3)) for _ in range(8)]
    segs[0] = (segs[0][0], segs[0][1], 0.0)
    https(t + 2.5, h, "ipv4-c012-fra002-ix.1.oca.nflxvideo.net", segs, 0.009, 58, linger=60, rate=25e6)


def printer():
    t = at(0.8)
    for dt in (0.0, 1.0, 3.0):  # re-announcing after waking from sleep (RFC 6762: 1 s, then doubling)
        printer_announce(t + dt)
    # answers the laptop's and anyone's _ipp query
    for tq in (LAPTOP_MDNS_QUERY[0],):
        recs = printer_records()
        mdns(tq + R.uniform(0.02, 0.12), PRINTER, dns_msg(0, 0x8400, [], recs[:1], recs[1:]))
    t = at(600.0)
    while t < DURATION:
        printer_announce(t)
        t += R.uniform(580, 620)


def housekeeping():
    """ARP refreshes between the gateway and every host."""
    for h in LAN:
        t = R.uniform(0.5, 60)
        while t < DURATION:
            if R.random() < 0.5:
                arp(t, h, GW)
            else:
                arp(t, GW, h)
            t += R.uniform(240, 600)
    arp(at(4.9), LAPTOP, GW)


def random_public():
    while True:
        a = R.getrandbits(32)
        o = a >> 24
        if o in (0, 10, 100, 127) or o >= 224 or (a >> 20) == 0xAC1 or (a >> 16) == 0xC0A8 or (a >> 16) == 0xA9FE:
            continue
        if (a >> 8) in (0xC00002, 0xC63364, 0xCB0071):  # documentation ranges
            continue
        return ".".join(str((a >> s) & 255) for s in (24, 16, 8, 0))


REGISTERED_UDP = {5436}


def camera():
    h = CAMERA
    ntp(at(12.0), h, "0.pool.ntp.org", sport=123, rttl=57, rtt=0.009)
    ntp(at(1012.0), h, "0.pool.ntp.org", sport=123, rttl=57, rtt=0.009)
    # the vendor cloud keep-alive (benign behaviour of the camera): every ~5 min
    t = at(25.0)
    while t < DURATION:
        https(t, h, "p2p.camcloud.example", [(R.choice((112, 112, 144)), R.choice((80, 80, 96)), 0.0)], 0.041, 49,
              linger=0.5, srv_win=(29200, 7, 229))
        t += R.uniform(295, 305)

    # --- Hide'N Seek-like behaviour ---
    # 1. C2 beacon: HTTP POST to 185.141.27.93:8080 every ~45 s, same sizes every time
    c2 = "185.141.27.93"
    bot_id = "a7f3c90e15d2"
    t = at(17.3)
    n = 0
    while t < DURATION:
        c = Conn(h, c2, 8080, 0.062, 47, ts=False, srv_win=(29200, 7, 229))
        t1 = c.open(t)
        body = ("id=%s&v=0.9.4&a=mips&s=%04d" % (bot_id, 1)).encode()
        req = (b"POST /gate HTTP/1.1\r\nHost: 185.141.27.93:8080\r\nUser-Agent: Hello/1.0\r\n"
               b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " + str(len(body)).encode() +
               b"\r\nConnection: close\r\n\r\n" + body)
        resp = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\n" + b"00000000"
        c.c(t1, ACK | PSH, req)
        t2 = t1 + c.j() + R.uniform(0.002, 0.006)
        c.s(t2, ACK | PSH, resp)
        t3 = t2 + R.uniform(0.00003, 0.0003)
        c.c(t3, ACK)
        c.s(t3 + R.uniform(0.00005, 0.0002), FIN | ACK)
        t4 = t3 + R.uniform(0.0005, 0.002)
        c.c(t4, FIN | ACK)
        c.s(t4 + c.j(), ACK)
        n += 1
        t += 45.0 + R.uniform(-4.0, 4.0)

    # 2. telnet scanning: bursts of SYNs to random public addresses on 23 / 2323
    creds = [("root", "xc3511"), ("admin", "admin"), ("root", "vizxv"), ("support", "support"),
             ("root", "888888"), ("default", "")]
    t = at(33.0)
    while t < DURATION:
        burst = R.randint(25, 60)
        for _ in range(burst):
            dst = random_public()
            dport = 23 if R.random() < 0.8 else 2323
            c = Conn(h, dst, dport, R.uniform(0.03, 0.25), R.randint(38, 56), ts=False, srv_win=(5840, 0, 5840))
            # raw-socket SYN: no options, Mirai-style sequence number = destination address
            seq0 = int.from_bytes(c.rip, "big")
            c.cseq = seq0
            c.c(t, SYN, opts=b"", win=R.choice((14600, 29200, 5840)))
            u = R.random()
            if u < 0.09:  # closed port: RST/ACK
                c.s(t + c.j(), RST | ACK, opts=b"", win=0, seq=0)
            elif u < 0.11 and dport in (23, 2323):  # open telnet: try one credential then give up
                c.srv_win = 5840
                ts = t + c.j()
                c.s(ts, SYN | ACK, opts=struct.pack("!BBH", 2, 4, 1460), win=5840)
                t1 = ts + R.uniform(0.0001, 0.0005)
                c.c(t1, ACK, opts=b"", win=5840)
                neg = bytes((255, 253, 1, 255, 253, 31, 255, 251, 1, 255, 251, 3))
                t2 = t1 + c.j() + 0.01
                c.s(t2, ACK | PSH, neg, opts=b"")
                t2b = t2 + R.uniform(0.0003, 0.002)
                c.c(t2b, ACK | PSH, bytes((255, 252, 1, 255, 252, 31, 255, 254, 1, 255, 254, 3)), opts=b"", win=5840)
                t3 = t2b + c.j() + 0.02
                c.s(t3, ACK | PSH, b"\r\nlogin: ", opts=b"")
                user, pw = R.choice(creds)
                t4 = t3 + R.uniform(0.05, 0.3)
                c.c(t4, ACK | PSH, user.encode() + b"\r\n", opts=b"", win=5840)
                t5 = t4 + c.j()
                c.s(t5, ACK | PSH, user.encode() + b"\r\nPassword: ", opts=b"")
                t6 = t5 + R.uniform(0.05, 0.3)
                c.c(t6, ACK | PSH, pw.encode() + b"\r\n", opts=b"", win=5840)
                t7 = t6 + c.j() + R.uniform(1.0, 2.5)
                c.s(t7, ACK | PSH, b"\r\nLogin incorrect\r\nlogin: ", opts=b"")
                c.c(t7 + R.uniform(0.01, 0.05), RST | ACK, opts=b"", win=0)
            t += R.expovariate(1 / 0.06)
        t += R.uniform(25, 70)

    # 3. UDP P2P chatter with a large peer list on random ports
    my_port = R.randint(10000, 60000)
    peers = [(random_public(), R.randint(1025, 65535), R.random() < 0.45, R.randint(40, 54)) for _ in range(150)]
    # keep clear of ports that Wireshark dissects as a registered protocol (so the P2P shows as plain data)
    peers = [(ip, port + 1 if port in REGISTERED_UDP else port, alive, ttl) for ip, port, alive, ttl in peers]
    t = at(9.0)
    while t < DURATION:
        ip, port, alive, ttl = R.choice(peers)
        kind = R.choice(b"iiimh")
        payload = bytes((kind,)) + R.randbytes(R.choice((4, 4, 8, 12)))
        send_udp(t, h, ip, my_port, port, payload)
        if alive:
            rk = kind - 32  # upper-case: answer
            rep = bytes((rk,)) + (R.randbytes(6 * R.randint(1, 4)) if kind == ord("i") else R.randbytes(4))
            recv_udp(t + R.uniform(0.04, 0.3), ip, h, port, my_port, rep, ttl)
        t += R.uniform(0.8, 4.0)


def main():
    housekeeping()
    printer()
    laptop()
    phone()
    tv()
    camera()
    PKTS.sort()
    with open(OUT + ".tmp", "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ts, _, fr in PKTS:
            f.write(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(fr), len(fr)))
            f.write(fr)
    os.replace(OUT + ".tmp", OUT)
    span = (PKTS[-1][0] - PKTS[0][0]) / 1e6
    print("%s: %d packets, %d bytes, %.1f s" % (OUT, len(PKTS), os.path.getsize(OUT), span))


if __name__ == "__main__":
    main()
