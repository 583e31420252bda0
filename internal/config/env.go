package config

import (
	"errors"
	"strconv"
	"strings"
)

// ApplyEnv overrides settings from SANDBOX_<KEY> environment variables
// found through lookupEnv (os.LookupEnv in production; nil reads nothing), e.g.
// SANDBOX_BASE_CONTAINER_IMAGE or SANDBOX_TIMEOUT. A variable that is set,
// even to "", overrides; a table or list from the environment replaces the
// file's whole value. Values are read as:
//
//   - bools: true/false, 1/0, yes/no, any case;
//   - integers: decimal;
//   - timeout: seconds ("120") or a Go duration ("2m");
//   - tables: a JSON object or a Python dict literal, as OpenHands reads
//     them: {'mem_limit': '4G', 'oom_kill_disable': True};
//   - lists: a JSON or Python list literal, or comma-separated items.
//
// A variable whose value is malformed or invalid is an error naming it and
// its value; it then changes nothing. Every bad variable is reported.
func (c *Config) ApplyEnv(lookupEnv func(string) (string, bool)) error {
	return errors.Join(c.applyEnv(lookupEnv)...)
}

func (c *Config) applyEnv(lookupEnv func(string) (string, bool)) []error {
	if lookupEnv == nil {
		return nil
	}
	var errs []error
	for _, f := range fields {
		raw, ok := lookupEnv(f.envName())
		if !ok {
			continue
		}
		tmp := c.Sandbox
		ps := setEnv(f.ptr(&tmp), raw)
		if len(ps) == 0 && f.check != nil {
			ps = f.check(tmp)
		}
		if len(ps) > 0 {
			errs = append(errs, ps.errs(f.envName())...)
			continue
		}
		c.Sandbox = tmp
	}
	return errs
}

// setEnv parses an environment value into the field dst points to.
func setEnv(dst any, raw string) problems {
	trimmed := strings.TrimSpace(raw)
	switch p := dst.(type) {
	case *string:
		*p = raw
	case *bool:
		b, ok := parseBool(trimmed)
		if !ok {
			return one(show(raw), "must be true or false (also 1/0, yes/no)")
		}
		*p = b
	case *int:
		n, err := strconv.ParseInt(trimmed, 10, 0)
		if err != nil {
			return problems{{Value: show(raw), Reason: "must be a decimal integer", Err: err}}
		}
		*p = int(n)
	case *Duration:
		var d Duration
		if err := d.UnmarshalText([]byte(trimmed)); err != nil {
			return problems{{Value: show(raw), Reason: `must be seconds (120) or a duration ("2m", "90s")`, Err: err}}
		}
		*p = d
	case *map[string]string, *map[string]any:
		v, err := parseLiteral(raw)
		if err != nil {
			return problems{{Value: show(raw), Err: err,
				Reason: "must be a JSON object or a Python dict, e.g. {'KEY': 'value'} (" + err.Error() + ")"}}
		}
		if _, ok := v.(map[string]any); !ok {
			return one(show(raw), "must be a JSON object or a Python dict, e.g. {'KEY': 'value'}")
		}
		return setValue(dst, v)
	case *[]string:
		if strings.HasPrefix(trimmed, "[") || strings.HasPrefix(trimmed, "(") {
			v, err := parseLiteral(raw)
			if err != nil {
				return problems{{Value: show(raw), Err: err,
					Reason: `must be a JSON or Python list of strings, or comma-separated items (` + err.Error() + ")"}}
			}
			if _, ok := v.([]any); !ok {
				return one(show(raw), `must be a JSON or Python list of strings, or comma-separated items`)
			}
			return setValue(dst, v)
		}
		return setCommaList(p, raw)
	default:
		return setValue(dst, raw)
	}
	return nil
}

// setCommaList splits "a, b,c" into items, trimming spaces; "" is an empty list.
func setCommaList(p *[]string, raw string) problems {
	if strings.TrimSpace(raw) == "" {
		*p = []string{}
		return nil
	}
	items := strings.Split(raw, ",")
	for i, item := range items {
		items[i] = strings.TrimSpace(item)
		if items[i] == "" {
			return one(show(raw), "has an empty item (a stray comma?)")
		}
	}
	*p = items
	return nil
}

func parseBool(s string) (value, ok bool) {
	switch strings.ToLower(s) {
	case "true", "1", "yes":
		return true, true
	case "false", "0", "no":
		return false, true
	}
	return false, false
}
