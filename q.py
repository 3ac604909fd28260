import socket, struct, sys
def q(name, server, qtype=1):
    s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    hdr=struct.pack(">HHHHHH",0x1234,0x0100,1,0,0,0)
    qn=b"".join(bytes([len(l)])+l.encode() for l in name.split("."))+b"\0"
    s.sendto(hdr+qn+struct.pack(">HH",qtype,1),(server,53))
    d=s.recv(512); print(name, "rcode", d[3]&15, "an", struct.unpack(">H",d[6:8])[0])
for n in sys.argv[2:]: q(n, sys.argv[1])
