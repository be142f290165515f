package main

import (
	"fmt"
	"strings"

	"github.com/alecthomas/kingpin/v2"

	"github.com/anomaly-exporter/anomaly_exporter/config"
)

// checkConfigCmd is `check config`: the pre-flight of a reload, for CI and for operators, as
// `promtool check config` is for Prometheus.
type checkConfigCmd struct {
	files []string
}

func (c *checkConfigCmd) register(check *kingpin.CmdClause) {
	cmd := check.Command("config", "Check that configuration files load, as the exporter would load them.")
	cmd.Arg("config-files", "The configuration files to check.").Required().StringsVar(&c.files)
}

// run checks every file, even after a failure, so that one run reports every broken file.
func (c *checkConfigCmd) run(std stdio) error {
	var bad bool
	for _, f := range c.files {
		if _, err := config.LoadFile(f); err != nil {
			bad = true
			// The error starts with the file name; say FAILED where SUCCESS would be, for grep.
			fmt.Fprintf(std.err, "%s: FAILED: %s\n", f, strings.TrimPrefix(err.Error(), f+": "))
			continue
		}
		fmt.Fprintf(std.out, "%s: SUCCESS\n", f)
	}
	if bad {
		return failed{}
	}
	return nil
}
