#!/bin/sh
# container.sh IMAGE FORMAT ARCH: the matrix runner for CI containers. It runs the kit
# (kit.sh, beside this script, with the packages staged by `go run mage.go matrixkit`)
# in fresh containers of IMAGE, as packaging/matrix does in chroots here: one
# container for install, users, start, SMTP in and sendmail (the SMTP message is sent
# from this host, outside the container), one for installing over a qmail
# installation, another for upgrade, remove and purge.
# It prints a line per step and exits 1 when a step failed.
set -u
[ $# -eq 3 ] || { echo "usage: container.sh IMAGE FORMAT ARCH" >&2; exit 2; }
image=$1 format=$2 arch=$3
kit=$(cd "$(dirname "$0")" && pwd)
failed=0

pkgfor() { # pkgfor DIR: the core package of this format and architecture in DIR
	case $format/$arch in
	deb/amd64) pat='notqmail_*_amd64.deb' ;; deb/arm64) pat='notqmail_*_arm64.deb' ;;
	rpm/amd64) pat='notqmail-[0-9]*.x86_64.rpm' ;; rpm/arm64) pat='notqmail-[0-9]*.aarch64.rpm' ;;
	apk/amd64) pat='notqmail_*_x86_64.apk' ;; apk/arm64) pat='notqmail_*_aarch64.apk' ;;
	*) echo "container.sh: unknown format/arch $format/$arch" >&2; exit 2 ;;
	esac
	for f in "$1"/$pat; do [ -f "$f" ] && { basename "$f"; return; }; done
}
cur=$(pkgfor "$kit/pkg/current")
prev=$(pkgfor "$kit/pkg/previous")
[ -n "$cur" ] || { echo "container.sh: no $format package for $arch in $kit/pkg/current" >&2; exit 1; }

port() { # a free port on 127.0.0.1, from the kit's own client
	"$kit/smtpsend-host" freeport
}

# start NAME: a container sharing the host's network, with the kit copied to /kit.
start() {
	docker run -d --name "$1" --network host -v "$kit:/kit-src:ro" "$image" sleep 86400 >/dev/null || exit 1
	docker exec "$1" sh -c 'mkdir -p /kit/pkg/current /kit/pkg/previous /kit/state &&
		cp /kit-src/kit.sh /kit/kit.sh && cp /kit-src/smtpsend-'"$arch"' /kit/smtpsend &&
		cp /kit-src/pkg/current/'"$cur"' /kit/pkg/current/ &&
		{ [ -z "'"$prev"'" ] || cp /kit-src/pkg/previous/'"$prev"' /kit/pkg/previous/; }' || exit 1
	smtp=$(port) sink=$(port)
	prevpath=
	[ -n "$prev" ] && prevpath=/kit/pkg/previous/$prev
	printf 'KIT_FORMAT=%s\nKIT_PKG=%s\nKIT_PREV_PKG=%s\nKIT_SMTP_PORT=%s\nKIT_SINK_PORT=%s\n' \
		"$format" "/kit/pkg/current/$cur" "$prevpath" "$smtp" "$sink" |
		docker exec -i "$1" sh -c 'cat >/kit/env'
}

# step CONTAINER NAME KITSTEP...: one cell.
step() {
	c=$1 name=$2
	shift 2
	docker exec "$c" /kit/kit.sh "$@" >"$kit/log-$name.txt" 2>&1
	rc=$?
	if [ $rc = 0 ]; then
		echo "matrix: $name pass"
		return 0
	fi
	if [ $rc = 3 ]; then
		echo "matrix: $name not run: $(tail -n 1 "$kit/log-$name.txt")"
		return 0
	fi
	echo "matrix: $name FAIL:"
	tail -n 25 "$kit/log-$name.txt" | sed 's/^/    /'
	failed=1
	return 1
}

trap 'docker rm -f matrix-a matrix-b matrix-c >/dev/null 2>&1' EXIT
# Images lack what the kit itself uses (not what the package needs: that it must
# pull in by its dependencies).
prep='command -v apk >/dev/null && apk add --no-cache coreutils >/dev/null; true'

start matrix-a
docker exec matrix-a sh -c "$prep"
if step matrix-a install install; then
	step matrix-a users users
	if step matrix-a start start; then
		me=$(docker exec matrix-a head -n 1 /var/qmail/control/me)
		if "$kit/smtpsend-host" send -addr "127.0.0.1:$smtp" -from matrix@example.org \
			-to "matrixuser@$me" -subject "matrix smtp-in"; then
			step matrix-a smtp maildir
		else
			echo "matrix: smtp FAIL: the SMTP session from outside the container failed"
			failed=1
		fi
		step matrix-a sendmail sendmail
	fi
	docker exec matrix-a /kit/kit.sh stop >/dev/null 2>&1
fi
docker rm -f matrix-a >/dev/null

start matrix-c
docker exec matrix-c sh -c "$prep"
step matrix-c overqmail overqmail
docker exec matrix-c /kit/kit.sh stop >/dev/null 2>&1
docker rm -f matrix-c >/dev/null

start matrix-b
docker exec matrix-b sh -c "$prep"
step matrix-b upgrade upgrade && step matrix-b remove remove && step matrix-b purge purge
exit $failed
