#!/bin/sh
# Certificates for a botd fleet's syslog over TLS: one private CA (kept on the admin's machine),
# one server certificate for the central rsyslog, one client certificate per gateway. rsyslog
# (StreamDriverAuthMode="x509/name") checks each side's certificate against the CA, and the
# peer's DNS name (subjectAltName) against its list of permitted peers.
#
#   make-certs.sh DIR ca                          DIR/ca.pem, DIR/ca.key (keep the key offline)
#   make-certs.sh DIR server central.example.net  DIR/central.example.net.pem and .key
#   make-certs.sh DIR client gw1.example.net      DIR/gw1.example.net.pem and .key
#
# EC P-256 keys (GnuTLS and OpenSSL both take them), valid DAYS days (default 825).
set -eu
dir=$1
kind=$2
days=${DAYS:-825}
mkdir -p "$dir"
cd "$dir"
case $kind in
ca)
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout ca.key -out ca.pem -days "$days" -subj "/CN=botd fleet CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    ;;
server | client)
    name=$3
    # Servers prove themselves to clients and the reverse: the extended key usage says which.
    usage=serverAuth
    [ "$kind" = client ] && usage=clientAuth
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$name.key" -out "$name.csr" -subj "/CN=$name" 2>/dev/null
    printf 'subjectAltName=DNS:%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n' \
        "$name" "$usage" >"$name.ext"
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -out "$name.pem" -days "$days" -extfile "$name.ext" 2>/dev/null
    rm -f "$name.csr" "$name.ext"
    chmod 600 "$name.key"
    ;;
*)
    echo "usage: $0 DIR ca | DIR server NAME | DIR client NAME" >&2
    exit 2
    ;;
esac
