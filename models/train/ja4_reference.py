"""JA4 of TLS ClientHellos by the reference implementation (the `ja4plus` package, pinned in
requirements.txt), for tests/protocol_parity.rs.

Reads lines `ID<TAB>LINKTYPE<TAB>HEX` on standard input, HEX being one captured frame and
LINKTYPE its pcap link type, and writes `ID<TAB>JA4` for each (`-` when the frame holds no whole
ClientHello), in input order. With `--raw`, a third column holds the unhashed JA4_r string, for
reading a mismatch.

ja4plus does all the work: scapy (its dependency) dissects the frame from its link layer up, and
a fresh `ja4plus.JA4Fingerprinter` takes the packet (`process_packet`), so each frame is
fingerprinted alone. A ClientHello cut by the end of its segment gives no JA4 then: the
fingerprinter would wait for the next segments, which are not handed to it, because botd does
not reassemble TCP either; the test counts such hellos separately.

Standard library and ja4plus only. Usage:
    models/train/.venv/bin/python models/train/ja4_reference.py [--raw] < frames.tsv
"""

from __future__ import annotations

import sys

from ja4plus import JA4Fingerprinter
from scapy.all import conf


def ja4_of_frame(linktype: int, frame: bytes) -> tuple[str | None, str | None]:
    """The JA4 and JA4_r of the whole ClientHello in one captured frame, or (None, None)."""
    layer = conf.l2types.num2layer.get(linktype)
    if layer is None:
        return None, None
    packet = layer(frame)
    fingerprinter = JA4Fingerprinter(thread_safe=False)
    ja4 = fingerprinter.process_packet(packet)
    if not ja4:
        return None, None
    return ja4, fingerprinter.last_raw


def main() -> int:
    raw = "--raw" in sys.argv[1:]
    out = []
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            continue
        ident, linktype, hexdata = (line.split("\t") + ["", ""])[:3]
        try:
            ja4, ja4_r = ja4_of_frame(int(linktype), bytes.fromhex(hexdata))
        except ValueError:
            ja4, ja4_r = None, None
        row = f"{ident}\t{ja4 or '-'}"
        if raw:
            row += f"\t{ja4_r or '-'}"
        out.append(row)
    sys.stdout.write("\n".join(out) + ("\n" if out else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
