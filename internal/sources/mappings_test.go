package sources

import (
	"slices"
	"strings"
	"testing"
)

func TestSubjectCover(t *testing.T) {
	for _, c := range []struct {
		a, b string
		sub  bool
	}{
		{"orders.created", "orders.*", true},
		{"orders.created", "orders.>", true},
		{"orders.eu.created", "orders.*", false},
		{"orders.eu.created", "orders.>", true},
		{"orders.*", "orders.>", true},
		{"orders.>", "orders.*", false},
		{"orders.*", "orders.created", false},
		{"orders", "orders.>", false},
		{"a.b", "a.b", true},
	} {
		if got := subset(c.a, c.b); got != c.sub {
			t.Errorf("subset(%s, %s) = %v", c.a, c.b, got)
		}
	}
	got := cover([]string{"orders.created", "orders.*", "users.>", "users.new", "orders.*", "pay"})
	if !slices.Equal(got, []string{"orders.*", "pay", "users.>"}) {
		t.Errorf("cover = %v", got)
	}
}

func TestCheckSubject(t *testing.T) {
	for _, s := range []string{"orders", "orders.created", "orders.*", "orders.>", "a-b_c.*.d"} {
		if err := checkSubject(s); err != nil {
			t.Errorf("checkSubject(%s): %v", s, err)
		}
	}
	for s, why := range map[string]string{
		"": "1 to 255", "$SYS.x": "system's", "owl.events.x": "Owl's own", ">": "system's",
		"a..b": "empty token", "a.>.b": "last token", "a b": "tokens are", strings.Repeat("a", 256): "1 to 255",
	} {
		if err := checkSubject(s); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("checkSubject(%.20q) = %v, want %q", s, err, why)
		}
	}
}

func TestItemFailures(t *testing.T) {
	records := []Record{{MessageID: "1"}, {MessageID: "2"}, {MessageID: "3"}}
	for payload, want := range map[string]string{
		``:                          "",
		`null`:                      "",
		`{}`:                        "",
		`{"batchItemFailures": []}`: "",
		`{"batchItemFailures": [{"itemIdentifier": "2"}]}`: "2",
		`{"batchItemFailures": [{"itemIdentifier": "9"}]}`: "1 2 3", // not in the batch
		`{"batchItemFailures": [{"itemIdentifier": ""}]}`:  "1 2 3",
		`not json`: "1 2 3",
	} {
		got := itemFailures([]byte(payload), records)
		var ids []string
		for _, r := range records {
			if got[r.MessageID] {
				ids = append(ids, r.MessageID)
			}
		}
		if strings.Join(ids, " ") != want {
			t.Errorf("itemFailures(%q) = %v, want %q", payload, ids, want)
		}
	}
}

func TestParseSourceARN(t *testing.T) {
	for arn, want := range map[string][2]string{
		"arn:owl:nats:::orders.*":                {"", "orders.*"},
		"arn:owl:jetstream:::SHOP":               {"SHOP", ""},
		"arn:owl:jetstream:::SHOP/shop.orders.>": {"SHOP", "shop.orders.>"},
		"arn:owl:jetstream:::my-stream_2/a.*.c":  {"my-stream_2", "a.*.c"},
		"arn:owl:jetstream:::MY_OWL_x":           {"MY_OWL_x", ""},
	} {
		stream, subject, err := ParseSourceARN(arn)
		if err != nil || stream != want[0] || subject != want[1] {
			t.Errorf("ParseSourceARN(%s) = %q, %q, %v; want %q, %q", arn, stream, subject, err, want[0], want[1])
		}
		if back := (Mapping{Stream: stream, Subject: subject}).ARN(); back != arn {
			t.Errorf("the ARN of %s comes back as %s", arn, back)
		}
	}
	for arn, why := range map[string]string{
		"arn:aws:kinesis:us-east-1:000000000000:stream/s": "Owl's event sources are",
		"arn:owl:jetstream:SHOP":                          "Owl's event sources are",
		"arn:owl:jetstream:::":                            "1 to 255",
		"arn:owl:jetstream:::/a.b":                        "1 to 255",
		"arn:owl:jetstream:::OWL_EVENTS":                  "Owl's own",
		"arn:owl:jetstream:::owl_subjects":                "Owl's own",
		"arn:owl:jetstream:::KV_OWL_FUNCTIONS":            "Owl's own",
		"arn:owl:jetstream:::OBJ_OWL_CODE":                "Owl's own",
		"arn:owl:jetstream:::a.b":                         "stream name has no",
		"arn:owl:jetstream:::a b":                         "stream name has no",
		"arn:owl:jetstream:::SHOP/":                       "1 to 255",
		"arn:owl:jetstream:::SHOP/a.>.b":                  "last token",
		"arn:owl:jetstream:::SHOP/a/b":                    "tokens are",
		"arn:owl:nats:::owl.events.x":                     "Owl's own",
	} {
		if _, _, err := ParseSourceARN(arn); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("ParseSourceARN(%s) = %v, want %q", arn, err, why)
		}
	}
}
