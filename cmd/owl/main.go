// Command owl is the Owl serverless platform and its client, in one binary.
package main

import (
	"os"

	"github.com/owl-project/owl/internal/cli"
	"github.com/owl-project/owl/internal/sandbox"
)

func main() {
	// When re-executed as a sandbox's init, this never returns.
	sandbox.MaybeRunInit()
	os.Exit(cli.Execute())
}
