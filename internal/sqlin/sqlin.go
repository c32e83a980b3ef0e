// Package sqlin builds the IN (...) lists of parameterized statements.
package sqlin

import "strings"

// List completes a statement that ends in "IN (" with one placeholder per
// value, and returns the values as its arguments: the values never enter the
// SQL text.
func List[T any](prefix string, vals []T) (string, []any) {
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	if len(vals) == 0 {
		return prefix + ")", args
	}
	return prefix + "?" + strings.Repeat(",?", len(vals)-1) + ")", args
}
