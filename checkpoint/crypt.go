package checkpoint

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/batonrun/baton/internal/directio"
	"github.com/batonrun/baton/sync/storage"
	"lukechampine.com/blake3"
)

// KeySize is the length of an encryption key: 32 bytes.
const KeySize = 32

// CipherName names the AEAD that seals an encrypted run's objects.
const CipherName = "aes-256-gcm"

// sealOverhead is what sealing adds to an object: a 12-byte nonce and a
// 16-byte tag.
const sealOverhead = 12 + 16

// Key is the master key of an encrypted run (see docs/checkpoint-format.md,
// "Encryption"), with the keys derived from it.
type Key struct {
	names []byte      // the key of keyed BLAKE3 for chunk names
	aead  cipher.AEAD // AES-256-GCM under the content key
	id    string
}

// NewKey derives the keys of the 32-byte master key.
func NewKey(master []byte) (*Key, error) {
	if len(master) != KeySize {
		return nil, fmt.Errorf("an encryption key is %d bytes, not %d", KeySize, len(master))
	}
	derive := func(info string) []byte {
		k, err := hkdf.Key(sha256.New, master, nil, info, 32)
		if err != nil {
			panic(err) // only for lengths HKDF cannot produce
		}
		return k
	}
	block, err := aes.NewCipher(derive("baton-v1 content"))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Key{names: derive("baton-v1 chunk names"), aead: aead, id: hex.EncodeToString(derive("baton-v1 key id")[:16])}, nil
}

// ParseKey reads a key as --encryption-key takes it: standard base64 of 32
// bytes, or "@PATH" for a key file (see LoadKeyFile).
func ParseKey(s string) (*Key, error) {
	if p, ok := strings.CutPrefix(s, "@"); ok {
		return LoadKeyFile(p)
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("the encryption key is not base64 (want 32 bytes in standard base64, or @PATH of a key file)")
	}
	return NewKey(b)
}

// LoadKeyFile reads a key file: the key in base64, or exactly 32 raw bytes.
func LoadKeyFile(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the encryption key: %w", err)
	}
	if len(b) == KeySize { // base64 of 32 bytes is 44 characters
		return NewKey(b)
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("the encryption key file %s holds neither 32 raw bytes nor base64", path)
	}
	return NewKey(k)
}

// ID is the key id: 32 hex digits that tell keys apart and reveal nothing
// of the keys that name and seal.
func (k *Key) ID() string { return k.id }

// Encryption marks an encrypted run in latest.json and lease.json.
type Encryption struct {
	Cipher string `json:"cipher"`
	KeyID  string `json:"key_id"`
}

func (k *Key) marker() *Encryption {
	if k == nil {
		return nil
	}
	return &Encryption{Cipher: CipherName, KeyID: k.id}
}

// ErrEncrypted: the run is encrypted and no key was given. ErrWrongKey: the
// key given is not the run's.
var (
	ErrEncrypted = errors.New("the run is encrypted")
	ErrWrongKey  = errors.New("the key does not fit the run")
)

// KeyError says that a run cannot be read with the key given (none, or
// another). It wraps ErrEncrypted or ErrWrongKey.
type KeyError struct {
	Run        string
	RunKeyID   string // the run's key id
	GivenKeyID string // "" when no key was given
	env        *envelope
}

func (e *KeyError) Error() string {
	if e.GivenKeyID == "" {
		return fmt.Sprintf("run %s is encrypted: pass its key (--encryption-key or BATON_ENCRYPTION_KEY)", e.Run)
	}
	return fmt.Sprintf("the key does not fit run %s (the run's key id is %s, this key's is %s)", e.Run, e.RunKeyID, e.GivenKeyID)
}

// Unwrap makes errors.Is(err, ErrEncrypted) or errors.Is(err, ErrWrongKey)
// true.
func (e *KeyError) Unwrap() error {
	if e.GivenKeyID == "" {
		return ErrEncrypted
	}
	return ErrWrongKey
}

// checkKey returns nil if this repository's key reads a run marked enc (nil:
// a plain run).
func (r *Repo) checkKey(enc *Encryption) error {
	switch {
	case enc == nil && r.key != nil:
		return fmt.Errorf("run %s is not encrypted: read and commit it without an encryption key", r.opts.Run)
	case enc == nil:
		return nil
	case r.key == nil:
		return &KeyError{Run: r.opts.Run, RunKeyID: enc.KeyID}
	case enc.KeyID != r.key.id || enc.Cipher != CipherName:
		return &KeyError{Run: r.opts.Run, RunKeyID: enc.KeyID, GivenKeyID: r.key.id}
	}
	return nil
}

// chunkName names a chunk: its BLAKE3-256, keyed in an encrypted run.
func (r *Repo) chunkName(data []byte) string {
	if r.key == nil {
		sum := blake3.Sum256(data)
		return hex.EncodeToString(sum[:])
	}
	h := blake3.New(32, r.key.names)
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// storedLen is the length of the object of a chunk of n bytes.
func (r *Repo) storedLen(n int64) int64 {
	if r.key == nil {
		return n
	}
	return n + sealOverhead
}

func chunkAD(name string) []byte { return []byte("baton-v1 chunk " + name) }
func manifestAD(run string, seq int64) []byte {
	return fmt.Appendf(nil, "baton-v1 manifest %s %d", run, seq)
}

// seal returns nonce || AES-GCM(plaintext) with associated data ad.
func (k *Key) seal(plaintext, ad []byte) []byte {
	out := make([]byte, 12, len(plaintext)+sealOverhead)
	if _, err := rand.Read(out); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return k.aead.Seal(out, out, plaintext, ad)
}

// open authenticates and decrypts sealed into dst[:0].
func (k *Key) open(dst, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < sealOverhead {
		return nil, errors.New("too short")
	}
	return k.aead.Open(dst[:0], sealed[:12], sealed[12:], ad)
}

// A frame is the buffer of one chunk, laid out so that an encrypted chunk
// is sealed and opened in place, with no second buffer: the plaintext
// starts at frameHead (aligned, for restore's direct writes), the nonce's
// 12 bytes stand just before it and the tag's 16 fit after it. A plain
// chunk uses the plaintext part only.
const frameHead = directio.Align

// newFrame returns a frame for a chunk of up to size bytes.
func newFrame(size int64) []byte { return directio.Buffer(int(frameHead + size + 16)) }

// frameData is the plaintext of a chunk of n bytes in frame.
func frameData(frame []byte, n int64) []byte { return frame[frameHead : frameHead+n] }

// frameObject is where the stored object of a chunk of n bytes stands in
// frame: the plaintext in a plain run, nonce || ciphertext || tag in an
// encrypted one.
func (r *Repo) frameObject(frame []byte, n int64) []byte {
	if r.key == nil {
		return frameData(frame, n)
	}
	return frame[frameHead-12 : frameHead+n+16]
}

// sealFrame turns the plaintext of chunk name (n bytes) in frame into its
// object, in place, and returns the object. The plaintext is gone after it
// in an encrypted run.
func (r *Repo) sealFrame(name string, frame []byte, n int64) []byte {
	obj := r.frameObject(frame, n)
	if r.key == nil {
		return obj
	}
	if _, err := rand.Read(obj[:12]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	r.key.aead.Seal(obj[12:12], obj[:12], obj[12:12+n], chunkAD(name))
	return obj
}

// openFrame turns the object of chunk name (a chunk of n bytes), read into
// r.frameObject(frame, n), into its plaintext, in place, and returns the
// plaintext. It fails if the object does not authenticate.
func (r *Repo) openFrame(name string, frame []byte, n int64) ([]byte, error) {
	obj := r.frameObject(frame, n)
	if r.key == nil {
		return obj, nil
	}
	return r.key.aead.Open(obj[12:12], obj[:12], obj[12:], chunkAD(name))
}

// envelopeMagic starts every sealed manifest (see envelope).
const envelopeMagic = `{"envelope":"baton-sealed-manifest-v1"`

// maxEnvelopeBytes caps what a reader reads of an envelope.
const maxEnvelopeBytes = 512 << 20

// envelope is a sealed manifest as stored: the fields a keyless reader
// needs (the chain, and the chunks GC must keep) in the clear, the manifest
// sealed.
type envelope struct {
	Envelope  string        `json:"envelope"`
	Run       string        `json:"run"`
	Seq       int64         `json:"seq"`
	Parent    int64         `json:"parent"`
	Epoch     int64         `json:"epoch"`
	CreatedAt time.Time     `json:"created_at"`
	Cipher    string        `json:"cipher"`
	KeyID     string        `json:"key_id"`
	Chunks    []sealedChunk `json:"chunks"`
	Sealed    []byte        `json:"sealed"`
}

// sealedChunk is one distinct chunk of a sealed manifest, with the length
// of its object.
type sealedChunk struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// sealedChunks lists the distinct chunks of m with their stored lengths,
// sorted by name.
func (r *Repo) sealedChunks(m *Manifest) []sealedChunk {
	seen := map[string]bool{}
	var out []sealedChunk
	for _, f := range m.Files {
		for i, h := range f.Chunks {
			if !seen[h] {
				seen[h] = true
				_, n := chunkSpan(f.Size, m.ChunkSize, i)
				out = append(out, sealedChunk{h, r.storedLen(n)})
			}
		}
	}
	slices.SortFunc(out, func(a, b sealedChunk) int { return strings.Compare(a.Name, b.Name) })
	if out == nil {
		out = []sealedChunk{}
	}
	return out
}

// sealManifest wraps body, the JSON of m, in its envelope.
func (r *Repo) sealManifest(m *Manifest, body []byte) ([]byte, error) {
	e := envelope{
		Envelope: "baton-sealed-manifest-v1", Run: m.Run, Seq: m.Seq, Parent: m.Parent, Epoch: m.Epoch,
		CreatedAt: m.CreatedAt, Cipher: CipherName, KeyID: r.key.id, Chunks: r.sealedChunks(m),
		Sealed: r.key.seal(body, manifestAD(m.Run, m.Seq)),
	}
	return json.Marshal(e)
}

// errSealed is what opening a manifest as plain JSON gives for an envelope.
var errSealed = errors.New("a sealed manifest")

// plainOnly passes on the body of a manifest object, or fails with
// errSealed if it is an envelope.
func plainOnly(rc io.ReadCloser) (io.ReadCloser, error) {
	head := make([]byte, len(envelopeMagic))
	n, err := io.ReadFull(rc, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		rc.Close()
		return nil, fmt.Errorf("%w: %w", errBodyRead, err)
	}
	if n == len(head) && string(head) == envelopeMagic {
		rc.Close()
		return nil, errSealed
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head[:n]), rc), rc}, nil
}

// readEnvelope reads and checks the envelope of sealed manifest seq, without
// opening it.
func (r *Repo) readEnvelope(ctx context.Context, seq int64) (*envelope, error) {
	key := manifestKey(r.opts.Run, seq)
	var e envelope
	_, err := r.getJSON(ctx, key, maxEnvelopeBytes, &e)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("run %s has no checkpoint %d: %w", r.opts.Run, seq, err)
	}
	if err != nil {
		return nil, err
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: run %s checkpoint %d (%s): %s", ErrBadManifest, r.opts.Run, seq, key, fmt.Sprintf(format, a...))
	}
	switch {
	case e.Envelope != "baton-sealed-manifest-v1":
		return nil, bad("envelope %q", e.Envelope)
	case e.Run != r.opts.Run || e.Seq != seq:
		return nil, bad("the envelope names run %s checkpoint %d", e.Run, e.Seq)
	case e.Parent < 0 || e.Parent >= seq || e.Epoch < 1:
		return nil, bad("parent %d, epoch %d", e.Parent, e.Epoch)
	case len(e.Chunks) > MaxChunks:
		return nil, bad("%d chunks, more than %d", len(e.Chunks), MaxChunks)
	}
	for _, c := range e.Chunks {
		if !validHash(c.Name) || c.Size < sealOverhead || c.Size > MaxChunkSize+sealOverhead {
			return nil, bad("chunk %q of %d bytes", c.Name, c.Size)
		}
	}
	return &e, nil
}

// openEnvelope opens e with this repository's key and returns its manifest,
// validated, after checking that the clear fields are the sealed ones.
func (r *Repo) openEnvelope(e *envelope) (*Manifest, error) {
	if err := r.checkKey(&Encryption{Cipher: e.Cipher, KeyID: e.KeyID}); err != nil {
		if ke, ok := errors.AsType[*KeyError](err); ok {
			ke.env = e
		}
		return nil, err
	}
	key := manifestKey(e.Run, e.Seq)
	body, err := r.key.open(nil, e.Sealed, manifestAD(e.Run, e.Seq))
	if err != nil {
		return nil, fmt.Errorf("%w: run %s checkpoint %d (%s) does not authenticate with the run's key: tampered with or damaged; refused", ErrBadManifest, e.Run, e.Seq, key)
	}
	m, err := readManifest(bytes.NewReader(body), e.Run, e.Seq, readMode{}, false)
	if err != nil {
		return nil, err
	}
	if m.Parent != e.Parent || m.Epoch != e.Epoch || !m.CreatedAt.Equal(e.CreatedAt) || !slices.Equal(r.sealedChunks(m), e.Chunks) {
		return nil, fmt.Errorf("%w: run %s checkpoint %d (%s): the envelope's clear fields differ from the sealed manifest: tampered with; refused", ErrBadManifest, e.Run, e.Seq, key)
	}
	return m, nil
}

// header is the envelope's clear part as a manifest header, for a reader
// without the key that walks the chain.
func (e *envelope) header() *Manifest {
	return &Manifest{Version: FormatVersion, Run: e.Run, Seq: e.Seq, Parent: e.Parent, Epoch: e.Epoch, CreatedAt: e.CreatedAt, Hash: HashName}
}

// fetchSealed is fetchManifest for an envelope: without the key, a header
// read gets the clear fields and a full read a *KeyError.
func (r *Repo) fetchSealed(ctx context.Context, seq int64, headerOnly bool) (*Manifest, error) {
	e, err := r.readEnvelope(ctx, seq)
	if err != nil {
		return nil, err
	}
	if r.key == nil && headerOnly {
		return e.header(), nil
	}
	m, err := r.openEnvelope(e)
	if err != nil {
		return nil, err
	}
	if headerOnly {
		m.Files = nil
	}
	return m, nil
}

// notSealed refuses a plain manifest where this repository has a key: an
// encrypted run holds only envelopes.
func (r *Repo) notSealed(seq int64) error {
	return fmt.Errorf("%w: run %s checkpoint %d (%s) is not encrypted, but an encryption key was given: a plain run is read without one",
		ErrBadManifest, r.opts.Run, seq, manifestKey(r.opts.Run, seq))
}

// walkSealed is walkManifest for an envelope. Without the key it fails with
// a *KeyError that carries the envelope, whose clear chunk list GC marks.
func (r *Repo) walkSealed(ctx context.Context, seq int64, fn func(File) error) (*Manifest, error) {
	e, err := r.readEnvelope(ctx, seq)
	if err != nil {
		return nil, err
	}
	m, err := r.openEnvelope(e)
	if err != nil {
		return nil, err
	}
	for _, f := range m.Files {
		if err := fn(f); err != nil {
			return nil, err
		}
	}
	m.Files = nil
	return m, nil
}

// KeyFromSetting returns the key that --encryption-key's value s names
// (see ParseKey), or nil for "": a plain run.
func KeyFromSetting(s string) (*Key, error) {
	if s == "" {
		return nil, nil
	}
	return ParseKey(s)
}

// Key returns the repository's encryption key, nil for a plain run.
func (r *Repo) Key() *Key { return r.key }

// objectMagic starts a sealed log segment or telemetry object: the clear
// header "baton-sealed-v1 <key id>\n" precedes nonce || ciphertext || tag.
const objectMagic = "baton-sealed-v1 "

// objectHeaderLen is the length of a sealed object's clear header.
const objectHeaderLen = len(objectMagic) + 32 + 1

// LogAD is the associated data of log segment name of run.
func LogAD(run, name string) []byte { return []byte("baton-v1 log " + run + " " + name) }

// TelemetryAD is the associated data of the telemetry object stored under
// key (its whole object key) of run.
func TelemetryAD(run, key string) []byte { return []byte("baton-v1 telemetry " + run + " " + key) }

// SealObject seals data as a log segment or telemetry object is stored: the
// clear header "baton-sealed-v1 <key id>\n", then nonce || AES-GCM(data)
// with associated data ad.
func (k *Key) SealObject(data, ad []byte) []byte {
	out := make([]byte, 0, objectHeaderLen+sealOverhead+len(data))
	out = append(out, objectMagic...)
	out = append(out, k.id...)
	out = append(out, '\n')
	return append(out, k.seal(data, ad)...)
}

// IsSealedObject reports whether b, an object or its first bytes, starts as
// a sealed object does.
func IsSealedObject(b []byte) bool { return bytes.HasPrefix(b, []byte(objectMagic)) }

// OpenObject returns the content of object (stored under objKey, of run),
// as SealObject sealed it with associated data ad. With k nil, a plain
// object is returned as it is and a sealed one fails with a *KeyError; with
// a key, a plain object is refused (an encrypted run writes none), a sealed
// one under another key fails with a *KeyError, and one that does not
// authenticate is refused as tampered with or damaged.
func OpenObject(k *Key, run, objKey string, object, ad []byte) ([]byte, error) {
	if !IsSealedObject(object) {
		if k != nil {
			return nil, fmt.Errorf("%s of run %s is not encrypted, but an encryption key was given: refused", objKey, run)
		}
		return object, nil
	}
	if len(object) < objectHeaderLen || object[objectHeaderLen-1] != '\n' {
		return nil, fmt.Errorf("%s of run %s: a damaged sealed object (its header is cut)", objKey, run)
	}
	id := string(object[len(objectMagic) : objectHeaderLen-1])
	if k == nil {
		return nil, &KeyError{Run: run, RunKeyID: id}
	}
	if id != k.id {
		return nil, &KeyError{Run: run, RunKeyID: id, GivenKeyID: k.id}
	}
	plain, err := k.open(nil, object[objectHeaderLen:], ad)
	if err != nil {
		return nil, fmt.Errorf("%s of run %s does not authenticate with the run's key: tampered with or damaged; refused", objKey, run)
	}
	return plain, nil
}

// maxLogBytes caps a log segment that is sealed or read back whole.
const maxLogBytes = 1 << 30

// ReadLog returns log segment name of the run (see PutLog), opened with the
// repository's key in an encrypted run. Without the key an encrypted
// segment fails with a *KeyError.
func (r *Repo) ReadLog(ctx context.Context, name string) ([]byte, error) {
	if err := CheckRunID(name); err != nil {
		return nil, fmt.Errorf("log segment name: %w", err)
	}
	key := runPrefix(r.opts.Run) + "logs/" + name
	body, _, err := r.store.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("read log segment %s: %w", key, err)
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, maxLogBytes+int64(objectHeaderLen+sealOverhead)+1))
	if err != nil {
		return nil, fmt.Errorf("read log segment %s: %w", key, err)
	}
	return OpenObject(r.key, r.opts.Run, key, b, LogAD(r.opts.Run, name))
}

// sealLog reads payload p, log segment name, whole and seals it.
func (r *Repo) sealLog(name string, p storage.Payload) (storage.Payload, error) {
	if p.Size() > maxLogBytes {
		return storage.Payload{}, fmt.Errorf("log segment %s: %d bytes, more than the %d an encrypted run seals", name, p.Size(), maxLogBytes)
	}
	b := make([]byte, p.Size())
	if _, err := io.ReadFull(p.Reader(), b); err != nil {
		return storage.Payload{}, fmt.Errorf("log segment %s: %w", name, err)
	}
	return storage.BytesPayload(r.key.SealObject(b, LogAD(r.opts.Run, name))), nil
}
