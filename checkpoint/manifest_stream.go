package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// Limits on reading a manifest, enforced while it streams in, so that no
// manifest, accepted or refused, makes a reader hold more than its entries
// (MaxFiles and MaxChunks bound those) plus one token.
const (
	// maxManifestBytes caps the bytes of one manifest.
	maxManifestBytes = 256 << 20
	// maxTokenBytes caps one token (a path, a hash, a host name) or one
	// header value (meta) of a manifest.
	maxTokenBytes = 1 << 20
)

// errTooLarge is returned by a byteGuard past one of its limits.
var errTooLarge = errors.New("too large")

// byteGuard counts what a JSON decoder reads, in all and since the last
// reset (one token), and fails the read past either limit. A decoder buffers
// a whole token before it returns it, so a reset before each token bounds
// its buffer.
type byteGuard struct {
	r            io.Reader
	total, token int64
}

func (g *byteGuard) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %w", errBodyRead, err)
	}
	g.total += int64(n)
	g.token += int64(n)
	switch {
	case g.total > maxManifestBytes:
		return n, fmt.Errorf("%w: more than %d bytes", errTooLarge, maxManifestBytes)
	case g.token > maxTokenBytes:
		return n, fmt.Errorf("%w: a value of more than %d bytes", errTooLarge, maxTokenBytes)
	}
	return n, err
}

// manifestDecoder reads a manifest token by token.
type manifestDecoder struct {
	dec   *json.Decoder
	guard *byteGuard
	// nfiles and nchunks count the entries and chunk references read so
	// far, against MaxFiles and MaxChunks.
	nfiles, nchunks int
	// stated is the manifest's file_count, -1 if it has none.
	stated int
}

// readManifest decodes the manifest of run at seq from r, streaming: the
// files are read one entry, and each entry's chunks one hash, at a time,
// refused past MaxFiles and MaxChunks, and no token may exceed
// maxTokenBytes.
//
// With headerOnly, the files are not kept: m.Files is nil and m.FileCount
// says how many there are. A manifest that states file_count, size and
// new_bytes before its files (every manifest this baton writes) is read
// only up to its file list. A header is not fully validated: only what
// describes the checkpoint as a whole is checked.
func readManifest(r io.Reader, run string, seq int64, headerOnly bool) (*Manifest, error) {
	d := &manifestDecoder{guard: &byteGuard{r: r}, stated: -1}
	d.dec = json.NewDecoder(d.guard)
	d.dec.UseNumber()
	m, err := d.manifest(headerOnly)
	if errors.Is(err, errBodyRead) {
		return nil, err // the store's body failed (transient): the caller retries
	}
	if err != nil {
		return nil, fmt.Errorf("%w: run %s checkpoint %d: %v", ErrBadManifest, run, seq, err)
	}
	if err := m.validateHeader(run, seq); err != nil {
		return nil, fmt.Errorf("%w: run %s checkpoint %d: %v", ErrBadManifest, run, seq, err)
	}
	if headerOnly {
		return m, nil
	}
	if err := m.validate(run, seq); err != nil {
		return nil, fmt.Errorf("%w: run %s checkpoint %d: %v", ErrBadManifest, run, seq, err)
	}
	if d.stated >= 0 && d.stated != d.nfiles {
		return nil, fmt.Errorf("%w: run %s checkpoint %d: file_count is %d, the manifest lists %d files", ErrBadManifest, run, seq, d.stated, d.nfiles)
	}
	return m, nil
}

// errBodyRead marks an error of the reader under the decoder (the store's
// body), as opposed to one of the manifest's content.
var errBodyRead = errors.New("reading the manifest")

// manifest reads the top-level object.
func (d *manifestDecoder) manifest(headerOnly bool) (*Manifest, error) {
	m := &Manifest{}
	if err := d.delim('{'); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for d.dec.More() {
		key, err := d.str()
		if err != nil {
			return nil, err
		}
		if key == "files" {
			if seen["files"] {
				return nil, errors.New("files listed twice")
			}
			seen["files"] = true
			if headerOnly && seen["file_count"] && seen["size"] && seen["new_bytes"] {
				return m, nil // a header read stops here
			}
			if err := d.fileList(m, headerOnly); err != nil {
				return nil, err
			}
			continue
		}
		seen[key] = true
		if err := d.headerField(m, key); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	if err := d.delim('}'); err != nil {
		return nil, err
	}
	if seen["file_count"] {
		d.stated = m.FileCount
	}
	m.FileCount = d.nfiles // manifests of earlier versions have no file_count
	return m, nil
}

// headerField decodes the top-level value of key into m.
func (d *manifestDecoder) headerField(m *Manifest, key string) error {
	d.guard.token = 0
	var v any
	switch key {
	case "version":
		v = &m.Version
	case "run":
		v = &m.Run
	case "seq":
		v = &m.Seq
	case "parent":
		v = &m.Parent
	case "epoch":
		v = &m.Epoch
	case "created_at":
		v = &m.CreatedAt
	case "scanned_at":
		v = &m.ScannedAt
	case "host":
		v = &m.Host
	case "platform":
		v = &m.Platform
	case "hash":
		v = &m.Hash
	case "chunk_size":
		v = &m.ChunkSize
	case "file_count":
		v = &m.FileCount
	case "size":
		v = &m.Size
	case "new_bytes":
		v = &m.NewBytes
	case "meta":
		v = &m.Meta
	default:
		v = &json.RawMessage{} // a newer writer's field: skipped, within the token limit
	}
	return d.dec.Decode(v)
}

// fileList reads the file list, keeping the entries unless headerOnly.
func (d *manifestDecoder) fileList(m *Manifest, headerOnly bool) error {
	d.guard.token = 0
	tok, err := d.dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		return nil
	}
	if tok != json.Delim('[') {
		return errors.New("files is not a list")
	}
	for d.dec.More() {
		if d.nfiles == MaxFiles {
			return fmt.Errorf("more than %d files", MaxFiles)
		}
		f, err := d.file(headerOnly)
		if err != nil {
			return fmt.Errorf("files[%d]: %w", d.nfiles, err)
		}
		d.nfiles++
		if !headerOnly {
			m.Files = append(m.Files, f)
		}
	}
	return d.delim(']')
}

// file reads one entry of the file list; with skipChunks its chunk hashes
// are counted, not kept.
func (d *manifestDecoder) file(skipChunks bool) (File, error) {
	var f File
	if err := d.delim('{'); err != nil {
		return f, err
	}
	for d.dec.More() {
		key, err := d.str()
		if err != nil {
			return f, err
		}
		switch key {
		case "path":
			f.Path, err = d.str()
		case "hash":
			f.Hash, err = d.str()
		case "size":
			f.Size, err = d.int()
		case "mode":
			var mode int64
			mode, err = d.int()
			if err == nil && (mode < 0 || mode > int64(fs.ModePerm)) {
				err = fmt.Errorf("mode %#o is not plain permission bits", mode)
			}
			f.Mode = fs.FileMode(mode)
		case "mtime":
			var s string
			if s, err = d.str(); err == nil {
				err = f.MTime.UnmarshalText([]byte(s))
			}
		case "chunks":
			f.Chunks, err = d.chunkList(skipChunks)
		default:
			d.guard.token = 0
			err = d.dec.Decode(&json.RawMessage{})
		}
		if err != nil {
			return f, fmt.Errorf("%s: %w", key, err)
		}
	}
	return f, d.delim('}')
}

// chunkList reads a list of chunk hashes, counting them against MaxChunks.
func (d *manifestDecoder) chunkList(skip bool) ([]string, error) {
	d.guard.token = 0
	tok, err := d.dec.Token()
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, nil
	}
	if tok != json.Delim('[') {
		return nil, errors.New("not a list")
	}
	chunks := []string{}
	for d.dec.More() {
		if d.nchunks == MaxChunks {
			return nil, fmt.Errorf("more than %d chunks in the checkpoint", MaxChunks)
		}
		h, err := d.str()
		if err != nil {
			return nil, err
		}
		d.nchunks++
		if !skip {
			chunks = append(chunks, h)
		}
	}
	return chunks, d.delim(']')
}

func (d *manifestDecoder) delim(want json.Delim) error {
	d.guard.token = 0
	tok, err := d.dec.Token()
	if err != nil {
		return err
	}
	if tok != want {
		return fmt.Errorf("want %q, found %v", want, tok)
	}
	return nil
}

func (d *manifestDecoder) str() (string, error) {
	d.guard.token = 0
	tok, err := d.dec.Token()
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("want a string, found %v", tok)
	}
	return s, nil
}

func (d *manifestDecoder) int() (int64, error) {
	d.guard.token = 0
	tok, err := d.dec.Token()
	if err != nil {
		return 0, err
	}
	n, ok := tok.(json.Number)
	if !ok {
		return 0, fmt.Errorf("want a number, found %v", tok)
	}
	return n.Int64()
}

// validateHeader checks what describes the checkpoint as a whole, without
// its files.
func (m *Manifest) validateHeader(run string, seq int64) error {
	switch {
	case m.Version < 1 || m.Version > FormatVersion:
		return fmt.Errorf("format version %d, this baton reads 1 to %d", m.Version, FormatVersion)
	case m.Run != run || m.Seq != seq:
		return fmt.Errorf("manifest names run %q checkpoint %d", m.Run, m.Seq)
	case m.Hash != HashName:
		return fmt.Errorf("hash %q, want %q", m.Hash, HashName)
	case m.ChunkSize < MinChunkSize || m.ChunkSize > MaxChunkSize:
		return fmt.Errorf("chunk size %d outside [%d, %d]", m.ChunkSize, MinChunkSize, MaxChunkSize)
	case m.FileCount < 0 || m.FileCount > MaxFiles:
		return fmt.Errorf("%d files, want 0 to %d", m.FileCount, MaxFiles)
	case m.Size < 0:
		return fmt.Errorf("size %d is negative", m.Size)
	case m.Size > MaxTotalSize:
		return fmt.Errorf("size %d: files add up to more than %d bytes", m.Size, int64(MaxTotalSize))
	case m.Parent < 0 || m.Parent >= m.Seq:
		return fmt.Errorf("parent %d is not an earlier checkpoint", m.Parent)
	}
	return nil
}
