package sources

import (
	"strings"
	"testing"
)

// TestFilterMatchesAWSExamples: the comparison operators of Lambda's
// "Control which events Lambda sends to your function" page, each with a
// record it keeps and one it drops.
func TestFilterMatchesAWSExamples(t *testing.T) {
	for _, c := range []struct {
		pattern, keep, drop string
	}{
		{`{"UserID": [null]}`, `{"UserID": null}`, `{"UserID": "x"}`},
		{`{"LastName": [""]}`, `{"LastName": ""}`, `{"LastName": "Doe"}`},
		{`{"Name": ["Alice"]}`, `{"Name": "Alice"}`, `{"Name": "alice"}`},
		{`{"Name": [{"equals-ignore-case": "alice"}]}`, `{"Name": "ALICE"}`, `{"Name": "Bob"}`},
		{`{"Location": ["New York"], "Day": ["Monday"]}`, `{"Location": "New York", "Day": "Monday"}`, `{"Location": "New York", "Day": "Tuesday"}`},
		{`{"PaymentType": ["Credit", "Debit"]}`, `{"PaymentType": "Debit"}`, `{"PaymentType": "Cash"}`},
		{`{"Weather": [{"anything-but": ["Raining"]}]}`, `{"Weather": "Sunny"}`, `{"Weather": "Raining"}`},
		{`{"Weather": [{"anything-but": {"prefix": "Rain"}}]}`, `{"Weather": "Sunny"}`, `{"Weather": "Rainy"}`},
		{`{"Price": [{"numeric": ["=", 100]}]}`, `{"Price": 100}`, `{"Price": 100.5}`},
		{`{"Price": [{"numeric": [">", 10, "<=", 20]}]}`, `{"Price": 20}`, `{"Price": 10}`},
		{`{"ProductName": [{"exists": true}]}`, `{"ProductName": "owl"}`, `{"Other": 1}`},
		{`{"ProductName": [{"exists": false}]}`, `{"Other": 1}`, `{"ProductName": "owl"}`},
		{`{"Region": [{"prefix": "us-"}]}`, `{"Region": "us-east-1"}`, `{"Region": "eu-west-1"}`},
		{`{"FileName": [{"suffix": ".png"}]}`, `{"FileName": "owl.png"}`, `{"FileName": "owl.jpg"}`},
		// Nested fields, as SQS bodies are filtered; arrays match on any element.
		{`{"body": {"RequestCode": ["BBBB"]}}`, `{"body": {"RequestCode": "BBBB"}}`, `{"body": {"RequestCode": "AAAA"}}`},
		{`{"tags": ["urgent"]}`, `{"tags": ["low", "urgent"]}`, `{"tags": ["low"]}`},
		{`{"body": {"n": [{"numeric": [">=", 5]}]}}`, `{"body": {"n": 7}}`, `{"body": "not an object"}`},
	} {
		p, err := ParsePattern(c.pattern)
		if err != nil {
			t.Errorf("%s: %v", c.pattern, err)
			continue
		}
		keep, _ := decodeJSON([]byte(c.keep))
		drop, _ := decodeJSON([]byte(c.drop))
		if !p.Match(keep) {
			t.Errorf("%s drops %s", c.pattern, c.keep)
		}
		if p.Match(drop) {
			t.Errorf("%s keeps %s", c.pattern, c.drop)
		}
	}
}

func TestBadPatterns(t *testing.T) {
	for pattern, want := range map[string]string{
		`[]`:                               "JSON object",
		`{"a": 1}`:                         "not 1",
		`{"a": []}`:                        "empty list",
		`{}`:                               "empty object",
		`{"a": [{"prefix": 1}]}`:           "prefix takes a string",
		`{"a": [{"numeric": [">"]}]}`:      "numeric takes",
		`{"a": [{"numeric": ["!=", 1]}]}`:  "numeric operator",
		`{"a": [{"numeric": [">", "x"]}]}`: "takes a number",
		`{"a": [{"exists": "yes"}]}`:       "exists takes",
		`{"a": [{"regex": "x"}]}`:          "unknown matcher",
		`{"a": [{"prefix": "x", "suffix": "y"}]}`:      "one key",
		`{"a": {"b": [[1]]}}`:                          "not a value",
		`{"a": [{"anything-but": {"suffix": 1}}]}`:     "anything-but takes",
		`{"a": ["` + strings.Repeat("x", 5000) + `"]}`: "4096",
		`{"a": `: "JSON object",
	} {
		if _, err := ParsePattern(pattern); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePattern(%.60s) = %v, want an error saying %q", pattern, err, want)
		}
	}
}
