package agent

import (
	"context"
	"io"
	"sync/atomic"

	"github.com/batonrun/baton/sync/storage"
)

// countingStore is a Store that counts the transfers in flight (puts, parts,
// and gets until their body is closed) for baton_transfers_in_flight.
type countingStore struct {
	storage.Store
	n   atomic.Int64
	set func(int)
}

func (s *countingStore) begin() func() {
	s.set(int(s.n.Add(1)))
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			s.set(int(s.n.Add(-1)))
		}
	}
}

func (s *countingStore) Put(ctx context.Context, key string, p storage.Payload, opts storage.PutOptions) (storage.ObjectInfo, error) {
	defer s.begin()()
	return s.Store.Put(ctx, key, p, opts)
}

func (s *countingStore) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, storage.ObjectInfo, error) {
	end := s.begin()
	rc, info, err := s.Store.Get(ctx, key, offset, length)
	if err != nil {
		end()
		return nil, info, err
	}
	return &countedBody{ReadCloser: rc, end: end}, info, nil
}

func (s *countingStore) NewUpload(ctx context.Context, key string) (storage.Upload, error) {
	u, err := s.Store.NewUpload(ctx, key)
	if err != nil {
		return nil, err
	}
	return &countedUpload{Upload: u, s: s}, nil
}

type countedBody struct {
	io.ReadCloser
	end func()
}

func (b *countedBody) Close() error {
	b.end()
	return b.ReadCloser.Close()
}

type countedUpload struct {
	storage.Upload
	s *countingStore
}

func (u *countedUpload) Part(ctx context.Context, n int, offset int64, p storage.Payload) (storage.CompletedPart, error) {
	defer u.s.begin()()
	return u.Upload.Part(ctx, n, offset, p)
}
