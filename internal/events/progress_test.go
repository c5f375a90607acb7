package events

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/testkit/natstest"
)

// TestKeepInProgress: a message kept in progress is not redelivered for
// many times its AckWait; once stopped, it is redelivered after it.
func TestKeepInProgress(t *testing.T) {
	const ackWait = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	js := natstest.Start(t).JS
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PROGRESS", Subjects: []string{"progress.>"}})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "worker", AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "progress.a", []byte("work")); err != nil {
		t.Fatal(err)
	}
	fetch := func(wait time.Duration) (jetstream.Msg, bool) {
		t.Helper()
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(wait))
		if err != nil {
			t.Fatal(err)
		}
		for msg := range batch.Messages() {
			return msg, true
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			t.Fatal(err)
		}
		return nil, false
	}
	msg, ok := fetch(30 * time.Second)
	if !ok {
		t.Fatal("the published message was not delivered")
	}

	// Progress every 100 ms: twenty reports to each AckWait.
	stop := KeepInProgress(100*time.Millisecond, msg)
	if again, ok := fetch(3 * ackWait); ok {
		meta, _ := again.Metadata()
		stop()
		t.Fatalf("a message kept in progress was redelivered (delivery %d)", meta.NumDelivered)
	}
	stop()

	again, ok := fetch(30 * time.Second)
	if !ok {
		t.Fatal("a message no longer in progress and never acknowledged was not redelivered")
	}
	if meta, err := again.Metadata(); err != nil || meta.NumDelivered != 2 || string(again.Data()) != "work" {
		t.Errorf("the redelivery: %q, %+v, %v; want delivery 2 of the same message", again.Data(), meta, err)
	}
	if err := again.Ack(); err != nil {
		t.Fatal(err)
	}
}
