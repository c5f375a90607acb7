package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/owl-project/owl/internal/client"
	"github.com/owl-project/owl/internal/lambdawire"
)

func newStreamCmd(g *globals) *cobra.Command {
	return newGroupCmd("stream", "Add, list and remove JetStream streams of your own, for stream triggers",
		`A stream keeps the messages published on its NATS subjects (by owl events publish, a
function, or a NATS client on --nats-listen) on disk, up to --max-mb and --max-age, its oldest
going first. A stream trigger (owl trigger add --stream NAME[/FILTER] --function F) invokes a
function with them; with --starting-position TRIM_HORIZON it starts from the oldest the stream
holds. Your streams together hold at most an eighth of the data disk's free space (1 GiB at
most), as Owl's logs do. Removing a stream removes its messages and stops its triggers.`,
		newStreamAddCmd(g), newStreamLsCmd(g),
		newRmCmd(g, "rm NAME...", "Remove streams, their messages, and stop their triggers", (*client.Client).DeleteStream))
}

func newStreamAddCmd(g *globals) *cobra.Command {
	var in lambdawire.StreamInput
	var maxAge time.Duration
	var maxMB int64
	cmd := &cobra.Command{
		Use:     "add NAME --subjects SUBJECT[,SUBJECT...]",
		Short:   "Make a stream of the messages on some subjects",
		Example: `  owl stream add SHOP --subjects 'shop.>' --max-age 72h --max-mb 256`,
		Args:    cobra.ExactArgs(1),
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, args []string) error {
			in.Name, in.MaxAgeSeconds, in.MaxBytes = args[0], int64(maxAge/time.Second), maxMB<<20
			s, err := c.CreateStream(cmd.Context(), in)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s, up to %d MiB (%s)\n", s.Name, strings.Join(s.Subjects, ", "), s.MaxBytes>>20, s.StreamArn)
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringSliceVar(&in.Subjects, "subjects", nil, "the NATS subjects it keeps (wildcards * and > allowed; required)")
	f.DurationVar(&maxAge, "max-age", 0, "drop messages older than this (default: kept until --max-mb)")
	f.Int64Var(&maxMB, "max-mb", 0, "MiB it holds before its oldest messages go (default 64)")
	return cmd
}

func newStreamLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List your streams",
		Args:  cobra.NoArgs,
		RunE: withClient(g, func(cmd *cobra.Command, c *client.Client, _ []string) error {
			ss, err := c.Streams(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSUBJECTS\tMESSAGES\tBYTES\tMAX BYTES\tMAX AGE")
			for _, s := range ss {
				age := "-"
				if s.MaxAgeSeconds > 0 {
					age = (time.Duration(s.MaxAgeSeconds) * time.Second).String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", s.Name, strings.Join(s.Subjects, ","), s.Messages, s.Bytes, s.MaxBytes, age)
			}
			return tw.Flush()
		}),
	}
}
