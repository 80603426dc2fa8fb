package send

// Channels: qmail-send has two, local and remote, in that order everywhere (the fds,
// the queue directories, the log words).
const (
	Local  = 0
	Remote = 1
	nchan  = 2
)

var (
	chanDir    = [nchan]string{"local", "remote"}
	chanSkip   = [nchan]int64{10, 20} // seconds added to the square root in the retry schedule
	chanStatus = [nchan]string{" local ", " remote "}
	chanTo     = [nchan]string{" to local ", " to remote "}
)

// isqrt is the integer square root: r*r <= x < (r+1)*(r+1), for 0 <= x < 2^32 as in qmail
// (larger ages are clamped, which only happens with a broken clock).
func isqrt(x int64) int64 {
	if x <= 0 {
		return 0
	}
	if x >= 1<<32 {
		return 1<<16 - 1
	}
	var y, yy int64
	for j := 15; j >= 0; j-- {
		y21 := (y << (j + 1)) + (1 << (2 * j))
		if y21 <= x-yy {
			y += 1 << j
			yy += y21
		}
	}
	return y
}

// NextRetry is qmail's retry schedule: birth + (isqrt(now-birth) + chanskip)^2, with
// chanskip 10 for local and 20 for remote deliveries. Times are Unix seconds.
func NextRetry(birth, now int64, channel int) int64 {
	var n int64
	if birth <= now {
		n = isqrt(now - birth)
	}
	n += chanSkip[channel]
	return birth + n*n
}
