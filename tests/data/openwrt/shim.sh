# The OpenWrt shell API that /etc/init.d/botd's TOML generation calls, for tests under Debian's
# `busybox sh` (OpenWrt's /bin/sh is busybox ash). Written for these tests, not OpenWrt's code:
# OpenWrt's /lib/functions.sh needs its `uci` binary and /lib/functions/network.sh asks netifd
# over ubus, neither of which exists here. Same semantics for what the init script uses:
#   config_load PKG         reads $UCI_CONFIG_DIR/PKG, a UCI file (`config TYPE NAME`,
#                           `option NAME 'VALUE'`, `list NAME 'VALUE'`), by running it through the
#                           config/option/list callbacks, as `uci export` output is on a router
#   config_get VAR SECTION OPTION [DEFAULT]    the value, or DEFAULT when unset or empty
#   config_get_bool VAR SECTION OPTION [DEFAULT]   1/yes/on/true/enabled -> 1, 0/no/off/false/disabled -> 0
#   config_list_foreach SECTION OPTION FUNC    FUNC VALUE for every list item, in order
#   network_get_device VAR IFACE, network_get_subnets VAR IFACE, network_get_subnets6 VAR IFACE
#                           from $NETIFD_STATE, lines "IFACE device|subnets|subnets6 VALUE...":
#                           what netifd reports for an interface that is up (addresses with their
#                           prefix length, as `ifstatus` shows them)
# shellcheck shell=dash disable=SC2034

config() {
	local type="$1" name="$2"
	CONFIG_NUM_SECTIONS=$((CONFIG_NUM_SECTIONS + 1))
	# Anonymous sections are named cfgXXXXXX after their position, as in uci.
	[ -n "$name" ] || name=$(printf 'cfg%02x%04x' "$CONFIG_NUM_SECTIONS" 0)
	CONFIG_SECTION="$name"
	eval "CONFIG_${name}_TYPE=\"\$type\""
}

option() {
	eval "CONFIG_${CONFIG_SECTION}_$1=\"\$2\""
}

list() {
	local len
	eval "len=\${CONFIG_${CONFIG_SECTION}_$1_LENGTH:-0}"
	len=$((len + 1))
	eval "CONFIG_${CONFIG_SECTION}_$1_ITEM$len=\"\$2\""
	eval "CONFIG_${CONFIG_SECTION}_$1_LENGTH=$len"
}

package() { :; }

config_load() {
	CONFIG_NUM_SECTIONS=0
	CONFIG_SECTION=
	# shellcheck source=/dev/null
	. "$UCI_CONFIG_DIR/$1"
}

config_get() {
	eval "$1=\${CONFIG_$2_$3:-\$4}"
}

config_get_bool() {
	local _v
	config_get _v "$2" "$3" "$4"
	case "$_v" in
	1 | on | true | yes | enabled) _v=1 ;;
	0 | off | false | no | disabled) _v=0 ;;
	*) _v="$4" ;;
	esac
	eval "$1=\$_v"
}

config_list_foreach() {
	local section="$1" name="$2" fn="$3" len i v
	eval "len=\${CONFIG_${section}_${name}_LENGTH:-0}"
	i=1
	while [ "$i" -le "$len" ]; do
		eval "v=\$CONFIG_${section}_${name}_ITEM$i"
		"$fn" "$v"
		i=$((i + 1))
	done
}

netifd_get() { # VAR IFACE FIELD
	local v
	v=$(awk -v i="$2" -v f="$3" '$1 == i && $2 == f { $1 = ""; $2 = ""; sub(/^ +/, ""); print }' "$NETIFD_STATE")
	eval "$1=\$v"
	[ -n "$v" ]
}

network_get_device() { netifd_get "$1" "$2" device; }
network_get_subnets() { netifd_get "$1" "$2" subnets; }
network_get_subnets6() { netifd_get "$1" "$2" subnets6; }
