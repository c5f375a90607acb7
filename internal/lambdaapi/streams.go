package lambdaapi

import (
	"net/http"
	"time"

	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/sources"
)

// Owl's streams API (/owl/v1/streams): the JetStream streams of the
// user's own that stream mappings read (internal/sources,
// docs/events.md).

// withMappings is an operation on the mappings that answers status and
// the JSON of what op returns (nothing when it is nil).
func withMappings[T any](a *API, status int, op func(ms Mappings, r *http.Request, body []byte) (T, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, body []byte) error {
		ms, err := a.mappings()
		if err != nil {
			return err
		}
		out, err := op(ms, r, body)
		if err != nil {
			return err
		}
		if any(out) == nil {
			w.WriteHeader(status)
			return nil
		}
		writeJSON(w, status, out)
		return nil
	}
}

func (a *API) streamRoutes(h func(pattern string, limit int64, fn handlerFunc)) {
	h("POST /owl/v1/streams", 1<<16, withMappings(a, http.StatusCreated, func(ms Mappings, r *http.Request, body []byte) (*lambdawire.Stream, error) {
		var in lambdawire.StreamInput
		if err := decode(body, &in); err != nil {
			return nil, err
		}
		s, err := ms.CreateStream(r.Context(), sources.StreamInput{Name: in.Name, Subjects: in.Subjects,
			MaxAge: time.Duration(in.MaxAgeSeconds) * time.Second, MaxBytes: in.MaxBytes})
		return wireStream(s), err
	}))
	h("GET /owl/v1/streams", 0, withMappings(a, http.StatusOK, func(ms Mappings, r *http.Request, _ []byte) (*lambdawire.StreamList, error) {
		all, err := ms.ListStreams(r.Context())
		out := &lambdawire.StreamList{Streams: []lambdawire.Stream{}}
		for _, s := range all {
			out.Streams = append(out.Streams, *wireStream(s))
		}
		return out, err
	}))
	h("GET /owl/v1/streams/{name}", 0, withMappings(a, http.StatusOK, func(ms Mappings, r *http.Request, _ []byte) (*lambdawire.Stream, error) {
		s, err := ms.GetStream(r.Context(), r.PathValue("name"))
		return wireStream(s), err
	}))
	h("DELETE /owl/v1/streams/{name}", 0, withMappings(a, http.StatusNoContent, func(ms Mappings, r *http.Request, _ []byte) (any, error) {
		return nil, ms.DeleteStream(r.Context(), r.PathValue("name"))
	}))
}

func wireStream(s sources.Stream) *lambdawire.Stream {
	return &lambdawire.Stream{Name: s.Name, StreamArn: sources.StreamARN(s.Name), Subjects: s.Subjects,
		MaxAgeSeconds: int64(s.MaxAge / time.Second), MaxBytes: s.MaxBytes, Messages: s.Messages, Bytes: s.Bytes,
		FirstSequence: s.FirstSequence, LastSequence: s.LastSequence, CreationTime: s.Created.UTC()}
}
