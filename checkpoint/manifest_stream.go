package checkpoint

import (
	"bufio"
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
	mode   readMode
	fast   bool
	// run and seq are what the manifest must name; checker checks the
	// files one at a time in visit mode.
	run     string
	seq     int64
	checker *entryChecker
}

// readMode says how much of a manifest readManifest keeps.
type readMode struct {
	// headerOnly: the files are counted, not kept (Files is nil,
	// FileCount says how many), and not checked. A manifest that states
	// file_count, size and new_bytes before its files (every manifest this
	// baton writes) is read only up to its file list.
	headerOnly bool
	// visit, if set, gets each file (and its index) as it is read, checked
	// on its own;
	// the files are not kept. What needs every file (the total size, a
	// path that is also another's directory) is checked at the end, so a
	// caller may act on what visit saw only once readManifest returned nil.
	// If the header comes after the files, readManifest fails with
	// errHeaderLate unless header holds it (from a headerOnly read).
	visit  func(int, File) error
	header *Manifest
}

// errHeaderLate: a manifest read with visit has its files before its header.
var errHeaderLate = errors.New("the manifest's files come before its header")

// readManifest decodes the manifest of run at seq from r, streaming: the
// files are read one entry, and each entry's chunks one hash, at a time,
// refused past MaxFiles and MaxChunks, and no token may exceed
// maxTokenBytes. What it keeps is as mode says; with the zero mode it
// returns the whole manifest, validated.
//
// With fast, each file entry is decoded in one piece, which is several
// times quicker; an entry too large for that fails with errBigEntry, and
// the caller reads the manifest again without fast (see openManifest).
func readManifest(r io.Reader, run string, seq int64, mode readMode, fast bool) (*Manifest, error) {
	d := &manifestDecoder{guard: &byteGuard{r: bufio.NewReaderSize(r, 256<<10)}, stated: -1, mode: mode, run: run, seq: seq, fast: fast}
	d.dec = json.NewDecoder(d.guard)
	d.dec.UseNumber()
	m, err := d.manifest()
	if errors.Is(err, errBodyRead) {
		return nil, err // the store's body failed (transient): the caller retries
	}
	if ve, ok := errors.AsType[visitError](err); ok {
		return nil, ve.err // the caller's own
	}
	if errors.Is(err, errBigEntry) || errors.Is(err, errHeaderLate) {
		return nil, err
	}
	if err == nil {
		err = m.validateHeader(run, seq)
	}
	if err == nil && mode.visit != nil {
		if d.checker == nil { // no file list at all
			d.checker = newEntryChecker(m)
		}
		err = d.checker.finish()
	} else if err == nil && !mode.headerOnly {
		err = m.validate(run, seq)
	}
	if err == nil && !mode.headerOnly && d.stated >= 0 && d.stated != d.nfiles {
		err = fmt.Errorf("file_count is %d, the manifest lists %d files", d.stated, d.nfiles)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: run %s checkpoint %d: %v", ErrBadManifest, run, seq, err)
	}
	return m, nil
}

// decodeManifest reads a manifest from the bodies open returns: with the
// fast decoder, and again with the token decoder if an entry was too large
// for the fast one.
//
// A visit read of a manifest whose header comes after its files (JSON does
// not fix the order of keys) first reads the header alone.
func decodeManifest(open func() (io.ReadCloser, error), run string, seq int64, mode readMode) (*Manifest, error) {
	m, err := decodeManifestOnce(open, run, seq, mode)
	if errors.Is(err, errHeaderLate) {
		if mode.header, err = decodeManifestOnce(open, run, seq, readMode{headerOnly: true}); err != nil {
			return nil, err
		}
		return decodeManifestOnce(open, run, seq, mode)
	}
	return m, err
}

func decodeManifestOnce(open func() (io.ReadCloser, error), run string, seq int64, mode readMode) (*Manifest, error) {
	for _, fast := range []bool{true, false} {
		rc, err := open()
		if err != nil {
			return nil, err
		}
		m, err := readManifest(rc, run, seq, mode, fast)
		rc.Close()
		if fast && errors.Is(err, errBigEntry) {
			continue
		}
		return m, err
	}
	panic("unreachable")
}

// visitError carries an error of readMode.visit through the decoder.
type visitError struct{ err error }

func (e visitError) Error() string { return e.err.Error() }

// errBodyRead marks an error of the reader under the decoder (the store's
// body), as opposed to one of the manifest's content.
var errBodyRead = errors.New("reading the manifest")

// manifest reads the top-level object.
func (d *manifestDecoder) manifest() (*Manifest, error) {
	headerOnly := d.mode.headerOnly
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
			if d.mode.visit != nil {
				h := m
				if d.mode.header != nil {
					h = d.mode.header
				} else if !seen["version"] || !seen["chunk_size"] || !seen["size"] {
					return nil, errHeaderLate
				}
				if err := h.validateHeader(d.run, d.seq); err != nil {
					return nil, err
				}
				d.checker = newEntryChecker(h)
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
		f, err := d.entry(headerOnly)
		if err != nil {
			return fmt.Errorf("files[%d]: %w", d.nfiles, err)
		}
		d.nfiles++
		switch {
		case d.mode.visit != nil:
			if err := d.checker.add(f); err != nil {
				return err
			}
			if err := d.mode.visit(d.nfiles-1, f); err != nil {
				return visitError{err}
			}
		case !headerOnly:
			m.Files = append(m.Files, f)
		}
	}
	return d.delim(']')
}

// errBigEntry: the fast decoder met an entry larger than a token may be; the
// manifest must be read again with the token decoder.
var errBigEntry = errors.New("an entry too large for the fast decoder")

// entry reads one entry of the file list. The fast decoder takes it in one
// piece, as long as it fits in maxTokenBytes (a file of up to about 15,000
// chunks); the token decoder reads it token by token, and its chunk hashes
// one at a time. With skipChunks the hashes are counted, not kept.
func (d *manifestDecoder) entry(skipChunks bool) (File, error) {
	if !d.fast {
		return d.file(skipChunks)
	}
	d.guard.token = 0
	var f File
	err := d.dec.Decode(&f)
	if errors.Is(err, errTooLarge) && d.guard.token > maxTokenBytes {
		return f, errBigEntry
	}
	if err != nil {
		return f, err
	}
	if d.nchunks += len(f.Chunks); d.nchunks > MaxChunks {
		return f, fmt.Errorf("more than %d chunks in the checkpoint", MaxChunks)
	}
	if skipChunks {
		f.Chunks = nil
	}
	return f, nil
}

// file reads one entry of the file list token by token; with skipChunks
// its chunk hashes are counted, not kept.
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
