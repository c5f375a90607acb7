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
