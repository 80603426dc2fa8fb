//go:build ignore

// mage.go lets anyone run the pipeline without installing mage:
//
//	go run mage.go          # build packages into dist/
//	go run mage.go test     # run the whole test suite
//	go run mage.go -l       # list targets
package main

import (
	"os"

	"github.com/magefile/mage/mage"
)

func main() { os.Exit(mage.Main()) }
