package filter

// Metadata is a request's dynamic metadata (Envoy's per-filter
// namespaces): what one filter learned for later filters and the router,
// e.g. the verified JWT payload under envoy.filters.http.jwt_authn, which
// RBAC and route matching read. Values are what encoding/json produces
// (string, float64, bool, nil, []any, map[string]any).
type Metadata struct {
	entries []metaEntry
}

type metaEntry struct {
	filter string
	fields map[string]any
}

// Set replaces the fields of namespace filter.
func (m *Metadata) Set(filter string, fields map[string]any) {
	for i := range m.entries {
		if m.entries[i].filter == filter {
			m.entries[i].fields = fields
			return
		}
	}
	m.entries = append(m.entries, metaEntry{filter, fields})
}

// SetField sets one field in namespace filter.
func (m *Metadata) SetField(filter, key string, v any) {
	for i := range m.entries {
		if m.entries[i].filter == filter {
			if m.entries[i].fields == nil {
				m.entries[i].fields = map[string]any{}
			}
			m.entries[i].fields[key] = v
			return
		}
	}
	m.entries = append(m.entries, metaEntry{filter, map[string]any{key: v}})
}

// Get returns the fields of namespace filter (nil when none).
func (m *Metadata) Get(filter string) map[string]any {
	if m == nil {
		return nil
	}
	for i := range m.entries {
		if m.entries[i].filter == filter {
			return m.entries[i].fields
		}
	}
	return nil
}

// Lookup walks path (keys of nested structs) in namespace filter.
func (m *Metadata) Lookup(filter string, path []string) (any, bool) {
	var v any = m.Get(filter)
	if v == nil {
		return nil, false
	}
	for _, k := range path {
		s, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = s[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

func (m *Metadata) reset() {
	clear(m.entries)
	m.entries = m.entries[:0]
}
