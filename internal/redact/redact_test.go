package redact

import "testing"

func TestIsSecretName(t *testing.T) {
	cases := map[string]bool{
		"AWS_SECRET_ACCESS_KEY": true, "RUNPOD_API_KEY": true, "metrics-token": true, "DB_PASSWORD": true,
		"GOOGLE_APPLICATION_CREDENTIALS": true, "BATON_STORE": false, "run": false, "PATH": false,
	}
	for name, want := range cases {
		if got := IsSecretName(name); got != want {
			t.Errorf("IsSecretName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestEnviron(t *testing.T) {
	env := []string{"AWS_SECRET_ACCESS_KEY=s3cr/t+value", "RUNPOD_API_KEY=short", "BATON_STORE=s3://bucket/x", "NOEQUALS"}
	cases := []struct{ in, want string }{
		{"denied for s3cr/t+value", "denied for [REDACTED]"},
		{"sig=s3cr%2Ft%2Bvalue&x=1", "sig=[REDACTED]&x=1"},
		{"key short stays", "key short stays"},
		{"s3://bucket/x is fine", "s3://bucket/x is fine"},
		{"git clone https://me:ghp_abc@github.com/me/r.git", "git clone https://[REDACTED]@github.com/me/r.git"},
		{"mail me@example.com", "mail me@example.com"},
	}
	for _, c := range cases {
		if got := Environ(c.in, env); got != c.want {
			t.Errorf("Environ(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
