#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ from ../shared/data and the repository (stdlib only).

Only small inputs: libFuzzer runs fastest on small files, and tract's protobuf reader is slow on
large models. Existing corpus files are kept (seeding only adds).
Usage: python3 fuzz/seed.py  (from anywhere)
"""
import gzip
import hashlib
import os
import struct
import sys

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
    print(f"seeded: {n_pcap} captures; corpus in {CORPUS}", file=sys.stderr)


if __name__ == "__main__":
    main()
