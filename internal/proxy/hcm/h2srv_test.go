package hcm

import "flag"

// -hcm.ownh2 runs the package's tests with weft's own HTTP/2 server
// (Options.OwnHTTP2) in every test proxy.
var ownH2Flag = flag.Bool("hcm.ownh2", false, "serve HTTP/2 with the own server in test proxies")
