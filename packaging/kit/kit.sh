#!/bin/sh
# The notqmail matrix test kit. It runs inside any root (a chroot built here, or a CI
# container) and checks one step of a package's life per call:
#
#   kit.sh install | users | start | smtp-in | maildir | sendmail | stop | extras |
#          upgrade | remove | purge | overqmail
#
# Each step prints what it checks and exits 0 (pass), 1 (fail, the last lines say why)
# or 3 (cannot run here, the last line says why). POSIX sh only: it must run under
# dash, busybox ash and bash alike.
#
# Settings come from the environment (the runner writes them into /kit/env):
#   KIT_FORMAT     deb, rpm or apk
#   KIT_PKG        the package under test (a path inside the root)
#   KIT_PREV_PKG   the previous build's package, for upgrade (may be empty)
#   KIT_EXTRA_PKGS the split packages (notqmail-pop3, notqmail-qmtp), for extras
#   KIT_SMTP_PORT  port for qmail-smtpd's listener on 127.0.0.1
#   KIT_SINK_PORT  port for the SMTP sink that stands in for remote hosts
#   KIT_USER       the local user that receives mail in ~/Maildir (created here)
set -u

KIT=/kit
[ -r "$KIT/env" ] && . "$KIT/env"
STATE=$KIT/state
QMAIL=/var/qmail
CONTROL=$QMAIL/control
KIT_USER=${KIT_USER:-matrixuser}
KIT_SMTP_PORT=${KIT_SMTP_PORT:-2525}
KIT_SINK_PORT=${KIT_SINK_PORT:-2526}
KIT_PREV_PKG=${KIT_PREV_PKG:-}
KIT_EXTRA_PKGS=${KIT_EXTRA_PKGS:-}
# Bounded waits: a broken MTA must fail the step, not hang the matrix.
WAIT=${KIT_WAIT:-120}
mkdir -p "$STATE"

say() { echo "kit: $*"; }
fail() { echo "kit: FAIL: $*"; exit 1; }
cannot() { echo "kit: NOT RUN: $*"; exit 3; }
run() { echo "+ $*"; "$@"; }

pkg_installed() {
	case $KIT_FORMAT in
	deb) dpkg-query -W -f='${Status}\n' notqmail 2>/dev/null | grep -q 'install ok installed' ;;
	rpm) rpm -q notqmail >/dev/null 2>&1 ;;
	apk) apk info -e notqmail >/dev/null 2>&1 ;;
	esac
}

pkg_version() {
	case $KIT_FORMAT in
	deb) dpkg-query -W -f='${Version}' notqmail 2>/dev/null ;;
	rpm) rpm -q --qf '%{VERSION}-%{RELEASE}' notqmail 2>/dev/null ;;
	apk) apk info -v notqmail 2>/dev/null | head -n 1 ;;
	esac
}

# install_pkg FILE installs or upgrades with the distribution's own tool.
install_pkg() {
	[ -f "$1" ] || fail "no package file $1"
	case $KIT_FORMAT in
	deb) DEBIAN_FRONTEND=noninteractive run apt-get install -y --no-install-recommends "$1" ;;
	# A root built here has no rpm database of its own packages (it is Debian with
	# Debian's rpm): dependencies cannot be resolved by rpm, so they are not checked.
	rpm) if command -v dnf >/dev/null 2>&1; then run dnf install -y "$1"; else run rpm -U --nodeps "$1"; fi ;;
	apk) run apk add --allow-untrusted "$1" ;;
	*) fail "unknown KIT_FORMAT '$KIT_FORMAT'" ;;
	esac
}

# check_mode PATH MODE OWNER GROUP
check_mode() {
	[ -e "$1" ] || { echo "missing: $1"; bad=1; return; }
	got=$(stat -c '%a %U %G' "$1")
	if [ "$got" != "$2 $3 $4" ]; then
		echo "wrong: $1 is $got, want $2 $3 $4"
		bad=1
	else
		echo "ok: $1 $got"
	fi
}

check_queue() {
	bad=0
	q=$QMAIL/queue
	[ -d $q ] || { echo "missing: $q"; return 1; }
	check_mode $q 750 qmailq qmail
	check_mode $q/pid 700 qmailq qmail
	check_mode $q/intd 700 qmailq qmail
	check_mode $q/todo 750 qmailq qmail
	check_mode $q/bounce 700 qmails qmail
	check_mode $q/lock 750 qmailq qmail
	check_mode $q/lock/sendmutex 600 qmails qmail
	check_mode $q/lock/tcpto 644 qmailr qmail
	check_mode $q/lock/trigger 622 qmails qmail
	[ -p $q/lock/trigger ] || { echo "wrong: $q/lock/trigger is not a FIFO"; bad=1; }
	for d in mess info local remote; do
		case $d in mess) o=qmailq m=750 ;; *) o=qmails m=700 ;; esac
		check_mode $q/$d $m $o qmail
		i=0
		while [ $i -lt 23 ]; do
			[ -d $q/$d/$i ] || { echo "missing: $q/$d/$i"; bad=1; }
			got=$(stat -c '%a %U' $q/$d/$i 2>/dev/null)
			[ "$got" = "$m $o" ] || { echo "wrong: $q/$d/$i is '$got', want $m $o"; bad=1; }
			i=$((i + 1))
		done
	done
	return $bad
}

step_install() {
	install_pkg "$KIT_PKG" || fail "installing $KIT_PKG failed"
	pkg_installed || fail "the package manager does not list notqmail as installed"
	say "installed notqmail $(pkg_version)"
}

step_users() {
	bad=0
	for g in qmail nofiles; do
		getent group $g >/dev/null 2>&1 || grep -q "^$g:" /etc/group || { echo "missing group $g"; bad=1; }
	done
	for u in alias qmaild qmaill qmailp qmailq qmailr qmails; do
		id $u >/dev/null 2>&1 || { echo "missing user $u"; bad=1; }
	done
	check_mode $QMAIL/bin/qmail-queue 4711 qmailq qmail
	check_mode $QMAIL/run 755 qmailq qmail
	for p in qmail-send qmail-start qmail-smtpd qmail-inject sendmail; do
		[ -x $QMAIL/bin/$p ] || { echo "missing program $QMAIL/bin/$p"; bad=1; }
	done
	[ -d $CONTROL ] || { echo "missing $CONTROL"; bad=1; }
	[ -s $CONTROL/me ] || { echo "missing $CONTROL/me (the first install must generate it)"; bad=1; }
	check_queue || bad=1
	[ $bad = 0 ] || fail "users, modes or queue not as qmail lays them out (lines above)"
	say "users, groups, program modes and the queue are right"
}

# me prints the host name the MTA answers for.
me() { head -n 1 $CONTROL/me 2>/dev/null; }

ensure_user() {
	id $KIT_USER >/dev/null 2>&1 || {
		if command -v useradd >/dev/null 2>&1; then
			useradd -m -s /bin/sh $KIT_USER
		else
			adduser -D -s /bin/sh $KIT_USER
		fi
	} || fail "cannot create the test user $KIT_USER"
	home=$(getent passwd $KIT_USER 2>/dev/null | cut -d: -f6)
	[ -n "$home" ] || home=/home/$KIT_USER
	if [ ! -d "$home/Maildir" ]; then
		mkdir -p "$home/Maildir/new" "$home/Maildir/cur" "$home/Maildir/tmp"
		chown -R $KIT_USER "$home" && chmod -R go-rwx "$home/Maildir"
	fi
	echo "$home" >$STATE/home
}

start_mta() {
	[ -x $QMAIL/bin/qmail-start ] || fail "no $QMAIL/bin/qmail-start"
	[ -n "$(me)" ] || fail "no $CONTROL/me: nothing to answer for"
	# As a supervisor would: qmail-start in its own session with the log on a file.
	# Its defaultdelivery argument is left out so control/defaultdelivery applies.
	(cd / && exec setsid env PATH="$QMAIL/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		$QMAIL/bin/qmail-start </dev/null >>$STATE/send.log 2>&1) &
	echo $! >$STATE/send.pid
	(cd / && exec setsid $QMAIL/bin/qmail-smtpd -l 127.0.0.1:$KIT_SMTP_PORT \
		</dev/null >>$STATE/smtpd.log 2>&1) &
	echo $! >$STATE/smtpd.pid
	$KIT/smtpsend wait -addr 127.0.0.1:$KIT_SMTP_PORT -timeout ${WAIT}s ||
		{ tail -n 20 $STATE/smtpd.log; fail "qmail-smtpd does not answer on 127.0.0.1:$KIT_SMTP_PORT"; }
	sleep 1
	kill -0 "$(cat $STATE/send.pid)" 2>/dev/null ||
		{ tail -n 20 $STATE/send.log; fail "qmail-start exited (log above)"; }
	say "qmail-start (pid $(cat $STATE/send.pid)) and qmail-smtpd on 127.0.0.1:$KIT_SMTP_PORT are running"
}

stop_mta() {
	for p in smtpd send sink; do
		[ -f $STATE/$p.pid ] || continue
		pid=$(cat $STATE/$p.pid)
		kill -TERM "$pid" 2>/dev/null && say "sent TERM to $p ($pid)"
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt $WAIT ]; do sleep 1; i=$((i + 1)); done
		kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid" 2>/dev/null; say "$p ($pid) ignored TERM, killed"; }
		rm -f $STATE/$p.pid
	done
	# The helpers (qmail-lspawn, -rspawn, -clean) exit on end of file; give them the
	# same bounded time.
	i=0
	while [ $i -lt $WAIT ] && running qmail-; do sleep 1; i=$((i + 1)); done
	return 0
}

# running NAME: is a process whose command line starts with $QMAIL/bin/NAME alive?
running() {
	for f in /proc/[0-9]*/cmdline; do
		case $({ tr '\0' ' ' <"$f"; } 2>/dev/null) in "$QMAIL/bin/$1"*) return 0 ;; esac
	done
	return 1
}

# wait_maildir SUBJECT: wait for a message with SUBJECT in the test user's Maildir.
wait_maildir() {
	home=$(cat $STATE/home)
	i=0
	while [ $i -lt $WAIT ]; do
		if grep -l "Subject: $1" "$home"/Maildir/new/* >/dev/null 2>&1; then
			f=$(grep -l "Subject: $1" "$home"/Maildir/new/* | head -n 1)
			say "delivered: $f"
			sed -n '1,12p' "$f"
			return 0
		fi
		sleep 1
		i=$((i + 1))
	done
	echo "--- qmail-send log:"
	tail -n 30 $STATE/send.log 2>/dev/null
	return 1
}

queued_count() { find $QMAIL/queue/mess -type f 2>/dev/null | wc -l | tr -d ' '; }

step_start() {
	ensure_user
	start_mta
}

step_smtp_in() {
	# Used where the sender cannot run outside the root (CI containers); the matrix
	# runner here sends from the host instead.
	ensure_user
	$KIT/smtpsend send -addr 127.0.0.1:$KIT_SMTP_PORT -from matrix@example.org \
		-to "$KIT_USER@$(me)" -subject "matrix smtp-in" || fail "SMTP session failed"
}

step_maildir() {
	wait_maildir "matrix smtp-in" || fail "no message in the Maildir after ${WAIT}s"
}

step_sendmail() {
	ensure_user
	rm -rf $STATE/sink
	(exec setsid $KIT/smtpsend sink -addr 127.0.0.1:$KIT_SINK_PORT -dir $STATE/sink \
		</dev/null >>$STATE/sink.log 2>&1) &
	echo $! >$STATE/sink.pid
	$KIT/smtpsend wait -addr 127.0.0.1:$KIT_SINK_PORT -timeout ${WAIT}s || fail "the sink did not start"
	echo "example.net:127.0.0.1:$KIT_SINK_PORT" >>$CONTROL/smtproutes
	say "control/smtproutes: $(cat $CONTROL/smtproutes)"
	[ -x /usr/sbin/sendmail ] || fail "no /usr/sbin/sendmail"
	printf 'To: friend@example.net\nSubject: matrix sendmail\n\nSent with sendmail inside the root.\n' |
		su -s /bin/sh -c "/usr/sbin/sendmail -t" $KIT_USER || fail "sendmail failed"
	i=0
	while [ $i -lt $WAIT ]; do
		if grep -l "Subject: matrix sendmail" $STATE/sink/* >/dev/null 2>&1; then
			say "the sink received it:"
			sed -n '1,8p' "$(grep -l 'Subject: matrix sendmail' $STATE/sink/* | head -n 1)"
			return 0
		fi
		sleep 1
		i=$((i + 1))
	done
	echo "--- qmail-send log:"
	tail -n 30 $STATE/send.log
	fail "the sink got nothing after ${WAIT}s"
}

# queue_direct SUBJECT TEXT queues a message for the test user with qmail-queue itself
# (message on fd 0, envelope on fd 1), as scripts that call qmail-queue do: it must
# wait in the queue while the MTA is stopped, and no address rewriting by qmail-inject
# (defaulthost, defaultdomain: the site's business) may send it elsewhere.
queue_direct() {
	printf 'To: %s@%s\nSubject: %s\n\n%s\n' "$KIT_USER" "$(me)" "$1" "$2" >$STATE/queue-msg
	printf 'Fmatrix@example.org\000T%s@%s\000\000' "$KIT_USER" "$(me)" >$STATE/queue-env
	$QMAIL/bin/qmail-queue <$STATE/queue-msg 1<$STATE/queue-env
}

# upgrade runs in a root of its own: the previous build, a site's edits and a queued
# message, then the build under test over it.
step_upgrade() {
	[ -n "$KIT_PREV_PKG" ] || cannot "no previous build to upgrade from"
	install_pkg "$KIT_PREV_PKG" || cannot "the previous build does not install, so there is nothing to upgrade from"
	from=$(pkg_version)
	ensure_user
	# The edit comes after the delivery line: qmail-start here reads only the first
	# line of control/defaultdelivery (qmail's rc passes the whole file).
	printf './Maildir/\n# edited by the matrix\n' >$CONTROL/defaultdelivery
	echo 4000000 >$CONTROL/databytes
	cp $CONTROL/defaultdelivery $STATE/defaultdelivery.edited
	# Queued while the MTA is stopped, so it waits in the queue across the upgrade.
	queue_direct "matrix queued" "Queued before the upgrade." || fail "cannot queue a message with the previous build's qmail-queue"
	before=$(queued_count)
	[ "$before" -ge 1 ] || fail "the queued message is not in $QMAIL/queue/mess"
	install_pkg "$KIT_PKG" || fail "upgrading from $from failed"
	to=$(pkg_version)
	say "upgraded $from -> $to"
	[ "$from" != "$to" ] || fail "the version did not change ($to)"
	cmp -s $CONTROL/defaultdelivery $STATE/defaultdelivery.edited || fail "the edited control/defaultdelivery was replaced: $(cat $CONTROL/defaultdelivery)"
	[ "$(cat $CONTROL/databytes 2>/dev/null)" = 4000000 ] || fail "control/databytes lost"
	[ "$(queued_count)" = "$before" ] || fail "queue had $before messages, now $(queued_count)"
	check_queue || fail "the queue is not right after the upgrade"
	start_mta
	wait_maildir "matrix queued" || fail "the queued message was not delivered after the upgrade"
	stop_mta
	say "configuration and queue kept; the queued message was delivered"
}

# step_extras installs each split package alone on top of notqmail, checks that its
# programs are there and run, removes it again, and checks notqmail is untouched.
step_extras() {
	[ -n "$KIT_EXTRA_PKGS" ] || cannot "no split packages were built for $KIT_FORMAT"
	pkg_installed || fail "notqmail is not installed"
	for p in $KIT_EXTRA_PKGS; do
		case $(basename "$p") in
		notqmail-pop3*) name=notqmail-pop3; progs="qmail-popup qmail-pop3d" ;;
		notqmail-qmtp*) name=notqmail-qmtp; progs="qmail-qmtpd qmail-qmqpd qmail-qmqpc" ;;
		*) fail "unknown split package $p" ;;
		esac
		install_pkg "$p" || fail "installing $name alone on top of notqmail failed"
		for prog in $progs; do
			[ -x $QMAIL/bin/$prog ] || fail "$name installed no $QMAIL/bin/$prog"
			# Run with no usable input: it must start and answer, not crash.
			$QMAIL/bin/$prog </dev/null >/dev/null 2>&1
			rc=$?
			[ $rc -lt 126 ] || fail "$prog did not run (exit $rc)"
		done
		case $KIT_FORMAT in
		deb) DEBIAN_FRONTEND=noninteractive run apt-get remove -y $name ;;
		rpm) run rpm -e --nodeps $name ;;
		apk) run apk del $name ;;
		esac || fail "removing $name failed"
		pkg_installed || fail "removing $name removed notqmail"
		[ -x $QMAIL/bin/qmail-send ] || fail "removing $name broke notqmail's programs"
		say "$name installs alone on notqmail, runs $progs, and removes cleanly"
	done
}

step_remove() {
	stop_mta
	pkg_installed || fail "notqmail is not installed"
	echo "kept@example.org" >$CONTROL/matrix-kept
	queue_direct "matrix kept" "Queued before removal." || fail "cannot queue a message"
	before=$(queued_count)
	case $KIT_FORMAT in
	deb) DEBIAN_FRONTEND=noninteractive run apt-get remove -y notqmail ;;
	rpm) run rpm -e --nodeps notqmail ;;
	apk) run apk del notqmail ;;
	esac || fail "removing failed"
	pkg_installed && fail "notqmail is still installed"
	[ -f $CONTROL/matrix-kept ] || [ -f /etc/qmail/matrix-kept ] || fail "configuration removed with the package"
	[ "$(queued_count)" = "$before" ] || fail "queue had $before messages, now $(queued_count)"
	id qmailq >/dev/null 2>&1 || fail "users removed by remove (only purge may)"
	say "removed; configuration, $before queued messages and the users kept"
}

step_purge() {
	case $KIT_FORMAT in
	deb) DEBIAN_FRONTEND=noninteractive run apt-get purge -y notqmail || fail "purge failed" ;;
	*) cannot "$KIT_FORMAT has no purge: erase/del keeps the queue and configuration by design" ;;
	esac
	bad=0
	for p in /etc/qmail $QMAIL/queue $QMAIL/control; do
		[ -e $p ] || [ -L $p ] || continue
		echo "still there: $p"
		find $p 2>/dev/null | head -n 20 | sed 's/^/    /'
		bad=1
	done
	for u in alias qmaild qmaill qmailp qmailq qmailr qmails; do
		id $u >/dev/null 2>&1 && { echo "user still there: $u"; bad=1; }
	done
	[ $bad = 0 ] || fail "purge left things behind: $(for p in /etc/qmail $QMAIL/queue $QMAIL/control; do [ -e $p ] && find $p -type f 2>/dev/null; done | tr '\n' ' ' | cut -c1-300)"
	say "purged: configuration, queue and users gone"
}

# addgroup_ NAME and adduser_ NAME GROUP HOME: accounts the way qmail's INSTALL makes
# them, with the system's own tools.
addgroup_() {
	grep -q "^$1:" /etc/group && return 0
	if command -v groupadd >/dev/null 2>&1; then groupadd "$1"; else addgroup "$1"; fi
}
adduser_() {
	id "$1" >/dev/null 2>&1 && return 0
	if command -v useradd >/dev/null 2>&1; then
		useradd -g "$2" -d "$3" -s /bin/false "$1"
	else
		adduser -D -H -G "$2" -h "$3" -s /bin/false "$1"
	fi
}

# enqueue_by_hand N RECIPIENT SUBJECT: put a message into the queue the way
# qmail-queue leaves it (mess/<inode % 23>/<inode>, then intd/ linked to todo/), with
# no program of ours involved.
enqueue_by_hand() {
	q=$QMAIL/queue
	tmp=$q/pid/matrix.$1
	printf 'Received: (qmail %s invoked by uid 0); 1 Jan 2026 00:00:00 -0000\nFrom: old@oldqmail.example\nTo: %s\nSubject: %s\n\nQueued by qmail before notqmail was installed.\n' \
		"$1" "$2" "$3" >$tmp
	ino=$(stat -c %i $tmp)
	mv $tmp $q/mess/$((ino % 23))/$ino
	chown qmailq:qmail $q/mess/$((ino % 23))/$ino
	chmod 644 $q/mess/$((ino % 23))/$ino
	printf 'u0\000p%s\000Fold@oldqmail.example\000T%s\000' "$1" "$2" >$q/intd/$ino
	chown qmailq:qmail $q/intd/$ino
	chmod 644 $q/intd/$ino
	ln $q/intd/$ino $q/todo/$ino
}

# overqmail: a root that has a qmail installation as qmail's INSTALL lays it out
# (users, control files, users/assign, alias/.qmail-*, a queue holding messages);
# the package installs over it and must keep all of it and deliver the messages.
step_overqmail() {
	for g in nofiles qmail; do addgroup_ $g || fail "groupadd $g"; done
	adduser_ alias nofiles $QMAIL/alias || fail "user alias"
	for u in qmaild qmaill qmailp; do adduser_ $u nofiles $QMAIL || fail "user $u"; done
	for u in qmailq qmailr qmails; do adduser_ $u qmail $QMAIL || fail "user $u"; done
	ensure_user
	home=$(cat $STATE/home)
	echo ./Maildir/ >"$home/.qmail" && chown $KIT_USER "$home/.qmail" && chmod 644 "$home/.qmail"
	mkdir -p $QMAIL/control $QMAIL/users $QMAIL/alias $QMAIL/bin
	chown alias:qmail $QMAIL/alias && chmod 2755 $QMAIL/alias
	echo oldqmail.example >$QMAIL/control/me
	echo oldqmail.example >$QMAIL/control/locals
	echo oldqmail.example >$QMAIL/control/rcpthosts
	echo 7 >$QMAIL/control/concurrencyremote
	uid=$(id -u $KIT_USER) gid=$(id -g $KIT_USER)
	printf '=matrixold:%s:%s:%s:%s:::\n.\n' $KIT_USER $uid $gid "$home" >$QMAIL/users/assign
	echo "&$KIT_USER@oldqmail.example" >$QMAIL/alias/.qmail-postmaster
	echo "&$KIT_USER@oldqmail.example" >$QMAIL/alias/.qmail-root
	chmod 644 $QMAIL/alias/.qmail-*
	q=$QMAIL/queue
	mkdir -p $q/pid $q/intd $q/todo $q/bounce $q/lock
	for d in mess info local remote; do
		i=0
		while [ $i -lt 23 ]; do mkdir -p $q/$d/$i; i=$((i + 1)); done
	done
	chown qmailq:qmail $q $q/pid $q/intd $q/todo $q/lock
	chown -R qmailq:qmail $q/mess
	chown -R qmails:qmail $q/info $q/local $q/remote $q/bounce
	chmod 750 $q $q/todo $q/lock && chmod 700 $q/pid $q/intd $q/bounce
	chmod -R 750 $q/mess && chmod -R 700 $q/info $q/local $q/remote
	dd if=/dev/zero of=$q/lock/tcpto bs=1024 count=1 2>/dev/null
	chown qmailr:qmail $q/lock/tcpto && chmod 644 $q/lock/tcpto
	: >$q/lock/sendmutex && chown qmails:qmail $q/lock/sendmutex && chmod 600 $q/lock/sendmutex
	mkfifo $q/lock/trigger && chown qmails:qmail $q/lock/trigger && chmod 622 $q/lock/trigger
	enqueue_by_hand 101 "$KIT_USER@oldqmail.example" "matrix old queue one"
	enqueue_by_hand 102 "postmaster@oldqmail.example" "matrix old queue two"
	(cd $QMAIL && find control users alias -type f | sort | xargs cat) >$STATE/qmail-config.before
	before=$(queued_count)
	say "a qmail installation with $before queued messages:"
	find $QMAIL -maxdepth 2 | sort | head -n 40
	install_pkg "$KIT_PKG" || fail "installing over the qmail installation failed"
	(cd $QMAIL && find control/ users/ alias/ -type f | sort | xargs cat) >$STATE/qmail-config.after 2>/dev/null
	for f in control/me control/locals control/rcpthosts control/concurrencyremote users/assign alias/.qmail-postmaster alias/.qmail-root; do
		[ -f $QMAIL/$f ] || fail "$QMAIL/$f is gone after the install"
	done
	[ "$(me)" = oldqmail.example ] || fail "control/me is now '$(me)', was oldqmail.example"
	[ "$(cat $QMAIL/control/concurrencyremote)" = 7 ] || fail "control/concurrencyremote changed"
	grep -q '^=matrixold:' $QMAIL/users/assign || fail "users/assign changed: $(cat $QMAIL/users/assign)"
	[ "$(queued_count)" = "$before" ] || fail "the queue had $before messages, now $(queued_count)"
	check_queue || fail "the queue is not right after the install"
	start_mta
	wait_maildir "matrix old queue one" || fail "the message qmail queued for $KIT_USER was not delivered"
	wait_maildir "matrix old queue two" || fail "the message qmail queued for postmaster (alias) was not delivered"
	stop_mta
	say "installed over qmail: control, users/assign and alias kept; both queued messages delivered"
}

[ $# -ge 1 ] || { echo "usage: kit.sh STEP..." >&2; exit 2; }
for s in "$@"; do
	say "== $s"
	case $s in
	install) step_install ;;
	users) step_users ;;
	start) step_start ;;
	smtp-in) step_smtp_in ;;
	maildir) step_maildir ;;
	sendmail) step_sendmail ;;
	stop) stop_mta ;;
	extras) step_extras ;;
	upgrade) step_upgrade ;;
	remove) step_remove ;;
	purge) step_purge ;;
	overqmail) step_overqmail ;;
	*) echo "kit: unknown step $s" >&2; exit 2 ;;
	esac
done
