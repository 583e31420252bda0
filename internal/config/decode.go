package config

import (
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/BurntSushi/toml"
)

// openHandsOnly lists SandboxConfig keys of OpenHands that berth does not
// implement. They are ignored (and listed in Config.Ignored) rather than
// refused, so an OpenHands config.toml loads as it is.
var openHandsOnly = []string{
	"api_key", "browsergym_eval_env", "close_delay",
	"enable_auto_lint", "initialize_plugins", "keep_runtime_alive",
	"local_runtime_url", "pause_closed_runtimes", "platform",
	"remote_runtime_api_timeout", "remote_runtime_api_url",
	"remote_runtime_class", "remote_runtime_enable_retries",
	"remote_runtime_init_timeout", "remote_runtime_resource_factor",
	"rm_all_containers", "selected_repo", "trusted_dirs",
}

// decode reads TOML text over the defaults. It reports syntax errors,
// unknown [sandbox] keys and values of the wrong type, but does not
// validate values.
func decode(data []byte) (Config, []error) {
	c := Default()
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return c, []error{fmt.Errorf("parsing TOML: %w", err)}
	}
	var errs []error
	if p, ok := raw["pool"]; ok {
		c.Pool, errs = decodePool(p)
	}
	if v, ok := raw["security"]; ok {
		var serr []error
		c.Security, serr = decodeSecurity(v)
		errs = append(errs, serr...)
	}
	if v, ok := raw["server"]; ok {
		var serr []error
		c.Server, serr = decodeServer(v)
		errs = append(errs, serr...)
	}
	sb, present := raw["sandbox"]
	if !present {
		return c, errs
	}
	table, ok := sb.(map[string]any)
	if !ok {
		return c, append(errs, &Error{Key: "sandbox", Value: show(sb), Reason: "must be a table ([sandbox])"})
	}
	for _, k := range slices.Sorted(maps.Keys(table)) {
		f, ok := lookupField(k)
		if !ok && slices.Contains(openHandsOnly, k) {
			c.Ignored = append(c.Ignored, "sandbox."+k)
			continue
		}
		if !ok {
			errs = append(errs, unknownKey(k))
			continue
		}
		errs = append(errs, setValue(f.ptr(&c.Sandbox), table[k]).errs("sandbox."+k)...)
	}
	return c, errs
}

func lookupField(key string) (field, bool) {
	for _, f := range fields {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

func unknownKey(k string) *Error {
	e := &Error{Key: "sandbox." + k, Unknown: true}
	if s := suggest(k, fieldKeys()); s != "" {
		e.Reason = fmt.Sprintf("did you mean %q?", s)
	}
	return e
}

// setValue stores a TOML value (or a parsed literal) into the field dst
// points to, if it has the right type; otherwise it leaves dst alone.
func setValue(dst any, v any) problems {
	switch p := dst.(type) {
	case *string:
		s, ok := v.(string)
		if !ok {
			return one(show(v), "must be a string")
		}
		*p = s
	case *bool:
		b, ok := v.(bool)
		if !ok {
			return one(show(v), "must be true or false")
		}
		*p = b
	case *int:
		n, ok := v.(int64)
		if !ok || n < math.MinInt || n > math.MaxInt {
			return one(show(v), "must be an integer")
		}
		*p = int(n)
	case *Duration:
		var d Duration
		if err := d.UnmarshalTOML(v); err != nil {
			return problems{{Value: show(v), Err: err, Reason: `must be seconds (120) or a duration ("2m", "90s")`}}
		}
		*p = d
	case *map[string]string:
		return setStringMap(p, v)
	case *map[string]any:
		m, ok := v.(map[string]any)
		if !ok {
			return one(show(v), "must be a table")
		}
		*p = normalize(m).(map[string]any)
	case *[]string:
		return setStringList(p, v)
	default:
		panic(fmt.Sprintf("config: field of unhandled type %T", dst))
	}
	return nil
}

func setStringMap(p *map[string]string, v any) problems {
	m, ok := v.(map[string]any)
	if !ok {
		return one(show(v), "must be a table of strings")
	}
	var ps problems
	out := make(map[string]string, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		s, ok := m[k].(string)
		if !ok {
			ps.add(k, show(m[k]), "must be a string")
		}
		out[k] = s
	}
	if len(ps) == 0 {
		*p = out
	}
	return ps
}

func setStringList(p *[]string, v any) problems {
	list, ok := v.([]any)
	if !ok {
		return one(show(v), "must be a list of strings")
	}
	var ps problems
	out := make([]string, len(list))
	for i, item := range list {
		s, ok := item.(string)
		if !ok {
			ps.add(fmt.Sprintf("[%d]", i), show(item), "must be a string")
		}
		out[i] = s
	}
	if len(ps) == 0 {
		*p = out
	}
	return ps
}

// normalize turns TOML arrays of tables ([]map[string]any) into []any, so
// values from TOML and from literals have the same shapes.
func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = normalize(x)
		}
		return out
	case []map[string]any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = normalize(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = normalize(x)
		}
		return out
	}
	return v
}
