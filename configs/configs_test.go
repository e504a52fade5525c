package configs

import (
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	tree, err := Load("tokenizer/cifar10_peco.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := tree.At("task.type"); !ok || v != "tokenizer" {
		t.Errorf("task.type = %v, %v", v, ok)
	}
	if _, err := Load("mim/cifar10_tokens.yaml"); err == nil || !strings.Contains(err.Error(), "_base_") {
		t.Errorf("a config with _base_: error %v", err)
	}
	if _, err := Load("nope.yaml"); err == nil {
		t.Error("a missing config loaded")
	}
}
