// Package sources owns event source mappings whose source is a NATS
// subject or a JetStream stream of the user's own: Owl captures the
// subjects of its mappings in the JetStream stream OWL_SUBJECTS, reads
// each mapping's messages (from that stream or the user's) through a
// durable consumer of its own, filters them with Lambda's filter patterns, and
// hands them to the function in batches, acknowledging a batch only once
// the function succeeded (ReportBatchItemFailures and retries otherwise,
// then the OnFailure destination).
package sources
