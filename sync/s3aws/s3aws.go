// Package s3aws is the S3 Store built on aws-sdk-go-v2: the full AWS
// credential chain (environment, shared profiles, SSO, instance and container
// roles, web identity), AWS_ENDPOINT_URL_S3 and AWS_CA_BUNDLE, and any
// S3-compatible server through a custom endpoint.
//
// The SDK's own retries are switched off (retries belong to storage.Retry), its
// default CRC32 checksums are limited to what the operation requires for
// non-AWS endpoints (several S3-compatible servers reject them), and uploads
// are sent as UNSIGNED-PAYLOAD so that no payload is hashed twice. What the
// SDK logs goes to slog.Default() at Debug, never straight to stderr.
package s3aws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/batonrun/baton/sync/s3config"
	"github.com/batonrun/baton/sync/storage"
)

// dialTimeout bounds connecting to the endpoint, so that an unreachable
// server fails in seconds.
const dialTimeout = 5 * time.Second

// Store is a storage.Store on one S3 bucket and prefix.
type Store struct {
	cfg    s3config.Config
	client *s3.Client
}

var _ storage.Store = (*Store)(nil)

// New returns the store that cfg describes, with blank settings filled from
// the environment (see s3config.Config.Resolve). It sends no request: wrong
// credentials or a missing bucket show in the first operation's error. ctx
// bounds loading the shared configuration.
func New(ctx context.Context, cfg s3config.Config) (*Store, error) {
	cfg = cfg.Resolve(os.Getenv)
	if cfg.Bucket == "" {
		return nil, &storage.Error{Op: "open", Kind: storage.ErrInvalid, Err: errors.New("S3 store: no bucket")}
	}
	endpoint, err := cfg.EndpointURL()
	if err != nil {
		return nil, &storage.Error{Op: "open", Kind: storage.ErrInvalid, Err: err}
	}
	// Check AWS_CA_BUNDLE ourselves, for an error that names it; the SDK
	// loads it again into the same transport.
	tlsConfig, err := s3config.TLSConfig(os.Getenv)
	if err != nil {
		return nil, &storage.Error{Op: "open", Kind: storage.ErrInvalid, Err: err}
	}
	// A BuildableClient, not a plain *http.Client: the SDK needs it to apply
	// AWS_CA_BUNDLE and a profile's ca_bundle.
	httpClient := awshttp.NewBuildableClient().
		WithTransportOptions(func(tr *http.Transport) {
			tr.MaxIdleConnsPerHost = cfg.MaxConns
			tr.MaxIdleConns = max(tr.MaxIdleConns, cfg.MaxConns)
			if tlsConfig != nil {
				tr.TLSClientConfig = tlsConfig.Clone()
			}
		}).
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = dialTimeout })

	opts := []func(*config.LoadOptions) error{
		config.WithRegion(cfg.Region),
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
		// The SDK's warnings go to slog at Debug, not to stderr; its request,
		// response and signing logs stay off (they could carry credentials).
		config.WithLogger(sdkLogger{}),
		config.WithClientLogMode(0),
	}
	if cfg.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(cfg.Profile))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)))
	}
	if endpoint != nil {
		opts = append(opts,
			config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
			config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, &storage.Error{Op: "open", Kind: storage.ErrInvalid, Err: fmt.Errorf("loading AWS configuration: %w", err)}
	}
	if awsCfg.Credentials != nil {
		awsCfg.Credentials = credentialsProvider{awsCfg.Credentials}
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if endpoint != nil {
			o.BaseEndpoint = aws.String(endpoint.String())
		}
		o.UsePathStyle = cfg.PathStyle
		o.Retryer = aws.NopRetryer{}
		// Not a warning on stderr for every multipart object read back.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	return &Store{cfg: cfg, client: client}, nil
}

// String names the store as "s3://bucket/prefix".
func (s *Store) String() string { return s.cfg.String() }

// unsigned sends the request body as UNSIGNED-PAYLOAD instead of hashing it
// for the signature.
func unsigned(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
}

// Put implements storage.Store.
func (s *Store) Put(ctx context.Context, key string, p storage.Payload, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if err := storage.CheckKey(key); err != nil {
		return storage.ObjectInfo{}, err
	}
	if opts.IfAbsent && opts.IfMatch != "" {
		return storage.ObjectInfo{}, storage.Errorf("put", key, storage.ErrInvalid, "both IfAbsent and IfMatch set")
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.cfg.Bucket),
		Key:           aws.String(s.cfg.Key(key)),
		Body:          p.Reader(),
		ContentLength: aws.Int64(p.Size()),
	}
	if opts.IfAbsent {
		in.IfNoneMatch = aws.String("*")
	}
	if opts.IfMatch != "" {
		in.IfMatch = aws.String(s3config.QuoteETag(opts.IfMatch))
	}
	out, err := s.client.PutObject(ctx, in, unsigned)
	if err != nil {
		return storage.ObjectInfo{}, s.wrap(ctx, "put", key, err)
	}
	return storage.ObjectInfo{
		Key:          key,
		Size:         p.Size(),
		ETag:         s3config.ETag(aws.ToString(out.ETag)),
		LastModified: responseDate(out.ResultMetadata),
	}, nil
}

// Get implements storage.Store.
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
	in := &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(s.cfg.Key(key))}
	if r := s3config.RangeHeader(offset, length); r != "" {
		in.Range = aws.String(r)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode() == "InvalidRange" {
			// Reading from the very end (or any range of an empty object)
			// is a valid empty read; past the end is not.
			return s.empty(ctx, key, offset)
		}
		return nil, storage.ObjectInfo{}, s.wrap(ctx, "get", key, err)
	}
	info := storage.ObjectInfo{
		Key:          key,
		ETag:         s3config.ETag(aws.ToString(out.ETag)),
		LastModified: aws.ToTime(out.LastModified),
	}
	want := int64(-1)
	if out.ContentLength != nil {
		want = *out.ContentLength
	}
	if total, ok := s3config.TotalSize(aws.ToString(out.ContentRange)); ok {
		info.Size = total
	} else {
		info.Size = want
	}
	return s3config.Body(ctx, key, out.Body, want), info, nil
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
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(s.cfg.Key(key)),
	})
	if err != nil {
		if code := status(err); code == http.StatusNotFound || code == http.StatusForbidden {
			err = s.explain(ctx, key, err)
		}
		return storage.ObjectInfo{}, s.wrap(ctx, op, key, err)
	}
	return storage.ObjectInfo{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		ETag:         s3config.ETag(aws.ToString(out.ETag)),
		LastModified: aws.ToTime(out.LastModified),
	}, nil
}

// explain returns the error of a one-byte GET of key after a HEAD of it
// failed with headErr. A HEAD response has no body, so its bare 404 or 403
// cannot tell a missing object from a missing bucket (or, on some servers,
// an unknown access key), nor rejected credentials from a denied
// permission; the GET's error code can. It costs a request on the failure
// path only. headErr stays when the GET tells nothing more.
func (s *Store) explain(ctx context.Context, key string, headErr error) error {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(s.cfg.Key(key)),
		Range:  aws.String("bytes=0-0"),
	})
	if err == nil {
		out.Body.Close()
		return headErr
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || status(err) < 400 || status(err) >= 500 {
		return headErr
	}
	return fmt.Errorf("HEAD failed; a GET says: %w", plain(err))
}

// List implements storage.Store.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.cfg.Bucket),
		Prefix:  aws.String(s.cfg.ListPrefix(prefix)),
		MaxKeys: aws.Int32(1000),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return s.wrap(ctx, "list", prefix, err)
		}
		for _, o := range page.Contents {
			key, ok := s.cfg.StoreKey(aws.ToString(o.Key))
			if !ok {
				continue
			}
			err := fn(storage.ObjectInfo{
				Key:          key,
				Size:         aws.ToInt64(o.Size),
				ETag:         s3config.ETag(aws.ToString(o.ETag)),
				LastModified: aws.ToTime(o.LastModified),
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete implements storage.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := storage.CheckKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(s.cfg.Key(key)),
	})
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
	out, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(s.cfg.Key(key)),
	})
	if err != nil {
		return nil, s.wrap(ctx, "upload", key, err)
	}
	return &upload{s: s, key: key, id: aws.ToString(out.UploadId)}, nil
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
	out, err := u.s.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:        aws.String(u.s.cfg.Bucket),
		Key:           aws.String(u.s.cfg.Key(u.key)),
		UploadId:      aws.String(u.id),
		PartNumber:    aws.Int32(int32(n)),
		Body:          p.Reader(),
		ContentLength: aws.Int64(p.Size()),
	}, unsigned)
	if err != nil {
		return storage.CompletedPart{}, u.s.wrap(ctx, "upload", u.key, err)
	}
	return storage.CompletedPart{Number: n, ETag: s3config.ETag(aws.ToString(out.ETag)), Size: p.Size()}, nil
}

func (u *upload) Complete(ctx context.Context, parts []storage.CompletedPart) (storage.ObjectInfo, error) {
	sorted := slices.SortedFunc(slices.Values(parts), func(a, b storage.CompletedPart) int { return a.Number - b.Number })
	completed := make([]types.CompletedPart, len(sorted))
	var size int64
	for i, p := range sorted {
		completed[i] = types.CompletedPart{ETag: aws.String(s3config.QuoteETag(p.ETag)), PartNumber: aws.Int32(int32(p.Number))}
		size += p.Size
	}
	out, err := u.s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(u.s.cfg.Bucket),
		Key:             aws.String(u.s.cfg.Key(u.key)),
		UploadId:        aws.String(u.id),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
	})
	if err != nil {
		return storage.ObjectInfo{}, u.s.wrap(ctx, "upload", u.key, err)
	}
	return storage.ObjectInfo{
		Key:          u.key,
		Size:         size,
		ETag:         s3config.ETag(aws.ToString(out.ETag)),
		LastModified: responseDate(out.ResultMetadata),
	}, nil
}

func (u *upload) Abort(ctx context.Context) error {
	_, err := u.s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(u.s.cfg.Bucket),
		Key:      aws.String(u.s.cfg.Key(u.key)),
		UploadId: aws.String(u.id),
	})
	if err != nil {
		if err := u.s.wrap(ctx, "upload", u.key, err); !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return nil
}

// wrap turns an SDK error into a storage error: the S3 error code and HTTP
// status decide the kind when the server answered, the transport error when
// it did not.
func (s *Store) wrap(ctx context.Context, op, key string, err error) error {
	var (
		apiErr  smithy.APIError
		signErr *v4.SigningError
		credErr *credentialsError
		kind    error
	)
	err = plain(err)
	code := status(err)
	switch {
	case errors.As(err, &apiErr):
		kind, err = s3config.Classify(s3config.Response{
			Code: apiErr.ErrorCode(), Message: apiErr.ErrorMessage(), Status: code, BucketRegion: bucketRegion(err),
		}, s.cfg.Region, err)
	case code >= 300:
		kind, err = s3config.Classify(s3config.Response{Status: code, BucketRegion: bucketRegion(err)}, s.cfg.Region, err)
	case errors.As(err, &credErr), errors.As(err, &signErr):
		kind = storage.ErrAuth // no credentials could be found
	default:
		kind = s3config.NetKind(err)
	}
	return s3config.Wrap(ctx, op, key, kind, err)
}

// credentialsProvider marks the errors of the credential chain, so that a
// failure to find credentials reads as ErrAuth: the SDK reports it as a
// plain error.
type credentialsProvider struct {
	aws.CredentialsProvider
}

func (p credentialsProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := p.CredentialsProvider.Retrieve(ctx)
	if err != nil {
		return c, &credentialsError{err}
	}
	return c, nil
}

// ProviderSources passes on where the credentials come from, which the SDK
// reports in its User-Agent.
func (p credentialsProvider) ProviderSources() []aws.CredentialSource {
	if s, ok := p.CredentialsProvider.(aws.CredentialProviderSource); ok {
		return s.ProviderSources()
	}
	return nil
}

type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return "no usable credentials: " + e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

// status returns the HTTP status of the response an SDK error came with, or
// zero.
func status(err error) int {
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		return respErr.HTTPStatusCode()
	}
	return 0
}

// bucketRegion returns the region an error response names in its
// x-amz-bucket-region header, or "".
func bucketRegion(err error) string {
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) && respErr.Response != nil {
		return respErr.Response.Header.Get("X-Amz-Bucket-Region")
	}
	return ""
}

// responseError is the SDK's error for a request that got no answer or an
// error answer: *awshttp.ResponseError, or S3's own with a HostID.
type responseError interface {
	error
	HTTPStatusCode() int
	ServiceRequestID() string
	Unwrap() error
}

// sdkError is an SDK error with the message a user reads.
type sdkError struct {
	msg string
	err error
}

func (e *sdkError) Error() string { return e.msg }
func (e *sdkError) Unwrap() error { return e.err }

// plain returns err, an error of an S3 operation, with a message of the
// operation and what went wrong, "ListObjectsV2: 400 Code: message", in
// place of the SDK's "operation error S3: ListObjectsV2, https response error
// StatusCode: 400, RequestID: ..., HostID: ..., api error Code: message".
// The request and host IDs, which only AWS support reads, go to slog at
// Debug. Errors of another shape are returned as they are.
func plain(err error) error {
	var opErr *smithy.OperationError
	if errors.As(err, new(*sdkError)) || !errors.As(err, &opErr) {
		return err
	}
	resp, ok := opErr.Err.(responseError)
	if !ok {
		return err
	}
	op, code, cause := opErr.Operation(), resp.HTTPStatusCode(), resp.Unwrap()
	var apiErr smithy.APIError
	var msg string
	switch {
	case errors.As(cause, &apiErr) && code != 0:
		msg = fmt.Sprintf("%s: %d %s", op, code, apiErr.ErrorCode())
		if m := apiErr.ErrorMessage(); m != "" {
			msg += ": " + m
		}
	case code != 0:
		msg = fmt.Sprintf("%s: %d: %v", op, code, cause)
	default:
		msg = fmt.Sprintf("%s: %v", op, cause)
	}
	attrs := []any{"source", "aws-sdk", "operation", op, "status", code, "request_id", resp.ServiceRequestID()}
	if h, ok := resp.(interface{ ServiceHostID() string }); ok {
		attrs = append(attrs, "host_id", h.ServiceHostID())
	}
	slog.Debug("S3 request failed: "+msg, attrs...)
	return &sdkError{msg: msg, err: err}
}

// responseDate returns the Date header of the response, the best guess at
// an object's LastModified when the response carries no Last-Modified, or
// the local clock's time when there is none.
func responseDate(md middleware.Metadata) time.Time {
	if resp, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response); ok {
		if t, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
			return t
		}
	}
	return time.Now().Truncate(time.Second)
}
