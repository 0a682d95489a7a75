#!/bin/sh
# make deb builds a package that lintian passes (each override explained),
# whose Depends names every library the binaries need, and that behaves as an
# admin expects once installed: installing starts nothing, `smtpguard --help`
# answers, the unit verifies, `smtpguard enable` puts the fence up, removing
# the package stops the guard and removes its table (the config stays), and
# purging removes the rest. It is installed with dpkg into a throwaway root:
# an overlay of / in private mount, network and pid namespaces, so the host's
# dpkg database, files and ruleset never change, and every process started
# there dies with the namespace.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
CHECK_TAIL=20	# a failed make or dpkg says why in more than five lines

VERSION=$(sed -n 's/^#define[[:space:]]*SMTPGUARD_VERSION[[:space:]]*"\(.*\)"$/\1/p' \
	"$ROOT/guard/smtpguard.h")
DEB=$BUILD/smtpguard_${VERSION}_$(dpkg --print-architecture).deb
OUT=$T/out		# each step's output and exit status, read after the namespace is gone
mkdir -p "$OUT"

check "make deb builds $(basename "$DEB")" sh -c "make -s -C '$ROOT' deb >/dev/null && test -s '$DEB'"

# lintian: not one tag at any level, pedantic included, beyond the overrides.
lintian -I --pedantic "$DEB" >"$T/lintian" 2>&1
check "lintian reports nothing (info and pedantic included)" sh -c \
    "cat '$T/lintian'; ! grep -Eq '^[EWIPXO]: ' '$T/lintian'"
check "every lintian override has a comment that says why" awk '
    /^#/ { why = 1; next }
    /^[[:space:]]*$/ { next }
    !why { print "unexplained: " $0; bad = 1 }
    { why = 0 }
    END { exit bad }' "$ROOT/conf/deb/lintian-overrides"

# Every shared library the two binaries load comes from a package Depends names.
dpkg-deb -x "$DEB" "$T/x"
for b in "$T/x/usr/sbin/smtpguardd" "$T/x/usr/sbin/smtpguard"; do
	objdump -p "$b" | awk '$1 == "NEEDED" { print $2 }'
done | sort -u >"$T/sonames"
# By the file's own name: with merged /usr, dpkg knows /lib/... or /usr/lib/...
while read -r so; do
	path=$(readlink -f "$(ldconfig -p | awk -v so="$so" '$1 == so { print $NF; exit }')")
	dpkg -S "*/${path##*/}" 2>/dev/null | head -1 | cut -d: -f1 | grep . ||
	    echo "UNOWNED:$so"
done <"$T/sonames" >"$T/needed"
depends=$(dpkg-deb -f "$DEB" Depends)
missing=""
for p in $(cat "$T/needed"); do
	echo "$depends" | grep -Eq "(^|, )$p( |,|\$)" || missing="$missing $p"
done
if [ -s "$T/needed" ] && [ -z "$missing" ]; then
	pass "Depends names the package of each of the $(wc -l <"$T/needed") libraries linked"
else
	fail "Depends names the package of every library linked" \
	    "not in Depends:$missing (Depends: $depends)"
fi
printf '%s\n' /etc/logrotate.d/smtpguard /etc/smtpguard/exceptions.conf \
    /etc/smtpguard/smtpguard.conf >"$T/conffiles"
check "the config, the exceptions and logrotate are conffiles" sh -c \
    "dpkg-deb --ctrl-tarfile '$DEB' | tar -xO ./conffiles | sort | diff -u '$T/conffiles' -"

# The same package one version later, for an upgrade.
dpkg-deb -R "$DEB" "$T/up" &&
    sed -i "s/^Version: .*/Version: $VERSION+up1/" "$T/up/DEBIAN/control" &&
    dpkg-deb --root-owner-group -b "$T/up" "$T/smtpguard-up.deb" >/dev/null

# The throwaway root. Each step runs chrooted there; its output and status land
# in $OUT, outside the overlay, for the checks below.
cat >"$T/inner.sh" <<'INNER'
set -u
T=$1 DEB=$2 OUT=$T/out M=$T/merged
mkdir -p "$T/ovl" "$M"
mount -t tmpfs tmpfs "$T/ovl" && mkdir "$T/ovl/up" "$T/ovl/work" &&
    mount -t overlay overlay -o "lowerdir=/,upperdir=$T/ovl/up,workdir=$T/ovl/work" "$M" ||
    { echo "cannot make the overlay root" >"$OUT/setup"; exit 1; }
# No systemd in there: a fresh /run. A private /proc for this pid namespace.
mount -t tmpfs tmpfs "$M/run" && mount -t tmpfs tmpfs "$M/tmp" &&
    mount -t proc proc "$M/proc" && mount --bind /dev "$M/dev" || exit 1
ip link set lo up
cp "$DEB" "$M/tmp/smtpguard.deb"
cp "$T/smtpguard-up.deb" "$M/tmp/smtpguard-up.deb"
step() {	# step NAME COMMAND: run COMMAND in the root, keep output and status
	_n=$1; shift
	chroot "$M" /bin/sh -c "$*" >"$OUT/$_n" 2>&1
	echo $? >"$OUT/$_n.rc"
}
step install 'dpkg -i /tmp/smtpguard.deb'
step procs_after_install 'for p in /proc/[0-9]*; do cat $p/comm; done | grep -x smtpguardd'
step table_after_install 'nft list table inet smtpguard'
# By path: the package's own binary, not one a make install put in /usr/local.
step help '/usr/sbin/smtpguard --help'
step version '/usr/sbin/smtpguard --version; dpkg-query -W -f="\${Version}\n" smtpguard'
step verify 'systemd-analyze verify /lib/systemd/system/smtpguard.service'
step enable '/usr/sbin/smtpguard enable'
step table_enabled 'nft list table inet smtpguard'
# A Postfix to wire the gate into (the host's postfix package, no site config).
step mail_enable 'cp /usr/share/postfix/main.cf.debian /etc/postfix/main.cf &&
    cp /usr/share/postfix/master.cf.dist /etc/postfix/master.cf &&
    sed -i "s/^gate = no/gate = yes/" /etc/smtpguard/smtpguard.conf &&
    /usr/sbin/smtpguard reload && /usr/sbin/smtpguard mail enable &&
    postconf -h smtpd_milters non_smtpd_milters'
step upgrade 'dpkg -i /tmp/smtpguard-up.deb && dpkg-query -W -f="\${Version}\n" smtpguard'
step procs_after_upgrade 'for p in /proc/[0-9]*; do cat $p/comm; done | grep -x smtpguardd'
step table_after_upgrade 'nft list table inet smtpguard'
step conf_after_upgrade 'grep -x "gate = yes" /etc/smtpguard/smtpguard.conf'
step remove 'dpkg -r smtpguard'
step procs_after_remove 'for p in /proc/[0-9]*; do cat $p/comm; done | grep -x smtpguardd'
step table_after_remove 'nft list table inet smtpguard'
step mail_after_remove 'postconf -h smtpd_milters non_smtpd_milters'
step kept_after_remove 'test -f /etc/smtpguard/smtpguard.conf && test ! -e /usr/sbin/smtpguard'
step purge 'echo "{}" >>/var/log/smtpguard/events.jsonl.1; dpkg -P smtpguard'
step gone_after_purge 'test ! -e /etc/smtpguard && test ! -e /var/log/smtpguard &&
    test ! -e /var/lib/smtpguard'
step reinstall 'dpkg -i /tmp/smtpguard.deb'
step remove_without_config 'rm /etc/smtpguard/smtpguard.conf && dpkg -r smtpguard'
INNER
unshare --mount --net --pid --fork --kill-child --propagation private \
    sh "$T/inner.sh" "$T" "$DEB" 2>"$T/inner.err"

rc() { cat "$OUT/$1.rc" 2>/dev/null || echo none; }
says() {	# says NAME: step NAME's output, for a failure's why
	cat "$OUT/setup" "$OUT/$1" "$T/inner.err" 2>/dev/null | tail -n "$CHECK_TAIL"
}
expect() {	# expect NAME STATUS WHAT: step NAME ended with STATUS (0 or "fail")
	_got=$(rc "$1")
	if [ "$2" = 0 ] && [ "$_got" = 0 ] ||
	    { [ "$2" = fail ] && [ "$_got" != 0 ] && [ "$_got" != none ]; }; then
		pass "$3"
	else
		fail "$3" "status $_got; $(says "$1")"
	fi
}
expect install 0 "dpkg -i installs it into a throwaway root"
check "installing says the guard is not enabled yet" grep -q "run 'smtpguard enable'" "$OUT/install"
expect procs_after_install fail "installing starts no smtpguardd"
expect table_after_install fail "installing puts up no table"
expect help 0 "smtpguard --help answers from the installed package"
check "its usage lists the commands" grep -q '^usage: smtpguard' "$OUT/help"
check "--version and the package's version are the one SMTPGUARD_VERSION" sh -c \
    "test \"\$(cat '$OUT/version')\" = \"smtpguard $VERSION
$VERSION\""
expect verify 0 "systemd-analyze verify passes the installed unit"
check "systemd-analyze verify says nothing about it" sh -c "cat '$OUT/verify'; test ! -s '$OUT/verify'"
expect enable 0 "smtpguard enable puts the fence up in the installed root"
expect table_enabled 0 "the table is there once enabled"
expect mail_enable 0 "smtpguard mail enable wires the gate into the root's Postfix"
check "Postfix's milters then name the gate" grep -q 'smtpguard/gate.sock' "$OUT/mail_enable"
expect upgrade 0 "an upgrade installs over it"
check "the upgrade is the new version" grep -qx "$VERSION+up1" "$OUT/upgrade"
expect procs_after_upgrade 0 "the upgrade leaves smtpguardd running"
expect table_after_upgrade 0 "the upgrade leaves the table: the fence never opened"
expect conf_after_upgrade 0 "the upgrade keeps the admin's edit of the config"
expect remove 0 "dpkg -r removes the package"
check "removing took the gate out of Postfix first (main.cf restored)" sh -c \
    "grep -q 'restored /etc/postfix/main.cf' '$OUT/remove' &&
     test \"\$(cat '$OUT/mail_after_remove.rc')\" = 0 && ! grep -q smtpguard '$OUT/mail_after_remove'"
check "removing ran smtpguard disable" grep -q 'removed table inet smtpguard' "$OUT/remove"
expect procs_after_remove fail "removing stopped smtpguardd"
expect table_after_remove fail "removing removed the table"
expect kept_after_remove 0 "removing keeps the config and takes the binaries"
expect purge 0 "dpkg -P purges it"
expect gone_after_purge 0 "purging leaves no config, exceptions, event log or mail state"
expect reinstall 0 "it installs again after a purge"
expect remove_without_config 0 "it removes even when the admin deleted the config"
finish
