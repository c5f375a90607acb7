package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/auth"
)

// clusterBucket is the KV bucket of what the nodes of a cluster share
// outside any one package: today the API credentials. Only Owl's own
// NATS user reaches it (clients on --nats-listen are denied $KV.>).
const clusterBucket = "OWL_CLUSTER"

// errCredentialsDiffer is a node refused because it was given API
// credentials other than its cluster's.
var errCredentialsDiffer = errors.New("this node's API credentials differ from its cluster's")

// shareCredentials makes every node of a cluster accept the same API
// credentials (docs/security.md#a-cluster-of-nodes). The first node to
// store its credentials in OWL_CLUSTER sets the cluster's. A node whose
// credentials were generated at this start (no OWL_* credentials, no
// credentials file: fresh) adopts the cluster's and stores them in its
// data dir; a node given its own (OWL_*, or a credentials file) must
// match them or is refused.
func shareCredentials(ctx context.Context, js jetstream.JetStream, dataDir string, mine auth.Credentials, fresh bool, logger *slog.Logger) (auth.Credentials, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: clusterBucket, History: 1,
		Description: "what the nodes of an Owl cluster share (the API credentials)"})
	if err != nil {
		return mine, fmt.Errorf("opening the cluster's bucket: %w", err)
	}
	data, err := json.Marshal(auth.Credentials{AccessKeyID: mine.AccessKeyID, SecretAccessKey: mine.SecretAccessKey, Token: mine.Token})
	if err != nil {
		return mine, fmt.Errorf("encoding credentials: %w", err)
	}
	_, err = kv.Create(ctx, "credentials", data)
	if err == nil {
		logger.Info("this node set the cluster's API credentials: the other nodes adopt them or must match them")
		return mine, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return mine, fmt.Errorf("storing the cluster's credentials: %w", err)
	}
	e, err := kv.Get(ctx, "credentials")
	if err != nil {
		return mine, fmt.Errorf("reading the cluster's credentials: %w", err)
	}
	var theirs auth.Credentials
	if err := json.Unmarshal(e.Value(), &theirs); err != nil {
		return mine, fmt.Errorf("decoding the cluster's credentials: %w", err)
	}
	switch {
	case theirs.SameAPI(mine):
		return mine, nil
	case fresh:
		logger.Info("adopted the cluster's API credentials", "file", dataDir+"/"+auth.CredentialsFile)
		return auth.Adopt(dataDir, theirs)
	default:
		return mine, fmt.Errorf("%w: give every node the same OWL_ACCESS_KEY_ID, OWL_SECRET_ACCESS_KEY and OWL_TOKEN, "+
			"or start it with an empty data dir and none of them to adopt the cluster's (docs/security.md)", errCredentialsDiffer)
	}
}
