package main

import (
	"slices"
	"testing"
)

func TestBenchParseThreads(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{{"", []int{0}}, {"2", []int{2}}, {"1, 2", []int{1, 2}}} {
		got, err := parseThreads(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseThreads(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"0", "x", "1,,2", "-1"} {
		if _, err := parseThreads(bad); err == nil {
			t.Errorf("parseThreads(%q): no error", bad)
		}
	}
}

func TestBenchWithProfile(t *testing.T) {
	t.Setenv(BackendEnv, "")
	for in, want := range map[string]string{
		"":                   "cpu:profile",
		"cpu":                "cpu:profile",
		"cpu:nofuse":         "cpu:nofuse,profile",
		"cpu:profile":        "cpu:profile",
		"cpu:nofuse,profile": "cpu:nofuse,profile",
		"go":                 "go",
		"go:ops_sequential":  "go:ops_sequential",
	} {
		if got := withProfile(in); got != want {
			t.Errorf("withProfile(%q) = %q, want %q", in, got, want)
		}
	}
	t.Setenv(BackendEnv, "go")
	if got := withProfile(""); got != "go" {
		t.Errorf("withProfile(\"\") with %s=go: %q", BackendEnv, got)
	}
}
