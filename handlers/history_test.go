package handlers

import "testing"

// TestHistoryFieldsOnlyForHistory: with, group, before and limit are read (and
// type-checked) on history frames only; a legacy frame carrying fields of those
// names, of any type, is decoded as before.
func TestHistoryFieldsOnlyForHistory(t *testing.T) {
	legacy := `{"flag":"msg","from":"a","to":"b","content":"x","group":{"weird":1},"limit":"lots","with":[1],"before":7}`
	if f, e := Decode([]byte(legacy)); e != nil || f.Group != "" || f.Limit != 0 {
		t.Fatalf("legacy frame: %+v, %v; want decoded without the history fields", f, e)
	}
	f, e := Decode([]byte(`{"flag":"history","with":42,"before":"abc","limit":20}`))
	if e != nil || f.With != "42" || f.Before != "abc" || f.Limit != 20 {
		t.Fatalf("history frame: %+v, %v", f, e)
	}
	for _, bad := range []string{
		`{"flag":"history","group":{"weird":1}}`,
		`{"flag":"history","with":"b","limit":"lots"}`,
		`{"flag":"history","with":"b","limit":1.5}`,
		`{"flag":"history","with":"b","before":7}`,
	} {
		if _, e := Decode([]byte(bad)); e == nil || e.Code != CodeBadField {
			t.Errorf("%s: %v; want bad_field", bad, e)
		}
	}
}
