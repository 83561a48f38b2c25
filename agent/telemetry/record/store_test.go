package record

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/batonrun/baton/sync/storage"
)

// memStore is a storage.Store in memory, for simulations too long for the
// file store's fsyncs. Objects carry the time of its clock.
type memStore struct {
	clock func() time.Time

	mu   sync.Mutex
	objs map[string]memObject
	etag int
}

type memObject struct {
	data []byte
	info storage.ObjectInfo
}

var _ storage.Store = (*memStore)(nil)

func newMemStore(clock func() time.Time) *memStore {
	return &memStore{clock: clock, objs: map[string]memObject{}}
}

func (m *memStore) Put(ctx context.Context, key string, p storage.Payload, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if err := storage.CheckKey(key); err != nil {
		return storage.ObjectInfo{}, err
	}
	data, err := io.ReadAll(p.Reader())
	if err != nil {
		return storage.ObjectInfo{}, &storage.Error{Op: "put", Key: key, Kind: storage.ErrIO, Err: err}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old, exists := m.objs[key]
	if opts.IfAbsent && exists || opts.IfMatch != "" && (!exists || old.info.ETag != opts.IfMatch) {
		return storage.ObjectInfo{}, &storage.Error{Op: "put", Key: key, Kind: storage.ErrPreconditionFailed, Err: errors.New("precondition")}
	}
	m.etag++
	info := storage.ObjectInfo{Key: key, Size: int64(len(data)), ETag: strconv.Itoa(m.etag), LastModified: m.clock()}
	m.objs[key] = memObject{data: data, info: info}
	return info, nil
}

func (m *memStore) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, storage.ObjectInfo, error) {
	m.mu.Lock()
	o, ok := m.objs[key]
	m.mu.Unlock()
	if !ok {
		return nil, storage.ObjectInfo{}, &storage.Error{Op: "get", Key: key, Kind: storage.ErrNotFound}
	}
	b := o.data[min(offset, int64(len(o.data))):]
	if length >= 0 && length < int64(len(b)) {
		b = b[:length]
	}
	return io.NopCloser(bytes.NewReader(b)), o.info, nil
}

func (m *memStore) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	if !ok {
		return storage.ObjectInfo{}, &storage.Error{Op: "stat", Key: key, Kind: storage.ErrNotFound}
	}
	return o.info, nil
}

func (m *memStore) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	m.mu.Lock()
	var infos []storage.ObjectInfo
	for k, o := range m.objs {
		if strings.HasPrefix(k, prefix) {
			infos = append(infos, o.info)
		}
	}
	m.mu.Unlock()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	for _, i := range infos {
		if err := fn(i); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) Delete(ctx context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objs, key)
	return nil
}

func (m *memStore) NewUpload(ctx context.Context, key string) (storage.Upload, error) {
	return nil, &storage.Error{Op: "upload", Key: key, Kind: storage.ErrInvalid, Err: errors.New("not in the memory store")}
}

func (m *memStore) String() string { return "mem" }

// countingStore counts the requests and the bytes that go through it.
type countingStore struct {
	storage.Store

	mu                sync.Mutex
	calls             map[string]int
	gotBytes, putByte int64
}

func counting(s storage.Store) *countingStore {
	return &countingStore{Store: s, calls: map[string]int{}}
}

func (c *countingStore) count(op string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[op]++
	switch op {
	case "get":
		c.gotBytes += n
	case "put":
		c.putByte += n
	}
}

// reset zeroes the counts and returns them as they were.
func (c *countingStore) reset() (calls map[string]int, got, put int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	calls, got, put = c.calls, c.gotBytes, c.putByte
	c.calls, c.gotBytes, c.putByte = map[string]int{}, 0, 0
	return calls, got, put
}

func (c *countingStore) Put(ctx context.Context, key string, p storage.Payload, opts storage.PutOptions) (storage.ObjectInfo, error) {
	c.count("put", p.Size())
	return c.Store.Put(ctx, key, p, opts)
}

func (c *countingStore) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, storage.ObjectInfo, error) {
	body, info, err := c.Store.Get(ctx, key, offset, length)
	n := info.Size
	if length >= 0 && length < n {
		n = length
	}
	c.count("get", n)
	return body, info, err
}

func (c *countingStore) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	c.count("stat", 0)
	return c.Store.Stat(ctx, key)
}

func (c *countingStore) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	c.count("list", 0)
	return c.Store.List(ctx, prefix, fn)
}

func (c *countingStore) Delete(ctx context.Context, key string) error {
	c.count("delete", 0)
	return c.Store.Delete(ctx, key)
}
