package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/weftmesh/weft/internal/config"
)

// doc is one YAML document of a file, with the resources it defines (a
// List defines several; a broken document none).
type doc struct {
	node *yaml.Node
	keys []config.Key
}

// maxDocs bounds how many documents one file may hold.
const maxDocs = 10000

// splitDocs cuts a YAML or JSON stream into documents and finds, with the
// real loader, which resources each defines. It is used to rewrite one
// document of a file and to show a resource as it was written.
func splitDocs(name string, data []byte, opts config.Options) ([]*doc, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []*doc
	for len(out) < maxDocs {
		n := &yaml.Node{}
		err := dec.Decode(n)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(n.Content) == 0 || (n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null") {
			continue
		}
		for _, item := range listItems(n) {
			b, err := encodeDocs([]*yaml.Node{item})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			d := &doc{node: item}
			rs, _ := config.LoadReader(name, bytes.NewReader(b), opts)
			for _, r := range rs {
				d.keys = append(d.keys, r.Key())
			}
			out = append(out, d)
		}
	}
	return nil, fmt.Errorf("%s: more than %d documents", name, maxDocs)
}

// listItems expands a "kind: List" document into one document per item,
// so each resource can be replaced or deleted on its own.
func listItems(n *yaml.Node) []*yaml.Node {
	m := n
	if m.Kind == yaml.DocumentNode && len(m.Content) == 1 {
		m = m.Content[0]
	}
	if m.Kind != yaml.MappingNode {
		return []*yaml.Node{n}
	}
	var kind string
	var items *yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		switch m.Content[i].Value {
		case "kind":
			kind = m.Content[i+1].Value
		case "items":
			items = m.Content[i+1]
		}
	}
	if kind != "List" || items == nil || items.Kind != yaml.SequenceNode {
		return []*yaml.Node{n}
	}
	out := make([]*yaml.Node, 0, len(items.Content))
	for _, it := range items.Content {
		out = append(out, &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{it}})
	}
	return out
}

func encodeDocs(nodes []*yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	for _, n := range nodes {
		if err := enc.Encode(n); err != nil {
			return nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (d *doc) has(k config.Key) bool {
	for _, dk := range d.keys {
		if dk == k {
			return true
		}
	}
	return false
}

// fileName is where apply writes a new resource: <kind>-<ns>-<name>.yaml.
func fileName(k config.Key) string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.':
				return r
			case r >= 'A' && r <= 'Z':
				return r + ('a' - 'A')
			}
			return '_'
		}, s)
	}
	ns := k.Namespace
	if ns == "" {
		ns = "cluster"
	}
	return fmt.Sprintf("%s-%s-%s.yaml", clean(string(k.Kind)), clean(ns), strings.TrimLeft(clean(k.Name), "."))
}
