package redact

import (
	"strings"
	"testing"
)

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

func TestIsSecretQueryKey(t *testing.T) {
	cases := map[string]bool{
		"X-Amz-Signature": true, "x-amz-signature": true, "X-Amz-Security-Token": true, "X-Amz-Credential": true,
		"token": true, "TOKEN": true, "sig": true, "signature": true, "access_token": true, "password": true, "pwd": true,
		"secret": true, "api_key": true, "key": true, "X-Goog-Signature": true, "se_sig": true,
		"X-Amz-Date": false, "X-Amz-Expires": false, "endpoint": false, "region": false, "driver": false, "signal": false,
	}
	for name, want := range cases {
		if got := IsSecretQueryKey(name); got != want {
			t.Errorf("IsSecretQueryKey(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestURLs(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"userinfo", "git clone https://me:ghp_abc@github.com/me/r.git",
			"git clone https://[REDACTED]@github.com/me/r.git"},
		{"user only", "https://tok@host/x", "https://[REDACTED]@host/x"},
		{"at in password", "http://u:p@ss@host:9000/b", "http://[REDACTED]@host:9000/b"},
		{"two urls", "a http://u:one@h1 b https://u:two@h2/p", "a http://[REDACTED]@h1 b https://[REDACTED]@h2/p"},
		{"mail is no url", "mail me@example.com", "mail me@example.com"},
		{"at in path", "https://host/pkg@v1.2", "https://host/pkg@v1.2"},
		{"no secret", "s3://bucket/x?region=eu&driver=minio", "s3://bucket/x?region=eu&driver=minio"},
		{"nested endpoint", "s3://bkt/p?endpoint=http://u:PW@host:9000",
			"s3://bkt/p?endpoint=http://[REDACTED]@host:9000"},
		{"nested endpoint encoded", "s3://bkt/p?endpoint=http%3A%2F%2Fu%3APW%40host%3A9000&region=x",
			"s3://bkt/p?endpoint=http%3A%2F%2F[REDACTED]%40host%3A9000&region=x"},
		{"nested endpoint lower-case escapes", "s3://bkt/p?endpoint=http%3a%2f%2fu%3aPW%40host",
			"s3://bkt/p?endpoint=http%3a%2f%2f[REDACTED]%40host"},
		{"presigned", "s3://bkt/p?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-Expires=900&X-Amz-Security-Token=FwoGZX%2Bx&X-Amz-SignedHeaders=host&X-Amz-Signature=deadbeef01",
			"s3://bkt/p?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=[REDACTED]&X-Amz-Date=20260101T000000Z&X-Amz-Expires=900&X-Amz-Security-Token=[REDACTED]&X-Amz-SignedHeaders=host&X-Amz-Signature=[REDACTED]"},
		{"case", "https://h/f?x-amz-signature=abc&TOKEN=def&Sig=ghi", "https://h/f?x-amz-signature=[REDACTED]&TOKEN=[REDACTED]&Sig=[REDACTED]"},
		{"azure sas", "https://acct.blob.core.windows.net/c/f?sv=2022&se=2026&sp=r&sig=AbC%2Bd%3D", "https://acct.blob.core.windows.net/c/f?sv=2022&se=2026&sp=r&sig=[REDACTED]"},
		{"key-ish", "https://h/f?api_key=abc&apiKey=def&client_secret=ghi&access_token=jkl&password=mno&pwd=pqr",
			"https://h/f?api_key=[REDACTED]&apiKey=[REDACTED]&client_secret=[REDACTED]&access_token=[REDACTED]&password=[REDACTED]&pwd=[REDACTED]"},
		{"fragment and quote end a value", `GET "https://h/f?token=abc#frag": 403`, `GET "https://h/f?token=[REDACTED]#frag": 403`},
		{"escaped quote ends a value", `err="get \"https://h/f?sig=abc\": eof"`, `err="get \"https://h/f?sig=[REDACTED]\": eof"`},
		{"nested query encoded", "s3://b/p?endpoint=https%3A%2F%2Fh%2F%3Ftoken%3Dsecret1%26x%3D1",
			"s3://b/p?endpoint=https%3A%2F%2Fh%2F%3Ftoken%3D[REDACTED]%26x%3D1"},
		{"plain text", "signature mismatch: X-Amz-Signature=abc123 token=t0k password=hunter2 --token=xyz",
			"signature mismatch: X-Amz-Signature=[REDACTED] token=[REDACTED] password=[REDACTED] --token=[REDACTED]"},
		{"only plain names outside a query", "tokens=1024 keys_added=3 key=runs/x/manifest", "tokens=1024 keys_added=3 key=runs/x/manifest"},
		{"empty value", "https://h/f?token=&x=1", "https://h/f?token=&x=1"},
		{"idempotent", "https://[REDACTED]@h/f?sig=[REDACTED]", "https://[REDACTED]@h/f?sig=[REDACTED]"},
		{"punctuation after a value", "bad URL s3://b/p?token=abc: unknown (see ?sig=def), ok", "bad URL s3://b/p?token=[REDACTED]: unknown (see ?sig=[REDACTED]), ok"},
		{"multi-line", "a https://u:p@h/x\nb ?sig=z\n", "a https://[REDACTED]@h/x\nb ?sig=[REDACTED]\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := URLs(c.in)
			if got != c.want {
				t.Errorf("URLs(%q)\n got %q\nwant %q", c.in, got, c.want)
			}
			if again := URLs(got); again != got {
				t.Errorf("URLs is not idempotent: %q, then %q", got, again)
			}
		})
	}
}

func TestValues(t *testing.T) {
	cases := []struct {
		name, in string
		secrets  []string
		want     string
	}{
		{"plain", "key abc123 rejected", []string{"abc123"}, "key [REDACTED] rejected"},
		{"escaped", "k=a%2Fb%2Bc", []string{"a/b+c"}, "k=[REDACTED]"},
		{"short secrets count", "id 42", []string{"42"}, "id [REDACTED]"},
		{"empty secret ignored", "nothing", []string{""}, "nothing"},
	}
	for _, c := range cases {
		if got := Values(c.in, c.secrets...); got != c.want {
			t.Errorf("%s: Values(%q) = %q, want %q", c.name, c.in, got, c.want)
		}
	}
}

func TestEnviron(t *testing.T) {
	env := []string{"AWS_SECRET_ACCESS_KEY=s3cr/t+value", "RUNPOD_API_KEY=short", "BATON_STORE=s3://bucket/x", "NOEQUALS"}
	cases := []struct{ in, want string }{
		{"denied for s3cr/t+value", "denied for [REDACTED]"},
		{"v=s3cr%2Ft%2Bvalue&x=1", "v=[REDACTED]&x=1"},
		{"key short stays", "key short stays"},
		{"s3://bucket/x is fine", "s3://bucket/x is fine"},
		{"git clone https://me:ghp_abc@github.com/me/r.git", "git clone https://[REDACTED]@github.com/me/r.git"},
		{"mail me@example.com", "mail me@example.com"},
		{"get s3://b/k?X-Amz-Signature=ff00", "get s3://b/k?X-Amz-Signature=[REDACTED]"},
	}
	for _, c := range cases {
		if got := Environ(c.in, env); got != c.want {
			t.Errorf("Environ(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestWriter(t *testing.T) {
	cases := []struct {
		name   string
		writes []string
		want   string // after the writes and Flush
		before string // passed on before Flush
	}{
		{"split secret", []string{"get https://u:pa", "ss@host/x\nnext"}, "get https://[REDACTED]@host/x\nnext", "get https://[REDACTED]@host/x\n"},
		{"carriage returns", []string{"\r10% ?sig=ab", "cd\r20%"}, "\r10% ?sig=[REDACTED]\r20%", "\r10% ?sig=[REDACTED]\r"},
		{"env value", []string{"tok=verysecret\n"}, "tok=[REDACTED]\n", "tok=[REDACTED]\n"},
		{"long line", []string{strings.Repeat("x", maxLine)}, strings.Repeat("x", maxLine), strings.Repeat("x", maxLine)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b strings.Builder
			w := NewWriter(&b, []string{"MY_TOKEN=verysecret"})
			for _, s := range c.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if b.String() != c.before {
				t.Errorf("before Flush %q, want %q", b.String(), c.before)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if b.String() != c.want {
				t.Errorf("after Flush %q, want %q", b.String(), c.want)
			}
		})
	}
}
