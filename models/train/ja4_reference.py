"""JA4 of TLS ClientHellos by the reference implementation (the `ja4plus` package, pinned in
requirements.txt), for tests/protocol_parity.rs.

Reads lines `ID<TAB>HEX` on standard input, HEX being the payload of one TCP segment, and writes
`ID<TAB>JA4` for each (`-` when the segment holds no whole ClientHello), in input order. With
`--raw`, a third column holds the unhashed JA4_r string, for reading a mismatch.

Each segment goes through what `ja4plus.JA4Fingerprinter.process_packet` does for a TCP packet
whose hello fits in it: `ja4plus.utils.tls_utils.parse_tls_handshake` on the segment's bytes (it
walks the records to the first hello, and refuses one the segment cuts), then
`ja4plus.generate_ja4`. The fingerprinter's other path, which collects a hello over several
segments, is left out on purpose: botd does not reassemble TCP, so the test compares the hellos
one segment holds whole and counts the others separately.

Standard library and ja4plus only. Usage:
    models/train/.venv/bin/python models/train/ja4_reference.py [--raw] < segments.tsv
"""

from __future__ import annotations

import sys

from ja4plus import generate_ja4
from ja4plus.fingerprinters.ja4 import get_raw_fingerprint
from ja4plus.utils.tls_utils import parse_tls_handshake


def ja4_of_segment(payload: bytes) -> tuple[str | None, str | None]:
    """The JA4 and JA4_r of the first whole ClientHello in one TCP segment, or (None, None)."""
    info = parse_tls_handshake(payload)
    if not info or info.get("type") != "client_hello":
        return None, None
    return generate_ja4(info), get_raw_fingerprint(info)


def main() -> int:
    raw = "--raw" in sys.argv[1:]
    out = []
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            continue
        ident, _, hexdata = line.partition("\t")
        try:
            payload = bytes.fromhex(hexdata)
        except ValueError:
            out.append(f"{ident}\t-")
            continue
        ja4, ja4_r = ja4_of_segment(payload)
        row = f"{ident}\t{ja4 or '-'}"
        if raw:
            row += f"\t{ja4_r or '-'}"
        out.append(row)
    sys.stdout.write("\n".join(out) + ("\n" if out else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
