"""Community ID v1 of flow tuples by the reference implementation (the `communityid` package,
pinned in requirements.txt), for tests/community_id.rs.

Reads lines `PROTO<TAB>SADDR<TAB>DADDR<TAB>SPORT<TAB>DPORT` on standard input (PROTO the IP
protocol number; for ICMP and ICMPv6 the ports are the message type and code; `-` for both ports
of a protocol hashed without them) and writes, for each, its Community ID with seed 0 and with
seed 1, tab-separated, in input order.

Standard library and communityid only. Usage:
    models/train/.venv/bin/python models/train/community_id_reference.py < tuples.tsv
"""

from __future__ import annotations

import sys

import communityid


def main() -> None:
    seeds = [communityid.CommunityID(seed=0), communityid.CommunityID(seed=1)]
    out = []
    for line in sys.stdin:
        proto, saddr, daddr, sport, dport = line.rstrip("\n").split("\t")
        if sport == "-":
            tpl = communityid.FlowTuple(int(proto), saddr, daddr)
        else:
            tpl = communityid.FlowTuple(int(proto), saddr, daddr, int(sport), int(dport))
        out.append("\t".join(s.calc(tpl) or "error: " + str(s.get_error()) for s in seeds))
    sys.stdout.write("\n".join(out) + ("\n" if out else ""))


if __name__ == "__main__":
    main()
