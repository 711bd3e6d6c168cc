// The application of the Debian sample images: a static Go binary, built once per
// platform by sample_images/debian.sh with that platform's GOARCH (and GOARM).
package main

import (
	"fmt"
	"runtime"
)

func main() {
	fmt.Printf("hello, world: Go %s, %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
