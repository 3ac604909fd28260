#!/usr/bin/env python3
"""botd feature schemas, mirrored from src/features.rs (the reference; docs/features.md explains them).

* ``argus`` - the original detector's 36 Argus features, Dir and State as ordinal codes.
* ``ctu``   - what the 14 CTU-13 binetflow columns alone allow.
* ``proto`` - ``argus`` plus protocol evidence from the ``botd flows --app`` columns (App, AppName,
  DnsRcode, HttpUserAgent, PeerNamed).

Each schema has a stable hash: FNV-1a 64 over ``Schema.canonical()``, printed as 16 hex digits. A model
carries the hash it was trained with (ONNX metadata ``botd.schema_hash``) and botd refuses a model whose
hash differs from its own.

    python3 models/train/features.py --hashes    # prints "argus <hash>", "ctu <hash>", "proto <hash>"

Only the standard library and numpy are needed (numpy only for the vector helpers).
"""

from __future__ import annotations

import sys

# Dir column (trimmed) to ordinal code; anything else is -1.
DIR_CODES = ["->", "<-", "<->", "?>", "<?", "<?>", "who"]

# State column to ordinal code (the `argus` schema); anything else is -1.
STATE_CODES = [
    "CON", "INT", "REQ", "ACC", "FIN", "RST", "CLO", "RSP", "ECO", "ECR", "URP", "URH", "URN",
    "URO", "URF", "URFIL", "URNPRO", "URHPRO", "TXD", "RED", "SRC", "PAR", "TST", "TSR", "IRQ",
    "IRR", "MAS", "MSR", "RTA", "RTS", "NRA", "NRS", "NNS", "MHR", "PTB", "UNK",
]

# Coarse state classes of the `ctu` schema.
STATE_CLASSES = ["REQ", "ACC", "CON", "FIN", "RST", "INT", "ECO", "ECR", "ICMP", "OTHER"]

# Proto column to code (`ctu` schema); anything else is the last code.
PROTO_CODES = ["tcp", "udp", "icmp", "ipv6-icmp", "arp", "igmp", "other"]

ARGUS_FEATURES = [
    "sTtl", "dTtl", "SrcPkts", "DstPkts", "SrcBytes", "DstBytes", "SrcLoad", "DstLoad", "Dir",
    "SIntPkt", "DIntPkt", "SIntPktAct", "DIntPktAct", "SIntPktIdl", "DIntPktIdl", "SrcJitter",
    "DstJitter", "SrcJitAct", "DstJitAct", "State", "sMaxPktSz", "dMaxPktSz", "sMinPktSz",
    "dMinPktSz", "Dur", "Rate", "SrcRate", "DstRate", "RunTime", "Mean", "Sum", "Min", "Max", "Load",
    "pSrcLoss", "pDstLoss",
]

# App column to code (`proto` schema; empty is "-"); anything else is -1.
APP_CODES = ["-", "dns", "tls", "http", "smtp", "irc", "ssh", "mining", "dhcp", "bittorrent", "arp", "ndp"]

PROTO_EXTRA = ["App", "PeerNamed", "NoName", "NameIsAddr", "NoAgent", "DnsFail"]
PROTO_FEATURES = ARGUS_FEATURES + PROTO_EXTRA

CTU_FEATURES = [
    "Dur", "Proto", "Dir", "StateClass", "sTos", "dTos", "TotPkts", "TotBytes", "SrcBytes",
    "DstBytes", "SrcBytesRatio", "BytesPerPkt", "PktRate", "BitRate",
]

# The first 14 columns of a CTU-13 binetflow and of `botd flows` CSV.
CTU_COLUMNS = [
    "StartTime", "Dur", "Proto", "SrcAddr", "Sport", "Dir", "DstAddr", "Dport", "State", "sTos",
    "dTos", "TotPkts", "TotBytes", "SrcBytes",
]


def _code_of(table, value):
    try:
        return float(table.index(value))
    except ValueError:
        return -1.0


def dir_code(d: str) -> float:
    return _code_of(DIR_CODES, d.strip())


def state_code(state: str) -> float:
    return _code_of(STATE_CODES, state)


def app_code(app: str) -> float:
    return _code_of(APP_CODES, app or "-")


def _is_ip(text: str) -> bool:
    import ipaddress

    # Rust's IpAddr parser knows no IPv6 zone (`%eth0`); Python's does.
    if "%" in text:
        return False
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def name_is_addr(name: str) -> bool:
    """Mirror of features::name_is_addr: `1.2.3.4`, `1.2.3.4:8080`, `::1`, `[::1]:8080`."""
    if _is_ip(name):
        return True
    if ":" not in name:
        return False
    host, port = name.rsplit(":", 1)
    if not port or not all("0" <= c <= "9" for c in port):
        return False
    if host.startswith("[") and host.endswith("]") and len(host) >= 2:
        host = host[1:-1]
    return _is_ip(host)


def proto_code(proto_name: str) -> float:
    try:
        return float(PROTO_CODES.index(proto_name))
    except ValueError:
        return float(len(PROTO_CODES) - 1)


def state_class(state: str) -> str:
    """The `ctu` state class of a State value: an Argus state name or a CTU-13 flag string."""
    if "_" in state:
        # TCP flag strings: letters seen from the source, then from the destination.
        src, dst = state.split("_", 1)

        def any_(c):
            return c in src or c in dst

        if any_("R"):
            return "RST"
        if any_("F"):
            return "FIN"
        if "S" in dst:
            return "CON" if "A" in src else "ACC"
        if "S" in src:
            if "A" in src or "P" in src or dst != "":
                return "CON"
            return "REQ"
        return "CON"
    if state in ("REQ", "ACC", "CON", "FIN", "RST", "INT", "ECO", "ECR"):
        return state
    if state == "CLO":
        return "FIN"
    # Every ICMP / ICMPv6 state name (URP ... PTB); UNK stays OTHER.
    if state != "UNK" and state in STATE_CODES[10:]:
        return "ICMP"
    return "OTHER"


def state_class_code(state: str) -> float:
    return _code_of(STATE_CLASSES, state_class(state))


class Schema:
    def __init__(self, name: str, version: int, features):
        self.name = name
        self.version = version
        self.features = list(features)

    def canonical(self) -> str:
        """The canonical text the hash is taken over (byte-identical to Schema::canonical in Rust)."""
        if self.name == "argus":
            codes = "Dir:%s\nState:%s" % (",".join(DIR_CODES), ",".join(STATE_CODES))
        elif self.name == "proto":
            codes = "Dir:%s\nState:%s\nApp:%s" % (",".join(DIR_CODES), ",".join(STATE_CODES), ",".join(APP_CODES))
        else:
            codes = "Dir:%s\nStateClass:%s\nProto:%s" % (
                ",".join(DIR_CODES), ",".join(STATE_CLASSES), ",".join(PROTO_CODES))
        return "botd-schema\n%s\n%d\n%s\n%s\n" % (self.name, self.version, ",".join(self.features), codes)

    def hash(self) -> str:
        """FNV-1a 64 of canonical(), as 16 lowercase hex digits."""
        h = 0xCBF29CE484222325
        for b in self.canonical().encode("utf-8"):
            h ^= b
            h = (h * 0x00000100000001B3) & 0xFFFFFFFFFFFFFFFF
        return "%016x" % h

    def __len__(self):
        return len(self.features)

    def extract(self, row: dict) -> list:
        """Feature values (Python floats; cast to float32 when stacking) from a CSV row as a dict."""
        if self.name == "argus":
            return argus_from_row(row)
        if self.name == "proto":
            return argus_from_row(row) + proto_from_row(row)
        return ctu_from_row(row)


ARGUS = Schema("argus", 1, ARGUS_FEATURES)
CTU = Schema("ctu", 1, CTU_FEATURES)
PROTO = Schema("proto", 1, PROTO_FEATURES)
SCHEMAS = {"argus": ARGUS, "ctu": CTU, "proto": PROTO}


# ---------------------------------------------------------------------------------------------------
# Row parsing


def num(text, empty=0.0) -> float:
    """A numeric column: decimal, or hex (0x...); empty (or unparsable) gives `empty`."""
    if text is None:
        return empty
    t = text.strip()
    if t == "":
        return empty
    try:
        return float(t)
    except ValueError:
        try:
            return float(int(t, 16)) if t.lower().startswith("0x") else empty
        except ValueError:
            return empty


def ctu_from_columns(dur, proto, dir_, state, s_tos, d_tos, tot_pkts, tot_bytes, src_bytes) -> list:
    """Mirror of features::ctu_from_columns."""
    dst_bytes = tot_bytes - src_bytes

    def ratio(a, b):
        return a / b if b > 0.0 else 0.0

    return [
        dur,
        proto_code(proto),
        dir_code(dir_),
        state_class_code(state),
        s_tos,
        d_tos,
        tot_pkts,
        tot_bytes,
        src_bytes,
        dst_bytes,
        ratio(src_bytes, tot_bytes),
        ratio(tot_bytes, tot_pkts),
        ratio(tot_pkts, dur),
        ratio(tot_bytes * 8.0, dur),
    ]


def ctu_from_row(row: dict) -> list:
    """`ctu` features from a CTU-13 binetflow row or a `botd flows` CSV row (same first 14 columns).

    Empty sTos/dTos (no packet in that direction) give -1, like botd's in-engine extraction.
    """
    return ctu_from_columns(
        num(row.get("Dur")),
        (row.get("Proto") or "").strip(),
        row.get("Dir") or "",
        (row.get("State") or "").strip(),
        num(row.get("sTos"), -1.0),
        num(row.get("dTos"), -1.0),
        num(row.get("TotPkts")),
        num(row.get("TotBytes")),
        num(row.get("SrcBytes")),
    )


def argus_from_row(row: dict) -> list:
    """`argus` features from a `botd flows` CSV row (every column is in its header)."""
    out = []
    for name in ARGUS_FEATURES:
        if name == "Dir":
            out.append(dir_code(row.get("Dir") or ""))
        elif name == "State":
            out.append(state_code((row.get("State") or "").strip()))
        else:
            out.append(num(row.get(name)))
    return out


def proto_from_row(row: dict) -> list:
    """The `proto` features after the `argus` ones (mirror of features::proto_from_columns) from a
    `botd flows --app` CSV row. A row without the --app columns raises KeyError: the trainer must not
    read it as "no protocol"."""
    app = (row["App"] or "").strip()
    name = row["AppName"] or ""
    rcode = (row["DnsRcode"] or "").strip()
    agent = row["HttpUserAgent"] or ""
    named = app in ("tls", "http")
    flag = lambda b: 1.0 if b else 0.0  # noqa: E731
    return [
        app_code(app),
        flag((row["PeerNamed"] or "").strip() == "1"),
        flag(named and name == ""),
        flag(named and name_is_addr(name)),
        flag(app == "http" and agent == ""),
        flag(app == "dns" and rcode != "" and rcode != "0"),
    ]


def matrix(schema: Schema, rows):
    """float32 matrix (n, len(schema)) from an iterable of row dicts."""
    import numpy as np

    data = [schema.extract(r) for r in rows]
    if not data:
        return np.zeros((0, len(schema)), dtype=np.float32)
    return np.asarray(data, dtype=np.float64).astype(np.float32)


def _main(argv):
    if "--hashes" in argv:
        for s in (ARGUS, CTU, PROTO):
            print(s.name, s.hash())
        return 0
    if "--canonical" in argv:
        for s in (ARGUS, CTU, PROTO):
            sys.stdout.write(s.canonical())
        return 0
    if len(argv) == 3 and argv[0] == "--rows" and argv[1] in SCHEMAS:
        # The rows the trainer computes from a `botd flows` CSV, one line each (the parity test
        # compares them with `botd features`).
        import csv

        schema = SCHEMAS[argv[1]]
        with open(argv[2], newline="") as f:
            for row in csv.DictReader(f):
                print(",".join(repr(v) for v in schema.extract(row)))
        return 0
    print("usage: features.py --hashes | --canonical | --rows SCHEMA FLOWS.csv", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
