package examples

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonrun/baton/internal/imagetest"
)

// TestExamplesCompile byte-compiles every example with python3 (syntax only:
// torch, transformers and lightning are not installed here) and checks that
// each keeps the contract's three parts: it reads BATON_CHECKPOINT_DIR, it
// handles SIGTERM, and it resumes from what it finds there.
func TestExamplesCompile(t *testing.T) {
	python := imagetest.LookPath(t, "python3")["python3"] // skips, or fails under BATON_REQUIRE_ALL=1
	examples, err := filepath.Glob("*.py")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"trainer.py", "pytorch_loop.py", "hf_trainer.py", "lightning_trainer.py"} {
		found := false
		for _, e := range examples {
			found = found || e == want
		}
		if !found {
			t.Errorf("examples/%s is missing", want)
		}
	}
	cache := t.TempDir() // keeps __pycache__ out of the checkout
	for _, e := range examples {
		t.Run(e, func(t *testing.T) {
			cmd := exec.Command(python, "-m", "py_compile", e)
			cmd.Env = append(os.Environ(), "PYTHONPYCACHEPREFIX="+cache)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("py_compile %s: %v\n%s", e, err, out)
			}
			src, err := os.ReadFile(e)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"BATON_CHECKPOINT_DIR", "SIGTERM", "resumed from"} {
				if !strings.Contains(string(src), want) {
					t.Errorf("%s does not mention %s", e, want)
				}
			}
		})
	}
}
