package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseLiteral(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{`{'mem_limit': '4G', 'oom_kill_disable': True}`, map[string]any{"mem_limit": "4G", "oom_kill_disable": true}},
		{`{"a": null, "b": false, "c": [1, 2.5, -3]}`, map[string]any{"a": nil, "b": false, "c": []any{int64(1), 2.5, int64(-3)}}},
		{` { 'a' : None , } `, map[string]any{"a": nil}},
		{`{}`, map[string]any{}},
		{`[]`, []any{}},
		{`()`, []any{}},
		{`(1,)`, []any{int64(1)}},
		{`(1)`, int64(1)},
		{`('a', "b")`, []any{"a", "b"}},
		{`"tab\there \u00e9 \U0001F600 \x41 \101 \/ \q"`, "tab\there é 😀 A A / \\q"},
		{`"\ud83d\ude00"`, "😀"},
		{`'it\'s'`, "it's"},
		{`r'C:\dir'`, `C:\dir`},
		{`1_000_000`, int64(1000000)},
		{`0x10`, int64(16)},
		{`+5`, int64(5)},
		{`1e3`, 1000.0},
		{`.5`, 0.5},
		{`-9223372036854775808`, int64(-9223372036854775808)},
		{"{\n  'a': [\n    {'name': 'nofile', 'soft': 1, 'hard': 2},\n  ],\n}", map[string]any{"a": []any{map[string]any{"name": "nofile", "soft": int64(1), "hard": int64(2)}}}},
	}
	for _, tt := range tests {
		got, err := parseLiteral(tt.in)
		if err != nil {
			t.Errorf("parseLiteral(%s): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseLiteral(%s) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestParseLiteralErrors(t *testing.T) {
	tests := map[string]string{
		``:                       "unexpected end of input",
		`{'a': 1`:                "expected ',' or '}'",
		`{'a' 1}`:                "expected ':'",
		`{1: 'a'}`:               "dict keys must be strings",
		`{'a': 1, 'a': 2}`:       `duplicate key "a"`,
		`{'a', 'b'}`:             "expected ':'",
		`'abc`:                   "unterminated string",
		"'a\nb'":                 "unterminated string",
		`[1 2]`:                  "expected ',' or ']'",
		`yes`:                    `unknown name "yes"`,
		`007`:                    "leading zeros",
		`99999999999999999999`:   "out of range",
		`1.2.3`:                  "invalid number",
		`-inf`:                   "invalid number",
		`0x1p3`:                  "invalid number",
		`1 2`:                    "after the value",
		`"\x4"`:                  `invalid \x escape`,
		`"\ud83d"`:               "unpaired surrogate",
		`"\ud83d\u0041"`:         "invalid surrogate pair",
		`"\U00110000"`:           "invalid code point",
		strings.Repeat("[", 100): "nested too deeply",
	}
	for in, want := range tests {
		_, err := parseLiteral(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseLiteral(%q) error = %v, want it to contain %q", in, err, want)
		}
	}
}
