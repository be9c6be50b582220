package images

import (
	"context"
	"path/filepath"
	"strings"
)

// spec describes one image: its name under Registry, how it runs, and its
// layers for one architecture.
type spec struct {
	name   string
	run    RunConfig
	layers func(in input) ([]namedLayer, error)
}

// input is what an image's layers are made of for one architecture: the
// compiled binaries and Debian packages (unpackDebs's cache).
type input struct {
	ctx    context.Context
	binDir string
	arch   string
	debs   string
}

type namedLayer struct {
	what  string // for the config's history
	layer layer
}

// Users, as Istio's images have them: the proxy and istiod run as
// istio-proxy (1337), whose traffic the capture rules exempt; pause as
// 65535 like registry.k8s.io/pause.
const (
	uidProxy = 1337
	uidPause = 65535
)

const pathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// base is the bottom layer of every image: the users and groups the
// images run as, name resolution by files then DNS (Go's resolver reads
// nsswitch.conf), and a writable /tmp.
func base() namedLayer {
	passwd := "root:x:0:0:root:/root:/sbin/nologin\n" +
		"istio-proxy:x:1337:1337:istio-proxy:/home/istio-proxy:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"pause:x:65535:65535:pause:/nonexistent:/sbin/nologin\n"
	group := "root:x:0:\nistio-proxy:x:1337:\nnonroot:x:65532:\nnogroup:x:65534:\npause:x:65535:\n"
	return namedLayer{what: "base files", layer: layer{files: []file{
		{Name: "/etc/passwd", Mode: 0o644, Data: []byte(passwd)},
		{Name: "/etc/group", Mode: 0o644, Data: []byte(group)},
		{Name: "/etc/nsswitch.conf", Mode: 0o644, Data: []byte("hosts: files dns\n")},
		{Name: "/tmp", Dir: true, Mode: 0o1777},
		{Name: "/run", Dir: true, Mode: 0o755},
		{Name: "/home/istio-proxy", Dir: true, Mode: 0o755, UID: uidProxy, GID: uidProxy},
		{Name: "/home/nonroot", Dir: true, Mode: 0o755, UID: 65532, GID: 65532},
		{Name: "/root", Dir: true, Mode: 0o700},
	}}}
}

// binLayer holds one of the compiled binaries at /usr/local/bin/<name>;
// images with the same binary share the layer.
func binLayer(binDir, name string) namedLayer {
	return namedLayer{what: "/usr/local/bin/" + name, layer: layer{files: []file{
		{Name: "/usr/local/bin/" + name, Mode: 0o755, Src: filepath.Join(binDir, name)},
	}}}
}

// linkLayer makes each path a symlink to target (a multi-call binary).
func linkLayer(target string, paths ...string) namedLayer {
	var files []file
	for _, p := range paths {
		files = append(files, file{Name: p, Link: target})
	}
	return namedLayer{what: "links to " + target, layer: layer{files: files}}
}

func ports(ps ...string) map[string]struct{} {
	m := map[string]struct{}{}
	for _, p := range ps {
		m[p+"/tcp"] = struct{}{}
	}
	return m
}

func specs() []spec {
	return append([]spec{
		{
			name: "weft",
			// istiod's ports: xDS, xDS+CA over mTLS, monitoring, webhook.
			run: RunConfig{User: "1337:1337", Env: []string{pathEnv}, Entrypoint: []string{"/usr/local/bin/weft"},
				WorkingDir: "/", ExposedPorts: ports("15010", "15012", "15014", "15017")},
			layers: func(in input) ([]namedLayer, error) {
				return []namedLayer{base(), binLayer(in.binDir, "weft")}, nil
			},
		},
		{
			name: "weft-proxy",
			// The injector runs the image with args [sidecar] and the init
			// container with command [weft-proxy iptables …] as root; the
			// iptables binaries it calls ship in the image, for its arch.
			run: RunConfig{User: "1337:1337", Env: []string{pathEnv}, Entrypoint: []string{"/usr/local/bin/weft-proxy"},
				WorkingDir: "/", ExposedPorts: ports("15001", "15006", "15021", "15090")},
			layers: func(in input) ([]namedLayer, error) {
				ipt, versions, err := iptablesFiles(in.ctx, in.debs, in.arch)
				if err != nil {
					return nil, err
				}
				return []namedLayer{base(), binLayer(in.binDir, "weft-proxy"),
					{what: "iptables from Debian: " + strings.Join(versions, ", "), layer: layer{files: ipt}}}, nil
			},
		},
		{
			name: "pause",
			run:  RunConfig{User: "65535:65535", Entrypoint: []string{"/pause"}, WorkingDir: "/"},
			layers: func(in input) ([]namedLayer, error) {
				return []namedLayer{{what: "/pause", layer: layer{files: []file{
					{Name: "/pause", Mode: 0o755, Src: filepath.Join(in.binDir, "weft-pause")},
				}}}}, nil
			},
		},
	}, sampleImages()...)
}

// sampleImages are the images of Istio's samples that Weft's apps stand
// in for, under Istio's image names (examples-bookinfo-*, httpbin, curl):
// the ports and command lines Istio's manifests expect, run by the small
// weft-sample binary as the non-root user 65532.
func sampleImages() []spec {
	// The servers keep serving for 5 s after SIGTERM, as Kubernetes asks
	// of apps behind a Service (samples.Shutdown): a rolling restart then
	// loses nothing while the old endpoint is withdrawn from the clients.
	app := func(name, port string, args ...string) spec {
		args = append(args, "--shutdown-delay=5s")
		return spec{
			name: name,
			run: RunConfig{User: "65532:65532", Env: []string{pathEnv},
				Entrypoint: append([]string{"/usr/local/bin/weft-sample"}, args...), WorkingDir: "/", ExposedPorts: ports(port)},
			layers: func(in input) ([]namedLayer, error) {
				return []namedLayer{base(), binLayer(in.binDir, "weft-sample")}, nil
			},
		}
	}
	out := []spec{
		app("examples-bookinfo-details-v1", "9080", "details", "--listen=:9080"),
		app("examples-bookinfo-ratings-v1", "9080", "ratings", "--listen=:9080"),
	}
	for _, v := range []string{"v1", "v2", "v3"} {
		// Istio's reviews shows its pod's name (HOSTNAME) on the page.
		out = append(out, app("examples-bookinfo-reviews-"+v, "9080", "reviews", "--version="+v, "--listen=:9080", "--pod-name-env=HOSTNAME"))
	}
	out = append(out,
		app("examples-bookinfo-productpage-v1", "9080", "productpage", "--listen=:9080"),
		// go-httpbin, which Istio's httpbin.yaml runs, listens on 8080.
		app("httpbin", "8080", "httpbin", "--listen=:8080"),
		// Istio's curl.yaml runs `/bin/sleep infinity`; the tasks exec curl,
		// some with sh -c (busybox's shell).
		spec{
			name: "curl",
			run:  RunConfig{User: "65532:65532", Env: []string{pathEnv}, Entrypoint: []string{"/usr/bin/curl"}, WorkingDir: "/"},
			layers: func(in input) ([]namedLayer, error) {
				bb, versions, err := busyboxFiles(in.ctx, in.debs, in.arch)
				if err != nil {
					return nil, err
				}
				return []namedLayer{base(), {what: "busybox from Debian: " + strings.Join(versions, ", "), layer: layer{files: bb}},
					binLayer(in.binDir, "weft-sample"),
					linkLayer("/usr/local/bin/weft-sample", "/usr/bin/curl", "/bin/sleep")}, nil
			},
		},
	)
	return out
}
