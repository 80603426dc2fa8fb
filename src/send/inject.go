package send

import (
	"io"

	"github.com/notqmail/notqmail/src/queueclient"
)

// QueueInjector queues bounces through qmail-queue ($QMAILQUEUE when set), as
// qmail-send does.
type QueueInjector struct {
	Config queueclient.Config
}

// Inject implements Injector. A read error on msg abandons the message, so qmail-queue
// queues nothing and the bounce is tried again later.
func (q QueueInjector) Inject(msg io.Reader, sender string, recips []string) (int, error) {
	c, err := q.Config.Open()
	if err != nil {
		return 0, err
	}
	qp := c.PID()
	if _, err := io.Copy(c, msg); err != nil {
		c.Fail()
	}
	c.From(sender)
	for _, r := range recips {
		c.To(r)
	}
	if err := c.Close(); err != nil {
		return 0, err
	}
	return qp, nil
}
