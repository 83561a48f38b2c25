// Package s3minio is the S3 Store built on minio-go v7: lean, and at home
// with S3-compatible servers (MinIO, versitygw, Ceph, R2, ...) as well as AWS.
//
// Conditional writes are always single-part PUTs with the exact size:
// minio-go turns a PutObject of unknown size into a multipart upload, and
// servers do not enforce If-None-Match on those. The region is always set
// explicitly (no bucket-location lookups), minio-go's own retries are off
// (retries belong to storage.Retry), and bodies are sent as UNSIGNED-PAYLOAD so
// that no payload is hashed for the signature.
package s3minio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/batonrun/baton/sync/s3config"
	"github.com/batonrun/baton/sync/storage"
)

// dialTimeout bounds connecting to the endpoint, so that an unreachable
// server fails in seconds.
const dialTimeout = 5 * time.Second

// awsEndpoint is where minio-go finds AWS S3 when no endpoint is set; it
// picks the regional host from the region.
const awsEndpoint = "s3.amazonaws.com"

// Store is a storage.Store on one S3 bucket and prefix.
type Store struct {
	cfg   s3config.Config
	core  minio.Core // Core embeds *minio.Client: one client for both APIs
	creds *credentials.Credentials
}

var _ storage.Store = (*Store)(nil)

// New returns the store that cfg describes, with blank settings filled from
// the environment (see s3config.Config.Resolve). Without static credentials
// in cfg it tries, in order, the AWS_* environment variables, the shared
// credentials and config files (profile cfg.Profile), and the instance or
// container role. It sends no request: wrong credentials or a missing
// bucket show in the first operation's error.
func New(ctx context.Context, cfg s3config.Config) (*Store, error) {
	cfg = cfg.Resolve(os.Getenv)
	if cfg.Bucket == "" {
		return nil, &storage.Error{Op: "open", Kind: storage.ErrInvalid, Err: errors.New("S3 store: no bucket")}
	}
	if err := s3utils.CheckValidBucketName(cfg.Bucket); err != nil {
		// minio-go checks it again before every request, with a plain error.
		return nil, &storage.Error{Op: "open", Kind: storage.ErrInvalid, Err: fmt.Errorf("S3 bucket %q: %w", cfg.Bucket, err)}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("opening %s: %w", cfg, err)
	}
	host, secure := awsEndpoint, true
	u, err := cfg.EndpointURL()
	if err != nil {
		return nil, &storage.Error{Op: "open", Kind: storage.ErrInvalid, Err: err}
	}
	if u != nil {
		if u.Path != "" && u.Path != "/" {
			return nil, &storage.Error{Op: "open", Kind: storage.ErrInvalid, Err: fmt.Errorf("S3 endpoint %q: a path is not supported", cfg.Endpoint)}
		}
		host, secure = u.Host, u.Scheme == "https"
	}
	tlsConfig, err := s3config.TLSConfig(os.Getenv)
	if err != nil {
		return nil, &storage.Error{Op: "open", Kind: storage.ErrInvalid, Err: err}
	}
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, &storage.Error{Op: "open", Kind: storage.ErrInvalid, Err: err}
	}
	tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.MaxIdleConnsPerHost = cfg.MaxConns
	tr.MaxIdleConns = max(tr.MaxIdleConns, cfg.MaxConns)
	if tlsConfig != nil {
		tr.TLSClientConfig = tlsConfig
	}

	var creds *credentials.Credentials
	if cfg.AccessKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{Profile: cfg.Profile},
			&credentials.IAM{Client: &http.Client{Transport: tr}},
		})
	}
	lookup := minio.BucketLookupAuto
	switch {
	case cfg.PathStyle:
		lookup = minio.BucketLookupPath
	case cfg.VirtualHosted:
		lookup = minio.BucketLookupDNS
	}
	client, err := minio.New(host, &minio.Options{
		Creds:        creds,
		Secure:       secure,
		Region:       cfg.Region,
		BucketLookup: lookup,
		Transport:    tr,
		MaxRetries:   1,
	})
	if err != nil {
		return nil, &storage.Error{Op: "open", Kind: storage.ErrInvalid, Err: err}
	}
	return &Store{cfg: cfg, core: minio.Core{Client: client}, creds: creds}, nil
}

// String names the store as "s3://bucket/prefix".
func (s *Store) String() string { return s.cfg.String() }

// Put implements storage.Store with a single PUT of the payload's exact size,
// so that conditions are enforced.
func (s *Store) Put(ctx context.Context, key string, p storage.Payload, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if err := storage.CheckKey(key); err != nil {
		return storage.ObjectInfo{}, err
	}
	if opts.IfAbsent && opts.IfMatch != "" {
		return storage.ObjectInfo{}, storage.Errorf("put", key, storage.ErrInvalid, "both IfAbsent and IfMatch set")
	}
	po := minio.PutObjectOptions{DisableMultipart: true, DisableContentSha256: true}
	if opts.IfAbsent {
		po.SetMatchETagExcept("*")
	}
	if opts.IfMatch != "" {
		po.SetMatchETag(s3config.ETag(opts.IfMatch))
	}
	info, err := s.core.Client.PutObject(ctx, s.cfg.Bucket, s.cfg.Key(key), p.Reader(), p.Size(), po)
	if err != nil {
		return storage.ObjectInfo{}, s.wrap(ctx, "put", key, err)
	}
	return storage.ObjectInfo{Key: key, Size: p.Size(), ETag: s3config.ETag(info.ETag), LastModified: orNow(info.LastModified)}, nil
}

// Get implements storage.Store. Unlike minio-go's lazy Client.GetObject, it
// sends the request before returning, so errors surface here.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, storage.ObjectInfo, error) {
	if err := storage.CheckKey(key); err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	if err := s3config.CheckRange(key, offset); err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	if length == 0 {
		return s.empty(ctx, key, offset)
	}
	var gopts minio.GetObjectOptions
	var err error
	switch {
	case length > 0:
		err = gopts.SetRange(offset, offset+length-1)
	case offset > 0:
		err = gopts.SetRange(offset, 0)
	}
	if err != nil {
		return nil, storage.ObjectInfo{}, &storage.Error{Op: "get", Key: key, Kind: storage.ErrInvalid, Err: err}
	}
	rc, oi, header, err := s.core.GetObject(ctx, s.cfg.Bucket, s.cfg.Key(key), gopts)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "InvalidRange" {
			// Reading from the very end (or any range of an empty object)
			// is a valid empty read; past the end is not.
			return s.empty(ctx, key, offset)
		}
		return nil, storage.ObjectInfo{}, s.wrap(ctx, "get", key, err)
	}
	want := oi.Size // Content-Length of this response
	info := storage.ObjectInfo{Key: key, Size: want, ETag: s3config.ETag(oi.ETag), LastModified: oi.LastModified}
	if total, ok := s3config.TotalSize(header.Get("Content-Range")); ok {
		info.Size = total
	}
	return s3config.Body(ctx, key, rc, want), info, nil
}

// empty answers a Get of no bytes at offset (see s3config.EmptyRead).
func (s *Store) empty(ctx context.Context, key string, offset int64) (io.ReadCloser, storage.ObjectInfo, error) {
	info, err := s.stat(ctx, "get", key)
	if err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	return s3config.EmptyRead(key, offset, info)
}

// Stat implements storage.Store.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := storage.CheckKey(key); err != nil {
		return storage.ObjectInfo{}, err
	}
	return s.stat(ctx, "stat", key)
}

func (s *Store) stat(ctx context.Context, op, key string) (storage.ObjectInfo, error) {
	oi, err := s.core.Client.StatObject(ctx, s.cfg.Bucket, s.cfg.Key(key), minio.StatObjectOptions{})
	if err != nil {
		if code := minio.ToErrorResponse(err).StatusCode; code == http.StatusNotFound || code == http.StatusForbidden {
			err = s.explain(ctx, key, err)
		}
		return storage.ObjectInfo{}, s.wrap(ctx, op, key, err)
	}
	return storage.ObjectInfo{Key: key, Size: oi.Size, ETag: s3config.ETag(oi.ETag), LastModified: oi.LastModified}, nil
}

// explain returns the error of a one-byte GET of key after a HEAD of it
// failed with headErr. A HEAD response has no body, so (except on MinIO,
// which repeats the code in a header) its bare 404 or 403 cannot tell a
// missing object from a missing bucket, nor rejected credentials from a
// denied permission; the GET's error code can. It costs a request on the
// failure path only. headErr stays when the GET tells nothing more.
func (s *Store) explain(ctx context.Context, key string, headErr error) error {
	var gopts minio.GetObjectOptions
	_ = gopts.SetRange(0, 0)
	rc, _, _, err := s.core.GetObject(ctx, s.cfg.Bucket, s.cfg.Key(key), gopts)
	if err == nil {
		rc.Close()
		return headErr
	}
	if code := minio.ToErrorResponse(err).StatusCode; code < 400 || code >= 500 {
		return headErr
	}
	return fmt.Errorf("HEAD failed; a GET says: %w", err)
}

// List implements storage.Store.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio-go's listing when fn stops early
	owner := false
	objects := s.core.Client.ListObjectsIter(ctx, s.cfg.Bucket, minio.ListObjectsOptions{
		Prefix:     s.cfg.ListPrefix(prefix),
		Recursive:  true,
		MaxKeys:    1000,
		FetchOwner: &owner,
	})
	for o := range objects {
		if o.Err != nil {
			return s.wrap(ctx, "list", prefix, o.Err)
		}
		key, ok := s.cfg.StoreKey(o.Key)
		if !ok {
			continue
		}
		if err := fn(storage.ObjectInfo{Key: key, Size: o.Size, ETag: s3config.ETag(o.ETag), LastModified: o.LastModified}); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %q: %w", prefix, err)
	}
	return nil
}

// Delete implements storage.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := storage.CheckKey(key); err != nil {
		return err
	}
	err := s.core.Client.RemoveObject(ctx, s.cfg.Bucket, s.cfg.Key(key), minio.RemoveObjectOptions{})
	if err != nil {
		if err := s.wrap(ctx, "delete", key, err); !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return nil
}

// NewUpload implements storage.Store with an S3 multipart upload.
func (s *Store) NewUpload(ctx context.Context, key string) (storage.Upload, error) {
	if err := storage.CheckKey(key); err != nil {
		return nil, err
	}
	id, err := s.core.NewMultipartUpload(ctx, s.cfg.Bucket, s.cfg.Key(key), minio.PutObjectOptions{})
	if err != nil {
		return nil, s.wrap(ctx, "upload", key, err)
	}
	return &upload{s: s, key: key, id: id}, nil
}

type upload struct {
	s   *Store
	key string
	id  string
}

func (u *upload) Part(ctx context.Context, n int, offset int64, p storage.Payload) (storage.CompletedPart, error) {
	if n < 1 || n > storage.MaxParts {
		return storage.CompletedPart{}, storage.Errorf("upload", u.key, storage.ErrInvalid, "part number %d outside 1..%d", n, storage.MaxParts)
	}
	part, err := u.s.core.PutObjectPart(ctx, u.s.cfg.Bucket, u.s.cfg.Key(u.key), u.id, n, p.Reader(), p.Size(),
		minio.PutObjectPartOptions{DisableContentSha256: true})
	if err != nil {
		return storage.CompletedPart{}, u.s.wrap(ctx, "upload", u.key, err)
	}
	return storage.CompletedPart{Number: n, ETag: s3config.ETag(part.ETag), Size: p.Size()}, nil
}

func (u *upload) Complete(ctx context.Context, parts []storage.CompletedPart) (storage.ObjectInfo, error) {
	sorted := slices.SortedFunc(slices.Values(parts), func(a, b storage.CompletedPart) int { return a.Number - b.Number })
	completed := make([]minio.CompletePart, len(sorted))
	var size int64
	for i, p := range sorted {
		completed[i] = minio.CompletePart{PartNumber: p.Number, ETag: p.ETag}
		size += p.Size
	}
	info, err := u.s.core.CompleteMultipartUpload(ctx, u.s.cfg.Bucket, u.s.cfg.Key(u.key), u.id, completed, minio.PutObjectOptions{})
	if err != nil {
		return storage.ObjectInfo{}, u.s.wrap(ctx, "upload", u.key, err)
	}
	return storage.ObjectInfo{Key: u.key, Size: size, ETag: s3config.ETag(info.ETag), LastModified: orNow(info.LastModified)}, nil
}

func (u *upload) Abort(ctx context.Context) error {
	err := u.s.core.AbortMultipartUpload(ctx, u.s.cfg.Bucket, u.s.cfg.Key(u.key), u.id)
	if err != nil {
		if err := u.s.wrap(ctx, "upload", u.key, err); !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return nil
}

// wrap turns a minio-go error into a storage error: the S3 error code and
// HTTP status decide the kind when the server answered, the transport error
// when it did not.
func (s *Store) wrap(ctx context.Context, op, key string, err error) error {
	var kind error
	var resp minio.ErrorResponse
	switch {
	case errors.As(err, &resp) && (resp.StatusCode != 0 || resp.Code != ""):
		err = fmt.Errorf("%d %s: %w", resp.StatusCode, resp.Code, err)
		kind, err = s3config.Classify(s3config.Response{
			Code: resp.Code, Message: resp.Message, Status: resp.StatusCode, BucketRegion: resp.Region,
		}, s.cfg.Region, err)
	default:
		kind = s3config.NetKind(err)
	}
	if kind == storage.ErrPermission && s.anonymous() {
		kind = storage.ErrAuth
		err = fmt.Errorf("no credentials found (AWS_* environment, shared files, instance role), sent anonymously: %w", err)
	}
	return s3config.Wrap(ctx, op, key, kind, err)
}

// anonymous reports whether the credential chain found nothing, which makes
// minio-go send unsigned requests that servers deny.
func (s *Store) anonymous() bool {
	v, err := s.creds.GetWithContext(nil) // minio-go's default credential context
	return err == nil && v.SignerType.IsAnonymous()
}

// orNow returns t, or the current time (to the second, as S3 keeps it) when
// the response carried none.
func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().Truncate(time.Second)
	}
	return t
}
