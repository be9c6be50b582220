package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"
	sigsyaml "sigs.k8s.io/yaml"
)

// TestLoaderMatchesProtojson decodes every example and golden config
// document twice, with the loader's own YAML→proto walk and with
// YAML→JSON→protojson (what Istio's CRD path does, unknown fields rejected),
// and requires the same spec proto. The walk exists for positions and
// every-error reporting; it must not change what a document means.
// examples/invalid is skipped. Documents protojson rejects (the loader also takes Go-style durations
// such as "3m") are counted, and must be few. A MeshConfig is compared
// overlaid on DefaultMeshConfig, as the loader decodes it.
func TestLoaderMatchesProtojson(t *testing.T) {
	var files []string
	for _, root := range []string{filepath.Join("..", "..", "examples"), filepath.Join("..", "controlplane", "translate", "testdata")} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "invalid" {
				return filepath.SkipDir // documents meant to fail
			}
			if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	compared, rejected := 0, 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			var doc yaml.Node
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			one, err := yaml.Marshal(&doc)
			if err != nil {
				t.Fatal(err)
			}
			res, err := LoadReader(f, bytes.NewReader(one), Options{})
			if err != nil || len(res) != 1 || res[0].Spec == nil {
				continue // invalid examples, Services, Secrets: nothing to compare
			}
			docJSON, err := sigsyaml.YAMLToJSON(one)
			if err != nil {
				t.Fatalf("%s doc %d: to JSON: %v", f, i, err)
			}
			var top map[string]json.RawMessage
			if err := json.Unmarshal(docJSON, &top); err != nil {
				t.Fatalf("%s doc %d: %v", f, i, err)
			}
			js, ok := top["spec"]
			if !ok {
				continue
			}
			want := res[0].Spec.ProtoReflect().New().Interface()
			if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, want); err != nil {
				t.Logf("%s doc %d (%s %s): protojson rejects what the loader takes: %v", f, i, res[0].Kind, res[0].Name, err)
				rejected++
				continue
			}
			if res[0].Kind == KindMeshConfig {
				// The loader decodes a MeshConfig over Istio's defaults, as
				// Istio's ApplyMeshConfig does: objects merge into the default
				// message, anything else the document names replaces it (an
				// explicit zero such as mode: REGISTRY_ONLY too).
				d := DefaultMeshConfig().ProtoReflect()
				overlay(t, d, want.ProtoReflect(), js)
				want = d.Interface()
			}
			compared++
			if !proto.Equal(want, res[0].Spec) {
				t.Errorf("%s doc %d (%s %s): loader and protojson disagree\nprotojson: %s\nloader:    %s",
					f, i, res[0].Kind, res[0].Name, prototext.Format(want), prototext.Format(res[0].Spec))
			}
		}
	}
	t.Logf("%d specs compared, %d rejected by protojson, from %d files", compared, rejected, len(files))
	if compared < 50 {
		t.Fatalf("only %d specs compared", compared)
	}
	if rejected > compared/10 {
		t.Fatalf("protojson rejected %d of %d specs", rejected, compared+rejected)
	}
}

// overlay sets on dst every field the JSON object js names, taking the value
// from src (js decoded by protojson); a nested object that dst already
// holds is overlaid recursively instead of replaced.
func overlay(t *testing.T, dst, src protoreflect.Message, js json.RawMessage) {
	t.Helper()
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(js, &keys); err != nil {
		t.Fatal(err)
	}
	fields := dst.Descriptor().Fields()
	for k, v := range keys {
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByTextName(k)
		}
		if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() && dst.Has(fd) &&
			len(v) > 0 && v[0] == '{' && !strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf.") {
			overlay(t, dst.Mutable(fd).Message(), src.Get(fd).Message(), v)
			continue
		}
		dst.Set(fd, src.Get(fd))
	}
}

// FuzzLoaderMatchesProtojson: for any document both the loader and
// protojson accept, the two decode the same spec.
func FuzzLoaderMatchesProtojson(f *testing.F) {
	for _, s := range []string{
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n  - route: [{destination: {host: r, subset: v1}, weight: 100}]\n    timeout: 1s\n",
		"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: r\n  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}, loadBalancer: {simple: LEAST_REQUEST}}\n",
		"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  action: DENY\n  rules: [{from: [{source: {principals: [\"cluster.local/ns/x/sa/y\"]}}]}]\n",
		"{\"apiVersion\": \"networking.istio.io/v1\", \"kind\": \"Gateway\", \"metadata\": {\"name\": \"g\"}, \"spec\": {\"servers\": [{\"port\": {\"number\": 80, \"name\": \"http\", \"protocol\": \"HTTP\"}, \"hosts\": [\"*\"]}]}}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		res, err := LoadReader("fuzz.yaml", bytes.NewReader(doc), Options{})
		if err != nil || len(res) != 1 || res[0].Spec == nil || res[0].Kind == KindMeshConfig {
			return
		}
		docJSON, err := sigsyaml.YAMLToJSON(doc)
		if err != nil {
			return
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(docJSON, &top) != nil || top["spec"] == nil {
			return
		}
		want := res[0].Spec.ProtoReflect().New().Interface()
		if (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(top["spec"], want) != nil {
			return
		}
		if !proto.Equal(want, res[0].Spec) {
			t.Fatalf("loader and protojson disagree\nprotojson: %s\nloader:    %s", prototext.Format(want), prototext.Format(res[0].Spec))
		}
	})
}
