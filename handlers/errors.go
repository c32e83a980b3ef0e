package handlers

import "errors"

// Error codes a client sees in {"flag":"error","code":...}. After any of them the
// connection stays open and usable, but for too_many_connections, which is
// followed by a close.
const (
	CodeBadJSON        = "bad_json"             // the frame is not valid JSON
	CodeBadFrame       = "bad_frame"            // valid JSON, but not an object
	CodeMissingField   = "missing_field"        // a required field is absent or null
	CodeBadField       = "bad_field"            // a field has the wrong type or an unusable value
	CodeUnknownFlag    = "unknown_flag"         // flag is none of the known ones
	CodeBinary         = "binary_frame"         // binary frames are not part of the protocol
	CodeNotInitialized = "not_initialized"      // the frame needs init first
	CodeWrongSender    = "wrong_sender"         // from is not the account this connection speaks for
	CodeTooLong        = "too_long"             // a field is longer than the table can store
	CodeBusy           = "busy"                 // the offline pool is not keeping up; try again
	CodeUnauthorized   = "unauthorized"         // init without a valid token, or an auth frame's token refused (auth.mode jwt)
	CodeForbidden      = "forbidden"            // not allowed: broadcast by a non-allowed account, group by a non-member
	CodeNotFound       = "not_found"            // a group with no members
	CodeRateLimited    = "rate_limited"         // a frame with a cid over limits.frames_per_second (others wait, rate.go)
	CodeTooManyConns   = "too_many_connections" // init past limits.connections_per_account; the connection is closed (4005)
	CodeUnavailable    = "unavailable"          // storage is unreachable right now
	CodeInternal       = "internal"             // a bug on our side; logged
)

// Error is a protocol error: the frame is refused, the connection stays.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func newError(code, msg string) *Error { return &Error{Code: code, Message: msg} }

// asError turns any error into the one the client sees: protocol errors pass
// through, anything else is internal (and must be logged by the caller).
func asError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return newError(CodeInternal, "internal error; it has been logged"), false
}
