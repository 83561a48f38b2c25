package spell

import "testing"

func TestClosest(t *testing.T) {
	flags := []string{"workers", "part-size", "progress", "s3-driver", "config", "checkpoint-dir", "checkpoint-interval"}
	for _, tc := range []struct {
		word string
		want string
	}{
		{"worker", "workers"},
		{"wrokers", "workers"},
		{"WORKERS", "workers"},
		{"partsize", "part-size"},
		{"progres", "progress"},
		{"chekpoint-dir", "checkpoint-dir"},
		{"checkpoint-intervall", "checkpoint-interval"},
		{"conf", "config"}, // a prefix
		{"x", ""},
		{"frob", ""},
		{"store", ""},
	} {
		if got := Closest(tc.word, flags); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
	if got := Closest("llama-ft-8", []string{"llama-ft-7", "bert-base"}); got != "llama-ft-7" {
		t.Errorf("run names: %q", got)
	}
}
