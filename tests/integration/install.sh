#!/bin/sh
# make install into a DESTDIR puts exactly these files in place; a second
# install changes nothing and keeps an edited config; make uninstall removes
# all but the config. No namespace needed: nothing outside DESTDIR is touched.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/scripts/lib/check.sh"
CHECK_TAIL=20	# a failed make says why in more than five lines
cat >"$T/expected" <<LIST
./etc/logrotate.d/smtpguard
./etc/smtpguard/smtpguard.conf
./etc/systemd/system/smtpguard.service
./usr/sbin/smtpguard
./usr/sbin/smtpguardd
./usr/share/bash-completion/completions/smtpguard
./usr/share/man/man5/smtpguard.conf.5
./usr/share/man/man8/smtpguard.8
./usr/share/man/man8/smtpguardd.8
./usr/share/smtpguard/ansible/smtpguard.yml
./usr/share/smtpguard/exim4/conf.d/acl/45_smtpguard_not_smtp
./usr/share/smtpguard/exim4/conf.d/main/00_smtpguard
./usr/share/smtpguard/exim4/smtpguard_acl
./usr/share/smtpguard/rsyslog/rsyslog-smtpguard-collector.conf
./usr/share/smtpguard/rsyslog/rsyslog-smtpguard-forward.conf
./usr/share/smtpguard/smtpguard.rules.yml
LIST
mk() { make -s -C "$ROOT" DESTDIR="$T/root" PREFIX=/usr "$@"; }

check "make install DESTDIR=... PREFIX=/usr succeeds" mk install
check "it installs exactly the expected files" sh -c \
    "cd '$T/root' && find . -type f | sort | diff -u '$T/expected' -"
check "the unit runs the installed daemon" grep -q '^ExecStart=/usr/sbin/smtpguardd -f$' \
    "$T/root/etc/systemd/system/smtpguard.service"
check "binaries are mode 0755, the config 0644" sh -c \
    "test \"\$(stat -c %a '$T/root/usr/sbin/smtpguardd')\" = 755 &&
     test \"\$(stat -c %a '$T/root/etc/smtpguard/smtpguard.conf')\" = 644"
echo "# edited by the admin" >>"$T/root/etc/smtpguard/smtpguard.conf"
check "a second install succeeds" mk install
check "a second install keeps the admin's edited config" \
    grep -q '^# edited by the admin$' "$T/root/etc/smtpguard/smtpguard.conf"
check "a second install installs the same files" sh -c \
    "cd '$T/root' && find . -type f | sort | diff -u '$T/expected' -"
check "make uninstall succeeds" mk uninstall
check "uninstall leaves only the config" sh -c \
    "cd '$T/root' && test \"\$(find . -type f)\" = ./etc/smtpguard/smtpguard.conf"
finish
