package server

import (
	"bytes"
	"fmt"

	"gopkg.in/yaml.v3"
)

// RedactSecretYAML returns a Secret document with the values of data and
// stringData replaced by their size, keeping the keys (as kubectl
// describe does): a reader learns which keys exist, never their content.
// A document that does not parse is replaced whole.
func RedactSecretYAML(doc []byte) []byte {
	var n yaml.Node
	if err := yaml.Unmarshal(doc, &n); err != nil || n.Kind != yaml.DocumentNode || len(n.Content) == 0 || n.Content[0].Kind != yaml.MappingNode {
		return []byte("# Secret: content redacted\n")
	}
	stripComments(&n) // a comment may quote anything
	top := n.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		if k.Value != "data" && k.Value != "stringData" {
			continue
		}
		if v.Kind != yaml.MappingNode {
			*v = yaml.Node{Kind: yaml.ScalarNode, Value: "<redacted>"}
			continue
		}
		for j := 0; j+1 < len(v.Content); j += 2 {
			val := v.Content[j+1]
			size := len(val.Value)
			*val = yaml.Node{Kind: yaml.ScalarNode, Value: fmt.Sprintf("<redacted: %d bytes>", size)}
		}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return []byte("# Secret: content redacted\n")
	}
	enc.Close()
	return b.Bytes()
}

func stripComments(n *yaml.Node) {
	n.HeadComment, n.LineComment, n.FootComment = "", "", ""
	for _, c := range n.Content {
		stripComments(c)
	}
}
