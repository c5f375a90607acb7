package sources

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Filter patterns are Lambda's event filtering syntax (EventBridge's):
// a JSON object whose keys name fields of the record, nested objects
// descend, and each leaf is an array of what the field may be — a value,
// or a matcher: {"prefix": s}, {"suffix": s}, {"equals-ignore-case": s},
// {"anything-but": value, [values] or {"prefix": s}}, {"numeric": [op,
// n, op, n]}, {"exists": bool}. A record matches when every key matches
// (a field that is an array matches when any element does); a mapping's
// filters are alternatives.

// Pattern is a parsed filter pattern.
type Pattern struct {
	fields map[string]node
}

// node is a nested pattern or a leaf's alternatives.
type node struct {
	nested *Pattern
	alts   []matcher
}

type matcher struct {
	kind   string // "value", "prefix", "suffix", "equals-ignore-case", "anything-but", "anything-but-prefix", "numeric", "exists"
	value  any    // the value, the string, or for anything-but the values ([]any)
	ranges []numCond
	exists bool
}

type numCond struct {
	op string
	n  float64
}

// ParsePattern reads a filter pattern (at most 4096 bytes, as Lambda's).
func ParsePattern(s string) (*Pattern, error) {
	if len(s) > 4096 {
		return nil, fmt.Errorf("a filter pattern is at most 4096 characters (this is %d)", len(s))
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("a filter pattern is a JSON object: %v", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("a filter pattern is a JSON object")
	}
	return parseObject(obj, "")
}

func parseObject(obj map[string]any, at string) (*Pattern, error) {
	if len(obj) == 0 {
		return nil, fmt.Errorf("empty object at %q: name a field", strings.TrimPrefix(at, "."))
	}
	p := &Pattern{fields: map[string]node{}}
	for k, v := range obj {
		path := at + "." + k
		switch v := v.(type) {
		case map[string]any:
			nested, err := parseObject(v, path)
			if err != nil {
				return nil, err
			}
			p.fields[k] = node{nested: nested}
		case []any:
			if len(v) == 0 {
				return nil, fmt.Errorf("%s: an empty list matches nothing", strings.TrimPrefix(path, "."))
			}
			var alts []matcher
			for _, e := range v {
				m, err := parseMatcher(e)
				if err != nil {
					return nil, fmt.Errorf("%s: %v", strings.TrimPrefix(path, "."), err)
				}
				alts = append(alts, m)
			}
			p.fields[k] = node{alts: alts}
		default:
			return nil, fmt.Errorf("%s: a field's value is an object or a list of what it may be, not %v", strings.TrimPrefix(path, "."), v)
		}
	}
	return p, nil
}

func parseMatcher(e any) (matcher, error) {
	switch e := e.(type) {
	case string, json.Number, bool, nil:
		return matcher{kind: "value", value: norm(e)}, nil
	case map[string]any:
		if len(e) != 1 {
			return matcher{}, fmt.Errorf("a matcher has one key (prefix, suffix, equals-ignore-case, anything-but, numeric, exists)")
		}
		for k, v := range e {
			switch k {
			case "prefix", "suffix", "equals-ignore-case":
				s, ok := v.(string)
				if !ok {
					return matcher{}, fmt.Errorf("%s takes a string", k)
				}
				return matcher{kind: k, value: s}, nil
			case "exists":
				b, ok := v.(bool)
				if !ok {
					return matcher{}, fmt.Errorf("exists takes true or false")
				}
				return matcher{kind: k, exists: b}, nil
			case "anything-but":
				switch v := v.(type) {
				case map[string]any:
					pre, ok := v["prefix"].(string)
					if !ok || len(v) != 1 {
						return matcher{}, fmt.Errorf("anything-but takes a value, a list of values or {\"prefix\": string}")
					}
					return matcher{kind: "anything-but-prefix", value: pre}, nil
				case []any:
					vals := make([]any, len(v))
					for i, x := range v {
						vals[i] = norm(x)
					}
					return matcher{kind: k, value: vals}, nil
				default:
					return matcher{kind: k, value: []any{norm(v)}}, nil
				}
			case "numeric":
				return parseNumeric(v)
			}
			return matcher{}, fmt.Errorf("unknown matcher %q", k)
		}
	}
	return matcher{}, fmt.Errorf("%v is not a value or a matcher", e)
}

func parseNumeric(v any) (matcher, error) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 || len(list)%2 != 0 || len(list) > 4 {
		return matcher{}, fmt.Errorf("numeric takes [op, number] or [op, number, op, number]")
	}
	m := matcher{kind: "numeric"}
	for i := 0; i < len(list); i += 2 {
		op, _ := list[i].(string)
		switch op {
		case "=", "<", "<=", ">", ">=":
		default:
			return matcher{}, fmt.Errorf("numeric operator %v: want =, <, <=, > or >=", list[i])
		}
		n, ok := list[i+1].(json.Number)
		if !ok {
			return matcher{}, fmt.Errorf("numeric %s takes a number, not %v", op, list[i+1])
		}
		f, err := n.Float64()
		if err != nil {
			return matcher{}, fmt.Errorf("numeric %s %v: %v", op, n, err)
		}
		m.ranges = append(m.ranges, numCond{op, f})
	}
	return m, nil
}

// norm makes JSON numbers comparable (float64).
func norm(v any) any {
	if n, ok := v.(json.Number); ok {
		if f, err := n.Float64(); err == nil {
			return f
		}
	}
	return v
}

// Match reports whether record (decoded JSON, numbers as json.Number or
// float64) matches p.
func (p *Pattern) Match(record any) bool {
	obj, _ := record.(map[string]any)
	for k, n := range p.fields {
		v, present := obj[k]
		if n.nested != nil {
			if !present || !n.nested.Match(v) {
				return false
			}
			continue
		}
		if !n.matchLeaf(v, present) {
			return false
		}
	}
	return true
}

func (n node) matchLeaf(v any, present bool) bool {
	for _, m := range n.alts {
		if m.kind == "exists" {
			if m.exists == present {
				return true
			}
			continue
		}
		if !present {
			continue
		}
		if list, ok := v.([]any); ok {
			for _, e := range list {
				if m.match(norm(e)) {
					return true
				}
			}
			continue
		}
		if m.match(norm(v)) {
			return true
		}
	}
	return false
}

func (m matcher) match(v any) bool {
	s, isString := v.(string)
	switch m.kind {
	case "value":
		return v == m.value
	case "prefix":
		return isString && strings.HasPrefix(s, m.value.(string))
	case "suffix":
		return isString && strings.HasSuffix(s, m.value.(string))
	case "equals-ignore-case":
		return isString && strings.EqualFold(s, m.value.(string))
	case "anything-but-prefix":
		return isString && !strings.HasPrefix(s, m.value.(string))
	case "anything-but":
		for _, x := range m.value.([]any) {
			if v == x {
				return false
			}
		}
		return true
	case "numeric":
		f, ok := v.(float64)
		if !ok {
			return false
		}
		for _, c := range m.ranges {
			if !compare(f, c) {
				return false
			}
		}
		return true
	}
	return false
}

func compare(f float64, c numCond) bool {
	switch c.op {
	case "=":
		return f == c.n
	case "<":
		return f < c.n
	case "<=":
		return f <= c.n
	case ">":
		return f > c.n
	default:
		return f >= c.n
	}
}

// decodeJSON decodes b with numbers as json.Number.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}
