package xdsclient

import (
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// pickFirstShuffled connects to one address, trying the others in turn
// when it fails; the order is shuffled so replicas share the proxies.
const pickFirstShuffled = `{"loadBalancingConfig":[{"pick_first":{"shuffleAddressList":true}}]}`

// Dial opens a gRPC channel to the control plane at server: "host:port"
// (a DNS name, such as the control plane's Kubernetes Service, resolves
// to every address it has), or a comma-separated list of replicas
// "host:port,host:port" (outside a cluster, where no Service balances).
// Either way the channel uses the first address that accepts a
// connection, so a proxy whose control plane died reconnects to a
// survivor. Every channel is new: its first attempt is immediate.
func Dial(server string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	addrs, err := SplitServers(server)
	if err != nil {
		return nil, err
	}
	target := server
	if len(addrs) > 1 {
		r := manual.NewBuilderWithScheme("weft-cp")
		state := resolver.State{}
		for _, a := range addrs {
			state.Addresses = append(state.Addresses, resolver.Address{Addr: a})
		}
		r.InitialState(state)
		host, _, _ := net.SplitHostPort(addrs[0])
		target = "weft-cp:///" + host
		opts = append([]grpc.DialOption{grpc.WithResolvers(r)}, opts...)
	}
	opts = append([]grpc.DialOption{grpc.WithDefaultServiceConfig(pickFirstShuffled)}, opts...)
	return grpc.NewClient(target, opts...)
}

// SplitServers checks and splits a control plane address list
// ("host:port" or "host:port,host:port").
func SplitServers(server string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(server, ",") {
		a = strings.TrimSpace(a)
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("control plane address %q: want host:port", a)
		}
		out = append(out, a)
	}
	return out, nil
}
