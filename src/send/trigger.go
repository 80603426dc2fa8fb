package send

import (
	"os"
)

// OpenTrigger opens the trigger FIFO (queue/lock/trigger) and returns a channel that
// receives a value whenever qmail-queue pulls it. The FIFO is opened read-write so it
// never reports end of file, and writers' non-blocking opens always find a reader.
func OpenTrigger(path string) (<-chan struct{}, error) {
	// os.OpenFile serves a FIFO through the poller already (on Linux): the reader
	// parks instead of holding a thread in read(2).
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	ch := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 256)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			select {
			case ch <- struct{}{}:
			default: // already pulled; one wake-up covers every pull
			}
		}
	}()
	return ch, nil
}
