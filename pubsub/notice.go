package pubsub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// noticePrefix starts the subject of every notice: herald-notice.<topic>.
// Core NATS only: a notice is not stored.
const noticePrefix = "herald-notice."

// maxNoticeBytes bounds a notice: notices are short commands ("disconnect
// user X"), not data.
const maxNoticeBytes = 4096

// defaultNoticeTimeout bounds PublishNotice when its ctx has no deadline.
const defaultNoticeTimeout = 5 * time.Second

// noticeQueue is how many notices may wait for the listener's function;
// beyond it NATS drops them (a slow consumer) and says so in the log.
const noticeQueue = 256

// PublishNotice sends data to every replica listening on topic
// (ListenNotices), this one included, and returns once the NATS server has
// it, bounded by ctx. A notice is not stored: a replica that is not
// connected to NATS at that moment misses it.
func (l *Log) PublishNotice(ctx context.Context, topic string, data []byte) error {
	if err := checkNoticeTopic(topic); err != nil {
		return err
	}
	if len(data) > maxNoticeBytes {
		return fmt.Errorf("publish notice on %q: %d bytes, at most %d", topic, len(data), maxNoticeBytes)
	}
	if _, ok := ctx.Deadline(); !ok {
		// nats.go's flush needs a deadline.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultNoticeTimeout)
		defer cancel()
	}
	if err := l.nc.Publish(noticePrefix+topic, data); err != nil {
		return fmt.Errorf("publish notice on %q: %w", topic, err)
	}
	if err := l.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("publish notice on %q: flush to NATS: %w", topic, err)
	}
	return nil
}

// NoticeListener hands every notice of a topic to a function, one at a
// time, on a goroutine of its own. Stop it with Close; its goroutine ends
// with its Log's Close too, as a Live does.
type NoticeListener struct {
	sub  *nats.Subscription
	in   chan *nats.Msg
	done chan struct{}
	// connClosed is the Log's, closed once its connection is: nothing
	// reaches in after that, and NATS never closes in.
	connClosed <-chan struct{}
	once       sync.Once
	wg         sync.WaitGroup
}

// ListenNotices calls fn with every notice published on topic from now on
// (the NATS server knows of the listener when ListenNotices returns), until
// the listener's Close or l's Close (once it has closed the connection: a
// notice being handled then is not waited for). fn must not call the
// listener's Close, which waits for it to return.
func (l *Log) ListenNotices(topic string, fn func(data []byte)) (*NoticeListener, error) {
	if err := checkNoticeTopic(topic); err != nil {
		return nil, err
	}
	nl := &NoticeListener{in: make(chan *nats.Msg, noticeQueue), done: make(chan struct{}), connClosed: l.connClosed}
	sub, err := l.nc.ChanSubscribe(noticePrefix+topic, nl.in)
	if err != nil {
		return nil, fmt.Errorf("listen for notices on %q: %w", topic, err)
	}
	if err := l.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("listen for notices on %q: flush the subscription to NATS: %w", topic, err)
	}
	nl.sub = sub
	nl.wg.Add(1)
	go func() {
		defer nl.wg.Done()
		for {
			select {
			case <-nl.done:
				return
			case <-nl.connClosed:
				// Log.Close: the subscription is gone with the connection,
				// and without this the goroutine would wait forever.
				return
			case m := <-nl.in:
				fn(m.Data)
			}
		}
	}()
	return nl, nil
}

// Close stops the listener and waits for a notice being handled to be
// done. It is safe to call more than once, and after Log.Close.
func (nl *NoticeListener) Close() error {
	var err error
	nl.once.Do(func() {
		if uerr := nl.sub.Unsubscribe(); uerr != nil && !errors.Is(uerr, nats.ErrConnectionClosed) {
			err = fmt.Errorf("stop listening for notices: %w", uerr)
		}
		close(nl.done)
		nl.wg.Wait()
	})
	return err
}

// checkNoticeTopic refuses a topic that is not one plain subject token.
func checkNoticeTopic(topic string) error {
	if topic == "" || len(topic) > maxTokenBytes || strings.ContainsAny(topic, ".*> \t\r\n") {
		return fmt.Errorf("notice topic %s must be one NATS subject token (no dots, wildcards or spaces) of at most %d bytes", quoteShort(topic), maxTokenBytes)
	}
	return nil
}
