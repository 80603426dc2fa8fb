// Package qread is qmail-qread and qmail-qstat: reports on the queue, read directly
// from its files.
package qread

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/notqmail/notqmail/src/queue"
)

// recordMax bounds one envelope record; qmail-queue writes far shorter ones.
const recordMax = 1 << 20

// Read writes qmail-qread's report: for each message in info/, a line
//
//	21 Nov 2026 23:32:12 GMT  #12345  678  <sender>  bouncing
//
// (date of queueing, id, size; "bouncing" when failures wait in bounce/), then one line
// per recipient: "\tlocal\taddr" or "\tremote\taddr", prefixed with "  done" when
// delivered. Trouble with one message is reported in the output and the rest go on.
func Read(q queue.Queue, w io.Writer) error {
	bw := bufio.NewWriter(w)
	for i := 0; i < q.Split; i++ {
		dir := filepath.Join(q.Dir, "info", strconv.Itoa(i))
		f, err := os.Open(dir)
		if err != nil {
			fmt.Fprintf(bw, "fatal: unable to opendir %s: %s\n", "info", errText(err))
			bw.Flush()
			return err
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			fmt.Fprintf(bw, "fatal: unable to opendir %s: %s\n", "info", errText(err))
			bw.Flush()
			return err
		}
		var ids []uint64
		for _, n := range names {
			if id, err := strconv.ParseUint(n, 10, 64); err == nil && strconv.FormatUint(id, 10) == n && id%uint64(q.Split) == uint64(i) {
				ids = append(ids, id)
			}
		}
		sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
		for _, id := range ids {
			message(q, id, bw)
		}
	}
	return bw.Flush()
}

func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func message(q queue.Queue, id uint64, w *bufio.Writer) {
	trouble := func(err error) {
		fmt.Fprintf(w, "warning: trouble with #%d: %s\n", id, errText(err))
	}
	mst, err := os.Stat(q.Path("mess", id))
	if err != nil {
		trouble(err)
		return
	}
	_, berr := os.Stat(q.Path("bounce", id))
	bouncing := berr == nil
	f, err := os.Open(q.Path("info", id))
	if err != nil {
		trouble(err)
		return
	}
	ist, err := f.Stat()
	if err != nil {
		f.Close()
		trouble(err)
		return
	}
	sender, _ := record(bufio.NewReaderSize(f, 1024))
	f.Close()
	if len(sender) > 0 {
		sender = sender[1:] // the F
	}
	line := time.Unix(ist.ModTime().Unix(), 0).UTC().Format("2 Jan 2006 15:04:05") +
		" GMT  #" + strconv.FormatUint(id, 10) + "  " + strconv.FormatInt(mst.Size(), 10) +
		"  <" + string(sender) + "> "
	if bouncing {
		line += " bouncing"
	}
	w.WriteString(printable(line))
	w.WriteByte('\n')
	for c, sub := range []string{"local", "remote"} {
		f, err := os.Open(q.Path(sub, id))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				trouble(err)
			}
			continue
		}
		br := bufio.NewReaderSize(f, 4096)
		for {
			rec, err := record(br)
			if err != nil {
				break
			}
			if len(rec) == 0 {
				continue
			}
			var prefix string
			switch rec[0] {
			case 'D':
				prefix = "  done"
			case 'T':
			default:
				continue
			}
			w.WriteString(prefix + [2]string{"\tlocal\t", "\tremote\t"}[c] + printable(string(rec[1:])) + "\n")
		}
		f.Close()
	}
}

// record reads one \0-terminated record without its \0.
func record(br *bufio.Reader) ([]byte, error) {
	var rec []byte
	for {
		part, err := br.ReadSlice(0)
		if len(rec)+len(part) <= recordMax {
			rec = append(rec, part...)
		}
		if err == nil {
			return rec[:len(rec)-1], nil
		}
		if err != bufio.ErrBufferFull {
			return nil, err
		}
	}
}

// printable replaces bytes outside printable ASCII with '_', as qmail-qread does.
func printable(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 32 || c > 126 {
			b[i] = '_'
		}
	}
	return string(b)
}

// Stat writes qmail-qstat's two lines: messages in the queue (files under mess/) and
// messages not yet preprocessed (files in todo/).
func Stat(q queue.Queue, w io.Writer) error {
	mess := 0
	for i := 0; i < q.Split; i++ {
		n, err := count(filepath.Join(q.Dir, "mess", strconv.Itoa(i)))
		if err != nil {
			return err
		}
		mess += n
	}
	todo, err := count(filepath.Join(q.Dir, "todo"))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "messages in queue: %d\nmessages in queue but not yet preprocessed: %d\n", mess, todo)
	return err
}

func count(dir string) (int, error) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	for {
		names, err := f.Readdirnames(1024)
		n += len(names)
		if err == io.EOF || (err == nil && len(names) == 0) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
