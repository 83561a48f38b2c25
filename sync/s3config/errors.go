package s3config

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"

	"github.com/batonrun/baton/sync/storage"
)

// Kind maps an S3 error code and the response's HTTP status to one of the
// error kinds of package storage. The code decides when it is known; otherwise
// the status does. An unknown code with no telling status is ErrInvalid.
//
// 404 is ErrNotFound except NoSuchBucket (ErrNoBucket); 412, and 409 unless
// the code says otherwise, are ErrPreconditionFailed; rejected credentials are
// ErrAuth; 403 is ErrPermission; throttling, 408, 429 and 5xx but 501 are
// ErrTransient; other 4xx are ErrInvalid.
func Kind(code string, status int) error {
	switch code {
	case "NoSuchBucket":
		return storage.ErrNoBucket
	case "NoSuchKey", "NotFound", "NoSuchUpload", "NoSuchVersion":
		return storage.ErrNotFound
	case "PreconditionFailed", "ConditionalRequestConflict":
		return storage.ErrPreconditionFailed
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException",
		"InvalidToken", "TokenRefreshRequired", "AuthorizationHeaderMalformed", "AuthorizationQueryParametersError",
		"InvalidSecurity", "MissingSecurityHeader", "InvalidClientTokenId", "UnrecognizedClientException",
		"RequestTimeTooSkewed", "AccessKeyDisabled", "XMinioInvalidTokenId",
		"XAdminUserNotFound": // versitygw: unknown access key (with status 404)
		return storage.ErrAuth
	case "AccessDenied", "AllAccessDisabled", "AccountProblem":
		return storage.ErrPermission
	case "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "Throttling",
		"ThrottlingException", "RequestThrottled", "TooManyRequests", "TooManyRequestsException",
		"OperationAborted", "IncompleteBody", "BadDigest", "XAmzContentSHA256Mismatch",
		"XMinioServerNotInitialized", "XMinioReadQuorum", "XMinioWriteQuorum":
		return storage.ErrTransient
	case "InvalidRange", "InvalidPart", "InvalidPartOrder", "EntityTooSmall", "EntityTooLarge",
		"InvalidArgument", "InvalidRequest", "InvalidBucketName", "KeyTooLongError", "MalformedXML",
		"NotImplemented", "MissingContentLength", "InvalidDigest", "InvalidObjectState",
		"PermanentRedirect", "MethodNotAllowed":
		return storage.ErrInvalid
	}
	switch {
	case status == 404:
		return storage.ErrNotFound
	case status == 412, status == 409:
		return storage.ErrPreconditionFailed
	case status == 401:
		return storage.ErrAuth
	case status == 403:
		return storage.ErrPermission
	case status == 408, status == 429, status >= 500 && status != 501:
		return storage.ErrTransient
	default:
		return storage.ErrInvalid
	}
}

// Response is what a driver knows of an S3 error response.
type Response struct {
	Code    string // the S3 error code, if the body had one
	Message string // the error's message
	Status  int    // the HTTP status
	// BucketRegion is the region the server names in x-amz-bucket-region or
	// the body's <Region>, if any.
	BucketRegion string
}

// Classify returns the kind of an error response r to a request signed for
// region, and the error to report in place of err: err itself, or an
// explanation wrapping it. A request signed for the wrong region is
// ErrWrongRegion (see WrongRegion), not the ErrAuth of its code; the answer
// of a Go server to plain HTTP on its TLS port ("Client sent an HTTP request
// to an HTTPS server") is ErrTLSMismatch; otherwise Kind decides.
func Classify(r Response, region string, err error) (kind, explained error) {
	if expected, ok := WrongRegion(r); ok {
		return storage.ErrWrongRegion, regionError(region, expected, err)
	}
	if strings.Contains(r.Message, "Client sent an HTTP request to an HTTPS server") {
		return storage.ErrTLSMismatch, explain("the endpoint speaks TLS (is it https://?)", err)
	}
	return Kind(r.Code, r.Status), err
}

// expecting finds the region a server expects in its message: AWS says
// "the region 'us-east-1' is wrong; expecting 'eu-west-1'", versitygw the
// same with double quotes, MinIO "the region is wrong; expecting
// 'eu-west-1'." and minio-go "expecting region ‘eu-west-1’".
var expecting = regexp.MustCompile(`expecting(?: region)?\s*['"‘’]?([a-z0-9-]+)`)

// WrongRegion reports whether r says the request was signed for the wrong
// region, and which region the server expects when it says: AWS, MinIO and
// versitygw answer 400 AuthorizationHeaderMalformed naming the region, AWS
// redirects (301, PermanentRedirect) to the bucket's region, MinIO may
// answer InvalidRegion.
func WrongRegion(r Response) (expected string, ok bool) {
	switch {
	case r.Code == "AuthorizationHeaderMalformed", r.Code == "AuthorizationQueryParametersError":
		ok = strings.Contains(strings.ToLower(r.Message), "region")
	case r.Code == "InvalidRegion", r.Code == "IllegalLocationConstraintException",
		r.Code == "PermanentRedirect", r.Status == http.StatusMovedPermanently:
		ok = true
	}
	if !ok {
		return "", false
	}
	if m := expecting.FindStringSubmatch(r.Message); m != nil {
		return m[1], true
	}
	return r.BucketRegion, true
}

// regionError explains a request signed for region that the server wanted
// signed for expected ("" when it did not say).
func regionError(region, expected string, err error) error {
	if expected == "" || expected == region {
		return explain(fmt.Sprintf("the server does not take region %s and does not say which it wants (set the bucket's region: ?region= or AWS_REGION)", region), err)
	}
	return explain(fmt.Sprintf("the server expects region %s, not %s (set ?region=%s or AWS_REGION)", expected, region, expected), err)
}

// explained is an error told in words of its own; Unwrap gives the error
// it explains, for errors.As and for debug logs.
type explained struct {
	words string
	err   error
}

func explain(words string, err error) error { return &explained{words, err} }

func (e *explained) Error() string { return e.words }
func (e *explained) Unwrap() error { return e.err }

// NetKind classifies an error that happened below HTTP, with no response
// from the server: a failure to connect at all (refused, unresolvable host,
// dial timeout, unreachable network, a certificate that does not verify) is
// ErrUnreachable; an https:// endpoint that answers in plain HTTP (or
// anything but TLS) is ErrTLSMismatch; anything else (a connection reset or
// cut mid-request, an unexpected EOF, a timeout after connecting) is
// ErrTransient. It returns nil for nil.
func NetKind(err error) error {
	if err == nil {
		return nil
	}
	var (
		dnsErr  *net.DNSError
		opErr   *net.OpError
		unkAuth x509.UnknownAuthorityError
		hostErr x509.HostnameError
		certErr x509.CertificateInvalidError
		tlsErr  *tls.CertificateVerificationError
		recErr  tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, http.ErrSchemeMismatch), errors.As(err, &recErr):
		return storage.ErrTLSMismatch
	case errors.As(err, &dnsErr):
		return storage.ErrUnreachable
	case errors.As(err, &opErr) && (opErr.Op == "dial" || opErr.Op == "proxyconnect"):
		return storage.ErrUnreachable
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EADDRNOTAVAIL):
		return storage.ErrUnreachable
	case errors.As(err, &unkAuth), errors.As(err, &hostErr), errors.As(err, &certErr), errors.As(err, &tlsErr):
		return storage.ErrUnreachable
	}
	return storage.ErrTransient
}

// Wrap returns err as a storage error of operation op on key. When ctx is
// done it returns an error wrapping ctx.Err() (and no kind), since the
// caller gave up; otherwise an *storage.Error of the given kind wrapping err
// (an ErrTLSMismatch from NetKind explained: the endpoint does not speak
// TLS).
func Wrap(ctx context.Context, op, key string, kind, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s %q: %w (%v)", op, key, ctxErr, err)
	}
	if kind == storage.ErrTLSMismatch && !errors.As(err, new(*explained)) {
		err = explain("the endpoint does not speak TLS (is it http://?)", err)
	}
	return &storage.Error{Op: op, Key: key, Kind: kind, Err: err}
}
