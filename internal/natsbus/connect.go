package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MinPayload is the smallest max_payload Owl works with on an external
// NATS server: an invocation forwarded to another node carries up to
// 6 MB of payload, and an asynchronous invocation's record up to 1 MB
// and its envelope. The embedded server is configured with it.
const MinPayload = 8 << 20

// Remote says how to reach an existing NATS server or cluster instead of
// embedding one (owl serve --nats). At most one of Creds, NKeySeed,
// User/Password and Token is the identity; TLS is on when the URL says
// tls:// or when CA or Cert is set.
type Remote struct {
	// URL is one or more comma-separated nats:// or tls:// URLs.
	URL string
	// Creds is a .creds file: a user JWT and its NKey seed (decentralised
	// auth, nsc).
	Creds string
	// NKeySeed is a file holding an NKey user's seed (SU…).
	NKeySeed string
	// User and Password authenticate with a user name and password.
	User, Password string
	// Token authenticates with a token.
	Token string
	// CA is a PEM file of the CAs the server's certificate must chain to;
	// Cert and Key a client certificate for servers that verify clients.
	CA, Cert, Key string
	// Name is the connection's name, shown by the server (nats-server's
	// connz): the node's name.
	Name string
}

// options turns r into nats.go's connection options.
func (r Remote) options() ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name(r.Name), nats.CustomInboxPrefix(InboxPrefix),
		nats.Timeout(5 * time.Second), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
	}
	ids := 0
	if r.Creds != "" {
		ids++
		opts = append(opts, nats.UserCredentials(r.Creds))
	}
	if r.NKeySeed != "" {
		ids++
		o, err := nats.NkeyOptionFromSeed(r.NKeySeed)
		if err != nil {
			return nil, fmt.Errorf("the NKey seed file %s: %w", r.NKeySeed, err)
		}
		opts = append(opts, o)
	}
	if r.User != "" {
		ids++
		opts = append(opts, nats.UserInfo(r.User, r.Password))
	}
	if r.Token != "" {
		ids++
		opts = append(opts, nats.Token(r.Token))
	}
	if ids > 1 {
		return nil, errors.New("give one NATS identity: a creds file, an NKey seed, a user and password, or a token")
	}
	if r.CA != "" {
		opts = append(opts, nats.RootCAs(r.CA))
	}
	if (r.Cert == "") != (r.Key == "") {
		return nil, errors.New("a NATS client certificate needs both its certificate and its key file")
	}
	if r.Cert != "" {
		opts = append(opts, nats.ClientCert(r.Cert, r.Key))
	}
	return opts, nil
}

// Connect connects to the existing NATS server or cluster r names, with
// JetStream: Owl makes its streams and buckets there as on the embedded
// server. The error is one line saying what failed: the URL, the
// credentials, TLS, a server without JetStream, or a max_payload below
// MinPayload.
func Connect(ctx context.Context, r Remote, logger *slog.Logger) (*Bus, error) {
	opts, err := r.options()
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s: %w", r.URL, err)
	}
	nl := logger.With("component", "nats")
	opts = append(opts,
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { nl.Warn("disconnected from NATS", "err", err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { nl.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			nl.Warn("NATS error", "subject", subject, "err", err)
		}))
	nc, err := nats.Connect(r.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s: %w", redact(r.URL), err)
	}
	fail := func(err error) (*Bus, error) {
		nc.Close()
		return nil, fmt.Errorf("NATS at %s: %w", nc.ConnectedUrlRedacted(), err)
	}
	if mp := nc.MaxPayload(); mp < MinPayload {
		return fail(fmt.Errorf("max_payload is %d bytes; Owl needs at least %d (set max_payload: 8MB in the server's configuration)", mp, MinPayload))
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(publishAsyncTimeout))
	if err != nil {
		return fail(fmt.Errorf("JetStream context: %w", err))
	}
	if err := awaitJetStream(ctx, js); err != nil {
		return fail(fmt.Errorf("JetStream does not answer (is it enabled for this account?): %w", err))
	}
	logger.Info("connected to NATS", "server", nc.ConnectedUrlRedacted(), "server_name", nc.ConnectedServerName(),
		"cluster", nc.ConnectedClusterName(), "max_payload", nc.MaxPayload())
	b := &Bus{NC: nc, raw: js}
	b.JS = replicated{JetStream: js, b: b}
	b.startKeeping(logger)
	return b, nil
}

// redact drops the user information of the URLs in u.
func redact(u string) string {
	var out []string
	for _, one := range strings.Split(u, ",") {
		if scheme, rest, ok := strings.Cut(one, "://"); ok {
			if _, host, ok := strings.Cut(rest, "@"); ok {
				one = scheme + "://***@" + host
			}
		}
		out = append(out, one)
	}
	return strings.Join(out, ",")
}

// Embedded reports whether the bus runs its own NATS server (false: it
// is connected to an external one with Connect).
func (b *Bus) Embedded() bool { return b.srv != nil }

// awaitJetStream waits up to 10 s for JetStream to answer: a cluster
// that just started answers "temporarily unavailable" until it elected
// its meta leader.
func awaitJetStream(ctx context.Context, js jetstream.JetStream) error {
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		_, err := js.AccountInfo(actx)
		if err == nil || errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return err
		}
		select {
		case <-actx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}
