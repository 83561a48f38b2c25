package s3aws

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/smithy-go/logging"
)

// sdkLogger hands what the AWS SDK logs to slog.Default() at Debug, with
// source=aws-sdk, instead of the SDK's default of printing it on stderr. The
// SDK warns on its own, on successful requests too ("failed to discard
// remaining HTTP response body" when a server closes a connection early);
// nothing it says is baton's user's to act on. Its request, response and
// signing logs, which could carry credentials, stay off (ClientLogMode 0),
// so only those warnings reach it.
type sdkLogger struct{ ctx context.Context }

var _ logging.ContextLogger = sdkLogger{}

// Logf implements logging.Logger.
func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	ctx := l.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	log := slog.Default()
	if !log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	log.Log(ctx, slog.LevelDebug, fmt.Sprintf(format, v...), "source", "aws-sdk", "classification", string(c))
}

// WithContext implements logging.ContextLogger: the record carries the
// request's context to slog's handler.
func (l sdkLogger) WithContext(ctx context.Context) logging.Logger { return sdkLogger{ctx: ctx} }
