package natsbus

import (
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// fetchPatience is how long FetchNoWait asks again while nobody answers.
const fetchPatience = 5 * time.Second

// FetchNoWait is cons.FetchNoWait(n), its messages read into a slice,
// asked again for up to 5 s while nobody answers: in a cluster, a
// consumer just made lives on some server, and the other servers learn of
// it a moment later (a single node answers at once). The error is the
// batch's (jetstream.ErrNoMessages and the like included).
func FetchNoWait(cons jetstream.Consumer, n int) ([]jetstream.Msg, error) {
	deadline := time.Now().Add(fetchPatience)
	for {
		batch, err := cons.FetchNoWait(n)
		if err != nil {
			return nil, err
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		err = batch.Error()
		if len(msgs) > 0 || !errors.Is(err, nats.ErrNoResponders) || time.Now().After(deadline) {
			return msgs, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
