package config

import (
	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
)

// MeshConfigMapName is the ConfigMap Istio reads mesh settings from; its
// data.mesh key holds MeshConfig as YAML.
const MeshConfigMapName = "istio"

// configMap turns Istio's "istio" ConfigMap into a MeshConfig resource.
// Other ConfigMaps carry nothing Weft reads, so they are skipped.
func (w *nodeWalker) configMap(n *yaml.Node, top map[string]*yaml.Node, opts Options) []*Resource {
	w.fields = map[string]Position{}
	var cm corev1.ConfigMap
	before := len(*w.errs)
	w.decodeJSON(n, "", &cm)
	if len(*w.errs) > before || cm.Name != MeshConfigMapName {
		return nil
	}
	text, ok := cm.Data["mesh"]
	if !ok {
		return nil
	}
	info, _ := lookupKind("mesh.istio.io/v1alpha1", string(KindMeshConfig))
	obj, spec, meta := info.newIstio()
	cm.ObjectMeta.DeepCopyInto(meta)
	res := &Resource{Kind: KindMeshConfig, APIVersion: "v1", Pos: w.pos(n), Object: obj, Spec: spec, Meta: meta, Fields: w.fields}

	// Parse the embedded YAML with positions shifted to where the block
	// starts in the outer file, so errors still point at real lines.
	inner := &nodeWalker{file: w.file, errs: w.errs, budget: w.budget, fields: w.fields}
	if data := w.visit(top["data"], "data"); data != nil && data.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(data.Content); i += 2 {
			if data.Content[i].Value == "mesh" {
				v := data.Content[i+1]
				inner.line0 = v.Line - 1
				if v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
					inner.line0 = v.Line
					inner.col0 = data.Content[i].Column + 1
				}
			}
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		e := yamlError(w.file, err)
		if e.Pos.Line > 0 {
			e.Pos.Line += inner.line0
		}
		e.Path = "data.mesh"
		*w.errs = append(*w.errs, e)
		return nil
	}
	if len(doc.Content) > 0 {
		inner.decodeMessage(doc.Content[0], spec.ProtoReflect(), "data.mesh", 1)
	}
	if len(*w.errs) > before {
		return nil
	}
	return w.finish(res, info, opts, top)
}
