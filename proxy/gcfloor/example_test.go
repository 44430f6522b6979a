package gcfloor_test

import (
	"os"

	"github.com/sessionproxy/sessionproxy/proxy/gcfloor"
)

// A program keeps a 32 MiB floor for its whole run, unless GOGC in its
// environment says how its heap should grow.
func ExampleStart() {
	if os.Getenv("GOGC") == "" {
		floor := gcfloor.Start(gcfloor.Options{Bytes: 32 << 20})
		defer floor.Close()
	}
	// ... the program's work ...
}
