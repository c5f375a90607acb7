package lambdawire

// UsageRow is the usage of one function over one period (GET
// /owl/v1/usage): its invocations (throttled ones are not: they never
// ran), those that ended in an error, the billed milliseconds (each
// invocation's REPORT Billed Duration: its duration plus any init, rounded
// up to the millisecond) and the compute they billed.
type UsageRow struct {
	Function string `json:"Function"`
	// Period is the start of the hour or day (RFC 3339, UTC) with
	// ?by=hour or ?by=day; empty for the whole range.
	Period      string `json:"Period,omitempty"`
	Invocations int64  `json:"Invocations"`
	Errors      int64  `json:"Errors"`
	BilledMs    int64  `json:"BilledMs"`
	// MBMs is the billed milliseconds times the memory in MB, exact;
	// GBSeconds is the same compute in GB-seconds (MBMs / 1024 / 1000).
	MBMs      int64   `json:"MBMs"`
	GBSeconds float64 `json:"GBSeconds"`
}

// UsageReport answers GET /owl/v1/usage: rows by period, then function.
type UsageReport struct {
	Usage []UsageRow `json:"Usage"`
}
