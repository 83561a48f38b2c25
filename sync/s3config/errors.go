package s3config

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
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

// NetKind classifies an error that happened below HTTP, with no response
// from the server: a failure to connect at all (refused, unresolvable host,
// dial timeout, unreachable network, a certificate that does not verify) is
// ErrUnreachable; anything else (a connection reset or cut mid-request, an
// unexpected EOF, a timeout after connecting) is ErrTransient. It returns nil
// for nil.
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
	)
	switch {
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
// caller gave up; otherwise an *storage.Error of the given kind wrapping err.
func Wrap(ctx context.Context, op, key string, kind, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s %q: %w (%v)", op, key, ctxErr, err)
	}
	return &storage.Error{Op: op, Key: key, Kind: kind, Err: err}
}
